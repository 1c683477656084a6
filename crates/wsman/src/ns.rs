//! Namespace and action URIs (`docs/wsman.md` sections 1.1, 1.3 and 3.1), and the class to
//! resource-URI rule.

/// SOAP 1.2 envelope.
pub const SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
/// WS-Addressing, the 2004/08 version that AMT uses.
pub const ADDRESSING: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
/// WS-Management.
pub const WSMAN: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";
/// WS-Enumeration.
pub const ENUMERATION: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration";
/// WS-Transfer.
pub const TRANSFER: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer";
/// WS-Eventing.
pub const EVENTING: &str = "http://schemas.xmlsoap.org/ws/2004/08/eventing";
/// WS-Management CIM binding.
pub const CIMBINDING: &str = "http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd";
/// WS-Management Identify.
pub const IDENTITY: &str = "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd";
/// CIM common types (`Datetime`).
pub const CIM_COMMON: &str = "http://schemas.dmtf.org/wbem/wscim/1/common";
/// WS-Trust (declared on every AMT reply).
pub const TRUST: &str = "http://schemas.xmlsoap.org/ws/2005/02/trust";
/// WS-Security (declared on every AMT reply).
pub const WSSE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
/// XML Schema instance (`xsi:nil`).
pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// XML Schema.
pub const XSD: &str = "http://www.w3.org/2001/XMLSchema";
/// The anonymous reply address.
pub const ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";

/// Resource URI base of `AMT_` classes.
pub const AMT_SCHEMA: &str = "http://intel.com/wbem/wscim/1/amt-schema/1/";
/// Resource URI base of `CIM_` classes.
pub const CIM_SCHEMA: &str = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/";
/// Resource URI base of `IPS_` classes.
pub const IPS_SCHEMA: &str = "http://intel.com/wbem/wscim/1/ips-schema/1/";

/// Action URIs.
pub mod action {
    /// WS-Transfer Get.
    pub const GET: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get";
    /// WS-Transfer Put.
    pub const PUT: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Put";
    /// WS-Transfer Create.
    pub const CREATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create";
    /// WS-Transfer Delete.
    pub const DELETE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete";
    /// WS-Enumeration Enumerate.
    pub const ENUMERATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate";
    /// WS-Enumeration Pull.
    pub const PULL: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull";
    /// WS-Enumeration Release.
    pub const RELEASE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Release";
    /// WS-Eventing Subscribe.
    pub const SUBSCRIBE: &str = "http://schemas.xmlsoap.org/ws/2004/08/eventing/Subscribe";
    /// WS-Eventing Unsubscribe.
    pub const UNSUBSCRIBE: &str = "http://schemas.xmlsoap.org/ws/2004/08/eventing/Unsubscribe";
    /// WS-Eventing Renew.
    pub const RENEW: &str = "http://schemas.xmlsoap.org/ws/2004/08/eventing/Renew";
    /// The fault action AMT uses.
    pub const FAULT: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault";
    /// Identify has no action on the wire; this is the crate's name for it.
    pub const IDENTIFY: &str =
        "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd/Identify";
}

/// The resource URI of a class: `AMT_`, `CIM_` and `IPS_` classes get their schema base; any
/// other string is taken to be a resource URI already.
///
/// ```
/// assert_eq!(
///     oobkit_wsman::resource_uri("AMT_GeneralSettings"),
///     "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_GeneralSettings"
/// );
/// assert_eq!(oobkit_wsman::resource_uri("http://x/Y"), "http://x/Y");
/// ```
pub fn resource_uri(class: &str) -> String {
    let base = if class.starts_with("AMT_") {
        AMT_SCHEMA
    } else if class.starts_with("CIM_") {
        CIM_SCHEMA
    } else if class.starts_with("IPS_") {
        IPS_SCHEMA
    } else {
        return class.to_owned();
    };
    format!("{base}{class}")
}

/// The class name at the end of a resource URI.
pub fn class_name(resource_uri: &str) -> &str {
    resource_uri.rsplit('/').next().unwrap_or(resource_uri)
}
