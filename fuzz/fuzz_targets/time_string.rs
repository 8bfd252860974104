//! Time parameters from arbitrary text: a time that parses must print back
//! to a string that parses to the same instant (to the millisecond).
#![no_main]

use dashvault::clock::{format_rfc3339_ms, parse_rfc3339};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ns) = parse_rfc3339(s) {
        assert!(ns >= 0, "{s:?} parsed to {ns}, before 1970");
        let printed = format_rfc3339_ms(ns);
        let back = parse_rfc3339(&printed)
            .unwrap_or_else(|e| panic!("{s:?} -> {ns} -> {printed:?} does not parse: {e}"));
        assert_eq!(back, ns - ns.rem_euclid(1_000_000), "{s:?} -> {printed:?}");
    }
});
