//! The dashboard files from `web/`, embedded in the binary so the device
//! serves them offline.

use super::context::ApiError;
use super::server::{Body, Response};

/// Name, content type and bytes of every embedded file.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../web/index.html"),
    ),
    (
        "login.html",
        "text/html; charset=utf-8",
        include_bytes!("../../web/login.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../web/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../web/favicon.svg"),
    ),
];

/// A file under `/assets/`.
pub fn file(name: &str) -> Result<Response, ApiError> {
    let (_, content_type, bytes) = FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| ApiError::NotFound(format!("no file '{name}'")))?;
    // Cache-Control and nosniff are the server's defaults.
    Ok(Response::new(200, content_type, Body::Static(bytes)))
}

/// The login page is served without a session, so it cannot load
/// `app.js`; its one inline script (showing why a login failed) is allowed
/// by its SHA-256. Change this with the script: the browser test fails when
/// the script is blocked.
const LOGIN_SCRIPT_SHA256: &str = "sha256-ic1pLnwrJmpmHK2EAf8i2ZnVUpPhk0YmWCFOxuREByI=";

/// An HTML page, not to be framed by other sites.
pub fn page(name: &str) -> Result<Response, ApiError> {
    let script_src = if name == "login.html" {
        format!("script-src 'self' '{LOGIN_SCRIPT_SHA256}'; ")
    } else {
        String::new()
    };
    Ok(file(name)?
        .with_header("X-Frame-Options", "DENY")
        .with_header(
            "Content-Security-Policy",
            format!(
                "default-src 'self'; {script_src}img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'"
            ),
        ))
}
