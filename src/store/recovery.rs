//! Start-up recovery of segments that were not closed (power cut, kill -9).
//!
//! Rule: keep every record up to the last one whose header CRC and payload
//! CRC check; cut everything after it; write the index and trailer; sync.
//! Running it twice changes nothing the second time, because a segment with
//! a valid trailer is left alone.

use std::path::Path;

use super::catalog::list_segments;
use super::format::{
    encode_index, padding_record, RecordHeader, RecordKind, Trailer, BLOCK_BYTES, HEADER_LEN,
    RECORD_MAGIC, TRAILER_LEN,
};
use super::io::StorageIo;
use super::reader::{read_closed_index, scan};
use super::{StoreError, QUARANTINE_SUFFIX};
use crate::frame::CaptureTime;
use crate::status::RecoveryReport;

/// Recovers the newest unfinished segments of one camera. Walks back from
/// the newest segment until one is found closed, so neither an empty segment
/// created just before the cut nor one abandoned after an I/O error (a stop
/// on a full disk leaves two) stays unclosed behind it. Normally that costs
/// one extra trailer read: the segment before the newest is closed.
pub fn recover_camera(
    io: &dyn StorageIo,
    data_dir: &Path,
    camera: &str,
) -> Result<Vec<RecoveryReport>, StoreError> {
    let (segments, _) = list_segments(io, data_dir, camera)?;
    let mut reports = Vec::new();
    for seg in segments.iter().rev() {
        let report = recover_segment(io, &seg.path)?;
        let clean = report.is_none();
        if let Some(r) = report {
            log::warn!(
                "[{camera}] recovered {}: {} ({} frames, {:.1} s kept, {} torn bytes cut)",
                r.segment,
                r.action,
                r.frames,
                r.seconds,
                r.torn_bytes
            );
            reports.push(r);
        }
        if clean {
            break;
        }
    }
    Ok(reports)
}

/// Recovers one segment; `None` when it was already closed cleanly.
pub fn recover_segment(
    io: &dyn StorageIo,
    path: &Path,
) -> Result<Option<RecoveryReport>, StoreError> {
    let mut file = io
        .open_rw(path)
        .map_err(|e| StoreError::io(path, "opening for recovery", e))?;
    if read_closed_index(file.as_ref(), path)?.is_some() {
        return Ok(None);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let scanned = scan(file.as_ref(), path)?;
    let after = scanned.file_len - scanned.valid_end;
    let (torn_bytes, trimmed_bytes) = if scanned.tail_is_zero {
        (0, after)
    } else {
        (after, 0)
    };
    let mut report = RecoveryReport {
        segment: name.clone(),
        frames: scanned.frames.len() as u64,
        seconds: match (scanned.frames.first(), scanned.frames.last()) {
            (Some(a), Some(b)) => (b.mono_ns.saturating_sub(a.mono_ns)) as f64 / 1e9,
            _ => 0.0,
        },
        torn_bytes,
        trimmed_bytes,
        action: String::new(),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    if scanned.stream.is_none() {
        let mut first = [0u8; 4];
        let starts_like_ours = scanned.file_len < 4
            || (file.read_exact_at(&mut first, 0).is_ok()
                && (first == RECORD_MAGIC || first == [0; 4]));
        if !starts_like_ours {
            // Not a segment we wrote: keep the bytes for inspection, out of
            // the way of readers.
            let bad = dir.join(format!("{name}{QUARANTINE_SUFFIX}"));
            drop(file);
            io.rename(path, &bad)
                .map_err(|e| StoreError::io(path, "quarantining unreadable segment", e))?;
            io.sync_dir(dir)
                .map_err(|e| StoreError::io(dir, "fsync folder", e))?;
            report.action = format!(
                "unreadable ({}); moved aside as {name}{QUARANTINE_SUFFIX}",
                scanned.stop.unwrap_or_default()
            );
            return Ok(Some(report));
        }
        // The stream header goes out in the first sync together with the
        // first frames, so without a valid one no frame was ever durable:
        // the first sync was cut short.
    }
    if scanned.frames.is_empty() {
        drop(file);
        io.remove_file(path)
            .map_err(|e| StoreError::io(path, "removing empty segment", e))?;
        io.sync_dir(dir)
            .map_err(|e| StoreError::io(dir, "fsync folder", e))?;
        report.action = if scanned.stream.is_none() {
            "removed: cut during its first sync, before any frame was durable".into()
        } else {
            "removed: no frame had been synced".into()
        };
        return Ok(Some(report));
    }
    let index = encode_index(&scanned.frames);
    let index_header = RecordHeader::new(
        RecordKind::Index,
        &index,
        scanned.frames.last().map_or(0, |f| f.seq + 1),
        CaptureTime::default(),
    );
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
    report.action = "closed: cut after the last valid record, index written".into();
    Ok(Some(report))
}
