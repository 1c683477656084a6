//! Request envelopes: built by clients, parsed by servers, one type for both.

use std::fmt::Write as _;

use crate::model::{
    EprStyle, check_names, check_property_names, is_xml_name, selectors_from_element,
    write_instance, write_properties, write_selectors,
};
use crate::ns::{self, action};
use crate::xml::{self, Element, escape};
use crate::{Error, Instance, Property, Selector};

/// How to write the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Style {
    /// As Intel's own libraries (go-wsman-messages, MeshCommander) write it: default SOAP
    /// namespace, `a:`/`w:` prefixes, no `mustUnderstand`, relative `To`, and EPR arguments
    /// with default namespaces on each child.
    #[default]
    Intel,
    /// As openwsman and sdague/amt write it: `s:`/`wsa:`/`wsman:` prefixes and
    /// `s:mustUnderstand="true"` on Action, To, ResourceURI and MessageID.
    Openwsman,
}

/// What the enumeration returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EnumerationMode {
    /// Instances (the default, and all AMT clients use).
    #[default]
    Objects,
    /// `EnumerateEPR`: references only.
    Eprs,
    /// `EnumerateObjectAndEPR`: both.
    ObjectsAndEprs,
}

/// Enumerate options (DSP0226 section 8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EnumerateOptions {
    /// What to return.
    pub mode: EnumerationMode,
    /// Optimized enumeration: return up to this many items in the EnumerateResponse.
    pub optimize: Option<u32>,
}

/// A WS-Eventing subscription (AMT: to `CIM_FilterCollection`, mode PushWithAck).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Delivery mode URI.
    pub delivery_mode: String,
    /// Where events go (at most 253 characters on AMT).
    pub notify_to: String,
    /// Requested lifetime, `PT...S`.
    pub expires: Option<String>,
}

/// Delivery mode AMT expects.
pub const PUSH_WITH_ACK: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/PushWithAck";

/// A WS-Management operation and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// Identify (no action, empty header).
    Identify,
    /// WS-Transfer Get.
    Get,
    /// WS-Transfer Put of a whole instance.
    Put(Instance),
    /// WS-Transfer Create.
    Create(Instance),
    /// WS-Transfer Delete.
    Delete,
    /// WS-Enumeration Enumerate.
    Enumerate(EnumerateOptions),
    /// WS-Enumeration Pull.
    Pull {
        /// Context from EnumerateResponse or the previous PullResponse.
        context: String,
        /// Most items to return (Intel sends 999).
        max_elements: Option<u32>,
        /// Most characters to return (Intel sends 99999).
        max_characters: Option<u32>,
    },
    /// WS-Enumeration Release.
    Release {
        /// The context to release.
        context: String,
    },
    /// A class method (action `<ResourceURI>/<Method>`, body `<Method>_INPUT`).
    Invoke {
        /// The method name.
        method: String,
        /// Input parameters, in order; arrays repeat.
        arguments: Vec<Property>,
    },
    /// WS-Eventing Subscribe.
    Subscribe(Subscription),
    /// WS-Eventing Unsubscribe (the identifier goes in the header).
    Unsubscribe,
    /// WS-Eventing Renew.
    Renew {
        /// New lifetime.
        expires: Option<String>,
    },
}

/// A request envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Request {
    /// The operation.
    pub operation: Operation,
    /// The resource URI (empty for Identify).
    pub resource_uri: String,
    /// Header selectors.
    pub selectors: Vec<Selector>,
    /// `wsa:MessageID`. Intel's libraries send a decimal counter, others `uuid:...`; AMT
    /// echoes either in `RelatesTo`.
    pub message_id: String,
    /// `wsa:To`: `/wsman` (Intel) or the full endpoint URL (openwsman).
    pub to: String,
    /// `wsman:OperationTimeout` (AMT enforces at least 30 s whatever is asked).
    pub operation_timeout: Option<String>,
    /// `wsman:MaxEnvelopeSize` (AMT wants at least 50000 if present).
    pub max_envelope_size: Option<u32>,
    /// `wse:Identifier` of a subscription, for Unsubscribe and Renew.
    pub identifier: Option<String>,
}

impl Request {
    /// A request for `operation` on `class` (class name or resource URI), with Intel's
    /// defaults: MessageID `0`, To `/wsman`, OperationTimeout `PT60S`.
    pub fn new(operation: Operation, class: &str) -> Self {
        Self {
            operation,
            resource_uri: ns::resource_uri(class),
            selectors: Vec::new(),
            message_id: "0".into(),
            to: "/wsman".into(),
            operation_timeout: Some("PT60S".into()),
            max_envelope_size: None,
            identifier: None,
        }
    }

    /// Identify.
    pub fn identify() -> Self {
        let mut r = Self::new(Operation::Identify, "");
        r.operation_timeout = None;
        r
    }

    /// Get `class`.
    pub fn get(class: &str) -> Self {
        Self::new(Operation::Get, class)
    }

    /// Put `instance` (its namespace is the resource URI).
    pub fn put(instance: Instance) -> Self {
        let uri = instance.namespace.clone();
        Self::new(Operation::Put(instance), &uri)
    }

    /// Create `instance`.
    pub fn create(instance: Instance) -> Self {
        let uri = instance.namespace.clone();
        Self::new(Operation::Create(instance), &uri)
    }

    /// Delete an instance of `class` (add its selectors).
    pub fn delete(class: &str) -> Self {
        Self::new(Operation::Delete, class)
    }

    /// Enumerate `class`.
    pub fn enumerate(class: &str) -> Self {
        Self::new(Operation::Enumerate(EnumerateOptions::default()), class)
    }

    /// Pull from an enumeration of `class`, 999 items and 99999 characters at most as Intel's
    /// libraries ask.
    pub fn pull(class: &str, context: impl Into<String>) -> Self {
        Self::new(
            Operation::Pull {
                context: context.into(),
                max_elements: Some(999),
                max_characters: Some(99999),
            },
            class,
        )
    }

    /// Release an enumeration context.
    pub fn release(class: &str, context: impl Into<String>) -> Self {
        Self::new(
            Operation::Release {
                context: context.into(),
            },
            class,
        )
    }

    /// Invoke `method` of `class` with `arguments`.
    ///
    /// ```
    /// use oobkit_wsman::{Epr, Property, Request, Value};
    /// let request = Request::invoke(
    ///     "CIM_PowerManagementService",
    ///     "RequestPowerStateChange",
    ///     vec![
    ///         Property { name: "PowerState".into(), value: Value::from("10") },
    ///         Property {
    ///             name: "ManagedElement".into(),
    ///             value: Epr::new("CIM_ComputerSystem", [("CreationClassName", "CIM_ComputerSystem"), ("Name", "ManagedSystem")]).into(),
    ///         },
    ///     ],
    /// );
    /// assert!(request.to_xml(Default::default()).unwrap().contains("<h:PowerState>10</h:PowerState>"));
    /// ```
    pub fn invoke(class: &str, method: &str, arguments: Vec<Property>) -> Self {
        Self::new(
            Operation::Invoke {
                method: method.to_owned(),
                arguments,
            },
            class,
        )
    }

    /// Adds a header selector.
    pub fn selector(mut self, name: &str, value: &str) -> Self {
        self.selectors.push(Selector::new(name, value));
        self
    }

    /// Sets the MessageID.
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = id.into();
        self
    }

    /// The action URI.
    pub fn action(&self) -> String {
        match &self.operation {
            Operation::Identify => action::IDENTIFY.into(),
            Operation::Get => action::GET.into(),
            Operation::Put(_) => action::PUT.into(),
            Operation::Create(_) => action::CREATE.into(),
            Operation::Delete => action::DELETE.into(),
            Operation::Enumerate(_) => action::ENUMERATE.into(),
            Operation::Pull { .. } => action::PULL.into(),
            Operation::Release { .. } => action::RELEASE.into(),
            Operation::Invoke { method, .. } => format!("{}/{method}", self.resource_uri),
            Operation::Subscribe(_) => action::SUBSCRIBE.into(),
            Operation::Unsubscribe => action::UNSUBSCRIBE.into(),
            Operation::Renew { .. } => action::RENEW.into(),
        }
    }

    /// The class name, from the resource URI.
    pub fn class(&self) -> &str {
        ns::class_name(&self.resource_uri)
    }

    fn check(&self) -> Result<(), Error> {
        match &self.operation {
            Operation::Put(instance) | Operation::Create(instance) => check_names(instance),
            Operation::Invoke { method, arguments } => {
                if !is_xml_name(method) {
                    return Err(Error::InvalidName(method.clone()));
                }
                check_property_names(arguments)
            }
            _ => Ok(()),
        }
    }

    /// Writes the envelope.
    ///
    /// Fails only for names (class, method, property) that are not XML names; every text and
    /// attribute value is escaped.
    pub fn to_xml(&self, style: Style) -> Result<String, Error> {
        self.check()?;
        let mut out = String::with_capacity(1024);
        if self.operation == Operation::Identify {
            let _ = write!(
                out,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><s:Envelope xmlns:s=\"{}\" xmlns:wsmid=\"{}\"><s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>",
                ns::SOAP,
                ns::IDENTITY
            );
            return Ok(out);
        }
        let action = self.action();
        match style {
            Style::Intel => {
                let _ = write!(
                    out,
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?><Envelope xmlns:xsi=\"{}\" xmlns:xsd=\"{}\" xmlns:a=\"{}\" xmlns:w=\"{}\" xmlns=\"{}\"><Header><a:Action>{}</a:Action><a:To>{}</a:To><w:ResourceURI>{}</w:ResourceURI><a:MessageID>{}</a:MessageID><a:ReplyTo><a:Address>{}</a:Address></a:ReplyTo>",
                    ns::XSI,
                    ns::XSD,
                    ns::ADDRESSING,
                    ns::WSMAN,
                    ns::SOAP,
                    escape(&action),
                    escape(&self.to),
                    escape(&self.resource_uri),
                    escape(&self.message_id),
                    ns::ANONYMOUS
                );
                self.write_header_tail(&mut out, "w", EprStyle::DefaultNamespaces);
                out.push_str("</Header><Body>");
                self.write_body(&mut out, style);
                out.push_str("</Body></Envelope>");
            }
            Style::Openwsman => {
                let _ = write!(
                    out,
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><s:Envelope xmlns:s=\"{}\" xmlns:wsa=\"{}\" xmlns:wsman=\"{}\" xmlns:xsi=\"{}\"><s:Header><wsa:Action s:mustUnderstand=\"true\">{}</wsa:Action><wsa:To s:mustUnderstand=\"true\">{}</wsa:To><wsman:ResourceURI s:mustUnderstand=\"true\">{}</wsman:ResourceURI><wsa:MessageID s:mustUnderstand=\"true\">{}</wsa:MessageID><wsa:ReplyTo><wsa:Address>{}</wsa:Address></wsa:ReplyTo>",
                    ns::SOAP,
                    ns::ADDRESSING,
                    ns::WSMAN,
                    ns::XSI,
                    escape(&action),
                    escape(&self.to),
                    escape(&self.resource_uri),
                    escape(&self.message_id),
                    ns::ANONYMOUS
                );
                self.write_header_tail(
                    &mut out,
                    "wsman",
                    EprStyle::Prefixed {
                        wsa: "wsa",
                        wsman: "wsman",
                    },
                );
                out.push_str("</s:Header><s:Body>");
                self.write_body(&mut out, style);
                out.push_str("</s:Body></s:Envelope>");
            }
        }
        Ok(out)
    }

    fn write_header_tail(&self, out: &mut String, wsman: &str, epr_style: EprStyle) {
        if let Some(timeout) = &self.operation_timeout {
            let _ = write!(
                out,
                "<{wsman}:OperationTimeout>{}</{wsman}:OperationTimeout>",
                escape(timeout)
            );
        }
        if let Some(size) = self.max_envelope_size {
            let _ = write!(
                out,
                "<{wsman}:MaxEnvelopeSize>{size}</{wsman}:MaxEnvelopeSize>"
            );
        }
        if !self.selectors.is_empty() {
            let _ = write!(out, "<{wsman}:SelectorSet>");
            write_selectors(out, &self.selectors, wsman, epr_style);
            let _ = write!(out, "</{wsman}:SelectorSet>");
        }
        if let Some(id) = &self.identifier {
            let _ = write!(
                out,
                "<Identifier xmlns=\"{}\">{}</Identifier>",
                ns::EVENTING,
                escape(id)
            );
        }
    }

    fn write_body(&self, out: &mut String, style: Style) {
        // Enumeration and eventing elements: default namespace in Intel style (as fixture 3),
        // prefixed in openwsman style.
        let (en_open, en) = match style {
            Style::Intel => (format!(" xmlns=\"{}\"", ns::ENUMERATION), ""),
            Style::Openwsman => (format!(" xmlns:wsen=\"{}\"", ns::ENUMERATION), "wsen:"),
        };
        let (wsman, epr_style) = match style {
            Style::Intel => ("w", EprStyle::DefaultNamespaces),
            Style::Openwsman => (
                "wsman",
                EprStyle::Prefixed {
                    wsa: "wsa",
                    wsman: "wsman",
                },
            ),
        };
        match &self.operation {
            Operation::Identify | Operation::Get | Operation::Delete | Operation::Unsubscribe => {}
            Operation::Put(instance) | Operation::Create(instance) => {
                write_instance(out, instance, "h", epr_style);
            }
            Operation::Enumerate(options) => {
                if options.mode == EnumerationMode::Objects && options.optimize.is_none() {
                    let _ = write!(out, "<{en}Enumerate{en_open} />");
                    return;
                }
                let _ = write!(out, "<{en}Enumerate{en_open}>");
                if let Some(max) = options.optimize {
                    let _ = write!(
                        out,
                        "<{wsman}:OptimizeEnumeration/><{wsman}:MaxElements>{max}</{wsman}:MaxElements>"
                    );
                }
                let mode = match options.mode {
                    EnumerationMode::Objects => None,
                    EnumerationMode::Eprs => Some("EnumerateEPR"),
                    EnumerationMode::ObjectsAndEprs => Some("EnumerateObjectAndEPR"),
                };
                if let Some(mode) = mode {
                    let _ = write!(
                        out,
                        "<{wsman}:EnumerationMode>{mode}</{wsman}:EnumerationMode>"
                    );
                }
                let _ = write!(out, "</{en}Enumerate>");
            }
            Operation::Pull {
                context,
                max_elements,
                max_characters,
            } => {
                let _ = write!(
                    out,
                    "<{en}Pull{en_open}><{en}EnumerationContext>{}</{en}EnumerationContext>",
                    escape(context)
                );
                if let Some(n) = max_elements {
                    let _ = write!(out, "<{en}MaxElements>{n}</{en}MaxElements>");
                }
                if let Some(n) = max_characters {
                    let _ = write!(out, "<{en}MaxCharacters>{n}</{en}MaxCharacters>");
                }
                let _ = write!(out, "</{en}Pull>");
            }
            Operation::Release { context } => {
                let _ = write!(
                    out,
                    "<{en}Release{en_open}><{en}EnumerationContext>{}</{en}EnumerationContext></{en}Release>",
                    escape(context)
                );
            }
            Operation::Invoke { method, arguments } => {
                let _ = write!(
                    out,
                    "<h:{method}_INPUT xmlns:h=\"{}\">",
                    escape(&self.resource_uri)
                );
                write_properties(out, arguments, "h", epr_style);
                let _ = write!(out, "</h:{method}_INPUT>");
            }
            Operation::Subscribe(sub) => {
                let addr = match style {
                    Style::Intel => format!("<Address xmlns=\"{}\">", ns::ADDRESSING),
                    Style::Openwsman => "<wsa:Address>".into(),
                };
                let addr_close = match style {
                    Style::Intel => "</Address>",
                    Style::Openwsman => "</wsa:Address>",
                };
                let _ = write!(
                    out,
                    "<Subscribe xmlns=\"{}\"><Delivery Mode=\"{}\"><NotifyTo>{addr}{}{addr_close}</NotifyTo></Delivery>",
                    ns::EVENTING,
                    escape(&sub.delivery_mode),
                    escape(&sub.notify_to)
                );
                if let Some(expires) = &sub.expires {
                    let _ = write!(out, "<Expires>{}</Expires>", escape(expires));
                }
                out.push_str("</Subscribe>");
            }
            Operation::Renew { expires } => {
                let _ = write!(out, "<Renew xmlns=\"{}\">", ns::EVENTING);
                if let Some(expires) = expires {
                    let _ = write!(out, "<Expires>{}</Expires>", escape(expires));
                }
                out.push_str("</Renew>");
            }
        }
    }

    /// Parses a request envelope (the server side), in any style.
    ///
    /// A header marked `mustUnderstand="true"` that WS-Management AMT does not implement
    /// (`OptionSet`, `FragmentTransfer`, ...) gives [`Error::MustUnderstand`], which a server
    /// answers with an `s:MustUnderstand` fault as AMT does.
    pub fn parse(xml: &str) -> Result<Self, Error> {
        let mut root = xml::parse(xml)?;
        if !root.is(ns::SOAP, "Envelope") {
            return Err(Error::NotAnEnvelope);
        }
        // The tree is taken apart, not copied: the body's instance moves into the request.
        let header = root.take_child(ns::SOAP, "Header").unwrap_or_default();
        let mut body = root
            .take_child(ns::SOAP, "Body")
            .ok_or(Error::Missing("Body"))?;
        let header = &header;
        for h in &header.children {
            let must = h.attrs.iter().any(|a| {
                a.ns == ns::SOAP
                    && a.name == "mustUnderstand"
                    && matches!(a.value.trim(), "true" | "1")
            });
            let known = matches!(
                (&*h.ns, h.name.as_str()),
                (ns::ADDRESSING, "Action" | "To" | "MessageID" | "ReplyTo")
                    | (
                        ns::WSMAN,
                        "ResourceURI"
                            | "OperationTimeout"
                            | "SelectorSet"
                            | "MaxEnvelopeSize"
                            | "Locale"
                    )
                    | (ns::EVENTING, "Identifier")
            );
            if must && !known {
                return Err(Error::MustUnderstand(h.name.clone()));
            }
        }
        let text =
            |e: &Element, ns: &str, name: &str| e.child_text(ns, name).map(|s| s.trim().to_owned());
        let owned_first = body.take_first();
        let first = owned_first.as_ref();
        if header.child(ns::ADDRESSING, "Action").is_none()
            && first.is_some_and(|f| f.is(ns::IDENTITY, "Identify"))
        {
            return Ok(Self::identify());
        }
        let action = text(header, ns::ADDRESSING, "Action").ok_or(Error::Missing("Action"))?;
        let resource_uri = text(header, ns::WSMAN, "ResourceURI").unwrap_or_default();
        let operation = match action.as_str() {
            action::GET => Operation::Get,
            action::DELETE => Operation::Delete,
            action::PUT | action::CREATE => {
                let instance =
                    Instance::from_element(owned_first.ok_or(Error::Missing("instance in Body"))?);
                if action == action::PUT {
                    Operation::Put(instance)
                } else {
                    Operation::Create(instance)
                }
            }
            action::ENUMERATE => {
                let e = first.ok_or(Error::Missing("Enumerate"))?;
                let mode = match e.child_text(ns::WSMAN, "EnumerationMode").map(str::trim) {
                    Some("EnumerateEPR") => EnumerationMode::Eprs,
                    Some("EnumerateObjectAndEPR") => EnumerationMode::ObjectsAndEprs,
                    _ => EnumerationMode::Objects,
                };
                let optimize = e
                    .child(ns::WSMAN, "OptimizeEnumeration")
                    .map(|_| parse_u32(e.child_text(ns::WSMAN, "MaxElements").unwrap_or("1")))
                    .transpose()?;
                Operation::Enumerate(EnumerateOptions { mode, optimize })
            }
            action::PULL => {
                let p = first.ok_or(Error::Missing("Pull"))?;
                Operation::Pull {
                    context: text(p, ns::ENUMERATION, "EnumerationContext")
                        .ok_or(Error::Missing("EnumerationContext"))?,
                    max_elements: p
                        .child_text(ns::ENUMERATION, "MaxElements")
                        .map(parse_u32)
                        .transpose()?,
                    max_characters: p
                        .child_text(ns::ENUMERATION, "MaxCharacters")
                        .map(parse_u32)
                        .transpose()?,
                }
            }
            action::RELEASE => {
                let r = first.ok_or(Error::Missing("Release"))?;
                Operation::Release {
                    context: text(r, ns::ENUMERATION, "EnumerationContext")
                        .ok_or(Error::Missing("EnumerationContext"))?,
                }
            }
            action::SUBSCRIBE => {
                let s = first.ok_or(Error::Missing("Subscribe"))?;
                let delivery = s
                    .child(ns::EVENTING, "Delivery")
                    .ok_or(Error::Missing("Delivery"))?;
                Operation::Subscribe(Subscription {
                    delivery_mode: delivery.attr("Mode").unwrap_or_default().to_owned(),
                    notify_to: delivery
                        .child(ns::EVENTING, "NotifyTo")
                        .and_then(|n| n.child_text(ns::ADDRESSING, "Address"))
                        .ok_or(Error::Missing("NotifyTo"))?
                        .trim()
                        .to_owned(),
                    expires: text(s, ns::EVENTING, "Expires"),
                })
            }
            action::UNSUBSCRIBE => Operation::Unsubscribe,
            action::RENEW => Operation::Renew {
                expires: first.and_then(|r| text(r, ns::EVENTING, "Expires")),
            },
            other => {
                let method = other
                    .strip_prefix(resource_uri.as_str())
                    .and_then(|m| m.strip_prefix('/'))
                    .filter(|m| !m.is_empty() && !resource_uri.is_empty())
                    .ok_or_else(|| Error::UnsupportedAction(other.to_owned()))?;
                let input = owned_first.ok_or(Error::Missing("method input"))?;
                if input.name != format!("{method}_INPUT") {
                    return Err(Error::Missing("<Method>_INPUT element"));
                }
                Operation::Invoke {
                    method: method.to_owned(),
                    arguments: Instance::from_element(input).properties,
                }
            }
        };
        Ok(Self {
            operation,
            resource_uri,
            selectors: header
                .child(ns::WSMAN, "SelectorSet")
                .map(selectors_from_element)
                .unwrap_or_default(),
            message_id: text(header, ns::ADDRESSING, "MessageID").unwrap_or_default(),
            to: text(header, ns::ADDRESSING, "To").unwrap_or_default(),
            operation_timeout: text(header, ns::WSMAN, "OperationTimeout"),
            max_envelope_size: header
                .child_text(ns::WSMAN, "MaxEnvelopeSize")
                .map(parse_u32)
                .transpose()?,
            identifier: text(header, ns::EVENTING, "Identifier"),
        })
    }

    /// The value of header selector `name`, if it is text.
    pub fn selector_value(&self, name: &str) -> Option<&str> {
        self.selectors
            .iter()
            .find(|s| s.name == name)
            .and_then(Selector::text)
    }
}

fn parse_u32(text: &str) -> Result<u32, Error> {
    text.trim()
        .parse()
        .map_err(|_| Error::InvalidValue(text.chars().take(40).collect()))
}
