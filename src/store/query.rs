//! Finding stored frames by wall-clock time, for the timeline, playback and
//! export.
//!
//! Segment names carry the wall time of their first frame (to the second), so
//! only segments whose name could overlap a range are opened. A segment that
//! cannot be read is reported in `problems` and skipped, never served.
//! Readers keep their file open, so a segment that retention deletes while it
//! is being streamed stays readable until the reader is dropped.

use std::ops::Range;
use std::sync::Arc;

use super::catalog::SegmentEntry;
use super::format::{IndexEntry, PositionSample};
use super::reader::SegmentReader;
pub use super::spans::{spans_of, Span, SpanBuilder, GAP_NS};
use super::{Store, StoreError, StoredFrame};

const NS_PER_S: i64 = 1_000_000_000;

/// A segment opened for a query, and which of its frames fall in the range:
/// all of them, or (in an [`intact_range`]) one run of intact frames, the
/// reader shared with the segment's other runs.
pub struct RangeSegment {
    pub entry: SegmentEntry,
    pub reader: Arc<SegmentReader>,
    /// Indexes into `reader.frames`.
    pub frames: Range<usize>,
}

impl RangeSegment {
    pub fn entries(&self) -> &[IndexEntry] {
        &self.reader.frames[self.frames.clone()]
    }
}

/// The frames of one camera in a wall-clock range, oldest segment first.
pub struct FrameRange {
    pub camera: String,
    pub segments: Vec<RangeSegment>,
    /// One line per segment that was skipped because it could not be read.
    pub problems: Vec<String>,
    /// Frames left out of an [`intact_range`]: damaged, or lost inside a
    /// segment (its frame numbers jump). Empty for a plain range.
    pub skipped: Vec<SkippedFrames>,
    /// The range holds more frames than the caller's limit: segments were
    /// opened only until the count passed it, so the frames here are
    /// not all of the range.
    pub over_limit: bool,
    /// Frames counted in the range (at least this many when `over_limit`).
    pub frames_found: usize,
}

/// One segment's frames in a range, as a walk hands them out: its runs of
/// intact frames, in order.
pub struct SegmentRuns {
    pub entry: SegmentEntry,
    pub reader: SegmentReader,
    /// Indexes into `reader.frames`.
    pub runs: Vec<Range<usize>>,
    /// Frames of the range in this segment, damaged ones included: what
    /// was checked.
    pub checked: usize,
    /// Frames counted in the whole range before any was checked.
    pub range_total: usize,
}

/// What a walk over a range found besides its frames.
#[derive(Debug, Default)]
pub struct RangeWalk {
    /// One line per segment skipped because it could not be read.
    pub problems: Vec<String>,
    /// Frames left out: damaged, or lost inside a segment.
    pub skipped: Vec<SkippedFrames>,
    /// More than the caller's limit: nothing was visited.
    pub over_limit: bool,
    /// The visitor stopped the walk.
    pub stopped: bool,
    /// Frames counted in the range (at least this many when `over_limit`).
    pub frames_found: usize,
}

/// A run of frames missing from a range, named so that it can be found
/// with a hex editor.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SkippedFrames {
    pub camera: String,
    pub segment: String,
    /// Byte offset of the first damaged record, or of the record after frames
    /// that are missing.
    pub offset: u64,
    pub frames: u64,
    /// Capture time of the first frame skipped (as its index entry says), or
    /// of the frame after missing ones.
    pub wall_ns: i64,
    pub reason: String,
}

impl std::fmt::Display for SkippedFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}: {} frame{} skipped at byte {} ({})",
            self.camera,
            self.segment,
            self.frames,
            if self.frames == 1 { "" } else { "s" },
            self.offset,
            self.reason
        )
    }
}

/// Bytes read at once while checking a range's frames.
const CHECK_BATCH_BYTES: u64 = 2 << 20;

impl FrameRange {
    pub fn frame_count(&self) -> usize {
        self.segments.iter().map(|s| s.frames.len()).sum()
    }

    /// Every frame in order, with the segment it lives in.
    pub fn frames(&self) -> impl Iterator<Item = (&RangeSegment, usize, &IndexEntry)> {
        self.segments
            .iter()
            .flat_map(|s| s.frames.clone().map(move |i| (s, i, &s.reader.frames[i])))
    }
}

/// Wall time of the first frame: as corrected by a clock anchor, else as
/// written in the name, in ns (whole seconds).
pub fn label_start_ns(entry: &SegmentEntry) -> Option<i64> {
    if let Some(ns) = entry.corrected_start_ns {
        return Some(ns);
    }
    let l = entry.start_label();
    if l.len() != 16 {
        return None;
    }
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &l[0..4],
        &l[4..6],
        &l[6..8],
        &l[9..11],
        &l[11..13],
        &l[13..15]
    );
    crate::clock::parse_rfc3339(&rfc).ok()
}

/// Segments whose name says they may hold frames in `[from_ns, to_ns)`.
/// A segment runs until the next one starts; names are rounded down to the
/// second, hence the one-second slack. Unparseable names are kept (opened to
/// find out).
pub fn candidate_segments(segments: &[SegmentEntry], from_ns: i64, to_ns: i64) -> Vec<usize> {
    let starts: Vec<Option<i64>> = segments.iter().map(label_start_ns).collect();
    (0..segments.len())
        .filter(|&i| {
            let starts_before_end = starts[i].is_none_or(|s| s < to_ns);
            let next_start = starts.get(i + 1).copied().flatten();
            let ends_after_start = next_start.is_none_or(|n| n + NS_PER_S > from_ns);
            starts_before_end && ends_after_start
        })
        .collect()
}

/// Indexes of the frames with `from_ns <= wall < to_ns`. Frames are in capture
/// order; if the wall clock was stepped inside a segment, the span from the
/// first to the last matching frame is taken.
fn frames_in(frames: &[IndexEntry], from_ns: i64, to_ns: i64) -> Range<usize> {
    let inside = |f: &IndexEntry| f.wall_ns >= from_ns && f.wall_ns < to_ns;
    match (
        frames.iter().position(inside),
        frames.iter().rposition(inside),
    ) {
        (Some(a), Some(b)) => a..b + 1,
        _ => 0..0,
    }
}

/// Opens the frames of `camera` with wall time in `[from_ns, to_ns)`.
/// Segments come in the order of their frame numbers (their recording
/// order, even if files were renamed), each frame number once; one that
/// cannot be read is listed in `problems`, and the frames of the others are
/// all there. Stops opening segments once more than `frames_max` frames
/// were found (`over_limit`), so a range too long to serve costs no more
/// memory than the limit.
pub(crate) fn open_range(
    store: &Store,
    camera: &str,
    from_ns: i64,
    to_ns: i64,
    frames_max: usize,
) -> Result<FrameRange, StoreError> {
    let segments = store.segments(camera)?.segments;
    let mut out = FrameRange {
        camera: camera.to_string(),
        segments: Vec::new(),
        problems: Vec::new(),
        skipped: Vec::new(),
        over_limit: false,
        frames_found: 0,
    };
    let mut found = 0usize;
    for i in candidate_segments(&segments, from_ns, to_ns) {
        out.frames_found = found;
        if found > frames_max {
            out.over_limit = true;
            return Ok(out);
        }
        let entry = segments[i].clone();
        let reader = match store.open_segment(&entry) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("[{camera}] skipping unreadable segment: {e}");
                out.problems.push(e.to_string());
                continue;
            }
        };
        let frames = frames_in(&reader.frames, from_ns, to_ns);
        found += frames.len();
        out.frames_found = found;
        if !frames.is_empty() {
            out.segments.push(RangeSegment {
                entry,
                reader: Arc::new(reader),
                frames,
            });
        }
    }
    out.segments
        .sort_by_key(|s| s.entries().first().map_or(0, |f| f.seq));
    // Each frame number once: a copied or duplicated file must not replay
    // footage already served (verify reports the overlap).
    let mut served_up_to: Option<u64> = None;
    for seg in &mut out.segments {
        if let Some(high) = served_up_to {
            let entries = &seg.reader.frames;
            while seg.frames.start < seg.frames.end && entries[seg.frames.start].seq <= high {
                seg.frames.start += 1;
            }
        }
        if let Some(last) = seg.entries().last() {
            served_up_to = Some(served_up_to.map_or(last.seq, |h| h.max(last.seq)));
        }
    }
    out.segments.retain(|s| !s.frames.is_empty());
    Ok(out)
}

/// As [`open_range`], with every frame checked first: damaged frames are
/// left out (each segment split into runs of intact frames) and named in
/// `skipped`, as are frames missing inside a segment. What a range serves
/// then reads whole, unless the medium decays in the meantime.
pub(crate) fn intact_range(
    store: &Store,
    camera: &str,
    from_ns: i64,
    to_ns: i64,
    frames_max: usize,
) -> Result<FrameRange, StoreError> {
    let mut segments = Vec::new();
    let walk = walk_intact_range(store, camera, from_ns, to_ns, frames_max, &mut |seg| {
        collect_runs(seg, &mut segments);
        true
    })?;
    Ok(FrameRange {
        camera: camera.to_string(),
        segments,
        problems: walk.problems,
        skipped: walk.skipped,
        over_limit: walk.over_limit,
        frames_found: walk.frames_found,
    })
}

/// Adds the runs of `seg` to `out`, sharing its reader.
pub fn collect_runs(seg: SegmentRuns, out: &mut Vec<RangeSegment>) {
    let reader = Arc::new(seg.reader);
    for frames in seg.runs {
        out.push(RangeSegment {
            entry: seg.entry.clone(),
            reader: reader.clone(),
            frames,
        });
    }
}

/// The walk behind [`intact_range`], one segment in memory at a time (see
/// `Store::walk_intact_range`). Segments are visited in the order of their
/// frame numbers, each frame number once, as [`open_range`] orders them.
pub(crate) fn walk_intact_range(
    store: &Store,
    camera: &str,
    from_ns: i64,
    to_ns: i64,
    frames_max: usize,
    visit: &mut dyn FnMut(SegmentRuns) -> bool,
) -> Result<RangeWalk, StoreError> {
    let segments = store.segments(camera)?.segments;
    let mut walk = RangeWalk::default();
    // First the count and the order: each index read and let go.
    let mut planned: Vec<(u64, SegmentEntry)> = Vec::new();
    for i in candidate_segments(&segments, from_ns, to_ns) {
        if walk.frames_found > frames_max {
            break;
        }
        let entry = &segments[i];
        match store.open_segment(entry) {
            Ok(reader) => {
                let frames = frames_in(&reader.frames, from_ns, to_ns);
                walk.frames_found += frames.len();
                if let Some(first) = reader
                    .frames
                    .get(frames.start)
                    .filter(|_| !frames.is_empty())
                {
                    planned.push((first.seq, entry.clone()));
                }
            }
            Err(e) => {
                log::warn!("[{camera}] skipping unreadable segment: {e}");
                walk.problems.push(e.to_string());
            }
        }
    }
    if walk.frames_found > frames_max {
        walk.over_limit = true;
        return Ok(walk);
    }
    planned.sort_by_key(|(seq, _)| *seq);
    // Each frame number once: a copied or duplicated file must not replay
    // footage already served (verify reports the overlap).
    let mut served_up_to: Option<u64> = None;
    for (_, entry) in planned {
        let reader = match store.open_segment(&entry) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("[{camera}] skipping unreadable segment: {e}");
                walk.problems.push(e.to_string());
                continue;
            }
        };
        let mut frames = frames_in(&reader.frames, from_ns, to_ns);
        if let Some(high) = served_up_to {
            while frames.start < frames.end && reader.frames[frames.start].seq <= high {
                frames.start += 1;
            }
        }
        let Some(last) = reader.frames[frames.clone()].last() else {
            continue;
        };
        served_up_to = Some(served_up_to.map_or(last.seq, |h| h.max(last.seq)));
        let damaged = store.damaged_frames(&reader, CHECK_BATCH_BYTES);
        let checked = frames.len();
        let runs = split_intact(&entry, &reader, frames, &damaged, &mut walk.skipped);
        let seg = SegmentRuns {
            entry,
            reader,
            runs,
            checked,
            range_total: walk.frames_found,
        };
        if !visit(seg) {
            walk.stopped = true;
            break;
        }
    }
    Ok(walk)
}

/// The runs of intact frames among `range` of `reader`, with what is left
/// out of them added to `skipped`.
fn split_intact(
    entry: &SegmentEntry,
    reader: &SegmentReader,
    range: Range<usize>,
    damaged: &[(usize, String)],
    skipped_out: &mut Vec<SkippedFrames>,
) -> Vec<Range<usize>> {
    let frames = &reader.frames;
    let is_damaged = |k: usize| damaged.iter().find(|(d, _)| *d == k).map(|(_, why)| why);
    let mut runs = Vec::new();
    let mut run_start: Option<usize> = None;
    let close_run = |start: &mut Option<usize>, end: usize, runs: &mut Vec<Range<usize>>| {
        if let Some(a) = start.take() {
            runs.push(a..end);
        }
    };
    let skipped = |offset: u64, count: u64, wall_ns: i64, reason: String| SkippedFrames {
        camera: entry.camera.clone(),
        segment: entry.name.clone(),
        offset,
        frames: count,
        wall_ns,
        reason,
    };
    // The damaged frame just before, when the last span is its own.
    let mut last_damaged: Option<usize> = None;
    for k in range.clone() {
        if k > range.start {
            let missing = frames[k]
                .seq
                .saturating_sub(frames[k - 1].seq.saturating_add(1));
            if missing > 0 {
                close_run(&mut run_start, k, &mut runs);
                skipped_out.push(skipped(
                    frames[k].offset,
                    missing,
                    frames[k].wall_ns,
                    "missing from the segment: damaged, or lost to a power cut".into(),
                ));
                last_damaged = None;
            }
        }
        match is_damaged(k) {
            Some(why) => {
                close_run(&mut run_start, k, &mut runs);
                match skipped_out.last_mut() {
                    // Damaged frames in a row make one span.
                    Some(last) if k > 0 && last_damaged == Some(k - 1) => last.frames += 1,
                    _ => skipped_out.push(skipped(
                        frames[k].offset,
                        1,
                        frames[k].wall_ns,
                        why.clone(),
                    )),
                }
                last_damaged = Some(k);
            }
            None => {
                run_start.get_or_insert(k);
                last_damaged = None;
            }
        }
    }
    close_run(&mut run_start, range.end, &mut runs);
    runs
}

/// What a walk over a range's GPS positions found besides them.
#[derive(Debug, Default)]
pub struct PositionWalk {
    /// One line per segment skipped because it could not be read.
    pub problems: Vec<String>,
    /// Positions handed out.
    pub positions: usize,
}

/// The GPS positions of `camera` received with wall time in
/// `[from_ns, to_ns)`, oldest first, one segment's worth at a time. They
/// come from the segment indexes (or the records a scan checked), so no
/// frame is read. A position not later than the one before is left out:
/// a copied segment file must not replay a stretch of the track, and a
/// track's times only go forward.
pub(crate) fn walk_positions(
    store: &Store,
    camera: &str,
    from_ns: i64,
    to_ns: i64,
    visit: &mut dyn FnMut(&[PositionSample]),
) -> Result<PositionWalk, StoreError> {
    let segments = store.segments(camera)?.segments;
    let mut walk = PositionWalk::default();
    let mut last_wall_ns = i64::MIN;
    let mut batch = Vec::new();
    for i in candidate_segments(&segments, from_ns, to_ns) {
        let reader = match store.open_segment(&segments[i]) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("[{camera}] skipping unreadable segment: {e}");
                walk.problems.push(e.to_string());
                continue;
            }
        };
        batch.clear();
        for p in reader.positions {
            let wall = p.received.wall_ns;
            if wall >= from_ns && wall < to_ns && wall > last_wall_ns {
                last_wall_ns = wall;
                batch.push(p);
            }
        }
        if !batch.is_empty() {
            walk.positions += batch.len();
            visit(&batch);
        }
    }
    Ok(walk)
}

/// How many of the newest segments `newest_frame_wall_ns` opens: a renamed
/// file can put older footage under the newest name.
const NEWEST_SEGMENTS_LOOKED_AT: usize = 3;

/// Wall time of the newest readable frame of `camera`, if any: the latest
/// last frame among the newest segments that open and hold frames.
pub(crate) fn newest_frame_wall_ns(store: &Store, camera: &str) -> Result<Option<i64>, StoreError> {
    let mut newest: Option<i64> = None;
    let mut looked = 0;
    for entry in store.segments(camera)?.segments.iter().rev() {
        match store.open_segment(entry) {
            Ok(r) => {
                if let Some(f) = r.frames.last() {
                    newest = Some(newest.map_or(f.wall_ns, |n| n.max(f.wall_ns)));
                    looked += 1;
                }
            }
            Err(e) => log::warn!("[{camera}] skipping unreadable segment: {e}"),
        }
        if looked == NEWEST_SEGMENTS_LOOKED_AT {
            break;
        }
    }
    Ok(newest)
}

/// The intact frame of `camera` nearest `at_ns` (at most `window_ns`
/// away), then `step` intact frames on from it. Frames that fail their
/// checks are stepped over: they are neither served nor counted.
pub(crate) fn frame_near(
    store: &Store,
    camera: &str,
    at_ns: i64,
    window_ns: i64,
    step: i64,
) -> Result<Option<StoredFrame>, StoreError> {
    let reach = window_ns.saturating_add(step.saturating_abs().saturating_mul(NS_PER_S));
    let range = open_range(
        store,
        camera,
        at_ns.saturating_sub(reach),
        at_ns.saturating_add(reach),
        usize::MAX,
    )?;
    let frames: Vec<_> = range.frames().collect();
    // Nearest first, ties to the earlier frame.
    let mut order: Vec<usize> = (0..frames.len())
        .filter(|&k| frames[k].2.wall_ns.abs_diff(at_ns) <= window_ns as u64)
        .collect();
    order.sort_by_key(|&k| (frames[k].2.wall_ns.abs_diff(at_ns), k));
    let read = |k: usize| {
        let (seg, index, entry) = frames[k];
        match seg.reader.read_frame(index) {
            Ok(jpeg) => Some(StoredFrame {
                jpeg,
                wall_ns: entry.wall_ns,
                segment: seg.entry.name.clone(),
                index,
            }),
            Err(e) => {
                log::warn!("[{camera}] stepping over a damaged frame: {e}");
                None
            }
        }
    };
    let Some((nearest, frame)) = order.into_iter().find_map(|k| read(k).map(|f| (k, f))) else {
        return Ok(None);
    };
    if step == 0 {
        return Ok(Some(frame));
    }
    // `step` frames on; if that one is damaged, the next intact one beyond.
    let target = nearest as i64 + step;
    if target < 0 || target >= frames.len() as i64 {
        return Ok(None);
    }
    let mut k = target as usize;
    loop {
        if let Some(f) = read(k) {
            return Ok(Some(f));
        }
        k = match if step > 0 {
            k.checked_add(1)
        } else {
            k.checked_sub(1)
        } {
            Some(k) if k < frames.len() => k,
            _ => return Ok(None),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::parse_rfc3339;

    fn entry(seq: u64, label: &str) -> SegmentEntry {
        SegmentEntry {
            camera: "c".into(),
            seq,
            name: format!("{seq:012}_{label}.dvr"),
            path: format!("/x/{seq:012}_{label}.dvr").into(),
            len: 1,
            protected: false,
            corrected_start_ns: None,
        }
    }

    fn t(s: &str) -> i64 {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn label_parses_to_the_named_second() {
        let e = entry(1, "20261120T100000Z");
        assert_eq!(label_start_ns(&e), Some(t("2026-11-20T10:00:00Z")));
        assert_eq!(label_start_ns(&entry(1, "garbage")), None);
    }

    #[test]
    fn candidates_are_the_segments_overlapping_the_range() {
        let segs = vec![
            entry(1, "20261120T100000Z"),
            entry(2, "20261120T100100Z"),
            entry(3, "20261120T100200Z"),
            entry(4, "20261120T100300Z"),
        ];
        // Inside the second segment only.
        let c = candidate_segments(&segs, t("2026-11-20T10:01:10Z"), t("2026-11-20T10:01:20Z"));
        assert_eq!(c, vec![1]);
        // Spanning two boundaries.
        let c = candidate_segments(&segs, t("2026-11-20T10:00:30Z"), t("2026-11-20T10:02:30Z"));
        assert_eq!(c, vec![0, 1, 2]);
        // The last segment has no known end.
        let c = candidate_segments(&segs, t("2026-11-20T11:00:00Z"), t("2026-11-20T12:00:00Z"));
        assert_eq!(c, vec![3]);
        // Before everything.
        let c = candidate_segments(&segs, t("2026-11-20T09:00:00Z"), t("2026-11-20T09:30:00Z"));
        assert!(c.is_empty());
        // A start within the second a name was rounded down to keeps the segment before it.
        let from = t("2026-11-20T10:01:00.5Z");
        let c = candidate_segments(&segs, from, from + NS_PER_S);
        assert_eq!(c, vec![0, 1]);
    }

    #[test]
    fn spans_split_at_gaps_and_join_across_segments() {
        let mut b = SpanBuilder::default();
        for t in [0, 100, 200, 5_000_000_000, 5_000_000_100] {
            b.push(t, false);
        }
        assert_eq!(b.spans.len(), 2);
        assert_eq!((b.spans[0].frames, b.spans[0].end_ns), (3, 200));
        b.extend(Span {
            start_ns: 5_500_000_000,
            end_ns: 6_000_000_000,
            frames: 7,
            estimated: false,
        });
        b.extend(Span {
            start_ns: 60_000_000_000,
            end_ns: 61_000_000_000,
            frames: 2,
            estimated: false,
        });
        assert_eq!(b.spans.len(), 3);
        assert_eq!(b.spans[1].frames, 9);
        // Estimated time never joins a span of known time.
        b.push(61_000_000_100, true);
        assert_eq!(b.spans.len(), 4);
        assert!(b.spans[3].estimated && !b.spans[2].estimated);
    }

    #[test]
    fn frames_in_range_are_half_open() {
        let f = |wall_ns| IndexEntry {
            offset: 0,
            payload_len: 1,
            flags: 0,
            seq: 0,
            mono_ns: 0,
            wall_ns,
        };
        let frames: Vec<_> = [10, 20, 30, 40].into_iter().map(f).collect();
        assert_eq!(frames_in(&frames, 20, 40), 1..3);
        assert_eq!(frames_in(&frames, 0, 100), 0..4);
        assert_eq!(frames_in(&frames, 41, 100), 0..0);
    }
}
