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
//!   most [`READ_BATCH_BYTES`] (or one frame record, if larger), one
//!   segment's index, and the header, whose sample tables are the only
//!   per-frame memory: at most 12 bytes a frame (docs/export.md §10).
//!   Segments are read one at a time while the header is built, and their
//!   indexes read again from the files held open while streaming.
//!
//! `docs/export.md` explains the box layout, durations and gaps.

pub mod gpx;
pub mod mp4;
pub mod timeline;
pub mod track;

use std::io::Write;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::clock::{format_compact, format_rfc3339, format_rfc3339_ms};
use crate::config::SpeedUnit;
use crate::store::query::{FrameRange, SegmentRuns, SkippedFrames};
use crate::store::reader::{HeldSegment, SegmentReader};
use crate::store::{Store, StoreError};

use mp4::{Chunk, FileHeader, SampleTable, Track, TrackMedia};
use timeline::{note_skipped, FrameIn, TimeText, TimeTexts, TimedFrame, Timeline};

/// Most bytes read from a segment in one positional read while streaming.
pub const READ_BATCH_BYTES: usize = 2 << 20;
/// Most frames in one export: about 37 hours at 30 fps, and at most 48 MB
/// of sample tables. Keeps every table far below 4 GiB. Counted from the
/// segment indexes, one at a time, before any frame is read.
pub const EXPORT_FRAMES_MAX: usize = 4_000_000;
/// Chunk offsets above this are written as 64-bit (`co64`).
const CHUNK_OFFSET_LIMIT_32: u64 = u32::MAX as u64;
/// Bumped whenever the bytes produced for the same frames change, so that
/// entity tags never match across layouts.
const LAYOUT_VERSION: &str = "dashvault-mp4-1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    /// Add a text track with the capture time (UTC), once per second of
    /// footage, that players can show as subtitles; with the GPS speed and
    /// position where they were recorded.
    pub time_track: bool,
    /// The unit of the text track's speeds.
    pub speed_unit: SpeedUnit,
}

impl Default for ExportOptions {
    fn default() -> ExportOptions {
        ExportOptions {
            time_track: true,
            speed_unit: SpeedUnit::default(),
        }
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
        "no GPS positions of camera '{camera}' between {} and {}",
        format_rfc3339(*from),
        format_rfc3339(*to)
    )]
    NoPositions { camera: String, from: i64, to: i64 },
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
#[derive(Clone, Copy, Debug)]
enum Part {
    /// `ftyp`, `moov` and the `mdat` header.
    Header,
    /// One text sample (`text_offsets[n]..text_offsets[n + 1]` of
    /// `text_bytes`).
    Text(u32),
    /// `count` consecutive frames of one held segment, from its frame
    /// `first`.
    Frames {
        segment: u32,
        first: u32,
        count: u32,
    },
}

/// A stretch of the file; it runs until the next one starts. 24 bytes, one
/// or two a second of footage.
#[derive(Clone, Copy, Debug)]
struct Piece {
    /// Offset in the export.
    start: u64,
    part: Part,
}

/// An `.mp4` of stored footage, ready to be written in whole or in ranges.
pub struct Mp4Export {
    store: Store,
    camera: String,
    from_ns: i64,
    to_ns: i64,
    /// The segments the frames come from, open, their indexes let go.
    segments: Vec<HeldSegment>,
    /// The index last read again while streaming.
    current: Mutex<Option<(u32, Arc<SegmentReader>)>>,
    header: FileHeader,
    text_bytes: Vec<u8>,
    text_offsets: Vec<u32>,
    pieces: Vec<Piece>,
    len: u64,
    duration_ns: u64,
    frame_count: usize,
    first_last_wall_ns: (i64, i64),
    problems: Vec<String>,
    skipped: Vec<SkippedFrames>,
    etag: String,
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
        // built, so the file never promises a frame it cannot deliver. The
        // frames are counted before any is checked: a year-long range
        // costs one index at a time.
        let mut builder = Builder::new(camera, options);
        let walk =
            store.walk_intact_range(camera, from_ns, to_ns, EXPORT_FRAMES_MAX, &mut |seg| {
                builder.add_segment(seg);
                true
            })?;
        if walk.over_limit || builder.frames > EXPORT_FRAMES_MAX {
            return Err(ExportError::TooManyFrames {
                camera: camera.to_string(),
                frames: walk.frames_found.max(builder.frames),
                max: EXPORT_FRAMES_MAX,
            });
        }
        if builder.frames == 0 {
            return Err(ExportError::NoFootage {
                camera: camera.to_string(),
                from: from_ns,
                to: to_ns,
            });
        }
        let built = builder.finish(&walk.skipped, limit);
        Ok(Mp4Export {
            store: store.clone(),
            camera: camera.to_string(),
            from_ns,
            to_ns,
            segments: built.segments,
            current: Mutex::new(None),
            header: built.header,
            text_bytes: built.text_bytes,
            text_offsets: built.text_offsets,
            pieces: built.pieces,
            len: built.len,
            duration_ns: built.duration_ns,
            frame_count: built.frames,
            first_last_wall_ns: built.first_last_wall_ns,
            problems: walk.problems,
            skipped: walk.skipped,
            etag: built.etag,
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
        range_file_name(&self.camera, self.from_ns, self.to_ns, ".mp4")
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
        self.first_last_wall_ns
    }

    /// One line per segment skipped because it could not be read.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Frames left out: damaged, or missing inside a segment. The text
    /// track names each span where it happens.
    pub fn skipped(&self) -> &[SkippedFrames] {
        &self.skipped
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
        // The piece holding `start` (the first starts at 0).
        let first = self.pieces.partition_point(|p| p.start <= start).max(1) - 1;
        for (n, piece) in self.pieces.iter().enumerate().skip(first) {
            if piece.start >= end {
                break;
            }
            let piece_end = self.pieces.get(n + 1).map_or(self.len, |p| p.start);
            let lo = start.max(piece.start) - piece.start;
            let hi = end.min(piece_end) - piece.start;
            match piece.part {
                Part::Header => self.header.write_range(lo, hi, out)?,
                Part::Text(t) => {
                    let at = self.text_offsets[t as usize] as usize;
                    out.write_all(&self.text_bytes[at + lo as usize..at + hi as usize])?
                }
                Part::Frames {
                    segment,
                    first,
                    count,
                } => {
                    let frames = first as usize..(first + count) as usize;
                    self.write_frames(segment, frames, lo, hi, &mut buf, out)?
                }
            }
        }
        Ok(())
    }

    /// The index of held segment `segment`, read again (the last one is
    /// kept: a download walks the segments in order).
    fn reader(&self, segment: u32) -> Result<Arc<SegmentReader>, ExportError> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, reader)) = current.as_ref() {
            if *s == segment {
                return Ok(reader.clone());
            }
        }
        let reader = Arc::new(self.store.reopen_held(&self.segments[segment as usize])?);
        *current = Some((segment, reader.clone()));
        Ok(reader)
    }

    /// Writes bytes `[lo, hi)` of the concatenated payloads of `frames`.
    fn write_frames(
        &self,
        segment: u32,
        frames: Range<usize>,
        lo: u64,
        hi: u64,
        buf: &mut Vec<u8>,
        out: &mut dyn Write,
    ) -> Result<(), ExportError> {
        let reader = self.reader(segment)?;
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

/// The frames of a run of one segment being gathered into a chunk.
struct OpenChunk {
    segment: u32,
    first: u32,
    count: u32,
    bytes: u64,
}

/// Builds an export segment by segment: the sample tables, the texts and
/// the layout of `mdat`, one stretch per text sample: its text (if there is
/// a time track), then its frames, one chunk per run of one segment.
/// Players reading in order thus find each second's text next to its
/// pictures.
struct Builder {
    options: ExportOptions,
    timeline: Timeline,
    texts: TimeTexts,
    video: SampleTable,
    video_chunks: Vec<Chunk>,
    chunk: Option<OpenChunk>,
    /// The body's stretches in order, each `start` holding its length
    /// until [`finish`](Builder::finish) sets the offsets.
    pieces: Vec<Piece>,
    picture_sizes: Vec<(u32, u32)>,
    /// Per held segment, its sample description (1-based).
    descriptions: Vec<u32>,
    segments: Vec<HeldSegment>,
    /// Frames added (the last one is placed by `finish`).
    frames: usize,
    first_last_wall_ns: Option<(i64, i64)>,
    hash: Fnv64,
}

/// What a [`Builder`] made.
struct Built {
    segments: Vec<HeldSegment>,
    header: FileHeader,
    text_bytes: Vec<u8>,
    text_offsets: Vec<u32>,
    pieces: Vec<Piece>,
    len: u64,
    duration_ns: u64,
    frames: usize,
    first_last_wall_ns: (i64, i64),
    etag: String,
}

impl Builder {
    fn new(camera: &str, options: ExportOptions) -> Builder {
        // Everything the bytes depend on goes in the hash: layout version,
        // options, camera, and for every frame its segment, number, place,
        // size, flags and times.
        let mut hash = Fnv64::new();
        hash.write(LAYOUT_VERSION.as_bytes());
        hash.write(&[options.time_track as u8]);
        hash.write(camera.as_bytes());
        hash.write(&[0]);
        Builder {
            options,
            timeline: Timeline::default(),
            texts: TimeTexts::in_unit(options.speed_unit),
            video: SampleTable::default(),
            video_chunks: Vec::new(),
            chunk: None,
            pieces: Vec::new(),
            picture_sizes: Vec::new(),
            descriptions: Vec::new(),
            segments: Vec::new(),
            frames: 0,
            first_last_wall_ns: None,
            hash,
        }
    }

    fn add_segment(&mut self, seg: SegmentRuns) {
        if seg.runs.is_empty() {
            return; // every frame of it damaged
        }
        let number = self.segments.len() as u32;
        let stream = &seg.reader.stream;
        let size = (stream.width, stream.height);
        let description = match self.picture_sizes.iter().position(|s| *s == size) {
            Some(i) => i,
            None => {
                self.picture_sizes.push(size);
                self.picture_sizes.len() - 1
            }
        };
        self.descriptions.push(description as u32 + 1);
        self.hash.write(seg.entry.name.as_bytes());
        self.hash.write(&stream.width.to_le_bytes());
        self.hash.write(&stream.height.to_le_bytes());
        self.hash.write(&stream.fps_milli.to_le_bytes());
        self.hash.write(&stream.boot_id);
        self.texts.add_positions(&seg.reader.positions);
        for run in &seg.runs {
            for i in run.clone() {
                let f = &seg.reader.frames[i];
                self.hash.write(&f.seq.to_le_bytes());
                self.hash.write(&f.offset.to_le_bytes());
                self.hash.write(&f.payload_len.to_le_bytes());
                self.hash.write(&[f.flags]);
                self.hash.write(&f.mono_ns.to_le_bytes());
                self.hash.write(&f.wall_ns.to_le_bytes());
                self.frames += 1;
                let placed = self.timeline.push(FrameIn {
                    segment: number,
                    // Segment indexes are far below 2^32 entries.
                    index: i as u32,
                    entry: f,
                    stream,
                });
                if let Some(t) = placed {
                    self.place(t);
                }
            }
        }
        self.segments.push(seg.reader.hold());
    }

    /// Puts a frame, its duration known, in the tables and the layout.
    fn place(&mut self, f: TimedFrame) {
        self.video.push(f.duration_ticks, f.size);
        self.first_last_wall_ns = Some(match self.first_last_wall_ns {
            Some((first, _)) => (first, f.wall_ns),
            None => (f.wall_ns, f.wall_ns),
        });
        let begun = self.texts.push(&f);
        if let Some(t) = begun.with {
            self.close_chunk();
            self.text_piece(t);
        }
        match &mut self.chunk {
            Some(c) if c.segment == f.segment && c.first + c.count == f.index => {
                c.count += 1;
                c.bytes += f.size as u64;
            }
            _ => {
                self.close_chunk();
                self.chunk = Some(OpenChunk {
                    segment: f.segment,
                    first: f.index,
                    count: 1,
                    bytes: f.size as u64,
                });
            }
        }
        if let Some(t) = begun.after {
            self.close_chunk();
            self.text_piece(t);
        }
    }

    fn text_piece(&mut self, text: usize) {
        if self.options.time_track {
            self.pieces.push(Piece {
                start: 0, // its length is known once its text is
                part: Part::Text(text as u32),
            });
        }
    }

    fn close_chunk(&mut self) {
        if let Some(c) = self.chunk.take() {
            self.video_chunks.push(Chunk {
                samples: c.count,
                description: self.descriptions[c.segment as usize],
                body_offset: 0, // set in finish()
            });
            self.pieces.push(Piece {
                start: c.bytes,
                part: Part::Frames {
                    segment: c.segment,
                    first: c.first,
                    count: c.count,
                },
            });
        }
    }

    fn finish(mut self, skipped: &[SkippedFrames], chunk_offset_limit: u64) -> Built {
        if let Some(t) = self.timeline.finish() {
            self.place(t);
        }
        self.texts.finish();
        self.close_chunk();
        let mut texts: Vec<TimeText> = std::mem::take(&mut self.texts.texts);
        note_skipped(&mut texts, skipped);
        for skip in skipped {
            self.hash.write(skip.to_string().as_bytes());
            self.hash.write(&skip.wall_ns.to_le_bytes());
        }

        let (width, height) = self.picture_sizes.first().copied().unwrap_or((0, 0));
        let mut text_bytes = Vec::new();
        let mut text_offsets = Vec::new();
        let mut text_table = SampleTable::default();
        if self.options.time_track {
            for t in &texts {
                let sample = mp4::text_sample(&t.text());
                text_offsets.push(text_bytes.len() as u32);
                text_bytes.extend_from_slice(&sample);
                text_table.push(t.duration_ticks, sample.len() as u32);
            }
            text_offsets.push(text_bytes.len() as u32);
        }
        drop(texts);
        // The texts carry positions too, which the frames do not tell.
        self.hash.write(&text_bytes);

        // Lengths to offsets in the body, and each chunk's place.
        let mut text_chunks = Vec::new();
        let mut video_chunk = 0;
        let mut at = 0u64;
        for piece in &mut self.pieces {
            let len = match piece.part {
                Part::Text(t) => {
                    text_chunks.push(Chunk {
                        samples: 1,
                        description: 1,
                        body_offset: at,
                    });
                    (text_offsets[t as usize + 1] - text_offsets[t as usize]) as u64
                }
                Part::Frames { .. } => {
                    self.video_chunks[video_chunk].body_offset = at;
                    video_chunk += 1;
                    piece.start
                }
                Part::Header => 0,
            };
            piece.start = at;
            at += len;
        }
        let body_len = at;

        let mut tracks = vec![Track {
            id: 1,
            media: TrackMedia::Jpeg {
                sizes: self.picture_sizes,
            },
            samples: self.video,
            chunks: self.video_chunks,
        }];
        if self.options.time_track {
            tracks.push(Track {
                id: 2,
                media: TrackMedia::Text { width, height },
                samples: text_table,
                chunks: text_chunks,
            });
        }
        let first_last_wall_ns = self.first_last_wall_ns.unwrap_or((0, 0));
        let header = FileHeader::new(tracks, first_last_wall_ns.0, body_len, chunk_offset_limit);
        let header_len = header.len();
        for piece in &mut self.pieces {
            piece.start += header_len;
        }
        self.pieces.insert(
            0,
            Piece {
                start: 0,
                part: Part::Header,
            },
        );
        self.pieces.shrink_to_fit();
        let len = header_len + body_len;
        Built {
            segments: self.segments,
            header,
            text_bytes,
            text_offsets,
            pieces: self.pieces,
            len,
            duration_ns: self.timeline.duration_ns(),
            frames: self.frames,
            first_last_wall_ns,
            etag: format!("\"{:016x}-{len:x}\"", self.hash.0),
        }
    }
}

/// The timing an export of `range` gives its frames, for a file built
/// elsewhere from the same frames (the share clip): each frame's duration
/// in ticks of [`mp4::TIMESCALE`], and the time track's samples.
pub struct RangeTiming {
    pub durations: Vec<u32>,
    /// Text, duration in ticks, and the frames it is shown over (indexes
    /// into `durations`; empty over a gap).
    pub texts: Vec<(String, u32, Range<usize>)>,
    pub duration_ns: u64,
    pub start_wall_ns: i64,
}

pub fn range_timing(range: &FrameRange, speed_unit: SpeedUnit) -> RangeTiming {
    let mut timeline = Timeline::default();
    let mut texts = TimeTexts::in_unit(speed_unit);
    let mut durations = Vec::with_capacity(range.frame_count());
    let mut start_wall_ns = None;
    let mut place = |f: TimedFrame, texts: &mut TimeTexts| {
        start_wall_ns.get_or_insert(f.wall_ns);
        durations.push(f.duration_ticks);
        texts.push(&f);
    };
    let mut positions_of: Option<&Arc<SegmentReader>> = None;
    for seg in &range.segments {
        // A segment's runs share its reader, and its positions.
        if !positions_of.is_some_and(|r| Arc::ptr_eq(r, &seg.reader)) {
            texts.add_positions(&seg.reader.positions);
            positions_of = Some(&seg.reader);
        }
        for i in seg.frames.clone() {
            let placed = timeline.push(FrameIn {
                segment: 0,
                index: i as u32,
                entry: &seg.reader.frames[i],
                stream: &seg.reader.stream,
            });
            if let Some(f) = placed {
                place(f, &mut texts);
            }
        }
    }
    if let Some(f) = timeline.finish() {
        place(f, &mut texts);
    }
    texts.finish();
    let mut texts = texts.texts;
    note_skipped(&mut texts, &range.skipped);
    RangeTiming {
        durations,
        texts: texts
            .into_iter()
            .map(|t| {
                let frames = t.frames.start as usize..t.frames.end as usize;
                (t.text(), t.duration_ticks, frames)
            })
            .collect(),
        duration_ns: timeline.duration_ns(),
        start_wall_ns: start_wall_ns.unwrap_or(0),
    }
}

/// The name of a file of `camera`'s footage over `[from_ns, to_ns)`:
/// `<camera>_<from>_<to><rest>`, times in compact UTC, to the millisecond
/// when a bound is not a whole second: `front_20261120T100000Z_20261120T100500Z.mp4`.
pub fn range_file_name(camera: &str, from_ns: i64, to_ns: i64, rest: &str) -> String {
    format!(
        "{}_{}_{}{rest}",
        safe_file_part(camera),
        compact_time(from_ns),
        compact_time(to_ns)
    )
}

fn compact_time(wall_ns: i64) -> String {
    if wall_ns % 1_000_000_000 == 0 {
        format_compact(wall_ns)
    } else {
        format_rfc3339_ms(wall_ns).replace(['-', ':'], "")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_name_the_range_to_the_millisecond_when_needed() {
        let at = 1_795_168_800_000_000_000; // 2026-11-20T10:00:00Z
        assert_eq!(
            range_file_name("front cam", at, at + 300_000_000_000, ".mp4"),
            "front_cam_20261120T100000Z_20261120T100500Z.mp4"
        );
        assert_eq!(
            range_file_name("front", at + 250_000_000, at + 1_000_000_000, ".gpx"),
            "front_20261120T100000.250Z_20261120T100001Z.gpx"
        );
    }

    #[test]
    fn camera_names_become_safe_file_names() {
        assert_eq!(safe_file_part("front cam/2"), "front_cam_2");
        assert_eq!(safe_file_part("rear-1_x"), "rear-1_x");
    }
}
