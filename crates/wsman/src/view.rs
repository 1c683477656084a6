//! Replies read without copying: instances whose property names and text point into the
//! document. [`crate::Response::parse`] is [`ResponseView::parse`] then
//! [`ResponseView::into_owned`]; callers that only read a few properties of many instances
//! (a 999-item Pull of an inventory) can skip the copies.
//!
//! ```
//! let xml = r#"<a:Envelope xmlns:a="http://www.w3.org/2003/05/soap-envelope" xmlns:g="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_Chassis"><a:Body><g:CIM_Chassis><g:Manufacturer>Intel &amp; co</g:Manufacturer><g:Model>NUC</g:Model></g:CIM_Chassis></a:Body></a:Envelope>"#;
//! let view = oobkit_wsman::ResponseView::parse(xml, 200).unwrap();
//! let oobkit_wsman::BodyView::Instance(chassis) = &view.body else { panic!() };
//! assert_eq!(chassis.text("Model"), Some("NUC")); // borrowed from `xml`
//! assert_eq!(chassis.text("Manufacturer"), Some("Intel & co")); // unescaped, so owned
//! ```

use std::borrow::Cow;
use std::rc::Rc;

use crate::response::{Item, Response, ResponseBody, instance_body};
use crate::{Epr, Instance, Property, Value};

/// A property whose name (and usually value) borrow from the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyView<'a> {
    /// The element's local name.
    pub name: Cow<'a, str>,
    /// Its value.
    pub value: ValueView<'a>,
}

/// A property value: text as it stands in the document (owned only when entities had to be
/// resolved), nil, or anything structured (EPR, datetime, embedded instance) as owned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueView<'a> {
    /// Character data.
    Text(Cow<'a, str>),
    /// `xsi:nil="true"`.
    Nil,
    /// An EPR, a datetime or an embedded instance (rare; read through the element tree).
    Structured(Box<Value>),
}

impl ValueView<'_> {
    /// The text, if it is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(t) => Some(t),
            Self::Structured(v) => v.as_text(),
            Self::Nil => None,
        }
    }

    /// The owned value.
    pub fn into_owned(self) -> Value {
        match self {
            Self::Text(t) => Value::Text(t.into_owned()),
            Self::Nil => Value::Nil,
            Self::Structured(v) => *v,
        }
    }
}

/// An instance whose class and property names borrow from the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView<'a> {
    /// Class (the element's local name).
    pub class: Cow<'a, str>,
    /// Namespace URI (shared by every element of the document in it).
    pub namespace: Rc<str>,
    /// Properties in document order.
    pub properties: Vec<PropertyView<'a>>,
}

impl InstanceView<'_> {
    /// The first value of property `name`.
    pub fn get(&self, name: &str) -> Option<&ValueView<'_>> {
        self.properties
            .iter()
            .find(|p| p.name == name)
            .map(|p| &p.value)
    }

    /// The text of property `name`, if it is text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(ValueView::as_text)
    }

    /// The owned instance.
    pub fn into_owned(self) -> Instance {
        Instance {
            class: self.class.into_owned(),
            namespace: self.namespace.to_string(),
            properties: self
                .properties
                .into_iter()
                .map(|p| Property {
                    name: p.name.into_owned(),
                    value: p.value.into_owned(),
                })
                .collect(),
        }
    }
}

/// One item of an Enumerate or Pull, borrowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemView<'a> {
    /// The instance (absent in EPR mode).
    pub instance: Option<InstanceView<'a>>,
    /// The reference (EPR and ObjectAndEPR modes), owned.
    pub epr: Option<Epr>,
}

/// The body of a reply, borrowed where it is large.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyView<'a> {
    /// An empty body.
    Empty,
    /// An instance (Get, Put), a method's output or an IdentifyResponse (told apart by
    /// [`ResponseView::into_owned`]).
    Instance(InstanceView<'a>),
    /// Enumerate or Pull.
    Items {
        /// Context for the next Pull; `None` at the end.
        context: Option<String>,
        /// Items in this batch.
        items: Vec<ItemView<'a>>,
        /// `EndOfSequence` was present.
        end_of_sequence: bool,
    },
    /// Anything else, owned (`ResourceCreated`, `SubscribeResponse`).
    Owned(ResponseBody),
}

/// A parsed reply that borrows from its document.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseView<'a> {
    /// `wsa:Action`.
    pub action: String,
    /// `wsa:RelatesTo`.
    pub relates_to: Option<String>,
    /// `wsa:MessageID`.
    pub message_id: Option<String>,
    /// `wsman:ResourceURI`.
    pub resource_uri: Option<String>,
    /// The body.
    pub body: BodyView<'a>,
}

impl<'a> ResponseView<'a> {
    /// Parses a reply that came with HTTP status `http_status`, as [`Response::parse`] does
    /// (same errors), without copying names and text.
    pub fn parse(xml: &'a str, http_status: u16) -> Result<Self, crate::Error> {
        crate::reply_parser::parse(xml, http_status)
    }

    /// The owned reply.
    pub fn into_owned(self) -> Response {
        let body = match self.body {
            BodyView::Empty => ResponseBody::Empty,
            BodyView::Instance(instance) => instance_body(instance.into_owned()),
            BodyView::Items {
                context,
                items,
                end_of_sequence,
            } => ResponseBody::Items {
                context,
                items: items
                    .into_iter()
                    .map(|i| Item {
                        instance: i.instance.map(InstanceView::into_owned),
                        epr: i.epr,
                    })
                    .collect(),
                end_of_sequence,
            },
            BodyView::Owned(body) => body,
        };
        Response {
            action: self.action,
            relates_to: self.relates_to,
            message_id: self.message_id,
            resource_uri: self.resource_uri,
            body,
        }
    }
}
