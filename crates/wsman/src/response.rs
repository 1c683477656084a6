//! Reply envelopes: parsed by clients, written by servers.

use std::fmt::Write as _;

use crate::model::{EprStyle, check_names, write_epr_children, write_instance, write_properties};
use crate::ns::{self, action};
use crate::xml;
use crate::xml::{Element, escape};
use crate::{Epr, Error, Instance};

/// A SOAP fault, with the HTTP status it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fault {
    /// HTTP status (AMT: 400 for Sender faults, 500 for Receiver faults).
    pub http_status: u16,
    /// `s:Code/s:Value`, resolved: (namespace URI, local name), e.g. (SOAP, `Sender`).
    pub code: (String, String),
    /// `s:Subcode/s:Value`, resolved, e.g. (addressing, `DestinationUnreachable`).
    pub subcode: Option<(String, String)>,
    /// `s:Reason/s:Text`.
    pub reason: String,
    /// `s:Detail` text (the `wsman:FaultDetail` URI when there is one); AMT sends none.
    pub detail: Option<String>,
}

impl Fault {
    /// A fault with a subcode in `subcode_ns`.
    pub fn new(sender: bool, subcode_ns: &str, subcode: &str, reason: &str) -> Self {
        Self {
            http_status: if sender { 400 } else { 500 },
            code: (
                ns::SOAP.to_owned(),
                if sender { "Sender" } else { "Receiver" }.to_owned(),
            ),
            subcode: Some((subcode_ns.to_owned(), subcode.to_owned())),
            reason: reason.to_owned(),
            detail: None,
        }
    }

    /// The subcode's local name, or the code's when there is no subcode.
    pub fn name(&self) -> &str {
        self.subcode
            .as_ref()
            .map_or(self.code.1.as_str(), |(_, local)| local.as_str())
    }

    /// `wsa:DestinationUnreachable`: what AMT answers for a class it does not have.
    pub fn destination_unreachable() -> Self {
        Self::new(
            true,
            ns::ADDRESSING,
            "DestinationUnreachable",
            "No route can be determined to reach the destination role defined by the WSAddressing To.",
        )
    }

    /// `wsa:ActionNotSupported`.
    pub fn action_not_supported() -> Self {
        Self::new(
            true,
            ns::ADDRESSING,
            "ActionNotSupported",
            "The action is not supported by the service.",
        )
    }

    /// `wsman:InvalidSelectors`.
    pub fn invalid_selectors() -> Self {
        Self::new(
            true,
            ns::WSMAN,
            "InvalidSelectors",
            "The Selectors for the resource are not valid.",
        )
    }

    /// `wxf:InvalidRepresentation`.
    pub fn invalid_representation() -> Self {
        Self::new(
            true,
            ns::TRANSFER,
            "InvalidRepresentation",
            "The XML content is not valid.",
        )
    }

    /// `wsen:InvalidEnumerationContext`.
    pub fn invalid_enumeration_context() -> Self {
        Self::new(
            false,
            ns::ENUMERATION,
            "InvalidEnumerationContext",
            "The supplied enumeration context is invalid.",
        )
    }

    /// `s:MustUnderstand` (a code without subcode).
    pub fn must_understand() -> Self {
        Self {
            http_status: 400,
            code: (ns::SOAP.to_owned(), "MustUnderstand".to_owned()),
            subcode: None,
            reason: "The WS-Management service cannot process a SOAP header in the request that is marked as mustUnderstand by the client.".to_owned(),
            detail: None,
        }
    }

    /// `wsman:InternalError`.
    pub fn internal_error() -> Self {
        Self::new(
            false,
            ns::WSMAN,
            "InternalError",
            "The service cannot comply with the request due to internal processing errors.",
        )
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (HTTP {}): {}",
            self.name(),
            self.http_status,
            self.reason
        )
    }
}

/// One enumeration item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The instance (absent in EPR mode).
    pub instance: Option<Instance>,
    /// The reference (EPR and ObjectAndEPR modes).
    pub epr: Option<Epr>,
}

/// The output of a method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodOutput {
    /// The method name (`RequestPowerStateChange`).
    pub method: String,
    /// `ReturnValue`, if present and numeric.
    pub return_value: Option<u32>,
    /// Every output parameter, `ReturnValue` included, as an instance of the class.
    pub outputs: Instance,
}

/// The body of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseBody {
    /// An empty body (Delete, Release, Unsubscribe).
    Empty,
    /// An instance (Get, Put).
    Instance(Instance),
    /// `ResourceCreated` (Create).
    Created(Epr),
    /// Enumerate or Pull: the context to pull next (if any), the items, and whether the
    /// sequence ended.
    Items {
        /// Context for the next Pull; `None` at the end.
        context: Option<String>,
        /// Items in this batch.
        items: Vec<Item>,
        /// `EndOfSequence` was present.
        end_of_sequence: bool,
    },
    /// A method's output.
    Output(MethodOutput),
    /// IdentifyResponse: its fields as an instance.
    Identify(Instance),
    /// SubscribeResponse: the identifier for Unsubscribe and Renew.
    Subscribed {
        /// `wse:Identifier` (in ReferenceParameters).
        identifier: Option<String>,
        /// Granted lifetime.
        expires: Option<String>,
    },
}

/// A parsed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// `wsa:Action`.
    pub action: String,
    /// `wsa:RelatesTo`: the request's MessageID.
    pub relates_to: Option<String>,
    /// `wsa:MessageID`.
    pub message_id: Option<String>,
    /// `wsman:ResourceURI` (absent in faults and some replies).
    pub resource_uri: Option<String>,
    /// The body.
    pub body: ResponseBody,
}

impl Response {
    /// Parses a reply that came with HTTP status `http_status`. A SOAP fault, whatever the
    /// status, gives [`Error::Fault`]; a non-2xx status without a SOAP body gives
    /// [`Error::Http`].
    ///
    /// ```
    /// let xml = r#"<a:Envelope xmlns:a="http://www.w3.org/2003/05/soap-envelope" xmlns:b="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:g="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_PowerManagementService"><a:Header><b:RelatesTo>0</b:RelatesTo><b:Action>http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_PowerManagementService/RequestPowerStateChangeResponse</b:Action></a:Header><a:Body><g:RequestPowerStateChange_OUTPUT><g:ReturnValue>0</g:ReturnValue></g:RequestPowerStateChange_OUTPUT></a:Body></a:Envelope>"#;
    /// let reply = oobkit_wsman::Response::parse(xml, 200).unwrap();
    /// match reply.body {
    ///     oobkit_wsman::ResponseBody::Output(out) => assert_eq!(out.return_value, Some(0)),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn parse(xml: &str, http_status: u16) -> Result<Self, Error> {
        crate::ResponseView::parse(xml, http_status).map(crate::ResponseView::into_owned)
    }

    /// The same through a whole element tree: what [`Response::parse`] did before it built
    /// instances from the events; kept to check that both agree (a test on every fixture, and
    /// the reply fuzz target on everything it makes).
    pub(crate) fn parse_via_tree(xml: &str, http_status: u16) -> Result<Self, Error> {
        let root = match xml::parse(xml) {
            Ok(root) => root,
            Err(e) if !(200..300).contains(&http_status) => {
                // A 401 HTML page, a 500 with no body: the status is the news, not the XML.
                let _ = e;
                return Err(Error::Http(http_status));
            }
            Err(e) => return Err(e),
        };
        if !root.is(ns::SOAP, "Envelope") {
            return Err(if (200..300).contains(&http_status) {
                Error::NotAnEnvelope
            } else {
                Error::Http(http_status)
            });
        }
        let mut root = root;
        let header = root.take_child(ns::SOAP, "Header").unwrap_or_default();
        let mut body = root
            .take_child(ns::SOAP, "Body")
            .ok_or(Error::Missing("Body"))?;
        if let Some(fault) = body.child(ns::SOAP, "Fault") {
            return Err(Error::Fault(Box::new(parse_fault(fault, http_status))));
        }
        if !(200..300).contains(&http_status) {
            return Err(Error::Http(http_status));
        }
        let text = |name: &str| {
            header
                .child(ns::ADDRESSING, name)
                .map(|e| e.text.trim().to_owned())
        };
        let action = text("Action").unwrap_or_default();
        let resource_uri = header
            .child_text(ns::WSMAN, "ResourceURI")
            .map(|s| s.trim().to_owned());
        let body = match body.take_first() {
            None => ResponseBody::Empty,
            Some(first) => finish_body(first)?,
        };
        Ok(Self {
            action,
            relates_to: text("RelatesTo"),
            message_id: text("MessageID"),
            resource_uri,
            body,
        })
    }
}

/// The body from its first child, built as a tree.
pub(crate) fn finish_body(mut first: Element) -> Result<ResponseBody, Error> {
    let is_enum = &*first.ns == ns::ENUMERATION;
    let name = first.name.clone();
    Ok(match name.as_str() {
        "EnumerateResponse" | "PullResponse" if is_enum => {
            let context = first
                .child_text(ns::ENUMERATION, "EnumerationContext")
                .map(|s| s.trim().to_owned());
            // Optimized enumeration puts Items and EndOfSequence in the wsman namespace.
            let end_of_sequence = first.child(ns::ENUMERATION, "EndOfSequence").is_some()
                || first.child(ns::WSMAN, "EndOfSequence").is_some();
            let items_el = match first.take_child(ns::ENUMERATION, "Items") {
                Some(items) => Some(items),
                None => first.take_child(ns::WSMAN, "Items"),
            };
            let items = items_el
                .map(|items| items.children.into_iter().map(parse_item).collect())
                .unwrap_or_default();
            ResponseBody::Items {
                context: if end_of_sequence { None } else { context },
                items,
                end_of_sequence,
            }
        }
        "ResourceCreated" if &*first.ns == ns::TRANSFER => ResponseBody::Created(
            Epr::from_element(&first).ok_or(Error::Missing("ReferenceParameters"))?,
        ),
        "SubscribeResponse" if &*first.ns == ns::EVENTING => {
            let identifier = first
                .child(ns::EVENTING, "SubscriptionManager")
                .and_then(|m| m.child(ns::ADDRESSING, "ReferenceParameters"))
                .and_then(|p| p.child_text(ns::EVENTING, "Identifier"))
                .map(|s| s.trim().to_owned());
            ResponseBody::Subscribed {
                identifier,
                expires: first
                    .child_text(ns::EVENTING, "Expires")
                    .map(|s| s.trim().to_owned()),
            }
        }
        // Identify, a method's output or a plain instance: told apart by one rule.
        _ => instance_body(Instance::from_element(first)),
    })
}

/// The body an instance-shaped element makes: an IdentifyResponse, a method's `_OUTPUT` (its
/// class named after the namespace, the return value decoded), or a plain instance.
pub(crate) fn instance_body(instance: Instance) -> ResponseBody {
    if instance.namespace == ns::IDENTITY && instance.class == "IdentifyResponse" {
        return ResponseBody::Identify(instance);
    }
    if let Some(method) = instance.class.strip_suffix("_OUTPUT") {
        let method = method.to_owned();
        let class = ns::class_name(&instance.namespace).to_owned();
        let return_value = instance
            .text("ReturnValue")
            .and_then(|v| v.trim().parse().ok());
        return ResponseBody::Output(MethodOutput {
            method,
            return_value,
            outputs: Instance { class, ..instance },
        });
    }
    ResponseBody::Instance(instance)
}

pub(crate) fn parse_item(mut element: Element) -> Item {
    if element.is(ns::WSMAN, "Item") {
        // ObjectAndEPR mode: the instance, then its EndpointReference.
        let epr = element
            .take_child(ns::ADDRESSING, "EndpointReference")
            .and_then(|e| Epr::from_element(&e));
        let instance = element.take_first().map(Instance::from_element);
        return Item { instance, epr };
    }
    if element.is(ns::ADDRESSING, "EndpointReference") {
        return Item {
            instance: None,
            epr: Epr::from_element(&element),
        };
    }
    Item {
        instance: Some(Instance::from_element(element)),
        epr: None,
    }
}

pub(crate) fn parse_fault(fault: &Element, http_status: u16) -> Fault {
    let qname = |value: Option<&Element>| {
        value.map(|v| {
            let text = v.text.trim();
            let local = text.rsplit(':').next().unwrap_or(text).to_owned();
            (v.text_ns.as_deref().unwrap_or_default().to_owned(), local)
        })
    };
    let code = fault.child(ns::SOAP, "Code");
    let code_value = code.and_then(|c| c.child(ns::SOAP, "Value"));
    let subcode_value = code
        .and_then(|c| c.child(ns::SOAP, "Subcode"))
        .and_then(|s| s.child(ns::SOAP, "Value"));
    let reason = fault
        .child(ns::SOAP, "Reason")
        .and_then(|r| r.child(ns::SOAP, "Text"))
        .map(|t| t.text.trim().to_owned())
        .unwrap_or_default();
    let detail = fault.child(ns::SOAP, "Detail").and_then(|d| {
        let text = d
            .child(ns::WSMAN, "FaultDetail")
            .map_or(d.text.trim(), |fd| fd.text.trim());
        (!text.is_empty()).then(|| text.to_owned())
    });
    Fault {
        http_status,
        code: qname(code_value).unwrap_or_default(),
        subcode: qname(subcode_value),
        reason,
        detail,
    }
}

/// Reply writer, in AMT's own shape: prefixes `a` (SOAP), `b` (addressing), `c` (wsman), `d`
/// (trust), `e` (wsse), `f` (cimbinding), `g` (the body's namespace), `h` (CIM common); one line,
/// MessageID `uuid:00000000-8086-8086-8086-<12 hex>`.
#[derive(Debug, Clone)]
pub struct Reply<'a> {
    /// The request's MessageID, echoed in `RelatesTo`.
    pub relates_to: &'a str,
    /// This reply's sequence number (the last 12 hex digits of its MessageID).
    pub sequence: u64,
    /// The resource URI to echo, if any.
    pub resource_uri: Option<&'a str>,
}

impl Reply<'_> {
    fn envelope(&self, action: &str, body_ns: &str, body: &str) -> String {
        self.envelope_declaring(action, &[body_ns, ns::CIM_COMMON], body)
    }

    /// The envelope with `g`, `h`, ... bound to `namespaces` in order: AMT declares every
    /// namespace of the reply on the Envelope (a Pull binds `g` to enumeration, `h` to the
    /// items' class and `i` to CIM common), and consoles' hand-written parsers rely on it.
    fn envelope_declaring(&self, action: &str, namespaces: &[&str], body: &str) -> String {
        let mut out = String::with_capacity(1024 + body.len());
        let _ = write!(
            out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><a:Envelope xmlns:a=\"{}\" xmlns:b=\"{}\" xmlns:c=\"{}\" xmlns:d=\"{}\" xmlns:e=\"{}\" xmlns:f=\"{}\"",
            ns::SOAP,
            ns::ADDRESSING,
            ns::WSMAN,
            ns::TRUST,
            ns::WSSE,
            ns::CIMBINDING,
        );
        for (prefix, uri) in ["g", "h", "i", "j"].iter().zip(namespaces) {
            let _ = write!(out, " xmlns:{prefix}=\"{}\"", escape(uri));
        }
        let _ = write!(
            out,
            " xmlns:xsi=\"{}\"><a:Header><b:To>{}</b:To><b:RelatesTo>{}</b:RelatesTo><b:Action a:mustUnderstand=\"true\">{}</b:Action><b:MessageID>uuid:00000000-8086-8086-8086-{:012X}</b:MessageID>",
            ns::XSI,
            ns::ANONYMOUS,
            escape(self.relates_to),
            escape(action),
            self.sequence & 0xFFFF_FFFF_FFFF
        );
        if let Some(uri) = self.resource_uri {
            let _ = write!(out, "<c:ResourceURI>{}</c:ResourceURI>", escape(uri));
        }
        let _ = write!(out, "</a:Header><a:Body>{body}</a:Body></a:Envelope>");
        out
    }

    const EPR_STYLE: EprStyle = EprStyle::Prefixed {
        wsa: "b",
        wsman: "c",
    };

    fn instance_xml(instance: &Instance) -> String {
        let mut body = String::with_capacity(512);
        let _ = write!(body, "<g:{}>", instance.class);
        write_properties(&mut body, &instance.properties, "g", Self::EPR_STYLE);
        let _ = write!(body, "</g:{}>", instance.class);
        body
    }

    /// A GetResponse (or, with `action::PUT`, a PutResponse) holding `instance`.
    pub fn instance(&self, request_action: &str, instance: &Instance) -> Result<String, Error> {
        check_names(instance)?;
        Ok(self.envelope(
            &format!("{request_action}Response"),
            &instance.namespace,
            &Self::instance_xml(instance),
        ))
    }

    /// A reply with an empty body (DeleteResponse, ReleaseResponse, ...).
    pub fn empty(&self, request_action: &str) -> String {
        self.envelope(&format!("{request_action}Response"), ns::TRANSFER, "")
    }

    /// A CreateResponse holding the new instance's reference.
    pub fn created(&self, epr: &Epr) -> String {
        let mut body = String::from("<g:ResourceCreated>");
        write_epr_children(&mut body, epr, Self::EPR_STYLE);
        body.push_str("</g:ResourceCreated>");
        self.envelope(&format!("{}Response", action::CREATE), ns::TRANSFER, &body)
    }

    /// An EnumerateResponse with a context (AMT returns no items there).
    pub fn enumerate(&self, context: &str) -> String {
        let body = format!(
            "<g:EnumerateResponse><g:EnumerationContext>{}</g:EnumerationContext></g:EnumerateResponse>",
            escape(context)
        );
        self.envelope(
            &format!("{}Response", action::ENUMERATE),
            ns::ENUMERATION,
            &body,
        )
    }

    /// A PullResponse: the context comes before the items when more are to come (as AMT
    /// orders it), `EndOfSequence` after them on the last batch.
    pub fn pull(&self, items: &[Instance], next_context: Option<&str>) -> Result<String, Error> {
        let mut body = String::from("<g:PullResponse>");
        if let Some(ctx) = next_context {
            let _ = write!(
                body,
                "<g:EnumerationContext>{}</g:EnumerationContext>",
                escape(ctx)
            );
        }
        body.push_str("<g:Items>");
        // As AMT: the items' class namespace is `h`, declared on the Envelope, and the items
        // are bare `<h:Class>`. An item of another class (a polymorphic enumeration) binds its
        // own namespace where it stands.
        let class_ns = items.first().map_or("", |i| i.namespace.as_str());
        for item in items {
            check_names(item)?;
            if item.namespace == class_ns {
                let _ = write!(body, "<h:{}>", item.class);
                write_properties(&mut body, &item.properties, "h", Self::EPR_STYLE);
                let _ = write!(body, "</h:{}>", item.class);
            } else {
                write_instance(&mut body, item, "j", Self::EPR_STYLE);
            }
        }
        body.push_str("</g:Items>");
        if next_context.is_none() {
            body.push_str("<g:EndOfSequence></g:EndOfSequence>");
        }
        body.push_str("</g:PullResponse>");
        let namespaces: &[&str] = if items.is_empty() {
            &[ns::ENUMERATION]
        } else {
            &[ns::ENUMERATION, class_ns, ns::CIM_COMMON]
        };
        Ok(self.envelope_declaring(&format!("{}Response", action::PULL), namespaces, &body))
    }

    /// A method reply: `<g:Method_OUTPUT>` with `outputs` (put `ReturnValue` last or first as
    /// the real class does).
    pub fn output(
        &self,
        resource_uri: &str,
        method: &str,
        outputs: &[crate::Property],
    ) -> Result<String, Error> {
        crate::model::check_property_names(outputs)?;
        let mut body = format!("<g:{method}_OUTPUT>");
        write_properties(&mut body, outputs, "g", Self::EPR_STYLE);
        let _ = write!(body, "</g:{method}_OUTPUT>");
        Ok(self.envelope(
            &format!("{resource_uri}/{method}Response"),
            resource_uri,
            &body,
        ))
    }

    /// An IdentifyResponse.
    pub fn identify(&self, vendor: &str, version: &str) -> String {
        let body = format!(
            "<g:IdentifyResponse><g:ProtocolVersion>{}</g:ProtocolVersion><g:ProductVendor>{}</g:ProductVendor><g:ProductVersion>{}</g:ProductVersion></g:IdentifyResponse>",
            ns::WSMAN,
            escape(vendor),
            escape(version)
        );
        self.envelope(
            &format!("{}Response", action::IDENTIFY),
            ns::IDENTITY,
            &body,
        )
    }

    /// A fault envelope, shaped and prefixed as AMT's (`a:Detail` empty).
    pub fn fault(&self, fault: &Fault) -> String {
        // (namespace declaration, QName text) for a code value: the namespaces AMT binds on the
        // envelope use its prefixes; any other is declared on the Value element itself.
        let qname = |(uri, local): &(String, String)| -> (String, String) {
            let prefix = match uri.as_str() {
                ns::SOAP => "a",
                ns::ADDRESSING => "b",
                ns::ENUMERATION => "c",
                ns::TRANSFER => "d",
                ns::WSMAN => "e",
                ns::EVENTING => "f",
                ns::CIMBINDING => "g",
                other => {
                    return (
                        format!(" xmlns:x=\"{}\"", escape(other)),
                        format!("x:{}", escape(local)),
                    );
                }
            };
            (String::new(), format!("{prefix}:{}", escape(local)))
        };
        let (code_decl, code_text) = qname(&fault.code);
        let mut out = String::with_capacity(1200);
        let _ = write!(
            out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><a:Envelope xmlns:g=\"{}\" xmlns:f=\"{}\" xmlns:e=\"{}\" xmlns:d=\"{}\" xmlns:c=\"{}\" xmlns:b=\"{}\" xmlns:a=\"{}\" xmlns:h=\"{}\" xmlns:i=\"{}\" xmlns:xsi=\"{}\"><a:Header><b:To>{}</b:To><b:RelatesTo>{}</b:RelatesTo><b:Action a:mustUnderstand=\"true\">{}</b:Action><b:MessageID>uuid:00000000-8086-8086-8086-{:012X}</b:MessageID></a:Header><a:Body><a:Fault><a:Code><a:Value{}>{}</a:Value>",
            ns::CIMBINDING,
            ns::EVENTING,
            ns::WSMAN,
            ns::TRANSFER,
            ns::ENUMERATION,
            ns::ADDRESSING,
            ns::SOAP,
            ns::TRUST,
            ns::WSSE,
            ns::XSI,
            ns::ANONYMOUS,
            escape(self.relates_to),
            action::FAULT,
            self.sequence & 0xFFFF_FFFF_FFFF,
            code_decl,
            code_text
        );
        if let Some(sub) = &fault.subcode {
            let (decl, text) = qname(sub);
            let _ = write!(
                out,
                "<a:Subcode><a:Value{decl}>{text}</a:Value></a:Subcode>"
            );
        }
        let _ = write!(
            out,
            "</a:Code><a:Reason><a:Text xml:lang=\"en-US\">{}</a:Text></a:Reason><a:Detail>{}</a:Detail></a:Fault></a:Body></a:Envelope>",
            escape(&fault.reason),
            fault.detail.as_deref().map(escape).unwrap_or_default()
        );
        out
    }
}
