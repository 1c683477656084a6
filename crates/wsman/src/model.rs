//! The generic instance model: CIM instances, their properties, endpoint references and
//! selectors, independent of any class.

use std::fmt::Write as _;

use crate::ns;
use crate::xml::{Element, escape};

/// A CIM instance: a class, its namespace, and properties in document order. An array property
/// is the same name repeated, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Instance {
    /// The class name (`AMT_GeneralSettings`).
    pub class: String,
    /// The class namespace, which is its resource URI.
    pub namespace: String,
    /// Properties in document order.
    pub properties: Vec<Property>,
}

/// One property (or one element of an array property).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// The property name.
    pub name: String,
    /// Its value.
    pub value: Value,
}

/// A property value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Value {
    /// Text, as sent (numbers and booleans included: `1`, `true`).
    Text(String),
    /// `xsi:nil="true"`.
    Nil,
    /// A CIM datetime, unwrapped from its `cim:Datetime` (or `Date`, `Time`, `Interval`) element.
    Datetime(String),
    /// An endpoint reference (boxed, as the embedded instance: a property then takes 48 bytes,
    /// not 104, and an instance's property vector stays small enough for the allocator's fast
    /// path).
    Epr(Box<Epr>),
    /// An embedded instance.
    Instance(Box<Instance>),
}

impl From<Epr> for Value {
    fn from(epr: Epr) -> Self {
        Self::Epr(Box::new(epr))
    }
}

impl From<Instance> for Value {
    fn from(instance: Instance) -> Self {
        Self::Instance(Box::new(instance))
    }
}

impl Value {
    /// The text of a `Text` or `Datetime` value.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(s) | Self::Datetime(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

/// A WS-Addressing endpoint reference to a CIM instance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Epr {
    /// `wsa:Address`. AMT ignores it; clients send the addressing namespace, the anonymous URI
    /// or `/wsman`.
    pub address: String,
    /// The referenced instance's resource URI.
    pub resource_uri: String,
    /// Its keys.
    pub selectors: Vec<Selector>,
}

impl Epr {
    /// A reference to `class` (a class name or resource URI) with the given text selectors,
    /// addressed as Intel's libraries do (the addressing namespace URI).
    pub fn new<'a>(class: &str, selectors: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            address: ns::ADDRESSING.to_owned(),
            resource_uri: ns::resource_uri(class),
            selectors: selectors
                .into_iter()
                .map(|(name, value)| Selector::new(name, value))
                .collect(),
        }
    }
}

/// One instance key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The key name.
    pub name: String,
    /// The key value.
    pub value: SelectorValue,
}

impl Selector {
    /// A text selector.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: SelectorValue::Text(value.into()),
        }
    }

    /// The text value, if this selector is not an EPR.
    pub fn text(&self) -> Option<&str> {
        match &self.value {
            SelectorValue::Text(s) => Some(s),
            SelectorValue::Epr(_) => None,
        }
    }
}

/// A selector value: text, or a nested EPR for the keys of association classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorValue {
    /// A text key.
    Text(String),
    /// A reference key.
    Epr(Box<Epr>),
}

impl Instance {
    /// An empty instance of `class` (class name or resource URI).
    pub fn new(class: &str) -> Self {
        let namespace = ns::resource_uri(class);
        Self {
            class: ns::class_name(&namespace).to_owned(),
            namespace,
            properties: Vec::new(),
        }
    }

    /// The first value of property `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.properties
            .iter()
            .find(|p| p.name == name)
            .map(|p| &p.value)
    }

    /// The text of property `name`, if it is text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_text)
    }

    /// Every value of property `name` (an array property repeats).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.properties
            .iter()
            .filter(move |p| p.name == name)
            .map(|p| &p.value)
    }

    /// Sets property `name` to one value, replacing every value it had (in place of the first,
    /// so document order is kept), or appending it.
    pub fn set(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        let value = value.into();
        match self.properties.iter().position(|p| p.name == name) {
            Some(i) => {
                self.properties[i].value = value;
                let mut seen = false;
                self.properties.retain(|p| {
                    if p.name != name {
                        return true;
                    }
                    let keep = !seen;
                    seen = true;
                    keep
                });
            }
            None => self.properties.push(Property {
                name: name.to_owned(),
                value,
            }),
        }
        self
    }

    /// Appends one value to property `name` (building an array).
    pub fn push(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        self.properties.push(Property {
            name: name.to_owned(),
            value: value.into(),
        });
        self
    }

    /// Builder form of [`Instance::set`].
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.set(name, value);
        self
    }

    /// Reads an instance from an element whose children are properties, taking the tree
    /// apart rather than copying it.
    pub(crate) fn from_element(element: Element) -> Self {
        Self {
            class: element.name,
            namespace: element.ns.to_string(),
            properties: element
                .children
                .into_iter()
                .map(Property::from_element)
                .collect(),
        }
    }
}

impl Property {
    /// The element's name moves into the property; the tree is consumed, not copied.
    pub(crate) fn from_element(mut element: Element) -> Self {
        let name = std::mem::take(&mut element.name);
        let value = Value::from_element(element, &name);
        Self { name, value }
    }
}

impl Value {
    /// `name` is the element's name, which the caller has moved out of it.
    fn from_element(mut element: Element, name: &str) -> Self {
        if element.is_nil() {
            return Self::Nil;
        }
        if let Some(epr) = Epr::from_element(&element) {
            return epr.into();
        }
        match element.children.len() {
            0 => Self::Text(element.text),
            1 if element.children[0].is_datetime() => {
                Self::Datetime(element.children.pop().expect("one child").text)
            }
            // A single child with children of its own: an embedded instance of that child's
            // class, as `write_properties` writes one.
            1 if !element.children[0].children.is_empty() => {
                Instance::from_element(element.children.pop().expect("one child")).into()
            }
            _ => {
                element.name = name.to_owned();
                Instance::from_element(element).into()
            }
        }
    }
}

impl Epr {
    /// Reads an EPR from an element holding `wsa:Address` and `wsa:ReferenceParameters`
    /// (or a `wsa:EndpointReference` wrapping them).
    pub(crate) fn from_element(element: &Element) -> Option<Self> {
        if let Some(inner) = element.child(ns::ADDRESSING, "EndpointReference") {
            return Self::from_element(inner);
        }
        let params = element.child(ns::ADDRESSING, "ReferenceParameters")?;
        let address = element
            .child_text(ns::ADDRESSING, "Address")
            .unwrap_or_default()
            .trim()
            .to_owned();
        Some(Self {
            address,
            resource_uri: params
                .child_text(ns::WSMAN, "ResourceURI")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            selectors: params
                .child(ns::WSMAN, "SelectorSet")
                .map(selectors_from_element)
                .unwrap_or_default(),
        })
    }
}

/// Reads a `wsman:SelectorSet`. The `Name` attribute is taken with or without a namespace
/// (sdague's client writes `wsman:Name`, and AMT accepts it).
pub(crate) fn selectors_from_element(set: &Element) -> Vec<Selector> {
    set.children
        .iter()
        .filter(|s| s.is(ns::WSMAN, "Selector"))
        .map(|s| Selector {
            name: s.attr("Name").unwrap_or_default().to_owned(),
            value: match Epr::from_element(s) {
                Some(epr) => SelectorValue::Epr(Box::new(epr)),
                None => SelectorValue::Text(s.text.clone()),
            },
        })
        .collect()
}

/// How to spell the WS-Addressing and WS-Management names inside bodies.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EprStyle {
    /// Default namespaces declared on each child, as Intel's libraries write EPR arguments.
    DefaultNamespaces,
    /// The envelope's prefixes.
    Prefixed {
        wsa: &'static str,
        wsman: &'static str,
    },
}

pub(crate) fn write_epr_children(out: &mut String, epr: &Epr, style: EprStyle) {
    match style {
        EprStyle::DefaultNamespaces => {
            let _ = write!(
                out,
                "<Address xmlns=\"{}\">{}</Address><ReferenceParameters xmlns=\"{}\"><ResourceURI xmlns=\"{}\">{}</ResourceURI>",
                ns::ADDRESSING,
                escape(&epr.address),
                ns::ADDRESSING,
                ns::WSMAN,
                escape(&epr.resource_uri)
            );
            if !epr.selectors.is_empty() {
                let _ = write!(out, "<SelectorSet xmlns=\"{}\">", ns::WSMAN);
                write_selectors(out, &epr.selectors, "", style);
                out.push_str("</SelectorSet>");
            }
            out.push_str("</ReferenceParameters>");
        }
        EprStyle::Prefixed { wsa, wsman } => {
            let _ = write!(
                out,
                "<{wsa}:Address>{}</{wsa}:Address><{wsa}:ReferenceParameters><{wsman}:ResourceURI>{}</{wsman}:ResourceURI>",
                escape(&epr.address),
                escape(&epr.resource_uri)
            );
            if !epr.selectors.is_empty() {
                let _ = write!(out, "<{wsman}:SelectorSet>");
                write_selectors(out, &epr.selectors, wsman, style);
                let _ = write!(out, "</{wsman}:SelectorSet>");
            }
            let _ = write!(out, "</{wsa}:ReferenceParameters>");
        }
    }
}

/// Writes `Selector` elements; `prefix` is empty for the default namespace.
pub(crate) fn write_selectors(
    out: &mut String,
    selectors: &[Selector],
    prefix: &str,
    style: EprStyle,
) {
    let tag = if prefix.is_empty() {
        "Selector".to_owned()
    } else {
        format!("{prefix}:Selector")
    };
    for selector in selectors {
        let _ = write!(out, "<{tag} Name=\"{}\">", escape(&selector.name));
        match &selector.value {
            SelectorValue::Text(text) => out.push_str(&escape(text)),
            SelectorValue::Epr(epr) => {
                let (open, close) = match style {
                    EprStyle::DefaultNamespaces => (
                        format!("<EndpointReference xmlns=\"{}\">", ns::ADDRESSING),
                        "</EndpointReference>".to_owned(),
                    ),
                    EprStyle::Prefixed { wsa, .. } => (
                        format!("<{wsa}:EndpointReference>"),
                        format!("</{wsa}:EndpointReference>"),
                    ),
                };
                out.push_str(&open);
                write_epr_children(out, epr, style);
                out.push_str(&close);
            }
        }
        let _ = write!(out, "</{tag}>");
    }
}

/// Writes properties as `<p:Name>value</p:Name>` elements, `p` bound to the class namespace.
pub(crate) fn write_properties(
    out: &mut String,
    properties: &[Property],
    prefix: &str,
    style: EprStyle,
) {
    for property in properties {
        let name = &property.name;
        match &property.value {
            Value::Text(text) => {
                let _ = write!(out, "<{prefix}:{name}>{}</{prefix}:{name}>", escape(text));
            }
            Value::Nil => {
                let _ = write!(
                    out,
                    "<{prefix}:{name} xmlns:xsi=\"{}\" xsi:nil=\"true\"/>",
                    ns::XSI
                );
            }
            Value::Datetime(text) => {
                let _ = write!(
                    out,
                    "<{prefix}:{name}><Datetime xmlns=\"{}\">{}</Datetime></{prefix}:{name}>",
                    ns::CIM_COMMON,
                    escape(text)
                );
            }
            Value::Epr(epr) => {
                let _ = write!(out, "<{prefix}:{name}>");
                write_epr_children(out, epr, style);
                let _ = write!(out, "</{prefix}:{name}>");
            }
            Value::Instance(inner) => {
                let _ = write!(out, "<{prefix}:{name}>");
                write_instance(out, inner, "q", style);
                let _ = write!(out, "</{prefix}:{name}>");
            }
        }
    }
}

/// Writes `<p:Class xmlns:p="namespace">properties</p:Class>`: an instance with its class
/// namespace bound where it stands (Put and Create bodies, Pull items, embedded instances).
pub(crate) fn write_instance(out: &mut String, instance: &Instance, prefix: &str, style: EprStyle) {
    let _ = write!(
        out,
        "<{prefix}:{} xmlns:{prefix}=\"{}\">",
        instance.class,
        escape(&instance.namespace)
    );
    write_properties(out, &instance.properties, prefix, style);
    let _ = write!(out, "</{prefix}:{}>", instance.class);
}

/// Property and class names come from callers and peers; refuse what is not an XML name, so
/// that a hostile name cannot inject markup.
pub(crate) fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Checks every name an instance would write.
pub(crate) fn check_names(instance: &Instance) -> Result<(), crate::Error> {
    if !is_xml_name(&instance.class) {
        return Err(crate::Error::InvalidName(instance.class.clone()));
    }
    check_property_names(&instance.properties)
}

pub(crate) fn check_property_names(properties: &[Property]) -> Result<(), crate::Error> {
    for p in properties {
        if !is_xml_name(&p.name) {
            return Err(crate::Error::InvalidName(p.name.clone()));
        }
        if let Value::Instance(inner) = &p.value {
            check_names(inner)?;
        }
    }
    Ok(())
}
