//! Start-up recovery of segments that were not closed (power cut, kill -9,
//! a write that failed).
//!
//! Rule: keep every record whose header CRC and payload CRC check, wherever
//! it is; close the segment after the last of them (index and trailer);
//! sync. A damaged record costs that record, never the records after it.
//! A file is removed only when it holds no frame and a cut can explain it:
//! among the newest segments of a camera, empty, zeros after a possible
//! stream header, or starting as ours; anything else without frames is set
//! aside as `.bad`, where `verify` keeps reporting it. A file with a valid frame anywhere is
//! closed, never removed. Running it twice changes nothing
//! the second time, because a segment with a valid trailer is left alone.

use std::path::Path;

use super::catalog::{list_segments, SegmentEntry};
use super::format::{
    decode_index_record, encode_index_contents, padding_record, RecordHeader, RecordKind,
    StreamHeader, Trailer, BLOCK_BYTES, HEADER_LEN, INDEX_FLAG_RECOVERED, RECORD_MAGIC,
    TRAILER_LEN,
};
use super::io::{SegmentFile, StorageIo};
use super::reader::{read_closed_index, read_trailer, scan, ScanResult};
use super::stats::RecoveryReport;
use super::{StoreError, QUARANTINE_SUFFIX};
use crate::frame::CaptureTime;

/// Recovers every unclosed segment of one camera. Closed segments cost two
/// small reads each (trailer and index header). Segments after the newest
/// closed one are where a cut can be (the one being written, and any left
/// open by a write error just before); only there may a file with no valid
/// record be taken for a cut first sync and removed.
pub fn recover_camera(
    io: &dyn StorageIo,
    data_dir: &Path,
    camera: &str,
) -> Result<Vec<RecoveryReport>, StoreError> {
    let listing = list_segments(io, data_dir, camera)?;
    let segments = &listing.segments;
    let mut reports = Vec::new();
    // A file that cannot be read is left as it is and reported: one bad
    // sector must not keep the recorder from starting.
    let unreadable = |reports: &mut Vec<RecoveryReport>, seg: &SegmentEntry, e: StoreError| {
        log::error!("[{camera}] recovery leaves {} alone: {e}", seg.name);
        reports.push(RecoveryReport {
            segment: seg.name.clone(),
            action: format!("left alone, cannot be read: {e}"),
            ..RecoveryReport::default()
        });
    };
    let mut closed = Vec::with_capacity(segments.len());
    for (i, seg) in segments.iter().enumerate() {
        // The newest segment gets the full check: a cut during its close can
        // leave the trailer whole over a torn index.
        let newest = i + 1 == segments.len();
        let check = io
            .open_read(&seg.path)
            .map_err(|e| StoreError::io(&seg.path, "opening for recovery", e))
            .and_then(|file| {
                if newest {
                    read_closed_index(file.as_ref(), &seg.path).map(|c| c.is_some())
                } else {
                    read_trailer(file.as_ref(), &seg.path).map(|t| t.is_some())
                }
            });
        closed.push(match check {
            Ok(c) => Some(c),
            Err(e) => {
                unreadable(&mut reports, seg, e);
                None
            }
        });
    }
    let newest_closed = closed.iter().rposition(|c| *c == Some(true));
    for (i, seg) in segments.iter().enumerate() {
        if closed[i] != Some(false) {
            continue;
        }
        let where_a_cut_can_be = newest_closed.is_none_or(|c| i > c);
        let recovered = match recover_segment(io, &seg.path, where_a_cut_can_be) {
            Ok(r) => r,
            Err(e) => {
                unreadable(&mut reports, seg, e);
                continue;
            }
        };
        if let Some(r) = recovered {
            log::warn!(
                "[{camera}] recovered {}: {} ({} frames, {:.1} s kept, {} torn bytes cut, {} damaged bytes skipped)",
                r.segment,
                r.action,
                r.frames,
                r.seconds,
                r.torn_bytes,
                r.skipped_bytes
            );
            reports.push(r);
        }
    }
    // Files removed from the end make an older segment the newest: give it
    // the newest's full check, so that verify and the next start agree.
    let newest_left = segments.iter().rposition(|s| io.exists(&s.path));
    if let Some(i) = newest_left.filter(|i| i + 1 < segments.len() && closed[*i] == Some(true)) {
        match recover_segment(io, &segments[i].path, true) {
            Ok(Some(r)) => {
                log::warn!("[{camera}] recovered {}: {}", r.segment, r.action);
                reports.push(r);
            }
            Ok(None) => {}
            Err(e) => unreadable(&mut reports, &segments[i], e),
        }
    }
    Ok(reports)
}

/// Recovers one segment; `None` when it was already closed cleanly.
/// `cut_possible` says whether a power cut can explain a file without any
/// valid record (only then is such a file removed rather than set aside).
pub fn recover_segment(
    io: &dyn StorageIo,
    path: &Path,
    cut_possible: bool,
) -> Result<Option<RecoveryReport>, StoreError> {
    let mut file = io
        .open_rw(path)
        .map_err(|e| StoreError::io(path, "opening for recovery", e))?;
    // Where a cut can be, the index is checked too (a torn close); elsewhere
    // a valid trailer is enough: a damaged index there is damage at rest,
    // which readers get around by scanning and verify reports.
    let closed = if cut_possible {
        read_closed_index(file.as_ref(), path)?.is_some()
    } else {
        read_trailer(file.as_ref(), path)?.is_some()
    };
    if closed {
        return Ok(None);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let scanned = scan(file.as_ref(), path)?;
    let mut report = report_of(&name, &scanned);
    let dir = path.parent().unwrap_or(Path::new("."));
    if scanned.frames.is_empty() {
        // Nothing but zeros after a possible stream header: created, then
        // cut before its first sync landed. Nothing to keep.
        let nothing_written = scanned.holes.is_empty() && scanned.tail_is_zero;
        let mut first = [0u8; 4];
        let starts_like_ours = scanned.file_len < 4
            || (file.read_exact_at(&mut first, 0).is_ok()
                && (first == RECORD_MAGIC || first == [0; 4]));
        // Without a frame the file holds no footage; where a cut can be, a
        // file that starts as ours is a first sync cut short.
        if cut_possible && (nothing_written || starts_like_ours) {
            drop(file);
            io.remove_file(path)
                .map_err(|e| StoreError::io(path, "removing empty segment", e))?;
            io.sync_dir(dir)
                .map_err(|e| StoreError::io(dir, "fsync folder", e))?;
            report.action = if scanned.stream.is_some() {
                "removed: a stream header and no frame; the cut came before the first sync ended"
                    .into()
            } else if nothing_written {
                "removed: created but nothing synced before the cut".into()
            } else {
                "removed: cut during its first sync, no frame anywhere in it".into()
            };
            return Ok(Some(report));
        }
        // Not something a cut leaves: keep the bytes for inspection, out
        // of the way of readers (its number is never handed out again).
        let bad = dir.join(format!("{name}{QUARANTINE_SUFFIX}"));
        drop(file);
        io.rename(path, &bad)
            .map_err(|e| StoreError::io(path, "quarantining unreadable segment", e))?;
        io.sync_dir(dir)
            .map_err(|e| StoreError::io(dir, "fsync folder", e))?;
        report.action = format!(
            "unreadable ({}); moved aside as {name}{QUARANTINE_SUFFIX}",
            scanned
                .stop
                .or(scanned.stream_problem)
                .unwrap_or_else(|| "no frame".into())
        );
        return Ok(Some(report));
    }
    // The index keeps a copy of the stream header when offset 0 has a valid
    // one; a lost one is rebuilt by readers each time instead of guessed once.
    // Offset 0 lost, but an index the scan reached (its trailer was lost)
    // may still hold the copy.
    let stream = match &scanned.stream {
        Some(s) => Some(s.clone()),
        None => match scanned.index_offset {
            Some(at) => index_stream_copy(file.as_ref(), path, at)?,
            None => None,
        },
    };
    // The position records the scan kept become the index's position table,
    // as the writer's close would have made it.
    let (index, mut flags) =
        encode_index_contents(&scanned.frames, &scanned.positions, stream.as_ref());
    flags |= INDEX_FLAG_RECOVERED;
    let mut index_header = RecordHeader::new(
        RecordKind::Index,
        &index,
        scanned.frames.last().map_or(0, |f| f.seq.saturating_add(1)),
        CaptureTime::default(),
    );
    index_header.flags = flags;
    let index_record_len = HEADER_LEN + index.len();
    let mut tail = padding_record(
        scanned.valid_end,
        BLOCK_BYTES,
        index_record_len + TRAILER_LEN,
    );
    let index_offset = scanned.valid_end + tail.len() as u64;
    tail.extend_from_slice(&index_header.encode());
    tail.extend_from_slice(&index);
    tail.extend_from_slice(
        &Trailer {
            index_offset,
            index_record_len: index_record_len as u32,
            frame_count: scanned.frames.len() as u32,
        }
        .encode(),
    );
    file.write_all_at(&tail, scanned.valid_end)
        .map_err(|e| StoreError::io(path, "writing recovered index", e))?;
    let end = scanned.valid_end + tail.len() as u64;
    file.set_len(end)
        .map_err(|e| StoreError::io(path, "trimming recovered segment", e))?;
    file.sync_data()
        .map_err(|e| StoreError::io(path, "fdatasync after recovery", e))?;
    report.action = if scanned.holes.is_empty() {
        "closed: cut after the last valid record, index written".into()
    } else {
        format!(
            "closed around {} damaged stretch(es) of {} bytes: every valid record kept, index written",
            scanned.holes.len(),
            scanned.hole_bytes()
        )
    };
    Ok(Some(report))
}

/// The stream-header copy in the index record at `at`, if it checks.
fn index_stream_copy(
    file: &dyn SegmentFile,
    path: &Path,
    at: u64,
) -> Result<Option<StreamHeader>, StoreError> {
    let mut hb = [0u8; HEADER_LEN];
    file.read_exact_at(&mut hb, at)
        .map_err(|e| StoreError::io(path, "reading index", e))?;
    let Ok(h) = RecordHeader::decode(&hb) else {
        return Ok(None);
    };
    let mut payload = vec![0u8; h.payload_len as usize];
    file.read_exact_at(&mut payload, at + HEADER_LEN as u64)
        .map_err(|e| StoreError::io(path, "reading index", e))?;
    if h.kind != RecordKind::Index || h.check_payload(&payload).is_err() {
        return Ok(None);
    }
    Ok(decode_index_record(h.flags, &payload)
        .ok()
        .and_then(|(_, copy)| copy))
}

fn report_of(name: &str, scanned: &ScanResult) -> RecoveryReport {
    let after = scanned.file_len - scanned.valid_end;
    let (torn_bytes, trimmed_bytes) = if scanned.tail_is_zero {
        (0, after)
    } else {
        (after, 0)
    };
    RecoveryReport {
        segment: name.to_string(),
        frames: scanned.frames.len() as u64,
        positions: scanned.positions.len() as u64,
        seconds: match (scanned.frames.first(), scanned.frames.last()) {
            (Some(a), Some(b)) => (b.mono_ns.saturating_sub(a.mono_ns)) as f64 / 1e9,
            _ => 0.0,
        },
        torn_bytes,
        trimmed_bytes,
        skipped_bytes: scanned.hole_bytes(),
        skipped: scanned
            .holes
            .iter()
            .map(|h| format!("{} bytes at byte {}: {}", h.len, h.offset, h.reason))
            .collect(),
        action: String::new(),
    }
}
