//! The dashboard files from `web/`, embedded in the binary so the device
//! serves them offline, and the routes that serve them: the login page,
//! the dashboard and its assets.

use super::context::{ApiContext, ApiError, ApiResult};
use super::server::{Body, Request, Response};

/// `GET /login`.
pub fn login_page(_: &ApiContext, _: &Request) -> ApiResult {
    page("login.html")
}

/// `GET /`: the dashboard.
pub fn dashboard(_: &ApiContext, _: &Request) -> ApiResult {
    page("index.html")
}

/// `GET /assets/*`.
pub fn asset(_: &ApiContext, req: &Request) -> ApiResult {
    file(req.path.trim_start_matches("/assets/"))
}

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
const LOGIN_SCRIPT_SHA256: &str = "sha256-kWg/uejPDc2GC4cgOgAD9vLzFA+f9qXBjHkE/HccKK8=";

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

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn the_login_page_script_is_the_one_its_policy_allows() {
        let page = std::str::from_utf8(include_bytes!("../../web/login.html")).unwrap();
        let script = page
            .split_once("<script>")
            .and_then(|(_, rest)| rest.split_once("</script>"))
            .map(|(script, _)| script)
            .expect("one inline script");
        let hash = format!("sha256-{}", base64(&Sha256::digest(script.as_bytes())));
        assert_eq!(hash, LOGIN_SCRIPT_SHA256, "update LOGIN_SCRIPT_SHA256");
    }
}
