//! WS-Management (DSP0226) as Intel AMT speaks it, sans-IO: build request envelopes, parse
//! replies and faults, parse requests and write replies for a server, and read the HTTP
//! responses they travel in.
//!
//! ```
//! use oobkit_wsman::{ops, Request, Response, ResponseBody, Style};
//!
//! // A client builds a request ...
//! let request = ops::get_general_settings().message_id("1");
//! let xml = request.to_xml(Style::Intel)?;
//!
//! // ... a server (the AMT simulator, say) parses it and answers ...
//! let parsed = Request::parse(&xml)?;
//! assert_eq!(parsed, request);
//! let instance = oobkit_wsman::Instance::new("AMT_GeneralSettings").with("HostName", "host <1>");
//! let reply = oobkit_wsman::Reply { relates_to: &parsed.message_id, sequence: 7, resource_uri: Some(&parsed.resource_uri) }
//!     .instance(oobkit_wsman::ns::action::GET, &instance)?;
//!
//! // ... and the client reads the reply, namespaces resolved whatever the prefixes.
//! let response = Response::parse(&reply, 200)?;
//! assert_eq!(response.relates_to.as_deref(), Some("1"));
//! match response.body {
//!     ResponseBody::Instance(got) => assert_eq!(got.text("HostName"), Some("host <1>")),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), oobkit_wsman::Error>(())
//! ```
//!
//! # Bad input
//!
//! Replies and requests are untrusted. Parsing refuses DOCTYPE (so no entity is ever
//! declared or expanded), unknown entities, undeclared prefixes, documents over
//! [`MAX_DOCUMENT`] bytes, nesting over [`MAX_DEPTH`], more than [`MAX_ELEMENTS`] elements
//! and more than [`MAX_NAMESPACES`] namespace declarations in scope, each with a typed
//! [`Error`]. Nothing panics on input, and no input costs more than linear time.
#![forbid(unsafe_code)]

mod error;
/// The HTTP/1.1 readers, from their own crate (re-exported: WS-Man travels over them).
pub use oobkit_http1 as http;
mod model;
pub mod ns;
pub mod ops;
pub mod pager;
mod reply_parser;
mod request;
mod response;
mod scan;
mod status;
mod view;
mod xml;

pub use error::{Error, XmlError};
pub use model::{Epr, Instance, Property, Selector, SelectorValue, Value};
pub use ns::{class_name, resource_uri};
pub use request::{
    EnumerateOptions, EnumerationMode, Operation, PUSH_WITH_ACK, Request, Style, Subscription,
};
pub use response::{Fault, Item, MethodOutput, Reply, Response, ResponseBody};
pub use status::return_value_text;
pub use view::{BodyView, InstanceView, ItemView, PropertyView, ResponseView, ValueView};
pub use xml::{MAX_DEPTH, MAX_DOCUMENT, MAX_ELEMENTS, MAX_NAMESPACES};

/// Entry points for the fuzz targets and their corpus-replay tests. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::{Request, Response, Style};

    /// A reply, under both a 200 and a 400 status; parsed from the events (with the
    /// snapshots that hand unusual shapes to the tree) it must give what the whole tree gives.
    pub fn reply_parser(data: &[u8]) {
        if let Ok(text) = std::str::from_utf8(data) {
            for status in [200, 400] {
                let events = Response::parse(text, status);
                let tree = Response::parse_via_tree(text, status);
                assert_eq!(events, tree, "{text}");
            }
        }
    }

    /// Any text cut into tokens: the same tokens, and the same verdict, as quick-xml's reader.
    pub fn scanner(data: &[u8]) {
        if let Ok(text) = std::str::from_utf8(data) {
            assert_eq!(
                crate::scan::differential::with_scanner(text),
                crate::scan::differential::with_quick_xml(text),
                "{text:?}"
            );
        }
    }

    /// A request; what parses must write back and parse to the same request.
    pub fn request_parser(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(request) = Request::parse(text) {
            for style in [Style::Intel, Style::Openwsman] {
                if let Ok(xml) = request.to_xml(style) {
                    let again = Request::parse(&xml).expect("written request parses");
                    assert_eq!(again, request, "{xml}");
                }
            }
        }
    }
}
