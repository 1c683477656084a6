//! Sans-IO HTTP/1.1 message readers: feed bytes as they arrive, get a complete request or
//! response back; bodies framed by Content-Length, chunked encoding (chunk boundaries anywhere)
//! or the end of the connection, with limits on the head, the body and the chunk lines.
//!
//! httparse parses the head; this adds the body framing that it leaves to the caller. Used by
//! the WS-Management client and server sides, the simulator and the Digest demo.
//!
//! ```
//! use oobkit_http1::{ReadStatus, ResponseReader};
//! let mut reader = ResponseReader::new();
//! assert!(matches!(reader.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"), Ok(ReadStatus::NeedMore)));
//! let ReadStatus::Complete(response) = reader.feed(b"lo\r\n0\r\n\r\n")? else { panic!() };
//! assert_eq!((response.status, response.body.as_slice()), (200, &b"hello"[..]));
//! # Ok::<(), oobkit_http1::Error>(())
//! ```
#![forbid(unsafe_code)]

/// The Content-Length of a head: every value (repeated headers and comma lists alike) must be
/// the same run of digits (no sign, no spaces inside), else the length is ambiguous.
fn content_length(headers: &[(String, String)]) -> Result<Option<usize>, Error> {
    let mut length = None;
    for (_, value) in headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("content-length"))
    {
        for part in value.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::BadContentLength);
            }
            let value: usize = part.parse().map_err(|_| Error::BodyTooLarge)?;
            if length.is_some_and(|seen| seen != value) {
                return Err(Error::AmbiguousLength);
            }
            length = Some(value);
        }
    }
    Ok(length)
}

/// Why bytes are not an acceptable HTTP/1.1 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The head does not parse (httparse's reason).
    #[error("malformed message head: {0}")]
    Head(httparse::Error),
    /// The head is longer than [`MAX_HEAD`].
    #[error("message head over the size limit")]
    HeadTooLarge,
    /// The body is longer than the reader's limit.
    #[error("body over the size limit")]
    BodyTooLarge,
    /// Content-Length is not a run of digits.
    #[error("bad Content-Length")]
    BadContentLength,
    /// Content-Length values that differ, or Content-Length with Transfer-Encoding: two
    /// parties could read the length differently (request smuggling), so it is refused.
    #[error("ambiguous message length (differing Content-Length, or with Transfer-Encoding)")]
    AmbiguousLength,
    /// A request whose Transfer-Encoding does not end in chunked (RFC 9112 section 6.3).
    #[error("unsupported Transfer-Encoding")]
    BadTransferEncoding,
    /// A chunk-size line is not hexadecimal, not text, or too long.
    #[error("bad chunk-size line")]
    BadChunkSize,
    /// Chunk data is not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    BadChunkEnd,
    /// The trailers are longer than [`MAX_HEAD`].
    #[error("trailers over the size limit")]
    TrailersTooLarge,
    /// The connection closed in the middle of a message.
    #[error("connection closed before the message was complete")]
    Truncated,
    /// A request where a response was expected, or the reverse.
    #[error("a {0} where the other kind of message was expected")]
    WrongKind(&'static str),
}

/// Longest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Longest response body accepted (the XML limit: a 999-item Pull is a few hundred KiB).
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// Longest request body a [`RequestReader`] accepts: a WS-Man request is a few KiB, and a
/// server holds one per connection.
pub const MAX_REQUEST_BODY: usize = 1024 * 1024;
/// Most headers accepted.
const MAX_HEADERS: usize = 64;

/// A complete HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Every header named `name` (case-insensitive), in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the server will close the connection after this response.
    pub fn closes(&self) -> bool {
        asks_to_close(&self.headers)
    }
}

/// The first header named `name` (case-insensitive), for requests and responses alike.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Whether `Connection` names `close`.
fn asks_to_close(headers: &[(String, String)]) -> bool {
    header(headers, "connection")
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
}

/// The start line: a response's status, or a request's method and target.
#[derive(Debug, Clone)]
enum StartLine {
    Status(u16),
    Request { method: String, target: String },
}

/// Start line, headers, and how the body is framed.
type Head = (StartLine, Vec<(String, String)>, Framing);

#[derive(Debug)]
enum Framing {
    Length(usize),
    /// In chunk-size line, in chunk data (bytes left), after chunk data (CRLF), in trailers.
    Chunked(ChunkState),
    UntilClose,
}

#[derive(Debug, Clone, Copy)]
enum ChunkState {
    Size,
    Data(usize),
    DataEnd,
    Trailers,
}

/// Where the reader stands.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadStatus {
    /// More bytes are needed.
    NeedMore,
    /// The response is complete; any bytes after it stay in the reader
    /// ([`ResponseReader::take_leftover`]).
    Complete(HttpResponse),
}

/// Incremental response reader. One response at a time; reuse with [`ResponseReader::reset`].
///
/// ```
/// use oobkit_http1::{ReadStatus, ResponseReader};
/// let mut reader = ResponseReader::new();
/// assert_eq!(reader.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n<a/")
///     .unwrap(), ReadStatus::NeedMore);
/// match reader.feed(b">\r\n0\r\n\r\n").unwrap() {
///     ReadStatus::Complete(r) => assert_eq!(r.body, b"<a/>"),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Default)]
pub struct ResponseReader {
    buf: Vec<u8>,
    head: Option<Head>,
    body: Vec<u8>,
    /// Whether this response answers a HEAD request (no body whatever the headers say).
    head_request: bool,
    /// Whether this reader parses requests (see [`RequestReader`]).
    is_request: bool,
    /// Longest body accepted; 0 means the default for the kind of message.
    max_body: usize,
    /// How much of `buf` was looked at for a line end (while no head is parsed, and in the
    /// trailers), so that bytes trickled in one at a time are not rescanned.
    line_scanned: usize,
}

/// A parsed head: its length in bytes, start line and headers.
type ParsedHead = (usize, StartLine, Vec<(String, String)>);

/// A complete message as the core reader hands it out.
type Message = (StartLine, Vec<(String, String)>, Vec<u8>);

impl ResponseReader {
    /// A reader for the response to a request that was not HEAD.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts bodies of at most `max` bytes (default [`MAX_BODY`]).
    pub fn with_max_body(mut self, max: usize) -> Self {
        self.max_body = max.max(1);
        self
    }

    /// The body limit in force.
    fn body_limit(&self) -> usize {
        match (self.max_body, self.is_request) {
            (0, true) => MAX_REQUEST_BODY,
            (0, false) => MAX_BODY,
            (limit, _) => limit,
        }
    }

    /// Clears everything, leftover bytes included.
    pub fn reset(&mut self) {
        *self = Self {
            is_request: self.is_request,
            max_body: self.max_body,
            ..Self::default()
        };
    }

    /// Bytes received after the complete response (pipelined data).
    pub fn take_leftover(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Feeds bytes; returns whether the response is complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<ReadStatus, Error> {
        self.buf.extend_from_slice(bytes);
        self.progress()
    }

    /// The peer closed the connection: completes a close-delimited body, or reports a
    /// truncated response.
    pub fn finish(&mut self) -> Result<HttpResponse, Error> {
        match self.progress()? {
            ReadStatus::Complete(r) => Ok(r),
            ReadStatus::NeedMore => match self.head.take() {
                Some((StartLine::Status(status), headers, Framing::UntilClose)) => {
                    let mut body = std::mem::take(&mut self.body);
                    body.append(&mut self.buf);
                    Ok(HttpResponse {
                        status,
                        headers,
                        body,
                    })
                }
                _ => Err(Error::Truncated),
            },
        }
    }

    fn progress(&mut self) -> Result<ReadStatus, Error> {
        match self.progress_message()? {
            None => Ok(ReadStatus::NeedMore),
            Some((StartLine::Status(status), headers, body)) => {
                Ok(ReadStatus::Complete(HttpResponse {
                    status,
                    headers,
                    body,
                }))
            }
            Some((StartLine::Request { .. }, ..)) => Err(Error::WrongKind("request")),
        }
    }

    /// Parses the head if not done yet, then the body; a complete message comes out whole.
    fn progress_message(&mut self) -> Result<Option<Message>, Error> {
        if self.head.is_none() {
            // Parse again only when a line was completed: a head trickled a byte at a time then
            // costs one parse per line (at most MAX_HEADERS of them), not one per byte, which
            // was quadratic in the head's length.
            // Only complete lines are parsed, so the outcome does not depend on how the bytes
            // were cut (a bad byte is seen once its line ends, however it arrived).
            let from = self.line_scanned.min(self.buf.len());
            let last_line_end = self.buf[from..].iter().rposition(|&b| b == b'\n');
            self.line_scanned = self.buf.len();
            let Some(last_line_end) = last_line_end.map(|i| from + i) else {
                return if self.buf.len() > MAX_HEAD {
                    Err(Error::HeadTooLarge)
                } else {
                    Ok(None)
                };
            };
            let Some((head_len, start, headers)) = self.parse_head(last_line_end + 1)? else {
                return Ok(None);
            };
            let find = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim())
            };
            let no_body = match start {
                StartLine::Status(status) => {
                    self.head_request || status / 100 == 1 || status == 204 || status == 304
                }
                StartLine::Request { .. } => false,
            };
            // RFC 9112 section 6.3, strictly: a message whose length two parties could read
            // differently (request smuggling) is refused, not guessed at.
            let transfer_encoding = find("transfer-encoding");
            let content_length = content_length(&headers)?;
            let framing = if no_body {
                Framing::Length(0)
            } else if let Some(te) = transfer_encoding {
                let chunked_last = te
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
                if content_length.is_some() {
                    return Err(Error::AmbiguousLength);
                }
                match (chunked_last, self.is_request) {
                    (true, _) => Framing::Chunked(ChunkState::Size),
                    (false, true) => return Err(Error::BadTransferEncoding),
                    (false, false) => Framing::UntilClose,
                }
            } else if let Some(len) = content_length {
                if len > self.body_limit() {
                    return Err(Error::BodyTooLarge);
                }
                Framing::Length(len)
            } else if self.is_request {
                // A request without Content-Length or chunking has no body (RFC 9112 6.3).
                Framing::Length(0)
            } else {
                Framing::UntilClose
            };
            self.buf.drain(..head_len);
            self.line_scanned = 0;
            self.head = Some((start, headers, framing));
        }
        self.read_body()
    }

    /// The head, if complete within the first `upto` bytes (whole lines): its length, start
    /// line and headers.
    fn parse_head(&self, upto: usize) -> Result<Option<ParsedHead>, Error> {
        let lines = &self.buf[..upto];
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let parsed = if self.is_request {
            let mut request = httparse::Request::new(&mut headers);
            match request.parse(lines) {
                Ok(httparse::Status::Complete(n)) => Ok(Some((
                    n,
                    StartLine::Request {
                        method: request.method.unwrap_or_default().to_owned(),
                        target: request.path.unwrap_or_default().to_owned(),
                    },
                    collect_headers(request.headers),
                ))),
                Ok(httparse::Status::Partial) => Ok(None),
                Err(e) => Err(e),
            }
        } else {
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(lines) {
                Ok(httparse::Status::Complete(n)) => Ok(Some((
                    n,
                    StartLine::Status(response.code.unwrap_or(0)),
                    collect_headers(response.headers),
                ))),
                Ok(httparse::Status::Partial) => Ok(None),
                Err(e) => Err(e),
            }
        };
        match parsed {
            Ok(Some(done)) if done.0 <= MAX_HEAD => Ok(Some(done)),
            Ok(None) if self.buf.len() <= MAX_HEAD => Ok(None),
            Ok(_) => Err(Error::HeadTooLarge),
            Err(e) => Err(Error::Head(e)),
        }
    }

    fn read_body(&mut self) -> Result<Option<Message>, Error> {
        let limit = self.body_limit();
        let Some((_, _, framing)) = &mut self.head else {
            return Ok(None);
        };
        match framing {
            Framing::Length(len) => {
                if self.buf.len() < *len {
                    return Ok(None);
                }
                self.body = self.buf.drain(..*len).collect();
            }
            Framing::UntilClose => {
                if self.body.len() + self.buf.len() > limit {
                    return Err(Error::BodyTooLarge);
                }
                self.body.append(&mut self.buf);
                return Ok(None);
            }
            Framing::Chunked(state) => loop {
                match *state {
                    ChunkState::Size => {
                        let Some(eol) = find_crlf(&self.buf) else {
                            if self.buf.len() > 1024 {
                                return Err(Error::BadChunkSize);
                            }
                            return Ok(None);
                        };
                        let line = std::str::from_utf8(&self.buf[..eol])
                            .map_err(|_| Error::BadChunkSize)?;
                        let hex = line.split(';').next().unwrap_or("").trim();
                        let size =
                            usize::from_str_radix(hex, 16).map_err(|_| Error::BadChunkSize)?;
                        if self.body.len().saturating_add(size) > limit {
                            return Err(Error::BodyTooLarge);
                        }
                        self.buf.drain(..eol + 2);
                        *state = if size == 0 {
                            ChunkState::Trailers
                        } else {
                            ChunkState::Data(size)
                        };
                    }
                    ChunkState::Data(left) => {
                        if self.buf.is_empty() {
                            return Ok(None);
                        }
                        let n = left.min(self.buf.len());
                        self.body.extend(self.buf.drain(..n));
                        *state = if n == left {
                            ChunkState::DataEnd
                        } else {
                            ChunkState::Data(left - n)
                        };
                    }
                    ChunkState::DataEnd => {
                        if self.buf.len() < 2 {
                            return Ok(None);
                        }
                        if &self.buf[..2] != b"\r\n" {
                            return Err(Error::BadChunkEnd);
                        }
                        self.buf.drain(..2);
                        *state = ChunkState::Size;
                    }
                    ChunkState::Trailers => {
                        // Scan only what is new (the line so far had no CRLF), so a trailer
                        // trickled a byte at a time stays linear.
                        let from = self.line_scanned.saturating_sub(1).min(self.buf.len());
                        let Some(eol) = find_crlf(&self.buf[from..]).map(|i| i + from) else {
                            self.line_scanned = self.buf.len();
                            if self.buf.len() > MAX_HEAD {
                                return Err(Error::TrailersTooLarge);
                            }
                            return Ok(None);
                        };
                        self.line_scanned = 0;
                        self.buf.drain(..eol + 2);
                        if eol == 0 {
                            break;
                        }
                    }
                }
            },
        }
        let (start, headers, _) = self.head.take().expect("head parsed above");
        Ok(Some((start, headers, std::mem::take(&mut self.body))))
    }
}

fn collect_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

/// A complete HTTP request (for servers: the AMT simulator's `/wsman`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method.
    pub method: String,
    /// Request target.
    pub target: String,
    /// Headers, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Whether the client asked to close the connection after this request.
    pub fn closes(&self) -> bool {
        asks_to_close(&self.headers)
    }
}

/// Incremental request reader, the same framing rules as [`ResponseReader`] (requests without
/// Content-Length or chunking have an empty body). Keep-alive: after a complete request, the
/// bytes already received for the next one stay inside; call [`RequestReader::next`] with no
/// new bytes to see whether a whole next request is already there.
#[derive(Debug)]
pub struct RequestReader(ResponseReader);

impl Default for RequestReader {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestReader {
    /// A reader.
    pub fn new() -> Self {
        Self(ResponseReader {
            is_request: true,
            ..ResponseReader::default()
        })
    }

    /// Accepts bodies of at most `max` bytes (default [`MAX_REQUEST_BODY`]).
    pub fn with_max_body(self, max: usize) -> Self {
        Self(self.0.with_max_body(max))
    }

    /// Feeds bytes (possibly none); returns a request once one is complete.
    pub fn next(&mut self, bytes: &[u8]) -> Result<Option<HttpRequest>, Error> {
        self.0.buf.extend_from_slice(bytes);
        match self.0.progress_message()? {
            None => Ok(None),
            Some((StartLine::Request { method, target }, headers, body)) => Ok(Some(HttpRequest {
                method,
                target,
                headers,
                body,
            })),
            Some((StartLine::Status(_), ..)) => Err(Error::WrongKind("response")),
        }
    }

    /// Whether bytes of an unfinished request are buffered (a clean close has none).
    pub fn has_partial(&self) -> bool {
        !self.0.buf.is_empty() || self.0.head.is_some()
    }

    /// Whether the unfinished request's head is complete (its body is being read): servers give
    /// the head and the body deadlines of their own.
    pub fn in_body(&self) -> bool {
        self.0.head.is_some()
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(chunks: &[&[u8]]) -> Result<HttpResponse, Error> {
        let mut reader = ResponseReader::new();
        for c in chunks {
            if let ReadStatus::Complete(r) = reader.feed(c)? {
                return Ok(r);
            }
        }
        reader.finish()
    }

    #[test]
    fn requests_keep_alive_and_chunked() {
        let mut reader = RequestReader::new();
        let two = b"POST /wsman HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n<a/\r\n1\r\n>\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let first = reader.next(two).unwrap().unwrap();
        assert_eq!(
            (
                first.method.as_str(),
                first.target.as_str(),
                first.body.as_slice()
            ),
            ("POST", "/wsman", &b"<a/>"[..])
        );
        let second = reader.next(b"").unwrap().unwrap();
        assert_eq!((second.method.as_str(), second.body.len()), ("GET", 0));
        assert!(reader.next(b"").unwrap().is_none());
        assert!(!reader.has_partial());
        assert!(
            RequestReader::new()
                .next(b"HTTP/1.1 200 OK\r\n\r\n")
                .is_err()
        );
    }

    #[test]
    fn requests_whose_length_could_be_read_two_ways_are_refused() {
        let refused = |request: &[u8]| RequestReader::new().next(request).unwrap_err();
        // RFC 9112 section 6.3: chunked must be the final coding of a request.
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Error::BadTransferEncoding
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            Error::BadTransferEncoding
        );
        // Content-Length with Transfer-Encoding, and differing lengths: smuggling shapes.
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Error::AmbiguousLength
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n"),
            Error::AmbiguousLength
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n"),
            Error::BadContentLength
        );
        // Chunked after other codings is the framing; `gzip, chunked` reads as chunked.
        let request = RequestReader::new()
            .next(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(request.body.is_empty());
    }

    #[test]
    fn content_length_close_and_chunked() {
        let r = read_all(&[b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcEXTRA"]).unwrap();
        assert_eq!(r.body, b"abc");
        let r = read_all(&[b"HTTP/1.1 200 OK\r\n\r\nall", b" of it"]).unwrap();
        assert_eq!(r.body, b"all of it");
        let r = read_all(&[b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n0004\r\n</a:\r\n0007\r\nEnvelop\r\n1;ext=1\r\ne\r\n0\r\nX-T: 1\r\n\r\n"]).unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(r.body, b"</a:Envelope");
    }

    #[test]
    fn framing_errors() {
        assert!(read_all(&[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"]).is_err());
        assert!(
            read_all(&[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]).is_err()
        );
        assert!(
            read_all(&[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX"]).is_err()
        );
        assert!(read_all(&[b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n"]).is_err());
        assert!(read_all(&[b"garbage\r\n\r\n"]).is_err());
        assert_eq!(
            read_all(&[b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc"]),
            Err(Error::BadContentLength)
        );
        // The same length twice (or as a list) is one length; differing ones are not.
        assert_eq!(
            read_all(&[b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\nabc"])
                .unwrap()
                .body,
            b"abc"
        );
        assert_eq!(
            read_all(&[b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"]),
            Err(Error::AmbiguousLength)
        );
        let huge = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            MAX_BODY + 1
        );
        assert!(read_all(&[huge.as_bytes()]).is_err());
    }
}

/// Writes a response: the status line, headers, and a body framed by Content-Length or, with
/// [`ResponseWriter::chunked`], by chunked encoding (as AMT frames its replies).
///
/// ```
/// let bytes = oobkit_http1::ResponseWriter::new(401, "Unauthorized")
///     .header("WWW-Authenticate", "Digest realm=\"x\", nonce=\"n\"")
///     .body(b"no");
/// assert_eq!(bytes, b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"x\", nonce=\"n\"\r\nContent-Length: 2\r\n\r\nno");
/// ```
#[derive(Debug, Clone)]
#[must_use = "a response is written by `body` or `chunked`"]
pub struct ResponseWriter {
    head: Vec<u8>,
}

impl ResponseWriter {
    /// A response with this status.
    pub fn new(status: u16, reason: &str) -> Self {
        let mut writer = Self { head: Vec::new() };
        writer.head.extend_from_slice(b"HTTP/1.1 ");
        writer.head.extend_from_slice(status.to_string().as_bytes());
        writer.head.push(b' ');
        writer.push_text(reason);
        writer.head.extend_from_slice(b"\r\n");
        writer
    }

    /// Adds a header. Control characters in the name or value are dropped, so no value can
    /// start a header of its own (response splitting).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.push_text(name);
        self.head.extend_from_slice(b": ");
        self.push_text(value);
        self.head.extend_from_slice(b"\r\n");
        self
    }

    fn push_text(&mut self, text: &str) {
        self.head.extend(
            text.bytes()
                .filter(|b| !b.is_ascii_control() || *b == b'\t'),
        );
    }

    /// The head alone, for responses that have no body by definition (a 101 upgrade, 204,
    /// 304), which must not carry `Content-Length` either.
    pub fn head_only(self) -> Vec<u8> {
        let mut out = self.head;
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The whole response, with `Content-Length`.
    pub fn body(self, body: &[u8]) -> Vec<u8> {
        let mut out = self.header("Content-Length", &body.len().to_string()).head;
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    }

    /// The whole response, its body in chunks of at most `chunk` bytes.
    pub fn chunked(self, body: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = self.header("Transfer-Encoding", "chunked").head;
        out.extend_from_slice(b"\r\n");
        for piece in body.chunks(chunk.max(1)) {
            out.extend_from_slice(format!("{:04X}\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }
}

#[cfg(test)]
mod writer_tests {
    use super::*;

    #[test]
    fn written_responses_read_back_and_cannot_be_split() {
        let body = vec![b'x'; 10_000];
        for bytes in [
            ResponseWriter::new(200, "OK")
                .header("Server", "a\r\nSet-Cookie: b")
                .body(&body),
            ResponseWriter::new(200, "OK")
                .header("Server", "a\r\nSet-Cookie: b")
                .chunked(&body, 4096),
        ] {
            let mut reader = ResponseReader::new();
            let ReadStatus::Complete(response) = reader.feed(&bytes).unwrap() else {
                panic!("incomplete");
            };
            assert_eq!(response.body, body);
            assert_eq!(response.header("server"), Some("aSet-Cookie: b"));
            assert_eq!(response.header("set-cookie"), None);
        }
    }
}

/// Entry points for the fuzz targets and their corpus-replay tests. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::{Error, HttpRequest, ReadStatus, RequestReader, ResponseReader};

    /// HTTP bytes fed whole and byte by byte must give the same result.
    pub fn http_reader(data: &[u8]) {
        let mut whole = ResponseReader::new();
        let a = match whole.feed(data) {
            Ok(ReadStatus::Complete(r)) => Ok(r),
            Ok(ReadStatus::NeedMore) => whole.finish(),
            Err(e) => Err(e),
        };
        let mut split = ResponseReader::new();
        let mut b = None;
        for byte in data {
            match split.feed(std::slice::from_ref(byte)) {
                Ok(ReadStatus::Complete(r)) => {
                    b = Some(Ok(r));
                    break;
                }
                Ok(ReadStatus::NeedMore) => {}
                Err(e) => {
                    b = Some(Err(e));
                    break;
                }
            }
        }
        let b = b.unwrap_or_else(|| split.finish());
        assert_eq!(a.is_ok(), b.is_ok(), "{a:?} vs {b:?}");
        if let (Ok(a), Ok(b)) = (a, b) {
            assert_eq!(a, b);
        }
    }

    /// A keep-alive pipeline of requests (what a server reads from a hostile client): fed whole
    /// and byte by byte, the same requests come out in the same order, ending the same way.
    pub fn http_request_reader(data: &[u8]) {
        fn pipeline(chunks: &mut dyn Iterator<Item = &[u8]>) -> (Vec<HttpRequest>, Option<Error>) {
            let mut reader = RequestReader::new();
            let mut requests = Vec::new();
            for chunk in chunks {
                let mut input = chunk;
                loop {
                    match reader.next(input) {
                        Ok(Some(request)) => requests.push(request),
                        Ok(None) => break,
                        Err(e) => return (requests, Some(e)),
                    }
                    // Bytes already buffered may hold the next request: ask again with none.
                    input = &[];
                }
            }
            (requests, None)
        }
        let (whole, whole_end) = pipeline(&mut std::iter::once(data));
        let (split, split_end) = pipeline(&mut data.chunks(1));
        assert_eq!(whole, split);
        assert_eq!(
            whole_end.is_some(),
            split_end.is_some(),
            "{whole_end:?} vs {split_end:?}"
        );
        for request in &whole {
            assert!(request.body.len() <= crate::MAX_REQUEST_BODY);
        }
    }
}
