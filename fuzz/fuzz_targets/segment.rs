//! A segment file from arbitrary bytes: the record and trailer decoders,
//! the reader, `verify --deep`, the store's intact ranges and frame lookup
//! and recovery must never panic or allocate without bound; an intact range
//! must read whole; recovery must be idempotent.
//!
//! The first byte picks how the rest is read: as raw file bytes, or as a
//! list of records that get valid CRCs (so the fuzzer reaches the code
//! behind the checksums: index entries and position tables, trailers,
//! stream headers, GPS position payloads).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dashvault::frame::CaptureTime;
use dashvault::store::format::{
    decode_index, decode_index_contents, decode_index_record, PositionSample, RecordHeader,
    RecordKind, StreamHeader, Trailer, HEADER_LEN, POSITION_PAYLOAD_LEN, TRAILER_LEN,
};
use dashvault::store::reader::SegmentReader;
use dashvault::store::recovery::recover_camera;
use dashvault::store::sim::SimIo;
use dashvault::store::verify::verify;
use dashvault::store::Store;
use libfuzzer_sys::fuzz_target;

fn build_records(mut data: &[u8]) -> Vec<u8> {
    let kinds = [
        RecordKind::StreamHeader,
        RecordKind::Frame,
        RecordKind::Padding,
        RecordKind::Index,
        RecordKind::Position,
    ];
    let mut out = Vec::new();
    let mut seq = 0u64;
    while data.len() >= 3 {
        let op = data[0];
        let len = u16::from_le_bytes([data[1], data[2]]) as usize % 512;
        data = &data[3..];
        let payload = &data[..len.min(data.len())];
        data = &data[payload.len()..];
        // A position record gets its fixed length, and mostly its version,
        // so its decoder is reached past the length check.
        let mut position = [0u8; POSITION_PAYLOAD_LEN];
        let payload = if op % 7 == 4 && op & 0x80 == 0 {
            position[..payload.len().min(POSITION_PAYLOAD_LEN)]
                .copy_from_slice(&payload[..payload.len().min(POSITION_PAYLOAD_LEN)]);
            position[0..2].copy_from_slice(&1u16.to_le_bytes());
            &position[..]
        } else {
            payload
        };
        match op % 7 {
            0..=4 => {
                let mut h = RecordHeader::new(
                    kinds[(op % 7) as usize],
                    payload,
                    seq,
                    CaptureTime {
                        mono_ns: seq * 1_000_000,
                        wall_ns: seq as i64,
                    },
                );
                // Index records with and without the stream-header copy,
                // the recovered flag and the position table.
                if h.kind == RecordKind::Index {
                    h.flags = (op >> 4) & 7;
                }
                seq += 1;
                out.extend_from_slice(&h.encode());
                out.extend_from_slice(payload);
            }
            5 => {
                // A trailer whose fields come from the payload.
                let mut f = [0u8; 16];
                f[..payload.len().min(16)].copy_from_slice(&payload[..payload.len().min(16)]);
                let t = Trailer {
                    index_offset: u64::from_le_bytes(f[..8].try_into().unwrap()),
                    index_record_len: u32::from_le_bytes(f[8..12].try_into().unwrap()),
                    frame_count: u32::from_le_bytes(f[12..16].try_into().unwrap()),
                };
                out.extend_from_slice(&t.encode());
            }
            _ => out.extend_from_slice(payload),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        build_records(rest)
    };

    // The decoders on their own, at every offset a scan could try.
    for at in (0..bytes.len()).step_by(16) {
        let tail = &bytes[at..];
        if let Ok(h) = RecordHeader::decode(&tail[..tail.len().min(HEADER_LEN)]) {
            let body = &tail[HEADER_LEN.min(tail.len())..];
            if h.check_payload(&body[..body.len().min(h.payload_len as usize)]).is_ok() {
                let _ = StreamHeader::decode(body);
                let _ = decode_index(body);
                let _ = decode_index_record(h.flags, body);
                let _ = decode_index_contents(h.flags, body);
                let _ = PositionSample::decode_payload(body, h.time(), h.flags);
            }
        }
        let _ = Trailer::decode(&tail[..tail.len().min(TRAILER_LEN)]);
    }
    let _ = StreamHeader::decode(&bytes);
    let _ = decode_index(&bytes);

    let data_dir = Path::new("/data");
    let path: PathBuf = data_dir.join("recordings/front/000000000000_20260101T000000Z.dvr");
    let sim = SimIo::default();
    sim.put_durable(&path, bytes);
    if let Ok(r) = SegmentReader::open(&sim, &path) {
        for i in 0..r.frames.len().min(64) {
            let _ = r.read_frame(i);
        }
        // Every position handed out decodes from what its encoder writes.
        for p in r.positions.iter().take(64) {
            let again = PositionSample::decode_payload(&p.encode_payload(), p.received, p.flags);
            assert_eq!(again.as_ref(), Ok(p), "a position does not round-trip");
        }
    }
    let _ = verify(&sim, data_dir, true);
    // The front door's reads: an intact range serves only frames that check.
    let store = Store::new(Arc::new(sim.clone()), data_dir);
    if let Ok(range) = store.intact_range("front", i64::MIN / 2, i64::MAX / 2) {
        let mut buf = Vec::new();
        for seg in range.segments.iter().take(8) {
            seg.reader
                .read_run(seg.frames.clone(), &mut buf)
                .expect("an intact range reads whole");
        }
    }
    let _ = store.frame_near("front", 0, i64::MAX / 4, 1);
    if recover_camera(&sim, data_dir, "front").is_ok() {
        let files: Vec<_> = sim
            .live_files()
            .into_iter()
            .map(|p| (sim.contents(&p), p))
            .collect();
        let again = recover_camera(&sim, data_dir, "front").expect("second recovery");
        assert!(again.is_empty(), "second recovery did {again:?}");
        let after: Vec<_> = sim
            .live_files()
            .into_iter()
            .map(|p| (sim.contents(&p), p))
            .collect();
        assert!(files == after, "second recovery changed files");
    }
});
