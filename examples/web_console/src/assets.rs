//! What the console serves over plain HTTP: the login page, the terminal page and the vendored
//! browser clients (xterm.js and noVNC, from `oobkit-webassets`), all from the binary (no CDN,
//! nothing fetched at build or run time).

use oobkit_http1::ResponseWriter;

/// (path, body, content type).
const FILES: &[(&str, &[u8], &str)] = &[
    ("/", include_bytes!("../assets/page/login.html"), HTML),
    ("/term", include_bytes!("../assets/page/term.html"), HTML),
    (
        "/display",
        include_bytes!("../assets/page/display.html"),
        HTML,
    ),
    (
        "/assets/display.js",
        include_bytes!("../assets/page/display.js"),
        JS,
    ),
    (
        "/assets/login.js",
        include_bytes!("../assets/page/login.js"),
        JS,
    ),
    (
        "/assets/term.js",
        include_bytes!("../assets/page/term.js"),
        JS,
    ),
    (
        "/assets/console.css",
        include_bytes!("../assets/page/console.css"),
        CSS,
    ),
];

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Scripts, styles and sockets from this origin only; xterm.js sets element styles inline.
const CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// A reply: status and bytes.
pub struct Reply {
    /// The status, for the log.
    pub status: u16,
    /// The whole response.
    pub bytes: Vec<u8>,
}

fn file(status: u16, reason: &str, kind: &str, body: &[u8], head: bool) -> Reply {
    let writer = ResponseWriter::new(status, reason)
        .header("Content-Type", kind)
        .header("Content-Security-Policy", CSP)
        .header("Referrer-Policy", "no-referrer")
        .header("X-Content-Type-Options", "nosniff")
        .header("Cache-Control", "no-store")
        .header("Connection", "close");
    let mut bytes = writer.body(body);
    if head {
        // The same head, without the body.
        let end = bytes.len() - body.len();
        bytes.truncate(end);
    }
    Reply { status, bytes }
}

/// The answer to `method path` for anything but the API and the websocket.
pub fn respond(method: &str, path: &str) -> Reply {
    if method != "GET" && method != "HEAD" {
        return file(405, "Method Not Allowed", TEXT, b"only GET\n", false);
    }
    let found = FILES
        .iter()
        .find(|(p, ..)| *p == path)
        .map(|(_, body, kind)| (*body, *kind))
        .or_else(|| {
            path.strip_prefix("/assets/")
                .and_then(oobkit_webassets::xterm)
        })
        .or_else(|| {
            path.strip_prefix("/novnc/")
                .and_then(oobkit_webassets::novnc)
        });
    match found {
        Some((body, kind)) => file(200, "OK", kind, body, method == "HEAD"),
        None => file(404, "Not Found", TEXT, b"not found\n", method == "HEAD"),
    }
}
