//! Whole requests from arbitrary bytes through the parser and the real
//! handlers, over a data folder with a few recorded frames: the fuzzer
//! chooses the method, path, query, headers (Host, Cookie, Range, types)
//! and body. No handler may panic; every answer has a status in 200-599,
//! no 5xx but 503 (unavailable routes, full stream slots), header lines
//! without CR or LF, and a sized body exactly as long as it says.
//!
//! The first byte chooses credentials to add after the request line, so
//! authenticated handlers are reached: bit 0 a valid `Authorization`, bit 1
//! a valid session cookie, bit 2 `Host: 127.0.0.1`. Each input gets a fresh
//! context (sessions, wrong-token throttle) over the same recorded folder.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::OnceLock;

use dashvault::http::auth;
use dashvault::http::server::{parse_request, Body, Handler, Limits, Parsed};
use dashvault::http::testutil;
use libfuzzer_sys::fuzz_target;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
/// Longest sized body the target builds in memory to check its length.
const CHECKED_BODY_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Recorded once into a folder under the temporary folder that every run
/// shares and only reads (a few hundred kB, kept between runs; delete it
/// after changing `http::testutil`). It is written under a name of its
/// own, then renamed into place, so processes started together never see
/// it half written.
fn data_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join("dashvault-fuzz-http_service");
        if !dir.exists() {
            let fresh = dir.with_extension(std::process::id().to_string());
            let _ = std::fs::remove_dir_all(&fresh);
            testutil::record_frames(&fresh, 3).expect("recording the test frames");
            if std::fs::rename(&fresh, &dir).is_err() {
                // Another process put its copy there first.
                let _ = std::fs::remove_dir_all(&fresh);
            }
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, raw)) = data.split_first() else {
        return;
    };
    let ctx = testutil::api_context(data_dir(), TOKEN);
    let peer = IpAddr::V4(Ipv4Addr::new(192, 168, 4, 20));
    let mut added = String::new();
    if choice & 1 != 0 {
        added.push_str(&format!("Authorization: Bearer {TOKEN}\r\n"));
    }
    if choice & 2 != 0 {
        let id = ctx.auth.login(peer, TOKEN).expect("the token logs in");
        let cookie = auth::session_cookie_header(&id);
        let pair = cookie.split(';').next().unwrap_or_default();
        added.push_str(&format!("Cookie: {pair}\r\n"));
    }
    if choice & 4 != 0 {
        added.push_str("Host: 127.0.0.1\r\n");
    }
    let mut bytes = raw.to_vec();
    if let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
        bytes.splice(line_end + 2..line_end + 2, added.bytes());
    }
    let Parsed::Complete(req, _) = parse_request(&bytes, peer, &Limits::default()) else {
        return;
    };
    let answer = ctx.handle(&req);
    let status = answer.status;
    assert!((200..=599).contains(&status), "{status}");
    assert!(
        status < 500 || status == 503,
        "{} {} answered {status}",
        req.method,
        req.path
    );
    for (name, value) in &answer.headers {
        assert!(
            !name.contains(['\r', '\n', ':']) && !value.contains(['\r', '\n']),
            "{} {}: header {name:?}: {value:?}",
            req.method,
            req.path
        );
    }
    match answer.body {
        Body::Sized { len, write } if len <= CHECKED_BODY_BYTES_MAX => {
            let mut out = Vec::new();
            if write(&mut out).is_ok() {
                assert_eq!(
                    out.len() as u64,
                    len,
                    "{} {}: the body is not the length announced",
                    req.method,
                    req.path
                );
            }
        }
        // Endless bodies (live and playback streams) run until the client
        // leaves: the server gives them a thread of their own, not this.
        _ => {}
    }
});
