//! Reply parsing straight from the XML events: instances are built as their properties stream
//! past, without an element tree in between. Only the small or rare parts (the header, faults,
//! EPRs, embedded instances, `ResourceCreated`, `SubscribeResponse`) go through the tree of
//! [`crate::xml`], and what they produce is the same as the tree path produced for whole
//! documents (a test compares both on every fixture).

use std::rc::Rc;

use std::borrow::Cow;

use crate::model::Property;
use crate::ns;
use crate::response::{finish_body, parse_fault, parse_item};
use crate::view::{BodyView, InstanceView, ItemView, PropertyView, ResponseView, ValueView};
use crate::xml::{Element, Ev, Events};
use crate::{Error, XmlError};

/// What the first child of the Body became.
enum First<'a> {
    /// Built as a tree (faults, ResourceCreated, SubscribeResponse, ...), finished later.
    Tree(Element),
    /// An instance (Get, Put, a method's output, Identify), built from the events.
    Instance(InstanceView<'a>),
    /// Enumerate or Pull.
    Items {
        context: Option<String>,
        end_of_sequence: bool,
        /// Items of the first `wsen:Items`, and of the first `wsman:Items`.
        enumeration: Option<Vec<ItemView<'a>>>,
        wsman: Option<Vec<ItemView<'a>>>,
    },
}

/// Parses a reply; see [`Response::parse`].
pub(crate) fn parse(doc: &str, http_status: u16) -> Result<ResponseView<'_>, Error> {
    let ok = (200..300).contains(&http_status);
    match parse_document(doc) {
        Ok(Parsed::NotAnEnvelope) => Err(if ok {
            Error::NotAnEnvelope
        } else {
            Error::Http(http_status)
        }),
        Ok(Parsed::Envelope {
            header,
            body,
            fault,
        }) => {
            let Some(first) = body else {
                return Err(Error::Missing("Body"));
            };
            if let Some(fault) = fault {
                return Err(Error::Fault(Box::new(parse_fault(&fault, http_status))));
            }
            if !ok {
                return Err(Error::Http(http_status));
            }
            let header = header.unwrap_or_default();
            let text = |name: &str| {
                header
                    .child(ns::ADDRESSING, name)
                    .map(|e| e.text.trim().to_owned())
            };
            let body = match first {
                None => BodyView::Empty,
                Some(First::Tree(element)) => BodyView::Owned(finish_body(element)?),
                Some(First::Instance(instance)) => BodyView::Instance(instance),
                Some(First::Items {
                    context,
                    end_of_sequence,
                    enumeration,
                    wsman,
                }) => BodyView::Items {
                    context: if end_of_sequence { None } else { context },
                    items: enumeration.or(wsman).unwrap_or_default(),
                    end_of_sequence,
                },
            };
            Ok(ResponseView {
                action: text("Action").unwrap_or_default(),
                relates_to: text("RelatesTo"),
                message_id: text("MessageID"),
                resource_uri: header
                    .child_text(ns::WSMAN, "ResourceURI")
                    .map(|s| s.trim().to_owned()),
                body,
            })
        }
        // A 401 HTML page, a 500 with no body: the status is the news, not the XML.
        Err(_) if !ok => Err(Error::Http(http_status)),
        Err(e) => Err(e),
    }
}

enum Parsed<'a> {
    NotAnEnvelope,
    Envelope {
        header: Option<Box<Element>>,
        /// `None`: no Body; `Some(None)`: an empty Body.
        body: Option<Option<First<'a>>>,
        fault: Option<Box<Element>>,
    },
}

/// The next child start at the current level, or `None` at the parent's end; text and
/// character references between children are passed over.
fn child<'a>(events: &mut Events<'a>) -> Result<Option<Start<'a>>, Error> {
    loop {
        match events.next()? {
            Ev::Start {
                ns,
                name,
                start,
                empty,
            } => {
                return Ok(Some(Start {
                    ns,
                    name,
                    start,
                    empty,
                }));
            }
            Ev::End => return Ok(None),
            Ev::Text(_) | Ev::Char(_) => {}
            Ev::Eof => return Err(Error::Xml(XmlError::Incomplete)),
        }
    }
}

struct Start<'a> {
    ns: Rc<str>,
    name: Cow<'a, str>,
    start: quick_xml::events::BytesStart<'a>,
    empty: bool,
}

impl Start<'_> {
    fn is(&self, ns: &str, name: &str) -> bool {
        self.name == name && &*self.ns == ns
    }
}

fn tree(events: &mut Events<'_>, s: Start<'_>) -> Result<Element, Error> {
    let element = events.element(s.ns, &s.name, &s.start)?;
    if s.empty {
        Ok(element)
    } else {
        events.subtree(vec![element], None)
    }
}

fn skip(events: &mut Events<'_>, s: &Start<'_>) -> Result<(), Error> {
    if s.empty { Ok(()) } else { events.skip() }
}

fn parse_document(doc: &str) -> Result<Parsed<'_>, Error> {
    let mut events = Events::new(doc)?;
    let Some(root) = child(&mut events)? else {
        return Err(Error::Xml(XmlError::Incomplete));
    };
    let parsed = if root.is(ns::SOAP, "Envelope") {
        let (mut header, mut body, mut fault) = (None, None, None);
        if !root.empty {
            while let Some(part) = child(&mut events)? {
                if header.is_none() && part.is(ns::SOAP, "Header") {
                    header = Some(Box::new(tree(&mut events, part)?));
                } else if body.is_none() && part.is(ns::SOAP, "Body") {
                    body = Some(parse_body(&mut events, &part, &mut fault)?);
                } else {
                    skip(&mut events, &part)?;
                }
            }
        }
        Parsed::Envelope {
            header,
            body,
            fault,
        }
    } else {
        skip(&mut events, &root)?;
        Parsed::NotAnEnvelope
    };
    // The whole document must be well formed, as with the tree.
    match events.next()? {
        Ev::Eof => Ok(parsed),
        _ => Err(Error::Xml(XmlError::OutsideRoot)),
    }
}

/// The Body: its first child, and the first SOAP Fault among its children.
fn parse_body<'a>(
    events: &mut Events<'a>,
    body: &Start<'a>,
    fault: &mut Option<Box<Element>>,
) -> Result<Option<First<'a>>, Error> {
    if body.empty {
        return Ok(None);
    }
    let mut first = None;
    while let Some(part) = child(events)? {
        if fault.is_none() && part.is(ns::SOAP, "Fault") {
            *fault = Some(Box::new(tree(events, part)?));
            // A fault ends the parse as an error; the first child is not read.
            first.get_or_insert(First::Tree(Element::default()));
        } else if first.is_some() {
            skip(events, &part)?;
        } else {
            first = Some(first_child(events, part)?);
        }
    }
    Ok(first)
}

fn first_child<'a>(events: &mut Events<'a>, s: Start<'a>) -> Result<First<'a>, Error> {
    let ns_ = &*s.ns;
    if ns_ == ns::ENUMERATION && matches!(&*s.name, "EnumerateResponse" | "PullResponse") {
        return items(events, &s);
    }
    let tree_shaped = (ns_ == ns::TRANSFER && s.name == "ResourceCreated")
        || (ns_ == ns::EVENTING && s.name == "SubscribeResponse");
    if tree_shaped {
        return Ok(First::Tree(tree(events, s)?));
    }
    Ok(First::Instance(instance(events, s)?))
}

fn items<'a>(events: &mut Events<'a>, s: &Start<'a>) -> Result<First<'a>, Error> {
    let (mut context, mut end_of_sequence) = (None, false);
    let (mut enumeration, mut wsman) = (None, None);
    if !s.empty {
        while let Some(part) = child(events)? {
            let in_enum = &*part.ns == ns::ENUMERATION;
            let in_wsman = &*part.ns == ns::WSMAN;
            match &*part.name {
                "EnumerationContext" if in_enum && context.is_none() => {
                    context = Some(tree(events, part)?.text.trim().to_owned());
                }
                "EndOfSequence" if in_enum || in_wsman => {
                    end_of_sequence = true;
                    skip(events, &part)?;
                }
                "Items" if in_enum && enumeration.is_none() => {
                    enumeration = Some(item_list(events, &part)?);
                }
                "Items" if in_wsman && wsman.is_none() => {
                    wsman = Some(item_list(events, &part)?);
                }
                _ => skip(events, &part)?,
            }
        }
    }
    Ok(First::Items {
        context,
        end_of_sequence,
        enumeration,
        wsman,
    })
}

fn item_list<'a>(events: &mut Events<'a>, s: &Start<'a>) -> Result<Vec<ItemView<'a>>, Error> {
    let mut items = Vec::new();
    if s.empty {
        return Ok(items);
    }
    while let Some(part) = child(events)? {
        let wrapped = part.is(ns::WSMAN, "Item") || part.is(ns::ADDRESSING, "EndpointReference");
        items.push(if wrapped {
            let item = parse_item(tree(events, part)?);
            ItemView {
                instance: item.instance.map(owned_view),
                epr: item.epr,
            }
        } else {
            ItemView {
                instance: Some(instance(events, part)?),
                epr: None,
            }
        });
    }
    Ok(items)
}

/// An instance read through the tree (ObjectAndEPR items), as a view that owns its parts.
fn owned_view(instance: crate::Instance) -> InstanceView<'static> {
    InstanceView {
        class: Cow::Owned(instance.class),
        namespace: std::rc::Rc::from(instance.namespace.as_str()),
        properties: instance
            .properties
            .into_iter()
            .map(|p| PropertyView {
                name: Cow::Owned(p.name),
                value: match p.value {
                    crate::Value::Text(t) => ValueView::Text(Cow::Owned(t)),
                    crate::Value::Nil => ValueView::Nil,
                    other => ValueView::Structured(Box::new(other)),
                },
            })
            .collect(),
    }
}

/// An instance from the events: each leaf child becomes a text (or nil) property as it
/// closes; a child with children of its own (an EPR, an embedded instance, a datetime) is
/// built as a tree and read the way the tree path reads it.
fn instance<'a>(events: &mut Events<'a>, s: Start<'a>) -> Result<InstanceView<'a>, Error> {
    let mut instance = InstanceView {
        class: s.name,
        namespace: s.ns,
        properties: Vec::new(),
    };
    if s.empty {
        return Ok(instance);
    }
    while let Some(p) = child(events)? {
        if instance.properties.capacity() == 0 {
            // AMT instances have 10 to 25 properties.
            instance.properties.reserve_exact(16);
        }
        let attrs = events.attrs(&p.start)?;
        let nil = attrs
            .iter()
            .any(|a| a.ns == ns::XSI && a.name == "nil" && a.value.trim() == "true");
        if p.empty {
            instance.properties.push(PropertyView {
                name: p.name.clone(),
                value: if nil {
                    ValueView::Nil
                } else {
                    ValueView::Text(Cow::Borrowed(""))
                },
            });
            continue;
        }
        let mut text: Option<Cow<'a, str>> = None;
        loop {
            let more = |text: &mut Option<Cow<'a, str>>, piece: Cow<'a, str>| match text {
                None => *text = Some(piece),
                Some(t) => t.to_mut().push_str(&piece),
            };
            match events.next()? {
                Ev::Text(t) => more(&mut text, t),
                Ev::Char(c) => more(&mut text, Cow::Owned(c.to_string())),
                Ev::End => {
                    instance.properties.push(PropertyView {
                        name: p.name.clone(),
                        value: if nil {
                            ValueView::Nil
                        } else {
                            ValueView::Text(text.unwrap_or_default())
                        },
                    });
                    break;
                }
                start @ Ev::Start { .. } => {
                    // Children: read it as the tree path does.
                    let element = Element {
                        ns: p.ns,
                        name: p.name.to_string(),
                        attrs,
                        text: text.map(Cow::into_owned).unwrap_or_default(),
                        ..Element::default()
                    };
                    let element = events.subtree(vec![element], Some(start))?;
                    let property = Property::from_element(element);
                    instance.properties.push(PropertyView {
                        name: p.name.clone(),
                        value: ValueView::Structured(Box::new(property.value)),
                    });
                    break;
                }
                Ev::Eof => return Err(Error::Xml(XmlError::Incomplete)),
            }
        }
    }
    Ok(instance)
}

#[cfg(test)]
mod tests {
    use crate::Response;

    /// Every fixture (real AMT replies) and a few hostile shapes give the same result from
    /// the events as from the tree, under a success status and under error statuses.
    #[test]
    fn events_and_tree_agree_on_every_fixture() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/wsman-responses");
        let mut stack = vec![dir];
        let mut docs = Vec::new();
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "xml") {
                    docs.push((
                        path.display().to_string(),
                        std::fs::read_to_string(&path).unwrap(),
                    ));
                }
            }
        }
        assert!(docs.len() >= 297, "{} fixtures", docs.len());
        let hostile = [
            "<a:Envelope xmlns:a=\"http://www.w3.org/2003/05/soap-envelope\"><a:Body><a:Fault/><x/></a:Body></a:Envelope>",
            "<a:Envelope xmlns:a=\"http://www.w3.org/2003/05/soap-envelope\"><a:Body><x/><a:Fault/></a:Body></a:Envelope>",
            "<a:Envelope xmlns:a=\"http://www.w3.org/2003/05/soap-envelope\"><a:Header/></a:Envelope>",
            "<a:Envelope xmlns:a=\"http://www.w3.org/2003/05/soap-envelope\"><a:Body/></a:Envelope><x/>",
            "<x/>",
            "<x>",
            "",
            "<a:Envelope xmlns:a=\"http://www.w3.org/2003/05/soap-envelope\"><a:Body><p:C xmlns:p=\"u\"><p:A>1&amp;2</p:A><p:B xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\" i:nil=\"true\"/><p:D>t<p:E>e</p:E></p:D></p:C></a:Body></a:Envelope>",
        ];
        docs.extend(
            hostile
                .iter()
                .map(|d| ("hostile".to_owned(), (*d).to_owned())),
        );
        for (name, doc) in &docs {
            for status in [200, 400, 500] {
                let events = format!("{:?}", Response::parse(doc, status));
                let tree = format!("{:?}", Response::parse_via_tree(doc, status));
                assert_eq!(events, tree, "{name} with HTTP {status}");
            }
        }
    }
}
