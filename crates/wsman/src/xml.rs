//! A small namespace-resolved element tree over quick-xml's `NsReader`, with the limits that
//! make hostile documents cheap to refuse.
//!
//! Names are (namespace URI, local name) pairs, never prefixes: AMT renames its prefixes from one
//! reply to the next, and a fault reply binds them differently from a normal one.

use std::rc::Rc;

use std::borrow::Cow;

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
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
///
/// The resolver hands out a URI as a slice of its own buffer. While no element declares or
/// drops a namespace (a `generation` counts those), the same slice is the same URI, so the
/// common case (every property of every instance) is recognised by address alone; otherwise
/// URIs are compared as written.
#[derive(Default)]
struct Namespaces {
    known: Vec<Rc<str>>,
    /// The last URI returned, and the slice and generation it was found for.
    last: Option<(usize, usize, u64, usize)>,
    generation: u64,
}

impl Namespaces {
    /// An element with attributes may declare namespaces: slices the resolver hands out are
    /// no longer known by address (a declaration may reuse a dropped one's place).
    fn note_declarations(&mut self, start: &BytesStart<'_>) -> bool {
        let declares = !start.attributes_raw().trim_ascii().is_empty();
        if declares {
            self.generation += 1;
        }
        declares
    }

    fn get(&mut self, result: &ResolveResult<'_>) -> Result<Rc<str>, Error> {
        let raw = match result {
            ResolveResult::Bound(ns) => ns.0,
            ResolveResult::Unbound => "",
            ResolveResult::Unknown(prefix) => {
                return Err(Error::Xml(XmlError::UndeclaredPrefix(prefix.to_string())));
            }
        };
        let key = (raw.as_ptr() as usize, raw.len(), self.generation);
        if let Some((ptr, len, generation, i)) = self.last
            && (ptr, len, generation) == key
        {
            return Ok(Rc::clone(&self.known[i]));
        }
        // Declarations are compared as written; only one with an escape is unescaped first.
        let uri = if raw.contains('&') {
            unescaped(raw)?
        } else {
            Cow::Borrowed(raw)
        };
        let i = match self.known.iter().position(|k| **k == *uri) {
            Some(i) => i,
            None => {
                self.known.push(Rc::from(&*uri));
                self.known.len() - 1
            }
        };
        self.last = Some((key.0, key.1, key.2, i));
        Ok(Rc::clone(&self.known[i]))
    }
}

/// One event of a document, namespace-resolved, with names and text borrowed from it.
pub(crate) enum Ev<'a> {
    /// An element starts (`empty`: and ends at once, `<x/>`).
    Start {
        ns: Rc<str>,
        name: &'a str,
        start: BytesStart<'a>,
        empty: bool,
    },
    /// The innermost open element ends.
    End,
    /// Character data (text or CDATA, line ends normalised).
    Text(Cow<'a, str>),
    /// A character or predefined entity reference.
    Char(char),
    /// The end of a well-formed document.
    Eof,
}

/// The events of a document, with the limits of this module enforced and names and text
/// taken from the document without copying or decoding them again (it is a `str` already).
pub(crate) struct Events<'a> {
    doc: &'a str,
    reader: NsReader<&'a [u8]>,
    namespaces: Namespaces,
    count: usize,
    depth: usize,
    root_seen: bool,
    /// Open elements that have attributes (maybe namespace declarations), one bit per depth.
    declares: u64,
    /// The document has no carriage return, so text needs no line-end normalisation.
    no_cr: bool,
}

impl<'a> Events<'a> {
    pub(crate) fn new(doc: &'a str) -> Result<Self, Error> {
        if doc.len() > MAX_DOCUMENT {
            return Err(Error::TooLarge {
                len: doc.len(),
                max: MAX_DOCUMENT,
            });
        }
        let mut reader = NsReader::from_str(doc);
        reader.config_mut().check_end_names = true;
        Ok(Self {
            doc,
            reader,
            namespaces: Namespaces::default(),
            count: 0,
            depth: 0,
            root_seen: false,
            declares: 0,
            no_cr: !doc.contains('\r'),
        })
    }

    /// Bytes of the document as its `str`: found by address (the reader hands out slices of
    /// the document), so no UTF-8 check runs again.
    fn str_of(&self, bytes: &str) -> Result<&'a str, Error> {
        let at = (bytes.as_ptr() as usize).wrapping_sub(self.doc.as_ptr() as usize);
        match self.doc.get(at..at.wrapping_add(bytes.len())) {
            Some(s) if s.as_ptr() == bytes.as_ptr() => Ok(s),
            _ => Err(Error::Xml(XmlError::Syntax(
                "a name that is not a slice of the document".into(),
            ))),
        }
    }

    fn syntax(e: impl std::fmt::Display) -> Error {
        Error::Xml(XmlError::Syntax(e.to_string()))
    }

    /// The next event.
    pub(crate) fn next(&mut self) -> Result<Ev<'a>, Error> {
        loop {
            let (resolved, event) = self.reader.read_resolved_event().map_err(Self::syntax)?;
            match event {
                Event::Start(start) => {
                    let declares = self.namespaces.note_declarations(&start);
                    let ns = self.namespaces.get(&resolved)?;
                    if declares {
                        // Its declarations stay in scope until it closes.
                        self.declares |= 1u64 << self.depth.min(63);
                    }
                    return self.start(ns, start, false);
                }
                Event::Empty(start) => {
                    let declares = self.namespaces.note_declarations(&start);
                    let ns = self.namespaces.get(&resolved)?;
                    if declares {
                        // Its declarations end with it.
                        self.namespaces.generation += 1;
                    }
                    return self.start(ns, start, true);
                }
                Event::End(_) => {
                    // check_end_names guarantees a matching open element.
                    self.depth = self
                        .depth
                        .checked_sub(1)
                        .ok_or(Error::Xml(XmlError::UnbalancedEndTag))?;
                    let bit = 1u64 << self.depth;
                    if self.declares & bit != 0 {
                        // Its declarations go out of scope.
                        self.declares &= !bit;
                        self.namespaces.generation += 1;
                    }
                    return Ok(Ev::End);
                }
                Event::Text(text) => {
                    let content = if self.no_cr {
                        text.into_inner()
                    } else {
                        text.xml10_content()
                    };
                    if self.depth == 0 {
                        if content.trim().is_empty() {
                            continue;
                        }
                        return Err(Error::Xml(XmlError::OutsideRoot));
                    }
                    return Ok(Ev::Text(content));
                }
                Event::CData(data) => {
                    if self.depth == 0 {
                        return Err(Error::Xml(XmlError::OutsideRoot));
                    }
                    return Ok(Ev::Text(data.xml10_content()));
                }
                Event::GeneralRef(reference) => {
                    let c = if reference.is_char_ref() {
                        reference
                            .resolve_char_ref()
                            .map_err(Self::syntax)?
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
                    if self.depth == 0 {
                        return Err(Error::Xml(XmlError::OutsideRoot));
                    }
                    return Ok(Ev::Char(c));
                }
                Event::DocType(_) => return Err(Error::DocType),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
                Event::Eof => {
                    if self.depth != 0 || !self.root_seen {
                        return Err(Error::Xml(XmlError::Incomplete));
                    }
                    return Ok(Ev::Eof);
                }
            }
        }
    }

    fn start(&mut self, ns: Rc<str>, start: BytesStart<'a>, empty: bool) -> Result<Ev<'a>, Error> {
        if self.depth == 0 {
            if self.root_seen {
                return Err(Error::Xml(XmlError::OutsideRoot));
            }
            self.root_seen = true;
        }
        self.count += 1;
        if self.count > MAX_ELEMENTS {
            return Err(Error::LimitExceeded("element count"));
        }
        if self.depth >= MAX_DEPTH {
            return Err(Error::LimitExceeded("nesting depth"));
        }
        let name = self.str_of(start.local_name().into_inner())?;
        if !empty {
            self.depth += 1;
        }
        Ok(Ev::Start {
            ns,
            name,
            start,
            empty,
        })
    }

    /// The attributes of an element just started (namespace declarations left out).
    pub(crate) fn attrs(&self, start: &BytesStart<'a>) -> Result<Vec<Attr>, Error> {
        let mut attrs = Vec::new();
        if start
            .attributes_raw()
            .bytes()
            .all(|b| b.is_ascii_whitespace())
        {
            return Ok(attrs);
        }
        for attr in start.attributes() {
            let attr = attr.map_err(Self::syntax)?;
            let key = attr.key.0;
            if key == "xmlns" || key.starts_with("xmlns:") {
                continue;
            }
            let (attr_ns, local) = self.reader.resolver().resolve_attribute(attr.key);
            let value = attr
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(Self::syntax)?;
            attrs.push(Attr {
                ns: bound(&attr_ns)?,
                name: self.str_of(local.into_inner())?.to_owned(),
                value: value.into_owned(),
            });
        }
        Ok(attrs)
    }

    /// An element from its start event, without children yet.
    pub(crate) fn element(
        &self,
        ns: Rc<str>,
        name: &str,
        start: &BytesStart<'a>,
    ) -> Result<Element, Error> {
        Ok(Element {
            ns,
            name: name.to_owned(),
            attrs: self.attrs(start)?,
            ..Element::default()
        })
    }

    /// Builds the rest of a subtree: `stack` holds its open elements (the root first), `next`
    /// an event already read inside it. Returns the root once it closes.
    pub(crate) fn subtree(
        &mut self,
        mut stack: Vec<Element>,
        mut next: Option<Ev<'a>>,
    ) -> Result<Element, Error> {
        loop {
            let event = match next.take() {
                Some(event) => event,
                None => self.next()?,
            };
            match event {
                Ev::Start {
                    ns,
                    name,
                    start,
                    empty,
                } => {
                    let element = self.element(ns, name, &start)?;
                    if empty {
                        if let Some(root) = self.close(&mut stack, element) {
                            return Ok(root);
                        }
                    } else {
                        stack.push(element);
                    }
                }
                Ev::End => {
                    let element = stack.pop().ok_or(Error::Xml(XmlError::UnbalancedEndTag))?;
                    if let Some(root) = self.close(&mut stack, element) {
                        return Ok(root);
                    }
                }
                Ev::Text(text) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&text);
                    }
                }
                Ev::Char(c) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push(c);
                    }
                }
                Ev::Eof => return Err(Error::Xml(XmlError::Incomplete)),
            }
        }
    }

    /// Skips the rest of an element whose start was just read.
    pub(crate) fn skip(&mut self) -> Result<(), Error> {
        let mut open = 1usize;
        while open > 0 {
            match self.next()? {
                Ev::Start { empty: false, .. } => open += 1,
                Ev::End => open -= 1,
                Ev::Eof => return Err(Error::Xml(XmlError::Incomplete)),
                _ => {}
            }
        }
        Ok(())
    }

    /// An element closes: into its parent, or returned when it was the root of the subtree.
    fn close(&mut self, stack: &mut [Element], mut element: Element) -> Option<Element> {
        if !element.children.is_empty() {
            // Pretty-printing whitespace between child elements is not content.
            element.text.clear();
        } else if element.is(ns::SOAP, "Value") {
            let (resolved, _) = self
                .reader
                .resolver()
                .resolve_element(QName(element.text.trim()));
            element.text_ns = self.namespaces.get(&resolved).ok();
        }
        match stack.last_mut() {
            Some(parent) => {
                // AMT instances have 10 to 25 properties: start there rather than growing
                // the vector (and moving its elements) four times.
                if parent.children.capacity() == 0 {
                    parent.children.reserve_exact(16);
                }
                parent.children.push(element);
                None
            }
            None => Some(element),
        }
    }
}

/// Parses a whole document into its root element.
pub(crate) fn parse(doc: &str) -> Result<Element, Error> {
    let mut events = Events::new(doc)?;
    let root = match events.next()? {
        Ev::Start {
            ns,
            name,
            start,
            empty,
        } => {
            let element = events.element(ns, name, &start)?;
            if empty {
                element
            } else {
                events.subtree(vec![element], None)?
            }
        }
        _ => return Err(Error::Xml(XmlError::Incomplete)),
    };
    match events.next()? {
        Ev::Eof => Ok(root),
        _ => Err(Error::Xml(XmlError::OutsideRoot)),
    }
}

/// Escapes text for element content and attribute values.
pub(crate) fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}
