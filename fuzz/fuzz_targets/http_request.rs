//! Request heads, bodies and query strings from arbitrary bytes, as the
//! server's poller sees them, then the parameter parsers the routes use.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use dashvault::http::context::time_param;
use dashvault::http::server::{parse_request, Limits, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    match parse_request(data, IpAddr::V4(Ipv4Addr::LOCALHOST), &limits) {
        Parsed::Complete(req, used) => {
            assert!(used <= data.len());
            assert!(req.body.len() <= limits.body_bytes_max);
            for (name, _) in &req.query {
                let _ = time_param(&req, name);
            }
            let _ = req.header("range");
        }
        Parsed::Bad(status, message) => {
            assert!((400..500).contains(&status), "{status} {message}");
            assert!(!message.is_empty());
        }
        Parsed::Incomplete => assert!(data.len() <= limits.head_bytes_max + limits.body_bytes_max),
    }
});
