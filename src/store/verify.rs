//! `verify`: checks what is stored without changing anything, and tells
//! damage apart from the states a power cut leaves before recovery.
//!
//! Quick: every entry with a segment's name is a regular file; every
//! segment is closed (valid trailer and index) or, if it is among the
//! newest of its camera, in a state a cut explains; names agree with the
//! stream header inside; frame numbers rise from segment to segment.
//! Deep: additionally every record's CRCs (frames and GPS positions, whose
//! payloads must decode too), and that a closed segment's index agrees
//! with a scan of its records.
//!
//! A cut leaves at most the newest segments of a camera unclosed, with a
//! length that is a whole number of 4 KiB blocks (every write is), so
//! anything else (an unclosed segment with closed ones after it, a length
//! that is not whole blocks, bytes after a trailer) is damage.

use std::path::Path;

use serde::Serialize;

use super::catalog::{list_cameras, list_segments, SegmentEntry};
use super::format::{
    IndexEntry, PositionEntry, PositionSample, RecordHeader, RecordKind, Trailer, BLOCK_BYTES,
    HEADER_LEN, POSITION_PAYLOAD_LEN,
};
use super::io::{SegmentFile, StorageIo};
use super::reader::{read_closed_index, scan, ClosedIndex, ScanResult, SegmentReader};
use super::StoreError;

#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    /// No damage found. States a cut leaves (listed in `pending`) keep it true.
    pub ok: bool,
    pub deep: bool,
    /// Some segment waits for the recorder's start-up recovery.
    pub pending_recovery: bool,
    pub cameras: Vec<CameraReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CameraReport {
    pub camera: String,
    pub segments: u64,
    pub frames: u64,
    /// GPS positions stored with the frames.
    pub positions: u64,
    pub bytes: u64,
    /// Frame and position records that fail their checks (deep only).
    pub bad_records: u64,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    /// Segments not closed: the ones in `pending`, and unclosed ones named
    /// in `problems`.
    pub unclosed: Vec<String>,
    /// Segments in a state a power cut leaves, which the recorder's start-up
    /// recovery resolves: not damage.
    pub pending: Vec<SegmentNote>,
    /// Segments closed by recovery, and what it stepped over.
    pub recovered: Vec<SegmentNote>,
    pub problems: Vec<SegmentProblem>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SegmentNote {
    pub segment: String,
    pub note: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct SegmentProblem {
    pub segment: String,
    pub kind: DamageKind,
    pub problem: String,
}

/// The kinds of damage `verify` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DamageKind {
    /// Set aside by recovery as unreadable (`.dvr.bad`).
    Quarantined,
    /// A folder, symlink or other non-file under a segment's name.
    NotAFile,
    /// Cannot be opened or read.
    Unreadable,
    /// No valid record at all, not the newest segment.
    NoValidRecord,
    /// A frame or position record fails its CRCs, does not decode, or
    /// does not match its index entry.
    BadRecord,
    /// The stream header at offset 0 is damaged (a copy or the frames stand in).
    StreamHeader,
    /// Damaged bytes outside any frame (padding), in a segment the writer closed.
    DamagedBytes,
    /// The index disagrees with the records.
    IndexMismatch,
    /// The name's number or camera disagrees with the stream header inside.
    NameMismatch,
    /// Two entries with the same segment number.
    DuplicateNumber,
    /// Frame numbers repeat those of an earlier segment.
    FramesOverlap,
    /// Frame numbers lower than those of an earlier segment.
    FramesBackwards,
    /// Not closed, with a closed segment after it.
    UnclosedNotNewest,
    /// Length not a whole number of blocks: truncated, or bytes appended.
    Truncated,
    /// Ends right after its index: the trailer was removed.
    TrailerRemoved,
    /// Bytes after a valid trailer.
    AfterTrailer,
    /// A valid trailer over a damaged index, in a segment with closed ones
    /// after it (readers find its frames by a scan).
    DamagedIndex,
}

pub fn verify(io: &dyn StorageIo, data_dir: &Path, deep: bool) -> Result<VerifyReport, StoreError> {
    let mut cameras = Vec::new();
    for camera in list_cameras(io, data_dir)? {
        cameras.push(verify_camera(io, data_dir, &camera, deep)?);
    }
    let ok = cameras
        .iter()
        .all(|c| c.problems.is_empty() && c.bad_records == 0);
    let pending_recovery = cameras.iter().any(|c| !c.pending.is_empty());
    Ok(VerifyReport {
        ok,
        deep,
        pending_recovery,
        cameras,
    })
}

/// What one segment holds, as far as verify needs it.
struct Inspected {
    closed: bool,
    /// Unclosed, but with a valid trailer: its index is damaged.
    trailer_ok: bool,
    frames: Vec<IndexEntry>,
    positions: usize,
    /// Stream header's segment number and camera, when one is known.
    stream: Option<(u64, String)>,
}

fn verify_camera(
    io: &dyn StorageIo,
    data_dir: &Path,
    camera: &str,
    deep: bool,
) -> Result<CameraReport, StoreError> {
    let listing = list_segments(io, data_dir, camera)?;
    let segments = &listing.segments;
    let mut r = CameraReport {
        camera: camera.to_string(),
        segments: segments.len() as u64,
        frames: 0,
        positions: 0,
        bytes: 0,
        bad_records: 0,
        first_time: None,
        last_time: None,
        unclosed: Vec::new(),
        pending: Vec::new(),
        recovered: Vec::new(),
        problems: Vec::new(),
    };
    for q in &listing.quarantined {
        r.problem(
            q,
            DamageKind::Quarantined,
            "unreadable file set aside by recovery",
        );
    }
    for s in &listing.strays {
        r.problem(
            s,
            DamageKind::NotAFile,
            "not a regular file (a folder or symlink under a segment's name); never read",
        );
    }
    let mut inspected = Vec::with_capacity(segments.len());
    for (i, seg) in segments.iter().enumerate() {
        r.bytes += seg.len;
        let newest = i + 1 == segments.len();
        inspected.push(inspect(io, seg, deep, newest, &mut r)?);
    }
    // Where a cut can be: the segments after the newest closed one.
    // As recovery sees it: a valid trailer closes a segment, except that
    // the newest one needs its index whole too (a cut during its close).
    let newest_closed = inspected
        .iter()
        .rposition(|i| i.as_ref().is_some_and(|i| i.closed || i.trailer_ok));
    let newest = segments.len().checked_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        let Some(ins) = &inspected[i] else { continue };
        if ins.closed {
            continue;
        }
        r.unclosed.push(seg.name.clone());
        let damage = if ins.trailer_ok {
            Some(i) != newest
        } else {
            newest_closed.is_some_and(|c| i < c)
        };
        if damage {
            let (kind, what) = if ins.trailer_ok {
                (
                    DamageKind::DamagedIndex,
                    "its trailer is whole but the index it points at is damaged; its frames are found by a scan",
                )
            } else {
                (
                    DamageKind::UnclosedNotNewest,
                    "not closed (no valid trailer), yet a later segment is closed: a cut cannot leave this",
                )
            };
            r.problem(&seg.name, kind, what);
        }
    }
    // Pending notes were added by `inspect` for every unclosed segment that
    // looks like a cut; keep only those where a cut can be.
    let damaged: Vec<String> = r
        .problems
        .iter()
        .filter(|p| {
            matches!(
                p.kind,
                DamageKind::UnclosedNotNewest | DamageKind::DamagedIndex
            )
        })
        .map(|p| p.segment.clone())
        .collect();
    r.pending.retain(|p| !damaged.contains(&p.segment));
    check_order(segments, &inspected, &mut r);
    let mut first_wall: Option<i64> = None;
    let mut last_wall: Option<i64> = None;
    for ins in inspected.iter().flatten() {
        r.frames += ins.frames.len() as u64;
        r.positions += ins.positions as u64;
        if let (Some(a), Some(b)) = (ins.frames.first(), ins.frames.last()) {
            first_wall = Some(first_wall.map_or(a.wall_ns, |w| w.min(a.wall_ns)));
            last_wall = Some(last_wall.map_or(b.wall_ns, |w| w.max(b.wall_ns)));
        }
    }
    r.first_time = first_wall.map(crate::clock::format_rfc3339);
    r.last_time = last_wall.map(crate::clock::format_rfc3339);
    Ok(r)
}

impl CameraReport {
    fn problem(&mut self, segment: &str, kind: DamageKind, problem: impl Into<String>) {
        self.problems.push(SegmentProblem {
            segment: segment.to_string(),
            kind,
            problem: problem.into(),
        });
    }

    fn pending(&mut self, segment: &str, note: impl Into<String>) {
        self.pending.push(SegmentNote {
            segment: segment.to_string(),
            note: note.into(),
        });
    }
}

/// Checks one segment on its own; `None` when it cannot be read at all.
fn inspect(
    io: &dyn StorageIo,
    seg: &SegmentEntry,
    deep: bool,
    newest: bool,
    r: &mut CameraReport,
) -> Result<Option<Inspected>, StoreError> {
    let file = match io.open_read(&seg.path) {
        Ok(f) => f,
        Err(e) => {
            r.problem(
                &seg.name,
                DamageKind::Unreadable,
                format!("cannot open: {e}"),
            );
            return Ok(None);
        }
    };
    let result = match read_closed_index(file.as_ref(), &seg.path) {
        Ok(Some(closed)) => inspect_closed(io, file.as_ref(), seg, closed, deep, newest, r),
        Ok(None) => inspect_unclosed(io, file.as_ref(), seg, deep, r),
        Err(e) => Err(e),
    };
    match result {
        Ok(ins) => Ok(Some(ins)),
        // A read error is damage to report, not a reason to stop.
        Err(e @ StoreError::Io { .. }) => {
            r.problem(&seg.name, DamageKind::Unreadable, e.to_string());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn inspect_closed(
    io: &dyn StorageIo,
    file: &dyn SegmentFile,
    seg: &SegmentEntry,
    closed: ClosedIndex,
    deep: bool,
    newest: bool,
    r: &mut CameraReport,
) -> Result<Inspected, StoreError> {
    let stream = closed
        .stream
        .as_ref()
        .map(|(s, _)| (s.segment_seq, s.camera_id.clone()));
    if closed.stream.is_none() {
        // Recovery closes a segment whose first sync was torn around the
        // frames that did land; its stream header is then lost to the cut.
        let what = "stream header lost and no copy in the index; size and camera are rebuilt from the frames";
        if closed.recovered {
            r.recovered.push(SegmentNote {
                segment: seg.name.clone(),
                note: what.into(),
            });
        } else {
            r.problem(&seg.name, DamageKind::StreamHeader, what);
        }
    }
    if deep {
        let scanned = scan(file, &seg.path)?;
        if closed.stream.is_some() {
            if let Some(p) = &scanned.stream_problem {
                r.problem(
                    &seg.name,
                    DamageKind::StreamHeader,
                    format!("stream header damaged ({p}); its copy in the index stands in"),
                );
            }
        }
        check_holes(seg, &scanned, &closed, newest, r);
        if scanned.index_offset != Some(closed.index_offset) {
            r.problem(
                &seg.name,
                DamageKind::IndexMismatch,
                format!(
                    "a scan of the records does not reach the index at byte {}: {}",
                    closed.index_offset,
                    scanned.stop.as_deref().unwrap_or("it ends elsewhere")
                ),
            );
        } else if !same_frames(&scanned.frames, &closed.frames) {
            r.problem(
                &seg.name,
                DamageKind::IndexMismatch,
                "the index does not match the frame records found by a scan",
            );
        } else if !same_positions(&scanned.positions, &closed.positions) {
            r.problem(
                &seg.name,
                DamageKind::IndexMismatch,
                "the index's position table does not match the position records found by a scan",
            );
        }
        check_frames(io, seg, r)?;
        check_positions(file, seg, &closed.positions, r);
    }
    if closed.recovered {
        r.recovered.push(SegmentNote {
            segment: seg.name.clone(),
            note: "closed by recovery after a cut".into(),
        });
    }
    Ok(Inspected {
        closed: true,
        trailer_ok: true,
        frames: closed.frames,
        positions: closed.positions.len(),
        stream,
    })
}

/// Frames the scan found that checked, against the index: every scanned
/// frame must be indexed as it is (a damaged frame is missing from the scan
/// and reported by its own read).
fn same_frames(scanned: &[IndexEntry], index: &[IndexEntry]) -> bool {
    let mut it = index.iter();
    scanned.iter().all(|s| it.any(|i| i == s))
}

/// Positions the scan found that checked, against the index's table, as
/// [`same_frames`] does for frames.
fn same_positions(scanned: &[PositionEntry], index: &[PositionEntry]) -> bool {
    let mut it = index.iter();
    scanned.iter().all(|s| it.any(|i| i == s))
}

/// Reads every position record the index lists and checks it: header and
/// payload CRCs, kind, that the payload decodes, and that it says what the
/// index's copy says. A damaged one is named with its byte offset; readers
/// still have the index's copy, so it costs nothing else.
fn check_positions(
    file: &dyn SegmentFile,
    seg: &SegmentEntry,
    positions: &[PositionEntry],
    r: &mut CameraReport,
) {
    let mut rec = [0u8; HEADER_LEN + POSITION_PAYLOAD_LEN];
    for (n, p) in positions.iter().enumerate() {
        let problem = match file.read_exact_at(&mut rec, p.offset) {
            Err(e) => Some(format!("cannot be read: {e}")),
            Ok(()) => position_problem(&rec, p),
        };
        if let Some(why) = problem {
            r.bad_records += 1;
            r.problem(
                &seg.name,
                DamageKind::BadRecord,
                format!("position {n} (byte {}): {why}", p.offset),
            );
        }
    }
}

/// Why the position record `rec` does not check or disagrees with `entry`.
fn position_problem(rec: &[u8], entry: &PositionEntry) -> Option<String> {
    let h = match RecordHeader::decode(&rec[..HEADER_LEN]) {
        Ok(h) => h,
        Err(e) => return Some(e.to_string()),
    };
    if h.kind != RecordKind::Position || h.payload_len as usize != POSITION_PAYLOAD_LEN {
        return Some(format!(
            "a {:?} record of {} bytes, not a position",
            h.kind, h.payload_len
        ));
    }
    let payload = &rec[HEADER_LEN..];
    if let Err(e) = h.check_payload(payload) {
        return Some(e.to_string());
    }
    match PositionSample::decode_payload(payload, h.time(), h.flags) {
        Err(e) => Some(e.to_string()),
        Ok(sample) if sample != entry.sample => {
            Some("the record differs from its copy in the index".into())
        }
        Ok(_) => None,
    }
}

/// Reports the damaged stretches a scan stepped over. Those holding an
/// indexed frame or position are reported by its own read; the rest are damage
/// in a segment the writer closed, and the gaps recovery closed around in a
/// recovered one. In the newest segment, torn padding is what a cut during
/// its close leaves (padding, index and trailer go out in one write).
fn check_holes(
    seg: &SegmentEntry,
    scanned: &ScanResult,
    closed: &ClosedIndex,
    newest: bool,
    r: &mut CameraReport,
) {
    let recovered = closed.recovered;
    for hole in &scanned.holes {
        let end = hole.offset + hole.len;
        let holds_frame = closed.frames.iter().any(|f| {
            f.offset < end && f.offset + HEADER_LEN as u64 + f.payload_len as u64 > hole.offset
        });
        let holds_position = closed.positions.iter().any(|p| {
            p.offset < end && p.offset + (HEADER_LEN + POSITION_PAYLOAD_LEN) as u64 > hole.offset
        });
        if holds_frame || holds_position || (hole.offset == 0 && scanned.stream_problem.is_some()) {
            continue;
        }
        if recovered {
            r.recovered.push(SegmentNote {
                segment: seg.name.clone(),
                note: format!(
                    "{} bytes at byte {} stepped over by recovery: {}",
                    hole.len, hole.offset, hole.reason
                ),
            });
        } else if newest {
            r.recovered.push(SegmentNote {
                segment: seg.name.clone(),
                note: format!(
                    "{} bytes of padding at byte {} torn, no frame lost (a cut during its close leaves this): {}",
                    hole.len, hole.offset, hole.reason
                ),
            });
        } else {
            r.problem(
                &seg.name,
                DamageKind::DamagedBytes,
                format!(
                    "{} damaged bytes at byte {} outside any frame: {}",
                    hole.len, hole.offset, hole.reason
                ),
            );
        }
    }
}

/// Reads every frame of the segment, as playback would.
fn check_frames(
    io: &dyn StorageIo,
    seg: &SegmentEntry,
    r: &mut CameraReport,
) -> Result<(), StoreError> {
    let reader = match SegmentReader::open(io, &seg.path) {
        Ok(reader) => reader,
        Err(e) => {
            r.problem(&seg.name, DamageKind::Unreadable, e.to_string());
            return Ok(());
        }
    };
    for (n, f) in reader.frames.iter().enumerate() {
        if let Err(e) = reader.read_frame(n) {
            r.bad_records += 1;
            r.problem(
                &seg.name,
                DamageKind::BadRecord,
                format!("frame {} (entry {n}, byte {}): {e}", f.seq, f.offset),
            );
        }
    }
    Ok(())
}

fn inspect_unclosed(
    io: &dyn StorageIo,
    file: &dyn SegmentFile,
    seg: &SegmentEntry,
    deep: bool,
    r: &mut CameraReport,
) -> Result<Inspected, StoreError> {
    let len = file
        .file_len()
        .map_err(|e| StoreError::io(&seg.path, "reading size", e))?;
    let scanned = scan(file, &seg.path)?;
    let nothing_written = scanned.frames.is_empty()
        && scanned.holes.is_empty()
        && scanned.tail_is_zero
        && scanned.stream.is_none();
    let stream = scanned
        .stream
        .as_ref()
        .map(|s| (s.segment_seq, s.camera_id.clone()));
    let trailer_ok = super::reader::read_trailer(file, &seg.path)?.is_some();
    let inspected = Inspected {
        closed: false,
        trailer_ok,
        frames: scanned.frames.clone(),
        positions: scanned.positions.len(),
        stream,
    };
    if trailer_ok {
        r.pending(
            &seg.name,
            "its close was cut short: the trailer is whole, the index is not; recovery writes the index again",
        );
        if deep {
            check_frames(io, seg, r)?;
        }
        return Ok(inspected);
    }
    if nothing_written {
        r.pending(
            &seg.name,
            if len == 0 {
                "created, nothing written yet (a cut before its first sync); recovery removes it"
            } else {
                "created and preallocated, nothing synced (a cut before its first sync); recovery removes it"
            },
        );
        return Ok(inspected);
    }
    if let Some(at) = scanned.index_offset {
        // The records end in a valid index: closed once, trailer gone or moved.
        match after_index(file, seg, at, len)? {
            AfterIndex::Damage(kind, what) => {
                r.problem(&seg.name, kind, what);
                return Ok(inspected);
            }
            AfterIndex::UntrimmedClose => {
                r.pending(
                    &seg.name,
                    "closed, but the trim of its preallocation did not land (a cut during its close); recovery trims it",
                );
                return Ok(inspected);
            }
            AfterIndex::Nothing => {}
        }
    }
    if len % BLOCK_BYTES as u64 != 0 {
        r.problem(
            &seg.name,
            DamageKind::Truncated,
            format!(
                "{len} bytes is not a whole number of {BLOCK_BYTES}-byte blocks (every write is): truncated, or bytes appended{}",
                scanned
                    .stop
                    .as_deref()
                    .map_or(String::new(), |s| format!("; records end at {s}"))
            ),
        );
        return Ok(inspected);
    }
    if scanned.frames.is_empty() {
        r.pending(
            &seg.name,
            "no whole frame yet (a cut during its first sync); recovery removes it",
        );
        return Ok(inspected);
    }
    let mut note = format!(
        "open: {} frames; being written, or cut: recovery closes it after its last valid record",
        scanned.frames.len()
    );
    if !scanned.holes.is_empty() {
        note.push_str(&format!(
            " (stepping over {} damaged bytes)",
            scanned.hole_bytes()
        ));
    }
    r.pending(&seg.name, note);
    if deep {
        check_frames(io, seg, r)?;
    }
    Ok(inspected)
}

/// What follows a valid index record, in a segment without a valid trailer
/// at its end.
enum AfterIndex {
    /// Damage no cut explains.
    Damage(DamageKind, String),
    /// A whole trailer followed by zeros in whole blocks: the close's data
    /// landed, its trim of the preallocation did not.
    UntrimmedClose,
    /// A torn close, or nothing to say.
    Nothing,
}

fn after_index(
    file: &dyn SegmentFile,
    seg: &SegmentEntry,
    at: u64,
    len: u64,
) -> Result<AfterIndex, StoreError> {
    let mut hb = [0u8; HEADER_LEN];
    file.read_exact_at(&mut hb, at)
        .map_err(|e| StoreError::io(&seg.path, "reading index", e))?;
    let Ok(h) = RecordHeader::decode(&hb) else {
        return Ok(AfterIndex::Nothing);
    };
    debug_assert_eq!(h.kind, RecordKind::Index);
    let index_end = at + h.record_len();
    if index_end == len {
        return Ok(AfterIndex::Damage(
            DamageKind::TrailerRemoved,
            format!("ends right after its index (byte {index_end}): the trailer was removed"),
        ));
    }
    let trailer_end = index_end + super::format::TRAILER_LEN as u64;
    if trailer_end > len {
        return Ok(AfterIndex::Nothing);
    }
    let mut tb = [0u8; super::format::TRAILER_LEN];
    file.read_exact_at(&mut tb, index_end)
        .map_err(|e| StoreError::io(&seg.path, "reading trailer", e))?;
    if !Trailer::decode(&tb).is_ok_and(|t| t.index_offset == at) {
        return Ok(AfterIndex::Nothing);
    }
    let mut rest = vec![0u8; (len - trailer_end).min(1 << 20) as usize];
    let mut pos = trailer_end;
    let mut zeros = true;
    while pos < len && zeros {
        let n = ((len - pos) as usize).min(rest.len());
        file.read_exact_at(&mut rest[..n], pos)
            .map_err(|e| StoreError::io(&seg.path, "reading after the trailer", e))?;
        zeros = rest[..n].iter().all(|b| *b == 0);
        pos += n as u64;
    }
    if zeros && len % BLOCK_BYTES as u64 == 0 {
        return Ok(AfterIndex::UntrimmedClose);
    }
    Ok(AfterIndex::Damage(
        DamageKind::AfterTrailer,
        format!(
            "{} bytes after its trailer (which ends at byte {trailer_end})",
            len - trailer_end
        ),
    ))
}

/// Names against contents, and frame numbers from segment to segment.
fn check_order(segments: &[SegmentEntry], inspected: &[Option<Inspected>], r: &mut CameraReport) {
    let mut highest: Option<(u64, String)> = None; // highest frame number so far, and where
    for (i, seg) in segments.iter().enumerate() {
        if i > 0 && segments[i - 1].seq == seg.seq {
            r.problem(
                &seg.name,
                DamageKind::DuplicateNumber,
                format!("same segment number as {}", segments[i - 1].name),
            );
        }
        let Some(ins) = &inspected[i] else { continue };
        if let Some((seq, camera)) = &ins.stream {
            if *seq != seg.seq {
                r.problem(
                    &seg.name,
                    DamageKind::NameMismatch,
                    format!(
                        "named segment {} but its stream header says segment {seq}: renamed or swapped",
                        seg.seq
                    ),
                );
            }
            if camera != &r.camera {
                r.problem(
                    &seg.name,
                    DamageKind::NameMismatch,
                    format!(
                        "recorded by camera '{camera}', found in the folder of '{}'",
                        r.camera
                    ),
                );
            }
        }
        let (Some(first), Some(last)) = (ins.frames.first(), ins.frames.last()) else {
            continue;
        };
        if let Some((high, at)) = &highest {
            if first.seq <= *high {
                let (kind, what) = if last.seq < segments_first(inspected, at, segments) {
                    (DamageKind::FramesBackwards, "go back below those of")
                } else {
                    (DamageKind::FramesOverlap, "repeat those of")
                };
                r.problem(
                    &seg.name,
                    kind,
                    format!(
                        "frame numbers {}..={} {what} {at} (up to {high}): out of order or renamed",
                        first.seq, last.seq
                    ),
                );
            }
        }
        if highest.as_ref().is_none_or(|(h, _)| last.seq > *h) {
            highest = Some((last.seq, seg.name.clone()));
        }
    }
}

/// The first frame number of the segment named `name`.
fn segments_first(inspected: &[Option<Inspected>], name: &str, segments: &[SegmentEntry]) -> u64 {
    segments
        .iter()
        .position(|s| s.name == name)
        .and_then(|i| inspected[i].as_ref())
        .and_then(|ins| ins.frames.first())
        .map_or(0, |f| f.seq)
}
