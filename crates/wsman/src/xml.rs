//! A small namespace-resolved element tree over quick-xml's `NsReader`, with the limits that
//! make hostile documents cheap to refuse.
//!
//! Names are (namespace URI, local name) pairs, never prefixes: AMT renames its prefixes from one
//! reply to the next, and a fault reply binds them differently from a normal one.

use std::rc::Rc;

use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::{QName, ResolveResult};

use crate::ns;
use crate::{Error, XmlError};

/// Largest document accepted, in bytes. The biggest AMT replies (a 999-item Pull) are a few
/// hundred KiB.
pub const MAX_DOCUMENT: usize = 16 * 1024 * 1024;
/// Deepest element nesting accepted. WS-Man bodies nest EPRs in selectors in EPRs, about 12 deep.
pub const MAX_DEPTH: usize = 64;
/// Most elements in one document.
pub const MAX_ELEMENTS: usize = 500_000;

/// One attribute, namespace-resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attr {
    pub(crate) ns: String,
    pub(crate) name: String,
    pub(crate) value: String,
}

/// One element, namespace-resolved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Element {
    /// Namespace URI, empty when unbound; shared, since a document uses a handful.
    pub(crate) ns: Rc<str>,
    pub(crate) name: String,
    pub(crate) attrs: Vec<Attr>,
    pub(crate) children: Vec<Self>,
    /// Character data of a leaf element (whitespace between child elements is dropped).
    pub(crate) text: String,
    /// For SOAP `Value` elements only: the namespace the QName in `text` resolves to, since
    /// fault codes are QNames whose prefixes are bound on the envelope.
    pub(crate) text_ns: Option<Rc<str>>,
}

impl Element {
    pub(crate) fn is(&self, ns: &str, name: &str) -> bool {
        self.name == name && &*self.ns == ns
    }

    pub(crate) fn child(&self, ns: &str, name: &str) -> Option<&Self> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    pub(crate) fn child_text(&self, ns: &str, name: &str) -> Option<&str> {
        self.child(ns, name).map(|c| c.text.as_str())
    }

    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }

    /// A CIM common `Datetime` (or `Date`, `Time`, `Interval`) wrapper.
    pub(crate) fn is_datetime(&self) -> bool {
        &*self.ns == ns::CIM_COMMON
            && matches!(
                self.name.as_str(),
                "Datetime" | "Date" | "Time" | "Interval"
            )
    }

    /// Removes and returns the first child named (`ns`, `name`).
    pub(crate) fn take_child(&mut self, ns: &str, name: &str) -> Option<Self> {
        let i = self.children.iter().position(|c| c.is(ns, name))?;
        Some(self.children.swap_remove(i))
    }

    /// Removes and returns the first child.
    pub(crate) fn take_first(&mut self) -> Option<Self> {
        (!self.children.is_empty()).then(|| self.children.remove(0))
    }

    /// `xsi:nil="true"`.
    pub(crate) fn is_nil(&self) -> bool {
        self.attrs
            .iter()
            .any(|a| a.ns == ns::XSI && a.name == "nil" && a.value.trim() == "true")
    }
}

/// A namespace URI as declared, with its escapes resolved: the resolver hands out the
/// attribute's raw text (`xmlns="&amp;"` is the URI `&`).
fn unescaped(raw: &str) -> Result<std::borrow::Cow<'_, str>, Error> {
    quick_xml::escape::unescape(raw).map_err(|e| Error::Xml(XmlError::Syntax(e.to_string())))
}

fn bound(result: &ResolveResult<'_>) -> Result<String, Error> {
    match result {
        ResolveResult::Bound(ns) => Ok(unescaped(ns.0)?.into_owned()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(prefix) => {
            Err(Error::Xml(XmlError::UndeclaredPrefix(prefix.to_string())))
        }
    }
}

/// The distinct namespace URIs of one document, shared by its elements.
#[derive(Default)]
struct Namespaces {
    known: Vec<Rc<str>>,
    /// Index of the last one returned: consecutive elements nearly always share it.
    last: usize,
}

impl Namespaces {
    fn get(&mut self, result: &ResolveResult<'_>) -> Result<Rc<str>, Error> {
        let uri = match result {
            ResolveResult::Bound(ns) => unescaped(ns.0)?,
            ResolveResult::Unbound => "".into(),
            ResolveResult::Unknown(prefix) => {
                return Err(Error::Xml(XmlError::UndeclaredPrefix(prefix.to_string())));
            }
        };
        let uri = &*uri;
        if let Some(last) = self.known.get(self.last)
            && &**last == uri
        {
            return Ok(Rc::clone(last));
        }
        if let Some(i) = self.known.iter().position(|k| &**k == uri) {
            self.last = i;
            return Ok(Rc::clone(&self.known[i]));
        }
        let new: Rc<str> = Rc::from(uri);
        self.last = self.known.len();
        self.known.push(Rc::clone(&new));
        Ok(new)
    }
}

/// Parses a whole document into its root element.
pub(crate) fn parse(doc: &str) -> Result<Element, Error> {
    if doc.len() > MAX_DOCUMENT {
        return Err(Error::TooLarge {
            len: doc.len(),
            max: MAX_DOCUMENT,
        });
    }
    let mut reader = NsReader::from_str(doc);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    let mut namespaces = Namespaces::default();
    loop {
        let (resolved, event) = reader
            .read_resolved_event()
            .map_err(|e| Error::Xml(XmlError::Syntax(e.to_string())))?;
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let is_empty = matches!(event, Event::Empty(_));
                if root.is_some() {
                    return Err(Error::Xml(XmlError::OutsideRoot));
                }
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(Error::LimitExceeded("element count"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(Error::LimitExceeded("nesting depth"));
                }
                let ns = namespaces.get(&resolved)?;
                let name = start.local_name().as_ref().to_owned();
                let mut attrs = Vec::new();
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| Error::Xml(XmlError::Syntax(e.to_string())))?;
                    let key = attr.key.0;
                    if key == "xmlns" || key.starts_with("xmlns:") {
                        continue;
                    }
                    let (attr_ns, local) = reader.resolver().resolve_attribute(attr.key);
                    let value = attr
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| Error::Xml(XmlError::Syntax(e.to_string())))?;
                    attrs.push(Attr {
                        ns: bound(&attr_ns)?,
                        name: local.as_ref().to_owned(),
                        value: value.into_owned(),
                    });
                }
                let element = Element {
                    ns,
                    name,
                    attrs,
                    ..Element::default()
                };
                if is_empty {
                    close(&mut stack, &mut root, element, &reader, &mut namespaces);
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                // check_end_names guarantees a matching open element.
                let element = stack.pop().ok_or(Error::Xml(XmlError::UnbalancedEndTag))?;
                close(&mut stack, &mut root, element, &reader, &mut namespaces);
            }
            Event::Text(text) => {
                let content = text.xml10_content();
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&content),
                    None if content.trim().is_empty() => {}
                    None => return Err(Error::Xml(XmlError::OutsideRoot)),
                }
            }
            Event::CData(data) => {
                let content = data.xml10_content();
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&content),
                    None => return Err(Error::Xml(XmlError::OutsideRoot)),
                }
            }
            Event::GeneralRef(reference) => {
                let c = if reference.is_char_ref() {
                    reference
                        .resolve_char_ref()
                        .map_err(|e| Error::Xml(XmlError::Syntax(e.to_string())))?
                        .ok_or(Error::Xml(XmlError::BadCharacterReference))?
                } else {
                    match &*reference.xml10_content() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(Error::Entity(other.to_owned())),
                    }
                };
                match stack.last_mut() {
                    Some(top) => top.text.push(c),
                    None => return Err(Error::Xml(XmlError::OutsideRoot)),
                }
            }
            Event::DocType(_) => return Err(Error::DocType),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(Error::Xml(XmlError::Incomplete));
    }
    root.ok_or(Error::Xml(XmlError::Incomplete))
}

fn close(
    stack: &mut [Element],
    root: &mut Option<Element>,
    mut element: Element,
    reader: &NsReader<&[u8]>,
    namespaces: &mut Namespaces,
) {
    if !element.children.is_empty() {
        // Pretty-printing whitespace between child elements is not content.
        element.text.clear();
    } else if element.is(ns::SOAP, "Value") {
        let (resolved, _) = reader
            .resolver()
            .resolve_element(QName(element.text.trim()));
        element.text_ns = namespaces.get(&resolved).ok();
    }
    match stack.last_mut() {
        Some(parent) => {
            // AMT instances have 10 to 25 properties: start there rather than growing the
            // vector (and moving its elements) four times.
            if parent.children.capacity() == 0 {
                parent.children.reserve_exact(16);
            }
            parent.children.push(element);
        }
        None => *root = Some(element),
    }
}

/// Escapes text for element content and attribute values.
pub(crate) fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}
