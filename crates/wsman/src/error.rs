//! The crate's error type.

use crate::Fault;

/// How a document is not well-formed XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XmlError {
    /// The XML parser's own complaint (a syntax error, a bad attribute or escape).
    #[error("{0}")]
    Syntax(String),
    /// A namespace prefix that no enclosing element declares.
    #[error("undeclared prefix `{0}`")]
    UndeclaredPrefix(String),
    /// Elements, text or references outside the one root element.
    #[error("content outside the root element")]
    OutsideRoot,
    /// An end tag without its start tag.
    #[error("unbalanced end tag")]
    UnbalancedEndTag,
    /// A character reference that names no character.
    #[error("bad character reference")]
    BadCharacterReference,
    /// The document ends inside an element, or has no element at all.
    #[error("document incomplete")]
    Incomplete,
    /// The bytes are not UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
}

/// Why a WS-Management message could not be built, parsed or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The XML is not well formed (or uses an undeclared prefix).
    #[error("malformed XML: {0}")]
    Xml(XmlError),
    /// A DOCTYPE: refused, so that no entity is ever declared or expanded.
    #[error("DOCTYPE declarations are refused")]
    DocType,
    /// A reference to an entity other than the five predefined ones.
    #[error("undeclared entity `&{0};`")]
    Entity(String),
    /// The document is larger than [`MAX_DOCUMENT`](crate::MAX_DOCUMENT).
    #[error("document is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// Size seen.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Nesting depth or element count over the limit.
    #[error("{0} limit exceeded")]
    LimitExceeded(&'static str),
    /// The root is not a SOAP 1.2 Envelope.
    #[error("not a SOAP 1.2 envelope")]
    NotAnEnvelope,
    /// A required element is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A number or other typed value does not parse.
    #[error("invalid value `{0}`")]
    InvalidValue(String),
    /// A class, method or property name that is not an XML name.
    #[error("`{0}` is not a valid XML name")]
    InvalidName(String),
    /// A request action the parser does not know and that is not a method of its resource.
    #[error("unsupported action {0}")]
    UnsupportedAction(String),
    /// A header marked mustUnderstand that is not implemented.
    #[error("header `{0}` is marked mustUnderstand and is not supported")]
    MustUnderstand(String),
    /// The peer answered with a SOAP fault.
    #[error("WS-Management fault: {0}")]
    Fault(Box<Fault>),
    /// A non-2xx HTTP status without a SOAP body (401 with an HTML page, for example).
    #[error("HTTP status {0} without a SOAP reply")]
    Http(u16),
    /// The HTTP message is malformed or breaks a limit.
    #[error("bad HTTP message: {0}")]
    HttpFraming(#[from] oobkit_http1::Error),
}
