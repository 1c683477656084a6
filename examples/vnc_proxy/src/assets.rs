//! What the proxy serves over plain HTTP: the console page and the vendored noVNC client,
//! from the binary (no CDN, nothing fetched at build or run time).

use oobkit_http1::{HttpRequest, ResponseWriter};

const PAGE: &[(&str, &[u8], &str)] = &[
    (
        "vnc.html",
        include_bytes!("../assets/page/vnc.html"),
        "text/html; charset=utf-8",
    ),
    (
        "console.js",
        include_bytes!("../assets/page/console.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "console.css",
        include_bytes!("../assets/page/console.css"),
        "text/css; charset=utf-8",
    ),
];

/// The content security policy of everything served: scripts, styles and sockets from this
/// origin only.
const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'";

/// A reply: status and bytes.
pub struct Reply {
    /// The status, for the log.
    pub status: u16,
    /// The whole response.
    pub bytes: Vec<u8>,
}

fn file(status: u16, reason: &str, kind: &str, body: &[u8]) -> Reply {
    Reply {
        status,
        bytes: ResponseWriter::new(status, reason)
            .header("Content-Type", kind)
            .header("Content-Security-Policy", CSP)
            .header("Referrer-Policy", "no-referrer")
            .header("X-Content-Type-Options", "nosniff")
            .header("Cache-Control", "no-store")
            .body(body),
    }
}

/// The answer to a request that is not a websocket upgrade.
pub fn respond(request: &HttpRequest) -> Reply {
    if request.method != "GET" && request.method != "HEAD" {
        return file(405, "Method Not Allowed", "text/plain", b"only GET\n");
    }
    let path = request.target.split(['?', '#']).next().unwrap_or_default();
    let path = if path == "/" { "/vnc.html" } else { path };
    let found = if let Some(name) = path.strip_prefix("/novnc/") {
        oobkit_webassets::novnc(name)
    } else {
        PAGE.iter()
            .find(|(f, ..)| Some(*f) == path.strip_prefix('/'))
            .map(|(_, body, kind)| (*body, *kind))
    };
    match found {
        Some((body, kind)) => file(200, "OK", kind, body),
        None => file(404, "Not Found", "text/plain", b"not found\n"),
    }
}
