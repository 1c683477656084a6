//! The browser clients oobkit's programs serve from their binaries, vendored from npm (no CDN,
//! nothing fetched at build or run time): noVNC 1.7.0 (MPL-2.0, `novnc/`, refreshed by
//! `refresh-novnc.sh`) and xterm.js 6.0.0 with addon-fit 0.11.0 (MIT, `xterm/`, refreshed by
//! `refresh-xterm.sh`). Each script checks the npm tarball's SHA-512 against the registry's
//! integrity hash, recorded in `NOVNC` and `XTERM` beside the files.
//!
//! ```
//! let (body, kind) = oobkit_webassets::novnc("core/rfb.js").unwrap();
//! assert!(!body.is_empty() && kind.starts_with("text/javascript"));
//! assert!(oobkit_webassets::xterm("xterm.js").is_some());
//! assert!(oobkit_webassets::novnc("../../etc/passwd").is_none());
//! ```
#![forbid(unsafe_code)]

include!("novnc_files.rs");

const XTERM_FILES: &[(&str, &[u8])] = &[
    ("xterm.js", include_bytes!("../xterm/xterm.js")),
    ("xterm.css", include_bytes!("../xterm/xterm.css")),
    ("addon-fit.js", include_bytes!("../xterm/addon-fit.js")),
    ("LICENSE-xterm", include_bytes!("../xterm/LICENSE-xterm")),
    (
        "LICENSE-addon-fit",
        include_bytes!("../xterm/LICENSE-addon-fit"),
    ),
];

/// The content type to serve a file of this name with.
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("txt") | None => "text/plain; charset=utf-8",
        Some(_) => "application/octet-stream",
    }
}

/// A noVNC file by its path in the package (`core/rfb.js`, `vendor/pako/...`, `LICENSE.txt`):
/// its bytes and content type. Only the embedded files exist.
pub fn novnc(path: &str) -> Option<(&'static [u8], &'static str)> {
    NOVNC_FILES
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(name, body)| (*body, content_type(name)))
}

/// An xterm.js file by name (`xterm.js`, `xterm.css`, `addon-fit.js`, `LICENSE-xterm`,
/// `LICENSE-addon-fit`): its bytes and content type.
pub fn xterm(name: &str) -> Option<(&'static [u8], &'static str)> {
    XTERM_FILES
        .iter()
        .find(|(file, _)| *file == name)
        .map(|(file, body)| (*body, content_type(file)))
}
