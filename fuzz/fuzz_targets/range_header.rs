//! `Range:` headers from arbitrary text against arbitrary lengths: a part
//! must always lie inside the body and never be empty.
#![no_main]

use dashvault::http::export::{parse_range, ByteRange};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let len = u64::from_le_bytes(data[..8].try_into().unwrap()) >> (data[0] % 64);
    let Ok(header) = std::str::from_utf8(&data[8..]) else {
        return;
    };
    match parse_range(Some(header), len) {
        ByteRange::Part(start, end) => {
            assert!(start < end, "empty part {start}..{end} of {len} for {header:?}");
            assert!(end <= len, "part {start}..{end} past the end {len} for {header:?}");
        }
        ByteRange::Whole | ByteRange::Unsatisfiable => {}
    }
});
