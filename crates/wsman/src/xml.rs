//! Namespace-resolved events, and a small element tree built from them, over the markup that
//! [`crate::scan`] cuts with quick-xml's grammar, with the limits that make hostile documents
//! cheap to refuse.
//!
//! Names are (namespace URI, local name) pairs, never prefixes: AMT renames its prefixes from one
//! reply to the next, and a fault reply binds them differently from a normal one.

use std::cell::RefCell;
use std::rc::Rc;

use std::borrow::Cow;

use quick_xml::events::attributes::Attributes;
use quick_xml::events::{BytesCData, BytesRef, BytesText};

use crate::ns;
use crate::scan::{ScanError, Scanner, Token};
use crate::{Error, XmlError};

/// Largest document accepted, in bytes. The biggest AMT replies (a 999-item Pull) are a few
/// hundred KiB.
pub const MAX_DOCUMENT: usize = 16 * 1024 * 1024;
/// Deepest element nesting accepted. WS-Man bodies nest EPRs in selectors in EPRs, about 12 deep.
pub const MAX_DEPTH: usize = 64;
/// Most elements in one document.
pub const MAX_ELEMENTS: usize = 500_000;
/// Most namespace declarations in scope at once (an AMT reply has about a dozen): prefixes are
/// looked up by a search through them, which must stay short however a document is written.
pub const MAX_NAMESPACES: usize = 256;

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
        is_datetime(&self.ns, &self.name)
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

/// Whether (`ns`, `name`) is a CIM common `Datetime` (or `Date`, `Time`, `Interval`) wrapper.
pub(crate) fn is_datetime(ns: &str, name: &str) -> bool {
    ns == ns::CIM_COMMON && matches!(name, "Datetime" | "Date" | "Time" | "Interval")
}

/// The namespace bound to `xml` in every document.
const XML_NAMESPACE: &str = "http://www.w3.org/XML/1998/namespace";
/// The namespace of the `xmlns` attributes, which no prefix may be bound to.
const XMLNS_NAMESPACE: &str = "http://www.w3.org/2000/xmlns/";

/// The namespace bindings in scope, resolved without quick-xml's `NsReader`: a WS-Man
/// document binds a dozen prefixes, mostly on its Envelope, so a short list searched from the
/// innermost binding, and a cache of the last prefix looked up, cost less than the general
/// resolver. URIs are shared (`Rc<str>`), one per distinct URI of the document.
#[derive(Default, Clone)]
struct Namespaces {
    /// (prefix, URI, depth of the declaring element); `""` is the default namespace, and an
    /// empty URI undeclares it.
    bindings: Vec<(Rc<str>, Rc<str>, usize)>,
    /// Distinct URIs seen, the first [`MAX_INTERNED`]: one table for the parser and all its
    /// snapshots (a URI interned after a snapshot is still right when reading on from it), so
    /// a snapshot does not copy it.
    uris: Rc<RefCell<Vec<Rc<str>>>>,
    /// The last lookup (prefix, URI), valid while the bindings do not change. All shared, so
    /// that a snapshot of the parser (a clone) costs one short vector.
    last: Option<(Rc<str>, Rc<str>)>,
    /// Bindings to drop (those at this depth and deeper) before the next event: an element's
    /// declarations stay in scope until after its end was handed out, for the QName in a SOAP
    /// `Value` to resolve against them.
    pop_to: Option<usize>,
    empty: Option<Rc<str>>,
}

impl Namespaces {
    fn intern(&mut self, uri: &str) -> Rc<str> {
        let mut uris = self.uris.borrow_mut();
        // AMT's class URIs share long prefixes and often their length: the last byte tells
        // most of them apart before a full comparison.
        let last = uri.as_bytes().last();
        if let Some(known) = uris
            .iter()
            .find(|k| k.len() == uri.len() && k.as_bytes().last() == last && ***k == *uri)
        {
            return Rc::clone(known);
        }
        let new: Rc<str> = Rc::from(uri);
        // The first few distinct URIs are shared; a document declaring thousands more gets
        // copies, rather than a search through all of them for every declaration (and a
        // larger table).
        if uris.len() < MAX_INTERNED {
            uris.push(Rc::clone(&new));
        }
        new
    }

    /// The URI of `prefix` without the cache (`None`: undeclared; `""` without a default
    /// namespace is the empty URI).
    fn lookup(&self, prefix: &str) -> Option<Rc<str>> {
        if prefix == "xml" {
            return Some(Rc::from(XML_NAMESPACE));
        }
        match self.bindings.iter().rev().find(|b| &*b.0 == prefix) {
            Some(binding) if prefix.is_empty() || !binding.1.is_empty() => {
                Some(Rc::clone(&binding.1))
            }
            None if prefix.is_empty() => Some(Rc::from("")),
            _ => None,
        }
    }

    fn unbound(&mut self) -> Rc<str> {
        Rc::clone(self.empty.get_or_insert_with(|| Rc::from("")))
    }

    #[inline]
    fn apply_pops(&mut self) {
        if let Some(depth) = self.pop_to.take() {
            self.pop(depth);
        }
    }

    /// Drops the bindings at `depth` and deeper.
    fn pop(&mut self, depth: usize) {
        let before = self.bindings.len();
        while self.bindings.last().is_some_and(|b| b.2 >= depth) {
            self.bindings.pop();
        }
        if self.bindings.len() != before {
            self.last = None;
        }
    }

    /// Takes the `xmlns` declarations of an element at `depth`.
    ///
    /// Every element's attributes pass here, read or not: an unbound prefix or a broken escape
    /// is an error wherever it stands (checked as [`Events::attrs`] reads them, in the same
    /// order), so a document is refused alike whichever parts a parser skips.
    fn declare(&mut self, tag: Tag<'_>, depth: usize) -> Result<(), Error> {
        let mut others = false;
        for attr in tag.attributes() {
            let attr = attr?;
            match declared_prefix(attr.key()) {
                Some(prefix) => self.bind(prefix, &attr.unescaped()?, depth)?,
                None => others = true,
            }
        }
        if others {
            // Once the element's own declarations are in scope: they bind its attributes too.
            for attr in tag.attributes().flatten() {
                self.check_prefix_of(attr.key())?;
                attr.normalized()?;
            }
        }
        Ok(())
    }

    /// An attribute that is not a declaration must have its prefix bound.
    fn check_prefix_of(&self, key: &str) -> Result<(), Error> {
        if declared_prefix(key).is_some() {
            return Ok(());
        }
        let (prefix, _) = split_qname(key);
        if !prefix.is_empty() && self.lookup(prefix).is_none() {
            return Err(Error::Xml(XmlError::UndeclaredPrefix(prefix.to_owned())));
        }
        Ok(())
    }

    /// Binds `prefix` (`""`: the default namespace) to `uri` (unescaped).
    fn bind(&mut self, prefix: &str, uri: &str, depth: usize) -> Result<(), Error> {
        // The rules of Namespaces in XML 1.0 section 3.
        let reserved = match prefix {
            "xmlns" => true,
            "xml" => uri != XML_NAMESPACE,
            // `xmlns:p=""` undeclares p (as quick-xml takes it): p then resolves to nothing.
            _ => uri == XML_NAMESPACE || uri == XMLNS_NAMESPACE,
        };
        if reserved {
            let key = if prefix.is_empty() {
                "xmlns".to_owned()
            } else {
                format!("xmlns:{prefix}")
            };
            return Err(Error::Xml(XmlError::Syntax(format!(
                "the namespace declaration {key}=\"{uri}\" is not allowed"
            ))));
        }
        if self.bindings.len() >= MAX_NAMESPACES {
            return Err(Error::LimitExceeded("namespace declarations in scope"));
        }
        let uri = self.intern(uri);
        self.bindings.push((prefix.into(), uri, depth));
        self.last = None;
        Ok(())
    }

    /// The URI of `prefix` (`""`: the default namespace, or none when `attribute`).
    fn resolve(&mut self, prefix: &str) -> Result<Rc<str>, Error> {
        if let Some((last_prefix, uri)) = &self.last
            && **last_prefix == *prefix
        {
            return Ok(Rc::clone(uri));
        }
        if prefix == "xml" {
            return Ok(self.intern(XML_NAMESPACE));
        }
        let (prefix, uri) = match self.bindings.iter().rev().find(|b| &*b.0 == prefix) {
            Some(binding) if prefix.is_empty() || !binding.1.is_empty() => {
                (Rc::clone(&binding.0), Rc::clone(&binding.1))
            }
            None if prefix.is_empty() => {
                let unbound = self.unbound();
                (Rc::clone(&unbound), unbound)
            }
            _ => return Err(Error::Xml(XmlError::UndeclaredPrefix(prefix.to_owned()))),
        };
        self.last = Some((prefix, Rc::clone(&uri)));
        Ok(uri)
    }
}

/// The prefix an attribute declares when it is a namespace declaration (`xmlns`: `""`, the
/// default namespace; `xmlns:p`: `p`); `None` for any other attribute.
fn declared_prefix(key: &str) -> Option<&str> {
    if key == "xmlns" {
        Some("")
    } else {
        key.strip_prefix("xmlns:")
    }
}

/// `prefix:local` split at the colon (no prefix: `""`).
fn split_qname(name: &str) -> (&str, &str) {
    // Prefixes are a letter or two: a plain search beats a `str` pattern's set-up.
    match name.bytes().position(|b| b == b':') {
        Some(colon) => (&name[..colon], &name[colon + 1..]),
        None => ("", name),
    }
}

/// A start tag as written: what stands between `<` and `>` (or `/>`), its first `name_len`
/// bytes the element's name, the rest its attributes.
#[derive(Clone, Copy)]
pub(crate) struct Tag<'a> {
    content: &'a str,
    name_len: usize,
}

impl<'a> Tag<'a> {
    /// The attributes, read at once when they are plain ([`Tag::plain`]), by quick-xml's
    /// iterator otherwise.
    fn attributes(self) -> TagAttributes<'a> {
        match self.plain() {
            Some(plain) => TagAttributes::Plain(plain),
            None => TagAttributes::General(self.general_attributes()),
        }
    }

    fn general_attributes(self) -> Attributes<'a> {
        Attributes::new(self.content, self.name_len)
    }

    fn has_attributes(self) -> bool {
        self.content.as_bytes()[self.name_len..]
            .iter()
            .any(|&b| !quick_xml::utils::is_whitespace(b))
    }

    /// The attributes when they are in the plain shape of nearly every WS-Man tag: each
    /// `name="value"` after whitespace, names of letters, digits and `_:.-`, all different,
    /// values without references, line breaks or tabs, so that they stand for themselves
    /// (nothing to unescape or normalise) and none can be in error. `None`: another shape, read
    /// by quick-xml's attribute iterator (a property test holds both to the same results).
    /// quick-xml reads values a byte at a time; AMT's namespace URIs are 60 bytes long.
    fn plain(self) -> Option<PlainAttributes<'a>> {
        let mut plain = PlainAttributes {
            pairs: [("", ""); PLAIN_MOST],
            len: 0,
            next: 0,
        };
        let mut rest = &self.content[self.name_len..];
        loop {
            // XML's whitespace (not `str::trim`'s, which has a form feed too).
            let after_space = &rest[rest
                .bytes()
                .position(|b| !quick_xml::utils::is_whitespace(b))
                .unwrap_or(rest.len())..];
            if after_space.is_empty() {
                return Some(plain);
            }
            if after_space.len() == rest.len() || plain.len == PLAIN_MOST {
                return None;
            }
            let (name, value, next) = plain_attribute(after_space)?;
            if plain.pairs[..plain.len].iter().any(|(n, _)| *n == name) {
                return None;
            }
            plain.pairs[plain.len] = (name, value);
            plain.len += 1;
            rest = next;
        }
    }
}

/// Most attributes read by [`Tag::plain`] (AMT's tags have one or two).
const PLAIN_MOST: usize = 4;

/// The first `name="value"` of `s` and what follows it, in the plain shape of [`Tag::plain`].
fn plain_attribute(s: &str) -> Option<(&str, &str, &str)> {
    let bytes = s.as_bytes();
    let name_end = bytes
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'.' | b'-')))?;
    if name_end == 0 || bytes[name_end] != b'=' {
        return None;
    }
    let quote = *bytes
        .get(name_end + 1)
        .filter(|&&q| q == b'"' || q == b'\'')?;
    let value_start = name_end + 2;
    let value_len = memchr::memchr(quote, &bytes[value_start..])?;
    let value = &s[value_start..value_start + value_len];
    // Two vector searches: a URI is too long for a byte loop to win.
    let standing_for_itself = memchr::memchr3(b'&', b'<', b'\t', value.as_bytes()).is_none()
        && memchr::memchr2(b'\r', b'\n', value.as_bytes()).is_none();
    if !standing_for_itself {
        return None;
    }
    Some((&s[..name_end], value, &s[value_start + value_len + 1..]))
}

/// A tag's attributes, in one of the two readings of [`Tag::attributes`].
enum TagAttributes<'a> {
    Plain(PlainAttributes<'a>),
    General(Attributes<'a>),
}

impl<'a> Iterator for TagAttributes<'a> {
    type Item = Result<Written<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Plain(plain) => plain
                .next()
                .map(|(key, value)| Ok(Written::Plain { key, value })),
            Self::General(attributes) => attributes
                .next()
                .map(|a| a.map(Written::General).map_err(Events::syntax)),
        }
    }
}

/// One attribute as written.
enum Written<'a> {
    /// In the plain shape: its value stands for itself.
    Plain { key: &'a str, value: &'a str },
    /// Anything else, as quick-xml read it.
    General(quick_xml::events::attributes::Attribute<'a>),
}

impl<'a> Written<'a> {
    fn key(&self) -> &'a str {
        match self {
            Self::Plain { key, .. } => key,
            Self::General(attr) => attr.key.0,
        }
    }

    /// The value with its references resolved (as a namespace URI is taken).
    fn unescaped(&self) -> Result<Cow<'_, str>, Error> {
        match self {
            Self::Plain { value, .. } => Ok(Cow::Borrowed(value)),
            Self::General(attr) => unescaped(&attr.value),
        }
    }

    /// The value as XML normalises attribute values (references resolved, line breaks and
    /// tabs as spaces).
    fn normalized(&self) -> Result<Cow<'a, str>, Error> {
        match self {
            Self::Plain { value, .. } => Ok(Cow::Borrowed(value)),
            Self::General(attr) => attr
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(Events::syntax),
        }
    }
}

/// The (name, value) pairs of attributes checked by [`Tag::plain`].
#[derive(Clone, Copy)]
struct PlainAttributes<'a> {
    pairs: [(&'a str, &'a str); PLAIN_MOST],
    len: usize,
    next: usize,
}

impl<'a> Iterator for PlainAttributes<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let pair = *self.pairs[..self.len].get(self.next)?;
        self.next += 1;
        Some(pair)
    }
}

/// One event of a document, namespace-resolved, with names and text borrowed from it.
#[derive(Clone)]
pub(crate) enum Ev<'a> {
    /// An element starts (`empty`: and ends at once, `<x/>`); `name` is its local name.
    Start {
        ns: Rc<str>,
        name: &'a str,
        tag: Tag<'a>,
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
/// A clone is a snapshot: reading on from it gives the same events again.
#[derive(Clone)]
pub(crate) struct Events<'a> {
    scanner: Scanner<'a>,
    namespaces: Namespaces,
    count: usize,
    depth: usize,
    root_seen: bool,
    /// The document has no carriage return, so text needs no line-end normalisation.
    no_cr: bool,
}

/// Distinct namespace URIs shared by interning: an AMT reply declares a few dozen (a Pull of
/// many classes, one per item class).
const MAX_INTERNED: usize = 256;

/// A snapshot ([`Events::snapshot`]) is taken only while at most this many namespace bindings
/// are in scope (an AMT reply has about a dozen); the open elements are places in the
/// document, at most [`MAX_DEPTH`] of them. A snapshot per structured value then costs a
/// bounded copy, however many namespaces a hostile document declares.
const SNAPSHOT_MAX_BINDINGS: usize = 64;

impl<'a> Events<'a> {
    pub(crate) fn new(doc: &'a str) -> Result<Self, Error> {
        if doc.len() > MAX_DOCUMENT {
            return Err(Error::TooLarge {
                len: doc.len(),
                max: MAX_DOCUMENT,
            });
        }
        Ok(Self {
            scanner: Scanner::new(doc),
            namespaces: Namespaces::default(),
            count: 0,
            depth: 0,
            root_seen: false,
            no_cr: memchr::memchr(b'\r', doc.as_bytes()).is_none(),
        })
    }

    /// A copy to read on from and return to, when one is cheap (see
    /// [`SNAPSHOT_MAX_BINDINGS`]); `None` otherwise, and the caller reads without one.
    pub(crate) fn snapshot(&self) -> Option<Self> {
        (self.namespaces.bindings.len() <= SNAPSHOT_MAX_BINDINGS).then(|| self.clone())
    }

    fn syntax(e: impl std::fmt::Display) -> Error {
        Error::Xml(XmlError::Syntax(e.to_string()))
    }

    /// The next event.
    pub(crate) fn next(&mut self) -> Result<Ev<'a>, Error> {
        loop {
            self.namespaces.apply_pops();
            let token = self
                .scanner
                .next_token()
                .map_err(|ScanError(e)| Error::Xml(XmlError::Syntax(e)))?;
            match token {
                Token::Start { content, name_len } => {
                    return self.start(content, name_len, false);
                }
                Token::Empty { content, name_len } => {
                    return self.start(content, name_len, true);
                }
                Token::End => {
                    // The scanner checked the name against the open element.
                    self.depth = self
                        .depth
                        .checked_sub(1)
                        .ok_or(Error::Xml(XmlError::UnbalancedEndTag))?;
                    self.namespaces.pop_to = Some(self.depth);
                    return Ok(Ev::End);
                }
                Token::Text(text) => {
                    let content = self.text(text);
                    if self.depth == 0 {
                        if content.trim().is_empty() {
                            continue;
                        }
                        return Err(Error::Xml(XmlError::OutsideRoot));
                    }
                    return Ok(Ev::Text(content));
                }
                Token::CData(data) => {
                    if self.depth == 0 {
                        return Err(Error::Xml(XmlError::OutsideRoot));
                    }
                    return Ok(Ev::Text(BytesCData::new(data).xml10_content()));
                }
                Token::Ref(name) => {
                    let reference = BytesRef::new(name);
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
                Token::DocType => return Err(Error::DocType),
                Token::Skipped => {}
                Token::Eof => {
                    if self.depth != 0 || !self.root_seen {
                        return Err(Error::Xml(XmlError::Incomplete));
                    }
                    return Ok(Ev::Eof);
                }
            }
        }
    }

    /// The text of the element just started when it is a leaf: text, without markup or
    /// references, up to its end tag, both read; the next event is then what follows the end.
    /// `None`: it is not, nothing was read.
    pub(crate) fn leaf_text(&mut self) -> Option<Cow<'a, str>> {
        self.namespaces.apply_pops();
        let text = self.scanner.leaf()?;
        self.depth -= 1;
        self.namespaces.pop_to = Some(self.depth);
        Some(self.text(text))
    }

    /// Character data with its line ends normalised (XML 1.0 section 2.11).
    fn text(&self, raw: &'a str) -> Cow<'a, str> {
        if self.no_cr {
            Cow::Borrowed(raw)
        } else {
            BytesText::from_escaped(raw).xml10_content()
        }
    }

    /// An element starts: `<content>`, its name the first `name_len` bytes.
    fn start(&mut self, content: &'a str, name_len: usize, empty: bool) -> Result<Ev<'a>, Error> {
        let tag = Tag { content, name_len };
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
        if tag.has_attributes() {
            self.namespaces.declare(tag, self.depth)?;
        }
        let qname = &content[..name_len];
        let (prefix, local) = split_qname(qname);
        let ns = self.namespaces.resolve(prefix)?;
        if empty {
            // Its declarations end with it.
            self.namespaces.pop_to = Some(self.depth);
        } else {
            self.depth += 1;
        }
        Ok(Ev::Start {
            ns,
            name: local,
            tag,
            empty,
        })
    }

    /// The attributes of an element just started (namespace declarations left out).
    pub(crate) fn attrs(&self, tag: Tag<'a>) -> Result<Vec<Attr>, Error> {
        let mut attrs = Vec::new();
        if !tag.has_attributes() {
            return Ok(attrs);
        }
        for attr in tag.attributes() {
            let attr = attr?;
            let key = attr.key();
            if declared_prefix(key).is_some() {
                continue;
            }
            // An unprefixed attribute is in no namespace (not the default one).
            let (prefix, local) = split_qname(key);
            let ns = if prefix.is_empty() {
                String::new()
            } else {
                self.namespaces
                    .lookup(prefix)
                    .ok_or_else(|| Error::Xml(XmlError::UndeclaredPrefix(prefix.to_owned())))?
                    .to_string()
            };
            attrs.push(Attr {
                ns,
                name: local.to_owned(),
                value: attr.normalized()?.into_owned(),
            });
        }
        Ok(attrs)
    }

    /// An element from its start event, without children yet.
    pub(crate) fn element(&self, ns: Rc<str>, name: &str, tag: Tag<'a>) -> Result<Element, Error> {
        Ok(Element {
            ns,
            name: name.to_owned(),
            attrs: self.attrs(tag)?,
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
                    tag,
                    empty,
                } => {
                    let element = self.element(ns, name, tag)?;
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
            let (prefix, _) = split_qname(element.text.trim());
            element.text_ns = self.namespaces.lookup(prefix);
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
            tag,
            empty,
        } => {
            let element = events.element(ns, name, tag)?;
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

#[cfg(test)]
mod resolver_tests {
    use super::*;
    use quick_xml::NsReader;
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;

    /// Snapshots are taken while the parser's state is small, and refused (the caller then
    /// reads without one) once many namespaces are in scope; long names cost nothing (the
    /// open elements are places in the document).
    #[test]
    fn snapshots_only_of_a_small_state() {
        let snapshot_inside = |name: &str, declarations: usize| {
            let declare: String = (0..declarations)
                .map(|i| format!(" xmlns:n{i}=\"urn:{i}\""))
                .collect();
            let doc = format!("<{name}{declare}><x/></{name}>");
            let mut events = Events::new(&doc).unwrap();
            assert!(matches!(events.next().unwrap(), Ev::Start { .. }));
            events.snapshot().is_some()
        };
        assert!(snapshot_inside("r", 12));
        assert!(snapshot_inside("r", SNAPSHOT_MAX_BINDINGS));
        assert!(!snapshot_inside("r", SNAPSHOT_MAX_BINDINGS + 1));
        assert!(snapshot_inside(&"r".repeat(100_000), 0));
    }

    /// Attributes as quick-xml reads them: (name, value unescaped and normalised), or `None`
    /// if any is in error.
    fn attributes_by_quick_xml(tag: Tag<'_>) -> Option<Vec<(String, String)>> {
        tag.general_attributes()
            .map(|a| {
                let a = a.ok()?;
                let value = a
                    .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .ok()?;
                Some((a.key.0.to_owned(), value.into_owned()))
            })
            .collect()
    }

    /// The plain shape of WS-Man tags is read without quick-xml's iterator.
    #[test]
    fn plain_attributes_are_taken_at_once() {
        for (content, plain) in [
            (
                "j:C xmlns:j=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_X\"",
                true,
            ),
            ("c:Selector Name='CreationClassName'", true),
            ("a b=\"1\"\n\tc=\"2\" ", true),
            ("a", true),
            ("a b=\"1\" b=\"2\"", false),
            ("a b=\"&amp;\"", false),
            ("a b = \"1\"", false),
            ("a b=1", false),
            ("a b=\"1\"c=\"2\"", false),
            ("a b=\"x\ny\"", false),
        ] {
            let tag = Tag {
                content,
                name_len: quick_xml::utils::name_len(content.as_bytes()),
            };
            assert_eq!(tag.plain().is_some(), plain, "{content}");
            if let Some(attrs) = tag.plain() {
                let ours: Vec<_> = attrs.map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
                assert_eq!(Some(ours), attributes_by_quick_xml(tag), "{content}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Whatever the attributes, when they look plain quick-xml reads the same pairs from
        /// them without an error.
        #[test]
        fn plain_attributes_read_as_quick_xml_reads_them(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(" "), proptest::strategy::Just("\t"),
                    proptest::strategy::Just("\n"), proptest::strategy::Just("a"),
                    proptest::strategy::Just("b:c"), proptest::strategy::Just("xmlns"),
                    proptest::strategy::Just("xmlns:p"), proptest::strategy::Just("="),
                    proptest::strategy::Just("\""), proptest::strategy::Just("'"),
                    proptest::strategy::Just("v w"), proptest::strategy::Just("&amp;"),
                    proptest::strategy::Just("&"), proptest::strategy::Just("<"),
                    proptest::strategy::Just("é"), proptest::strategy::Just("\r"),
                    proptest::strategy::Just(" d=\"1\""), proptest::strategy::Just(" e='2'"),
                    proptest::strategy::Just("\u{c}"),
                ],
                0..16,
            )
        ) {
            let content = format!("t{}", pieces.concat());
            let tag = Tag { content: &content, name_len: quick_xml::utils::name_len(content.as_bytes()) };
            if let Some(attrs) = tag.plain() {
                let ours: Vec<_> = attrs.map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
                proptest::prop_assert_eq!(Some(ours), attributes_by_quick_xml(tag), "{:?}", content);
            }
        }
    }

    /// (namespace, local name, attributes as (namespace, name)) of every element.
    type Resolved = Vec<(String, String, Vec<(String, String)>)>;

    /// Every element resolved by quick-xml's own resolver, or `Err` when it refuses the
    /// document.
    fn with_ns_reader(doc: &str) -> Result<Resolved, ()> {
        let mut reader = NsReader::from_str(doc);
        reader.config_mut().check_end_names = true;
        let uri = |r: ResolveResult<'_>| match r {
            ResolveResult::Bound(ns) => quick_xml::escape::unescape(ns.0)
                .map(|u| u.into_owned())
                .map_err(|_| ()),
            ResolveResult::Unbound => Ok(String::new()),
            ResolveResult::Unknown(_) => Err(()),
        };
        let mut out = Vec::new();
        loop {
            let (resolved, event) = reader.read_resolved_event().map_err(|_| ())?;
            match event {
                Event::Start(start) | Event::Empty(start) => {
                    let ns = uri(resolved)?;
                    let mut attrs = Vec::new();
                    for attr in start.attributes() {
                        let attr = attr.map_err(|_| ())?;
                        if attr.key.0 == "xmlns" || attr.key.0.starts_with("xmlns:") {
                            continue;
                        }
                        let (ans, local) = reader.resolver().resolve_attribute(attr.key);
                        attrs.push((uri(ans)?, local.into_inner().to_owned()));
                    }
                    out.push((ns, start.local_name().into_inner().to_owned(), attrs));
                }
                Event::Eof => return Ok(out),
                _ => {}
            }
        }
    }

    fn with_events(doc: &str) -> Result<Resolved, ()> {
        let mut events = Events::new(doc).map_err(|_| ())?;
        let mut out = Vec::new();
        loop {
            match events.next().map_err(|_| ())? {
                Ev::Start { ns, name, tag, .. } => {
                    let attrs = events.attrs(tag).map_err(|_| ())?;
                    out.push((
                        ns.to_string(),
                        name.to_owned(),
                        attrs.into_iter().map(|a| (a.ns, a.name)).collect(),
                    ));
                }
                Ev::Eof => return Ok(out),
                _ => {}
            }
        }
    }

    /// The resolver agrees with quick-xml's on every fixture and on scoping corner cases.
    #[test]
    fn resolves_as_quick_xml_does() {
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
                    docs.push(std::fs::read_to_string(&path).unwrap());
                }
            }
        }
        assert!(docs.len() >= 297);
        for doc in [
            r#"<a xmlns="u1"><b xmlns="u2"/><c/><d xmlns=""><e/></d></a>"#,
            r#"<p:a xmlns:p="u1"><p:b xmlns:p="u2"><p:c/></p:b><p:d/></p:a>"#,
            r#"<p:a xmlns:p="u1"><q:b xmlns:q="u2" q:x="1" y="2"/><q:c/></p:a>"#,
            r#"<a xmlns:p="a&amp;b"><p:b xml:lang="en"/></a>"#,
            r#"<p:a/>"#,
            r#"<a xmlns:xmlns="u"/>"#,
            r#"<a xmlns:p=""/>"#,
            r#"<a xmlns:p=""><p:b/></a>"#,
            r#"<p:a xmlns:p="u"><b xmlns:p=""><p:c/></b></p:a>"#,
            r#"<a xmlns:xml="u"/>"#,
            r#"<a><b xmlns:p="u"/><p:c/></a>"#,
        ] {
            docs.push(doc.to_owned());
        }
        for doc in &docs {
            assert_eq!(
                with_events(doc),
                with_ns_reader(doc),
                "{}",
                &doc[..doc.len().min(200)]
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Documents put together from tags with and without declarations and attributes: what
        /// the events resolve, quick-xml's resolver resolves alike, and what it refuses the
        /// events refuse (the events refuse more: text outside the root, unknown entities).
        #[test]
        fn any_document_resolves_as_with_quick_xml(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("<a>"), proptest::strategy::Just("</a>"),
                    proptest::strategy::Just("<p:b xmlns:p=\"u1\">"),
                    proptest::strategy::Just("</p:b>"),
                    proptest::strategy::Just("<p:c xmlns:p='u2' p:x=\"1\" y='2'/>"),
                    proptest::strategy::Just("<d xmlns=\"u3\" xmlns:q=\"u&amp;\">"),
                    proptest::strategy::Just("</d>"),
                    proptest::strategy::Just("<q:e q:z=\"&lt;\"/>"),
                    proptest::strategy::Just("<f x=\"1\" x=\"2\"/>"),
                    proptest::strategy::Just("<g\tx=\"a\nb\" />"),
                    proptest::strategy::Just("<h xmlns:p=\"\"/>"),
                    proptest::strategy::Just("<i \u{c}/>"),
                    proptest::strategy::Just("<j x=1/>"),
                    proptest::strategy::Just("t"), proptest::strategy::Just("&amp;"),
                ],
                1..12,
            )
        ) {
            let doc = format!("<r xmlns:p=\"u0\">{}</r>", pieces.concat());
            let ours = with_events(&doc);
            let theirs = with_ns_reader(&doc);
            if ours.is_ok() || theirs.is_err() {
                proptest::prop_assert_eq!(ours, theirs, "{}", doc);
            }
        }
    }
}
