//! MP4 export: a `.mp4` of one camera over a wall-clock range, assembled on
//! demand from the stored JPEG frames. Nothing is re-encoded and nothing is
//! written to the store.
//!
//! [`Mp4Export::open`] reads only segment indexes and builds the header
//! (`ftyp`, `moov`, the `mdat` box header); the `mdat` body is the JPEG
//! payloads, copied straight from the segment files by
//! [`Mp4Export::write_range`] for any byte range, so HTTP range requests and
//! the CLI share one path. The bytes of an export depend only on the frames
//! it includes, never on when it was opened, so ranges taken from two opens
//! of the same footage fit together (and the [`Mp4Export::etag`] says so).
//!
//! Invariants:
//! - every payload byte written has had its record's header and payload
//!   CRCs checked in the same read (a frame that fails is an error naming
//!   the segment and byte offset; nothing of it is written);
//! - memory does not grow with the bytes exported: one read buffer of at
//!   most [`READ_BATCH_BYTES`] (or one frame record, if larger), plus the
//!   header and the segment indexes: about 50 bytes per frame kept, 85 at
//!   the peak while the header is built (docs/export.md §10).
//!
//! `docs/export.md` explains the box layout, durations and gaps.

pub mod mp4;

use std::io::Write;
use std::ops::Range;

use crate::clock::{format_compact, format_overlay, format_rfc3339};
use crate::store::format::{StreamHeader, FLAG_WALL_ESTIMATED};
use crate::store::query::{FrameRange, SkippedFrames};
use crate::store::{Store, StoreError};

use mp4::{Chunk, Track, TrackMedia, TIMESCALE};

const NS_PER_S: u64 = 1_000_000_000;
/// Most bytes read from a segment in one positional read while streaming.
pub const READ_BATCH_BYTES: usize = 2 << 20;
/// Capture times closer than this are not believed (a clock glitch); the
/// frame gets the nominal interval instead.
const DURATION_NS_MIN: u64 = 1_000_000;
/// A frame held this much longer than the nominal interval marks a gap in
/// recording (the text track says so).
const GAP_SLACK_NS: u64 = 1_000_000_000;
/// Frame interval when a segment does not state a usable rate.
const FALLBACK_INTERVAL_NS: u64 = 33_333_333;
/// Most frames in one export: about 37 hours at 30 fps, and about 340 MB of
/// index and header in memory at the peak. Keeps every sample table far
/// below 4 GiB. Checked as segments are opened, before all are read.
pub const EXPORT_FRAMES_MAX: usize = 4_000_000;
/// Chunk offsets above this are written as 64-bit (`co64`).
const CHUNK_OFFSET_LIMIT_32: u64 = u32::MAX as u64;
/// Bumped whenever the bytes produced for the same frames change, so that
/// entity tags never match across layouts.
const LAYOUT_VERSION: &str = "dashvault-mp4-1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    /// Add a text track with the capture time (UTC), once per second of
    /// footage, that players can show as subtitles.
    pub time_track: bool,
}

impl Default for ExportOptions {
    fn default() -> ExportOptions {
        ExportOptions { time_track: true }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "no footage of camera '{camera}' between {} and {}",
        format_rfc3339(*from),
        format_rfc3339(*to)
    )]
    NoFootage { camera: String, from: i64, to: i64 },
    #[error(
        "the range starts at {} but ends at {}: the end must come after the start",
        format_rfc3339(*from),
        format_rfc3339(*to)
    )]
    BadTimeRange { from: i64, to: i64 },
    #[error(
        "camera '{camera}': more than {max} frames in the range (at least {frames}), more than one export can hold; export a shorter range"
    )]
    TooManyFrames {
        camera: String,
        frames: usize,
        max: usize,
    },
    #[error("byte range {start}..{end} is outside the {len}-byte export")]
    BadByteRange { start: u64, end: u64, len: u64 },
    /// Reading footage failed; names the segment file and byte offset.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the output failed. Not a `source`: the message already
    /// holds it, and a chain printer would say it twice.
    #[error("writing the export: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for ExportError {
    fn from(e: std::io::Error) -> ExportError {
        ExportError::Io(e)
    }
}

/// What one stretch of the virtual file is.
#[derive(Clone, Debug)]
enum Part {
    /// `ftyp`, `moov` and the `mdat` header.
    Header,
    /// One text sample, a range of `text_bytes`.
    Text(Range<usize>),
    /// Consecutive frames of one segment (`segments[segment].reader.frames`).
    Frames {
        segment: usize,
        frames: Range<usize>,
    },
}

#[derive(Clone, Debug)]
struct Piece {
    /// Offset in the export.
    start: u64,
    len: u64,
    part: Part,
}

/// An `.mp4` of stored footage, ready to be written in whole or in ranges.
pub struct Mp4Export {
    camera: String,
    from_ns: i64,
    to_ns: i64,
    range: FrameRange,
    header: Vec<u8>,
    text_bytes: Vec<u8>,
    pieces: Vec<Piece>,
    len: u64,
    duration_ns: u64,
    frame_count: usize,
    etag: String,
}

/// One frame on the export's timeline. 24 bytes: a day at 30 fps holds
/// 2.6 million of these while the header is built.
struct Sample {
    wall_ns: i64,
    /// Index into the range's segments, with [`ESTIMATED_BIT`] set when the
    /// frame's wall time was estimated.
    segment_flags: u32,
    size: u32,
    duration_ticks: u32,
    /// Part of `duration_ticks` that is a gap in recording (the frame is
    /// held through it); zero for an ordinary frame.
    gap_ticks: u32,
}

/// In [`Sample::segment_flags`]: the wall time was estimated.
const ESTIMATED_BIT: u32 = 1 << 31;

impl Sample {
    fn segment(&self) -> usize {
        (self.segment_flags & !ESTIMATED_BIT) as usize
    }
    fn estimated(&self) -> bool {
        self.segment_flags & ESTIMATED_BIT != 0
    }
}

/// A text sample: the capture time of the frames it spans.
struct TextSample {
    text: String,
    duration_ticks: u32,
    /// Frames shown while this text is (indexes into the samples), empty for
    /// the text over a gap.
    frames: Range<usize>,
}

impl Mp4Export {
    /// Opens the frames of `camera` with wall time in `[from_ns, to_ns)` and
    /// builds the header. Segments that cannot be read are skipped and
    /// listed in [`problems`](Mp4Export::problems).
    pub fn open(
        store: &Store,
        camera: &str,
        from_ns: i64,
        to_ns: i64,
        options: ExportOptions,
    ) -> Result<Mp4Export, ExportError> {
        Self::open_with_chunk_offset_limit(
            store,
            camera,
            from_ns,
            to_ns,
            options,
            CHUNK_OFFSET_LIMIT_32,
        )
    }

    /// As [`open`](Mp4Export::open), with 64-bit chunk offsets (`co64`) as
    /// soon as one exceeds `limit` instead of `u32::MAX`. Tests use this to
    /// check the 64-bit path without writing 4 GiB.
    pub fn open_with_chunk_offset_limit(
        store: &Store,
        camera: &str,
        from_ns: i64,
        to_ns: i64,
        options: ExportOptions,
        limit: u64,
    ) -> Result<Mp4Export, ExportError> {
        if to_ns <= from_ns {
            return Err(ExportError::BadTimeRange {
                from: from_ns,
                to: to_ns,
            });
        }
        // Damaged frames are left out (and named) before the header is
        // built, so the file never promises a frame it cannot deliver.
        // Over the limit, segments stop being opened as soon as the count
        // passes it: a year-long range costs no more than the limit.
        let range = store.intact_range_at_most(camera, from_ns, to_ns, EXPORT_FRAMES_MAX)?;
        let frame_count = range.frame_count();
        if range.over_limit {
            return Err(ExportError::TooManyFrames {
                camera: camera.to_string(),
                frames: frame_count,
                max: EXPORT_FRAMES_MAX,
            });
        }
        if frame_count == 0 {
            return Err(ExportError::NoFootage {
                camera: camera.to_string(),
                from: from_ns,
                to: to_ns,
            });
        }
        if frame_count > EXPORT_FRAMES_MAX {
            return Err(ExportError::TooManyFrames {
                camera: camera.to_string(),
                frames: frame_count,
                max: EXPORT_FRAMES_MAX,
            });
        }
        let (samples, duration_ns) = timeline(&range);
        let mut texts = text_samples(&samples);
        note_skipped(&mut texts, &samples, &range.skipped);
        let layout = Layout::build(&range, &samples, &texts, options, limit);
        let etag = etag(&range, options, layout.len);
        Ok(Mp4Export {
            camera: camera.to_string(),
            from_ns,
            to_ns,
            header: layout.header,
            text_bytes: layout.text_bytes,
            pieces: layout.pieces,
            len: layout.len,
            duration_ns,
            frame_count,
            etag,
            range,
        })
    }

    /// Exact size of the file in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never true: an export holds at least one frame.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A strong entity tag, quotes included. It changes whenever the bytes
    /// would: other frames, other segments, other options or layout.
    pub fn etag(&self) -> String {
        self.etag.clone()
    }

    /// `<camera>_<from>_<to>.mp4` with the requested range in UTC, e.g.
    /// `front_20261120T100000Z_20261120T100500Z.mp4`.
    pub fn file_name(&self) -> String {
        let camera: String = self
            .camera
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!(
            "{camera}_{}_{}.mp4",
            format_compact(self.from_ns),
            format_compact(self.to_ns)
        )
    }

    pub fn camera(&self) -> &str {
        &self.camera
    }

    pub fn frame_count(&self) -> usize {
        self.frame_count
    }

    /// Length of the video as played: from the first frame's capture to the
    /// last one's, plus one nominal frame interval.
    pub fn duration_ns(&self) -> u64 {
        self.duration_ns
    }

    /// Wall time of the first and of the last frame included.
    pub fn first_last_wall_ns(&self) -> (i64, i64) {
        let mut frames = self.range.frames().map(|(_, _, f)| f.wall_ns);
        let first = frames.next().unwrap_or(self.from_ns);
        (first, frames.last().unwrap_or(first))
    }

    /// One line per segment skipped because it could not be read.
    pub fn problems(&self) -> &[String] {
        &self.range.problems
    }

    /// Frames left out: damaged, or missing inside a segment. The text
    /// track names each span where it happens.
    pub fn skipped(&self) -> &[SkippedFrames] {
        &self.range.skipped
    }

    /// Writes bytes `[start, end)` of the file to `out`. Payloads are read
    /// from the segment files in batches of at most [`READ_BATCH_BYTES`],
    /// each frame's CRCs checked before any of its bytes are written.
    pub fn write_range(
        &self,
        start: u64,
        end: u64,
        out: &mut dyn Write,
    ) -> Result<(), ExportError> {
        if start > end || end > self.len {
            return Err(ExportError::BadByteRange {
                start,
                end,
                len: self.len,
            });
        }
        let mut buf = Vec::new();
        let first = self.pieces.partition_point(|p| p.start + p.len <= start);
        for piece in &self.pieces[first..] {
            if piece.start >= end {
                break;
            }
            let lo = start.max(piece.start) - piece.start;
            let hi = end.min(piece.start + piece.len) - piece.start;
            match &piece.part {
                Part::Header => out.write_all(&self.header[lo as usize..hi as usize])?,
                Part::Text(r) => {
                    out.write_all(&self.text_bytes[r.start + lo as usize..r.start + hi as usize])?
                }
                Part::Frames { segment, frames } => {
                    self.write_frames(*segment, frames.clone(), lo, hi, &mut buf, out)?
                }
            }
        }
        Ok(())
    }

    /// Writes bytes `[lo, hi)` of the concatenated payloads of `frames`.
    fn write_frames(
        &self,
        segment: usize,
        frames: Range<usize>,
        lo: u64,
        hi: u64,
        buf: &mut Vec<u8>,
        out: &mut dyn Write,
    ) -> Result<(), ExportError> {
        let reader = &self.range.segments[segment].reader;
        let size = |i: usize| reader.frames[i].payload_len as u64;
        let mut i = frames.start;
        let mut pos = 0u64; // offset of frame i's payload within this piece
        while i < frames.end && pos + size(i) <= lo {
            pos += size(i);
            i += 1;
        }
        while i < frames.end && pos < hi {
            // One read for as many of the frames needed as fit the batch.
            let mut j = i + 1;
            let mut run_end = pos + size(i);
            while j < frames.end
                && run_end < hi
                && reader.run_bytes(i..j + 1) <= READ_BATCH_BYTES as u64
            {
                run_end += size(j);
                j += 1;
            }
            let run = reader.read_run(i..j, buf)?;
            for k in 0..run.len() {
                let payload = run.payload(k);
                let a = lo.saturating_sub(pos).min(payload.len() as u64) as usize;
                let b = (hi - pos).min(payload.len() as u64) as usize;
                out.write_all(&payload[a..b])?;
                pos += payload.len() as u64;
            }
            i = j;
        }
        Ok(())
    }
}

/// Frame interval a segment's stream header promises.
fn nominal_interval_ns(stream: &StreamHeader) -> u64 {
    if stream.fps_milli == 0 {
        FALLBACK_INTERVAL_NS
    } else {
        (1_000_000_000_000 / stream.fps_milli as u64).max(DURATION_NS_MIN)
    }
}

fn ticks(ns: u64) -> u64 {
    ((ns as u128 * TIMESCALE as u128 + NS_PER_S as u128 / 2) / NS_PER_S as u128) as u64
}

/// Each frame's duration and the total, in ns. A frame lasts until the next
/// one was captured: monotonic times when both come from the same boot
/// (immune to clock steps), else wall times; the last frame, and any frame
/// whose next one does not come later, gets the nominal interval.
fn timeline(range: &FrameRange) -> (Vec<Sample>, u64) {
    // Frames are walked in place (no list of them is collected): the
    // tables here are the per-frame memory of an export.
    let mut frames = range
        .segments
        .iter()
        .enumerate()
        .flat_map(|(s, seg)| seg.entries().iter().map(move |f| (s, f)))
        .peekable();
    let mut samples = Vec::with_capacity(range.frame_count());
    let mut pts_ns = 0u64;
    let mut pts_ticks = 0u64;
    while let Some((s, f)) = frames.next() {
        let stream = &range.segments[s].reader.stream;
        let nominal = nominal_interval_ns(stream);
        let delta = frames.peek().and_then(|(ns, next)| {
            let next_stream = &range.segments[*ns].reader.stream;
            let same_boot = next_stream.boot_id == stream.boot_id && stream.boot_id != [0; 16];
            if same_boot && next.mono_ns > f.mono_ns {
                Some(next.mono_ns - f.mono_ns)
            } else if next.wall_ns > f.wall_ns {
                Some(next.wall_ns.abs_diff(f.wall_ns))
            } else {
                None
            }
        });
        let duration_ns = delta.filter(|d| *d >= DURATION_NS_MIN).unwrap_or(nominal);
        pts_ns += duration_ns;
        let end_ticks = ticks(pts_ns);
        let duration_ticks = (end_ticks - pts_ticks).min(u32::MAX as u64) as u32;
        // A held frame longer than 13 hours is cut to that (32-bit sample
        // durations); the timeline continues from where it was cut.
        pts_ticks += duration_ticks as u64;
        let gap_ticks = if duration_ns > nominal + GAP_SLACK_NS {
            duration_ticks.saturating_sub(ticks(nominal) as u32)
        } else {
            0
        };
        let estimated = if f.flags & FLAG_WALL_ESTIMATED != 0 {
            ESTIMATED_BIT
        } else {
            0
        };
        samples.push(Sample {
            wall_ns: f.wall_ns,
            // Segments number far fewer than 2^31 (one per minute).
            segment_flags: s as u32 | estimated,
            size: f.payload_len,
            duration_ticks,
            gap_ticks,
        });
    }
    (samples, pts_ns)
}

/// Text samples: one per wall-clock second of footage, showing the capture
/// time of the frames under it (as the picture's burned-in time does), and
/// one over each gap saying how long nothing was recorded.
fn text_samples(samples: &[Sample]) -> Vec<TextSample> {
    let mut out: Vec<TextSample> = Vec::new();
    let mut start = 0;
    while start < samples.len() {
        let second = samples[start].wall_ns.div_euclid(NS_PER_S as i64);
        let estimated = samples[start].estimated();
        let mut end = start + 1;
        while end < samples.len()
            && samples[end - 1].gap_ticks == 0
            && samples[end].wall_ns.div_euclid(NS_PER_S as i64) == second
            && samples[end].estimated() == estimated
        {
            end += 1;
        }
        let last = &samples[end - 1];
        let duration: u64 = samples[start..end]
            .iter()
            .map(|s| s.duration_ticks as u64)
            .sum::<u64>()
            - last.gap_ticks as u64;
        let mut text = format_overlay(second * NS_PER_S as i64);
        if estimated {
            text.push_str(" (clock estimated)");
        }
        out.push(TextSample {
            text: text.clone(),
            duration_ticks: duration.min(u32::MAX as u64) as u32,
            frames: start..end,
        });
        if last.gap_ticks > 0 {
            let gap_s = (last.gap_ticks as u64 + TIMESCALE as u64 / 2) / TIMESCALE as u64;
            out.push(TextSample {
                text: format!("{text}, then nothing recorded for {}", human_seconds(gap_s)),
                duration_ticks: last.gap_ticks,
                frames: end..end,
            });
        }
        start = end;
    }
    out
}

/// Adds each skipped span to the text shown at its time: "2 damaged frames
/// skipped in <segment> at byte <offset>".
fn note_skipped(texts: &mut [TextSample], samples: &[Sample], skipped: &[SkippedFrames]) {
    for skip in skipped {
        let at = texts
            .iter()
            .rposition(|t| {
                samples
                    .get(t.frames.start)
                    .is_some_and(|s| !t.frames.is_empty() && s.wall_ns <= skip.wall_ns)
            })
            .unwrap_or(0);
        let what = if skip.reason.starts_with("missing") {
            "missing"
        } else {
            "damaged"
        };
        if let Some(t) = texts.get_mut(at) {
            t.text.push_str(&format!(
                " [{} {what} frame{} skipped: {} at byte {}]",
                skip.frames,
                if skip.frames == 1 { "" } else { "s" },
                skip.segment,
                skip.offset
            ));
        }
    }
}

fn human_seconds(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// The bytes and pieces of an export.
struct Layout {
    header: Vec<u8>,
    text_bytes: Vec<u8>,
    pieces: Vec<Piece>,
    len: u64,
}

impl Layout {
    /// Lays out `mdat` as one stretch per text sample: its text (if there is
    /// a time track), then its frames, one chunk per segment they come from.
    /// Players reading in order thus find each second's text next to its
    /// pictures.
    fn build(
        range: &FrameRange,
        samples: &[Sample],
        texts: &[TextSample],
        options: ExportOptions,
        chunk_offset_limit: u64,
    ) -> Layout {
        let mut sizes_seen: Vec<(u32, u32)> = Vec::new();
        let description: Vec<u32> = range
            .segments
            .iter()
            .map(|s| {
                let size = (s.reader.stream.width, s.reader.stream.height);
                let i = sizes_seen
                    .iter()
                    .position(|x| *x == size)
                    .unwrap_or_else(|| {
                        sizes_seen.push(size);
                        sizes_seen.len() - 1
                    });
                i as u32 + 1
            })
            .collect();
        // Sample number of each segment's first frame: with the segment's
        // own frame range it gives any sample's index into reader.frames,
        // without a table per frame.
        let first_sample: Vec<usize> = range
            .segments
            .iter()
            .scan(0, |n, s| {
                let first = *n;
                *n += s.frames.len();
                Some(first)
            })
            .collect();
        let frame_index = |segment: usize, sample: usize| {
            range.segments[segment].frames.start + sample - first_sample[segment]
        };

        let mut video = Track {
            id: 1,
            media: TrackMedia::Jpeg { sizes: sizes_seen },
            durations: samples.iter().map(|s| s.duration_ticks).collect(),
            sizes: samples.iter().map(|s| s.size).collect(),
            chunks: Vec::new(),
        };
        let (width, height) = match &video.media {
            TrackMedia::Jpeg { sizes } => sizes.first().copied().unwrap_or((0, 0)),
            _ => (0, 0),
        };
        let mut text = Track {
            id: 2,
            media: TrackMedia::Text { width, height },
            durations: Vec::new(),
            sizes: Vec::new(),
            chunks: Vec::new(),
        };

        let mut text_bytes = Vec::new();
        let mut body: Vec<(u64, Part)> = Vec::new(); // (len, part)
        let mut body_len = 0u64;
        for t in texts {
            if options.time_track {
                let sample = mp4::text_sample(&t.text);
                let r = text_bytes.len()..text_bytes.len() + sample.len();
                text_bytes.extend_from_slice(&sample);
                text.durations.push(t.duration_ticks);
                text.sizes.push(sample.len() as u32);
                text.chunks.push(Chunk {
                    samples: 1,
                    description: 1,
                    body_offset: body_len,
                });
                body.push((sample.len() as u64, Part::Text(r)));
                body_len += sample.len() as u64;
            }
            let mut i = t.frames.start;
            while i < t.frames.end {
                let segment = samples[i].segment();
                let mut j = i;
                let mut bytes = 0u64;
                while j < t.frames.end && samples[j].segment() == segment {
                    bytes += samples[j].size as u64;
                    j += 1;
                }
                video.chunks.push(Chunk {
                    samples: (j - i) as u32,
                    description: description[segment],
                    body_offset: body_len,
                });
                body.push((
                    bytes,
                    Part::Frames {
                        segment,
                        frames: frame_index(segment, i)..frame_index(segment, j - 1) + 1,
                    },
                ));
                body_len += bytes;
                i = j;
            }
        }

        let tracks: Vec<Track> = if options.time_track {
            vec![video, text]
        } else {
            vec![video]
        };
        let start_wall_ns = samples.first().map_or(0, |s| s.wall_ns);
        let header = mp4::file_header(&tracks, start_wall_ns, body_len, chunk_offset_limit);
        let body_start = header.len() as u64;

        let mut pieces = Vec::with_capacity(body.len() + 1);
        pieces.push(Piece {
            start: 0,
            len: body_start,
            part: Part::Header,
        });
        let mut at = body_start;
        for (len, part) in body {
            pieces.push(Piece {
                start: at,
                len,
                part,
            });
            at += len;
        }
        Layout {
            header,
            text_bytes,
            pieces,
            len: at,
        }
    }
}

/// The timing an export of `range` gives its frames, for a file built
/// elsewhere from the same frames (the share clip): each frame's duration
/// in ticks of [`TIMESCALE`], and the time track's samples.
pub struct RangeTiming {
    pub durations: Vec<u32>,
    /// Text, duration in ticks, and the frames it is shown over (indexes
    /// into `durations`; empty over a gap).
    pub texts: Vec<(String, u32, Range<usize>)>,
    pub duration_ns: u64,
    pub start_wall_ns: i64,
}

pub fn range_timing(range: &FrameRange) -> RangeTiming {
    let (samples, duration_ns) = timeline(range);
    let mut texts = text_samples(&samples);
    note_skipped(&mut texts, &samples, &range.skipped);
    RangeTiming {
        durations: samples.iter().map(|s| s.duration_ticks).collect(),
        texts: texts
            .into_iter()
            .map(|t| (t.text, t.duration_ticks, t.frames))
            .collect(),
        duration_ns,
        start_wall_ns: samples.first().map_or(0, |s| s.wall_ns),
    }
}

/// A camera id as it may appear in a file name (as in
/// [`Mp4Export::file_name`]).
pub fn safe_file_part(camera: &str) -> String {
    camera
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// 64-bit FNV-1a: small, stable across builds and platforms.
struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Fnv64 {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Hashes everything the bytes depend on: layout version, options, camera,
/// and for every frame its segment, number, place, size, flags and times.
fn etag(range: &FrameRange, options: ExportOptions, len: u64) -> String {
    let mut h = Fnv64::new();
    h.write(LAYOUT_VERSION.as_bytes());
    h.write(&[options.time_track as u8]);
    h.write(range.camera.as_bytes());
    h.write(&[0]);
    for skip in &range.skipped {
        h.write(skip.to_string().as_bytes());
        h.write(&skip.wall_ns.to_le_bytes());
    }
    for seg in &range.segments {
        h.write(seg.entry.name.as_bytes());
        let s = &seg.reader.stream;
        h.write(&s.width.to_le_bytes());
        h.write(&s.height.to_le_bytes());
        h.write(&s.fps_milli.to_le_bytes());
        h.write(&s.boot_id);
        for f in seg.entries() {
            h.write(&f.seq.to_le_bytes());
            h.write(&f.offset.to_le_bytes());
            h.write(&f.payload_len.to_le_bytes());
            h.write(&[f.flags]);
            h.write(&f.mono_ns.to_le_bytes());
            h.write(&f.wall_ns.to_le_bytes());
        }
    }
    format!("\"{:016x}-{len:x}\"", h.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(wall_s: f64, duration_ticks: u32, gap_ticks: u32) -> Sample {
        Sample {
            wall_ns: (wall_s * 1e9) as i64,
            segment_flags: 0,
            size: 1,
            duration_ticks,
            gap_ticks,
        }
    }

    #[test]
    fn text_changes_with_the_wall_second_and_marks_gaps() {
        let samples = vec![
            sample(100.0, 3000, 0),
            sample(100.5, 3000, 0),
            sample(101.0, 3000, 0),
            sample(101.5, 93000, 90000), // held through a 1 s gap
            sample(103.0, 3000, 0),
        ];
        let t = text_samples(&samples);
        let texts: Vec<_> = t.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "1970-01-01 00:01:40 UTC",
                "1970-01-01 00:01:41 UTC",
                "1970-01-01 00:01:41 UTC, then nothing recorded for 1 s",
                "1970-01-01 00:01:43 UTC",
            ]
        );
        let durations: Vec<_> = t.iter().map(|t| t.duration_ticks).collect();
        assert_eq!(durations, vec![6000, 6000, 90000, 3000]);
        // The text track lasts exactly as long as the video.
        let video: u32 = samples.iter().map(|s| s.duration_ticks).sum();
        assert_eq!(durations.iter().sum::<u32>(), video);
        assert_eq!(t[2].frames, 4..4);
    }

    #[test]
    fn ticks_round_to_nearest() {
        assert_eq!(ticks(33_333_333), 3000);
        assert_eq!(ticks(1_000_000_000), 90_000);
        assert_eq!(ticks(5_555), 0);
        assert_eq!(ticks(5_556), 1);
    }

    #[test]
    fn gaps_read_well() {
        assert_eq!(human_seconds(30), "30 s");
        assert_eq!(human_seconds(600), "10 min 0 s");
        assert_eq!(human_seconds(7200), "2 h 0 min");
    }
}
