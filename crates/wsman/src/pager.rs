//! Reads that take several requests, as sans-IO pagers: the pager names the next request, the
//! caller sends it and hands the reply back, records come out, until the pager has no request
//! left. Each guards against a device that never ends (no progress, or too many pages).
//!
//! ```no_run
//! # async fn call(request: oobkit_wsman::Request) -> oobkit_wsman::Response { unimplemented!() }
//! # async fn example() -> Result<(), oobkit_wsman::pager::PagerError> {
//! use oobkit_wsman::pager::Enumeration;
//! let mut pager = Enumeration::new("CIM_SoftwareIdentity");
//! let mut instances = Vec::new();
//! while let Some(request) = pager.next_request() {
//!     instances.extend(pager.handle(call(request).await.body)?);
//! }
//! # Ok(()) }
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::ops::{self, AuditRecord, EventRecord};
use crate::{Instance, MethodOutput, Request, ResponseBody, Value};

/// Most requests one pager sends: far beyond any real log or class (AMT's event log holds a few
/// thousand records, 390 per page), and a bound on a device that keeps answering.
pub const MAX_PAGES: u32 = 10_000;

/// Why a multi-request read stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PagerError {
    /// The reply is not the kind this read expects.
    #[error("unexpected reply: expected {expected}")]
    UnexpectedReply {
        /// What was expected.
        expected: &'static str,
    },
    /// The device answered with an empty page without ending the read.
    #[error("the device returned an empty batch without ending the enumeration")]
    NoProgress,
    /// More than [`MAX_PAGES`] requests.
    #[error("the read does not end after {MAX_PAGES} requests")]
    TooManyPages,
}

fn count(pages: &mut u32) -> Result<(), PagerError> {
    *pages += 1;
    if *pages > MAX_PAGES {
        return Err(PagerError::TooManyPages);
    }
    Ok(())
}

/// Enumerate, then Pull until the end of the sequence.
#[derive(Debug, Clone)]
pub struct Enumeration {
    class: String,
    /// `None` before the Enumerate reply; then the context to pull, if any.
    context: Option<Option<String>>,
    pages: u32,
}

impl Enumeration {
    /// All instances of `class`.
    pub fn new(class: &str) -> Self {
        Self {
            class: class.into(),
            context: None,
            pages: 0,
        }
    }

    /// The request to send next, or `None` when every instance has come.
    pub fn next_request(&self) -> Option<Request> {
        match &self.context {
            None => Some(Request::enumerate(&self.class)),
            Some(Some(context)) => Some(Request::pull(&self.class, context.clone())),
            Some(None) => None,
        }
    }

    /// The reply to the last request: its instances.
    pub fn handle(&mut self, body: ResponseBody) -> Result<Vec<Instance>, PagerError> {
        count(&mut self.pages)?;
        let ResponseBody::Items { context, items, .. } = body else {
            return Err(PagerError::UnexpectedReply {
                expected: "EnumerateResponse or PullResponse",
            });
        };
        // A Pull that brings nothing and does not end would be asked again forever.
        if self.context.is_some() && items.is_empty() && context.is_some() {
            return Err(PagerError::NoProgress);
        }
        self.context = Some(context);
        Ok(items.into_iter().filter_map(|item| item.instance).collect())
    }
}

fn method_output(body: ResponseBody, expected: &'static str) -> Result<MethodOutput, PagerError> {
    match body {
        ResponseBody::Output(out) => Ok(out),
        _ => Err(PagerError::UnexpectedReply { expected }),
    }
}

/// The base64 array output `name`, decoded (values that are not base64 are skipped).
fn base64_array(out: &MethodOutput, name: &str) -> Vec<Vec<u8>> {
    out.outputs
        .all(name)
        .filter_map(Value::as_text)
        .filter_map(|text| BASE64.decode(text.trim()).ok())
        .collect()
}

/// `AMT_AuditLog.ReadRecords` from the first record to the last.
#[derive(Debug, Clone)]
pub struct AuditLog {
    /// The next record's index (1-based); `None` when done.
    next: Option<u32>,
    pages: u32,
}

impl Default for AuditLog {
    fn default() -> Self {
        Self {
            next: Some(1),
            pages: 0,
        }
    }
}

impl AuditLog {
    /// The whole audit log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The request to send next, or `None` when done.
    pub fn next_request(&self) -> Option<Request> {
        self.next.map(ops::read_audit_log)
    }

    /// The reply to the last request: its records (undecodable ones skipped). Check the
    /// method's `ReturnValue` before handing it here.
    pub fn handle(&mut self, body: ResponseBody) -> Result<Vec<AuditRecord>, PagerError> {
        count(&mut self.pages)?;
        let out = method_output(body, "ReadRecords output")?;
        let total: u32 = out
            .outputs
            .text("TotalRecordCount")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let records = base64_array(&out, "EventRecords");
        let start = self.next.unwrap_or(1);
        let next = start.saturating_add(u32::try_from(records.len()).unwrap_or(u32::MAX));
        self.next = (!records.is_empty() && next <= total).then_some(next);
        Ok(records
            .iter()
            .filter_map(|bytes| AuditRecord::decode(bytes))
            .collect())
    }
}

/// `AMT_MessageLog`: `PositionToFirstRecord`, then `GetRecords` until `NoMoreRecords`.
#[derive(Debug, Clone)]
pub struct EventLog {
    /// `None` before positioning; then the iteration to read, or `Some(None)` when done.
    iteration: Option<Option<String>>,
    pages: u32,
}

/// Records asked for per `GetRecords` (what AMT returns at most, and what MeshCommander asks).
pub const EVENT_RECORDS_PER_PAGE: u32 = 390;

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

impl EventLog {
    /// The whole event log.
    pub fn new() -> Self {
        Self {
            iteration: None,
            pages: 0,
        }
    }

    /// The request to send next, or `None` when done.
    pub fn next_request(&self) -> Option<Request> {
        match &self.iteration {
            None => Some(ops::event_log_position_to_first()),
            Some(Some(iteration)) => Some(ops::event_log_get_records(
                iteration,
                EVENT_RECORDS_PER_PAGE,
            )),
            Some(None) => None,
        }
    }

    /// The reply to the last request: its records (none for the positioning step).
    pub fn handle(&mut self, body: ResponseBody) -> Result<Vec<EventRecord>, PagerError> {
        count(&mut self.pages)?;
        let out = method_output(body, "PositionToFirstRecord or GetRecords output")?;
        let iteration = out
            .outputs
            .text("IterationIdentifier")
            .unwrap_or("1")
            .to_owned();
        if self.iteration.is_none() {
            self.iteration = Some(Some(iteration));
            return Ok(Vec::new());
        }
        let more = out.outputs.text("NoMoreRecords") == Some("false");
        let records = base64_array(&out, "RecordArray");
        if more && records.is_empty() {
            return Err(PagerError::NoProgress);
        }
        self.iteration = Some(more.then_some(iteration));
        Ok(records
            .iter()
            .filter_map(|bytes| EventRecord::decode(bytes))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(context: Option<&str>) -> ResponseBody {
        ResponseBody::Items {
            context: context.map(str::to_owned),
            items: Vec::new(),
            end_of_sequence: context.is_none(),
        }
    }

    #[test]
    fn enumeration_ends_and_refuses_a_device_that_does_not() {
        let mut pager = Enumeration::new("CIM_Card");
        assert_eq!(pager.next_request().unwrap().class(), "CIM_Card");
        assert!(pager.handle(items(Some("ctx"))).unwrap().is_empty());
        assert!(pager.next_request().is_some());
        assert!(pager.handle(items(None)).unwrap().is_empty());
        assert!(pager.next_request().is_none());

        // A Pull answered with nothing and the same context: refused, not looped on.
        let mut stuck = Enumeration::new("CIM_Card");
        stuck.handle(items(Some("ctx"))).unwrap();
        assert_eq!(
            stuck.handle(items(Some("ctx"))),
            Err(PagerError::NoProgress)
        );
        assert_eq!(
            Enumeration::new("CIM_Card").handle(ResponseBody::Empty),
            Err(PagerError::UnexpectedReply {
                expected: "EnumerateResponse or PullResponse"
            })
        );
    }
}
