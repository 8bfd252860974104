//! Reading segments: the index from a valid trailer (two small reads),
//! else a scan that checks every record's CRCs. A damaged record costs that
//! record: the scan steps over it to the next record that checks, and
//! reports the bytes it skipped. Every frame handed out has had both CRCs
//! checked, so nothing torn or corrupt is ever served as video.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::format::{
    decode_index_contents, jpeg_dimensions, Codec, IndexEntry, PositionEntry, PositionSample,
    RecordHeader, RecordKind, StreamHeader, Trailer, HEADER_LEN, INDEX_FLAG_RECOVERED,
    INDEX_SKIP_MAX, PAYLOAD_BYTES_MAX, POSITION_PAYLOAD_LEN, RECORD_MAGIC, TRAILER_LEN,
};
use super::io::{SegmentFile, StorageIo};
use super::StoreError;

/// Bytes read per call while scanning.
const SCAN_CHUNK_BYTES: usize = 4 << 20;

/// Bytes of a segment that hold no valid record, between valid ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hole {
    pub offset: u64,
    pub len: u64,
    /// Why the record at `offset` was refused.
    pub reason: String,
}

/// What a scan from the start of a segment found.
#[derive(Clone, Debug, Default)]
pub struct ScanResult {
    /// The stream header at offset 0, if it checks.
    pub stream: Option<StreamHeader>,
    /// Why offset 0 holds no valid stream header, when it does not.
    pub stream_problem: Option<String>,
    pub frames: Vec<IndexEntry>,
    /// Position records that check, in file order.
    pub positions: Vec<PositionEntry>,
    /// Damaged stretches with valid records after them, in file order.
    pub holes: Vec<Hole>,
    /// End of the last valid record (frame, position, padding or stream
    /// header).
    pub valid_end: u64,
    pub file_len: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub stop: Option<String>,
    /// Offset of a valid index record the scan reached (the segment was
    /// being closed, or its trailer is gone).
    pub index_offset: Option<u64>,
    /// Whether every byte after `valid_end` is zero (a preallocated tail).
    pub tail_is_zero: bool,
}

impl ScanResult {
    pub fn reached_index(&self) -> bool {
        self.index_offset.is_some()
    }

    /// Bytes in holes.
    pub fn hole_bytes(&self) -> u64 {
        self.holes.iter().map(|h| h.len).sum()
    }
}

/// What to do with a record that checks.
enum Step {
    Next,
    Index,
    Refuse(String),
}

/// Walks records from offset 0, checking every CRC. A record that fails is
/// stepped over: the scan looks for the next offset holding a record that
/// checks (and, for a frame, whose number follows the last one kept) and
/// reports the bytes between as a [`Hole`]. Only when nothing valid follows
/// does the scan stop there.
pub fn scan(file: &dyn SegmentFile, path: &Path) -> Result<ScanResult, StoreError> {
    let file_len = file
        .file_len()
        .map_err(|e| StoreError::io(path, "reading size", e))?;
    let mut out = ScanResult {
        file_len,
        ..ScanResult::default()
    };
    let mut window = Window::new(file, path, file_len);
    let mut pos = 0u64;
    let mut last = Last::default();
    while pos < file_len {
        let refused = match window.record_at(pos)? {
            Err(reason) => reason,
            Ok((header, payload)) => match accept(&header, payload, pos, last, &mut out) {
                Step::Next => {
                    match header.kind {
                        RecordKind::Frame => last.frame = Some(header.seq),
                        RecordKind::Position => last.position = Some(header.seq),
                        _ => {}
                    }
                    pos += header.record_len();
                    out.valid_end = pos;
                    continue;
                }
                Step::Index => {
                    out.index_offset = Some(pos);
                    break;
                }
                Step::Refuse(reason) => reason,
            },
        };
        if pos == 0 && out.stream_problem.is_none() {
            out.stream_problem = Some(refused.clone());
        }
        match window.next_record(pos + 1, last)? {
            Some(next) => {
                out.holes.push(Hole {
                    offset: pos,
                    len: next - pos,
                    reason: refused,
                });
                pos = next;
            }
            None => {
                out.stop = Some(format!("byte {pos}: {refused}"));
                break;
            }
        }
    }
    // Holes before the first valid record are where the stream header was;
    // they stay holes. The tail after the last valid record is not a hole.
    out.tail_is_zero = tail_is_zero(file, path, out.valid_end, file_len)?;
    Ok(out)
}

/// The numbers of the last frame and the last position the scan kept:
/// a record of either kind is taken only with a number above its kind's
/// last one. The two counters are apart, so positions never touch frame
/// numbering.
#[derive(Clone, Copy, Debug, Default)]
struct Last {
    frame: Option<u64>,
    position: Option<u64>,
}

impl Last {
    /// Whether a record numbered `seq` may follow a last one numbered `last`.
    fn follows(last: Option<u64>, seq: u64) -> bool {
        last.is_none_or(|l| seq > l && seq - l - 1 <= INDEX_SKIP_MAX)
    }
}

/// Takes a record that checks into `out`, or says why it does not belong.
fn accept(
    header: &RecordHeader,
    payload: &[u8],
    pos: u64,
    last: Last,
    out: &mut ScanResult,
) -> Step {
    let last_seq = last.frame;
    match header.kind {
        RecordKind::StreamHeader if pos == 0 => match StreamHeader::decode(payload) {
            Ok(s) => {
                out.stream = Some(s);
                Step::Next
            }
            Err(e) => Step::Refuse(e.to_string()),
        },
        RecordKind::StreamHeader => Step::Refuse("a second stream header".into()),
        RecordKind::Frame => {
            if let Some(last) = last_seq {
                if header.seq <= last || header.seq - last - 1 > INDEX_SKIP_MAX {
                    return Step::Refuse(format!(
                        "frame number {} does not follow {last}",
                        header.seq
                    ));
                }
            }
            if pos == 0 {
                out.stream_problem = Some("first record is a frame, not a stream header".into());
            }
            out.frames.push(IndexEntry {
                offset: pos,
                payload_len: header.payload_len,
                flags: header.flags,
                seq: header.seq,
                mono_ns: header.mono_ns,
                wall_ns: header.wall_ns,
            });
            Step::Next
        }
        RecordKind::Position => {
            if !Last::follows(last.position, header.seq) {
                return Step::Refuse(format!(
                    "position number {} does not follow {}",
                    header.seq,
                    last.position.unwrap_or(0)
                ));
            }
            match PositionSample::decode_payload(payload, header.time(), header.flags) {
                Ok(sample) => {
                    if pos == 0 {
                        out.stream_problem =
                            Some("first record is a position, not a stream header".into());
                    }
                    out.positions.push(PositionEntry {
                        offset: pos,
                        sample,
                    });
                    Step::Next
                }
                Err(e) => Step::Refuse(e.to_string()),
            }
        }
        RecordKind::Padding => Step::Next,
        RecordKind::Index if pos == 0 => Step::Refuse("an index record at offset 0".into()),
        RecordKind::Index => Step::Index,
    }
}

/// A read-ahead window over a segment file.
struct Window<'a> {
    file: &'a dyn SegmentFile,
    path: &'a Path,
    file_len: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    start: u64,
}

impl<'a> Window<'a> {
    fn new(file: &'a dyn SegmentFile, path: &'a Path, file_len: u64) -> Window<'a> {
        Window {
            file,
            path,
            file_len,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// `len` bytes at `pos` (which must lie within the file).
    fn span(&mut self, pos: u64, len: usize) -> Result<&[u8], StoreError> {
        let have = pos >= self.start && pos + len as u64 <= self.start + self.buf.len() as u64;
        if !have {
            let want = (len.max(SCAN_CHUNK_BYTES) as u64).min(self.file_len - pos) as usize;
            self.buf.resize(want, 0);
            self.file
                .read_exact_at(&mut self.buf, pos)
                .map_err(|e| StoreError::io(self.path, "reading records", e))?;
            self.start = pos;
        }
        let at = (pos - self.start) as usize;
        Ok(&self.buf[at..at + len])
    }

    /// The record at `pos` if its header and payload check, else why not.
    #[allow(clippy::type_complexity)]
    fn record_at(&mut self, pos: u64) -> Result<Result<(RecordHeader, &[u8]), String>, StoreError> {
        if pos + HEADER_LEN as u64 > self.file_len {
            return Ok(Err(format!(
                "{} stray bytes at the end",
                self.file_len - pos
            )));
        }
        let header = match RecordHeader::decode(self.span(pos, HEADER_LEN)?) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if pos + header.record_len() > self.file_len {
            return Ok(Err("record runs past the end of the file".into()));
        }
        let payload = self.span(pos + HEADER_LEN as u64, header.payload_len as usize)?;
        if let Err(e) = header.check_payload(payload) {
            return Ok(Err(e.to_string()));
        }
        Ok(Ok((header, payload)))
    }

    /// The first offset at or after `from` holding a record that checks and
    /// could follow the last records kept: a frame or a position with a
    /// higher number than the last of its kind, padding, or an index.
    fn next_record(&mut self, from: u64, last: Last) -> Result<Option<u64>, StoreError> {
        let mut pos = from;
        while pos + HEADER_LEN as u64 <= self.file_len {
            // Search what is already read first; read ahead only past it.
            let buffered_end = self.start + self.buf.len() as u64;
            let len = if pos >= self.start && pos + RECORD_MAGIC.len() as u64 <= buffered_end {
                (buffered_end - pos) as usize
            } else {
                ((self.file_len - pos) as usize).min(SCAN_CHUNK_BYTES)
            };
            let found = self
                .span(pos, len)?
                .windows(RECORD_MAGIC.len())
                .position(|w| w == RECORD_MAGIC);
            let Some(k) = found else {
                // The last three bytes may start a magic that the next chunk completes.
                pos += (len as u64)
                    .saturating_sub(RECORD_MAGIC.len() as u64 - 1)
                    .max(1);
                continue;
            };
            let candidate = pos + k as u64;
            if let Ok((h, payload)) = self.record_at(candidate)? {
                let fits = match h.kind {
                    RecordKind::Frame => Last::follows(last.frame, h.seq),
                    RecordKind::Position => {
                        Last::follows(last.position, h.seq)
                            && PositionSample::decode_payload(payload, h.time(), h.flags).is_ok()
                    }
                    RecordKind::Padding | RecordKind::Index => true,
                    RecordKind::StreamHeader => false,
                };
                if fits {
                    return Ok(Some(candidate));
                }
            }
            pos = candidate + 1;
        }
        Ok(None)
    }
}

fn tail_is_zero(
    file: &dyn SegmentFile,
    path: &Path,
    from: u64,
    file_len: u64,
) -> Result<bool, StoreError> {
    let mut pos = from;
    let mut chunk = vec![0u8; 1 << 20];
    while pos < file_len {
        let n = ((file_len - pos) as usize).min(chunk.len());
        file.read_exact_at(&mut chunk[..n], pos)
            .map_err(|e| StoreError::io(path, "reading tail", e))?;
        if chunk[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}

/// A closed segment's trailer and the header of the index it points at:
/// enough to know the segment was closed and its next frame number, in two
/// small reads.
#[derive(Clone, Copy, Debug)]
pub struct TrailerSummary {
    pub trailer: Trailer,
    pub index_header: RecordHeader,
}

impl TrailerSummary {
    /// One past the last frame number (the index record's number field).
    pub fn next_frame_seq(&self) -> u64 {
        self.index_header.seq
    }
}

/// Reads the trailer at the end of the file and the index record header
/// it points to; `None` unless both check and agree with the file length.
pub fn read_trailer(
    file: &dyn SegmentFile,
    path: &Path,
) -> Result<Option<TrailerSummary>, StoreError> {
    let len = file
        .file_len()
        .map_err(|e| StoreError::io(path, "reading size", e))?;
    if len < (HEADER_LEN + TRAILER_LEN) as u64 {
        return Ok(None);
    }
    let mut tb = [0u8; TRAILER_LEN];
    file.read_exact_at(&mut tb, len - TRAILER_LEN as u64)
        .map_err(|e| StoreError::io(path, "reading trailer", e))?;
    let Ok(trailer) = Trailer::decode(&tb) else {
        return Ok(None);
    };
    let idx_end = trailer
        .index_offset
        .checked_add(trailer.index_record_len as u64);
    if idx_end != Some(len - TRAILER_LEN as u64) || (trailer.index_record_len as usize) < HEADER_LEN
    {
        return Ok(None);
    }
    let mut hb = [0u8; HEADER_LEN];
    file.read_exact_at(&mut hb, trailer.index_offset)
        .map_err(|e| StoreError::io(path, "reading index", e))?;
    match RecordHeader::decode(&hb) {
        Ok(h)
            if h.kind == RecordKind::Index && h.record_len() == trailer.index_record_len as u64 =>
        {
            Ok(Some(TrailerSummary {
                trailer,
                index_header: h,
            }))
        }
        _ => Ok(None),
    }
}

/// Where a reader's stream description came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamOrigin {
    /// The stream-header record at offset 0.
    Recorded,
    /// The copy kept in the index of a closed segment (one read fewer, and
    /// whole even when offset 0 is damaged).
    IndexCopy,
    /// Rebuilt: size from the first frame's JPEG, camera and number from the
    /// file's place, rate and boot unknown (or taken from a neighbour).
    Rebuilt,
}

/// A closed segment's index, read through its trailer.
#[derive(Clone, Debug)]
pub struct ClosedIndex {
    pub frames: Vec<IndexEntry>,
    /// The index's position table (empty in segments without positions).
    pub positions: Vec<PositionEntry>,
    /// The stream header at offset 0 if it checks, else the index's copy.
    pub stream: Option<(StreamHeader, StreamOrigin)>,
    pub trailer: Trailer,
    pub index_offset: u64,
    /// Closed by recovery after a cut (not by the writer).
    pub recovered: bool,
}

/// Reads and checks the trailer and the index it points to. The stream
/// header comes from the index's copy or, in segments closed before copies
/// were kept, from offset 0; a damaged stream header never makes a closed
/// segment unclosed.
pub fn read_closed_index(
    file: &dyn SegmentFile,
    path: &Path,
) -> Result<Option<ClosedIndex>, StoreError> {
    let Some(summary) = read_trailer(file, path)? else {
        return Ok(None);
    };
    let trailer = summary.trailer;
    let mut rec = vec![0u8; trailer.index_record_len as usize];
    file.read_exact_at(&mut rec, trailer.index_offset)
        .map_err(|e| StoreError::io(path, "reading index", e))?;
    let h = summary.index_header;
    if h.check_payload(&rec[HEADER_LEN..]).is_err() {
        return Ok(None);
    }
    let Ok(contents) = decode_index_contents(h.flags, &rec[HEADER_LEN..]) else {
        return Ok(None);
    };
    let (frames, positions) = (contents.frames, contents.positions);
    if frames.len() != trailer.frame_count as usize
        || !entries_fit(&frames, &positions, trailer.index_offset)
    {
        return Ok(None);
    }
    let stream = match contents.stream {
        Some(c) => Some((c, StreamOrigin::IndexCopy)),
        None => read_stream_header(file, path)?.map(|s| (s, StreamOrigin::Recorded)),
    };
    Ok(Some(ClosedIndex {
        frames,
        positions,
        stream,
        trailer,
        index_offset: trailer.index_offset,
        recovered: h.flags & INDEX_FLAG_RECOVERED != 0,
    }))
}

/// Whether index entries describe records that lie in order, one after
/// another, before the index, each no longer than a record may be: frames
/// among themselves, positions among themselves (each exactly a position
/// record long), and no position overlapping a frame. An index that says
/// otherwise is not believed (its CRC checked, but it was not written by
/// us); the segment is then scanned.
fn entries_fit(frames: &[IndexEntry], positions: &[PositionEntry], index_offset: u64) -> bool {
    let position_len = (HEADER_LEN + POSITION_PAYLOAD_LEN) as u64;
    let frame_spans = frames.iter().map(|f| {
        let len_ok = f.payload_len <= PAYLOAD_BYTES_MAX;
        (f.offset, len_ok, HEADER_LEN as u64 + f.payload_len as u64)
    });
    let position_spans = positions.iter().map(|p| (p.offset, true, position_len));
    if !spans_in_order(frame_spans.clone(), index_offset)
        || !spans_in_order(position_spans.clone(), index_offset)
    {
        return false;
    }
    if positions.is_empty() {
        return true;
    }
    // Each list is in order: merged by offset, they must not overlap.
    let mut merged: Vec<(u64, bool, u64)> = frame_spans.chain(position_spans).collect();
    merged.sort_unstable_by_key(|s| s.0);
    spans_in_order(merged.into_iter(), index_offset)
}

/// Whether `(offset, length ok, length)` spans lie one after another,
/// all ending before `end`.
fn spans_in_order(spans: impl Iterator<Item = (u64, bool, u64)>, end: u64) -> bool {
    // From 0: a segment whose stream header was lost may start with a frame.
    let mut next_free = 0u64;
    let mut spans = spans;
    spans.all(|(offset, len_ok, len)| {
        let span_end = offset.checked_add(len);
        let fits = len_ok && offset >= next_free && span_end.is_some_and(|e| e <= end);
        if let Some(e) = span_end {
            next_free = e;
        }
        fits
    })
}

/// The stream header at offset 0, if it checks.
pub fn read_stream_header(
    file: &dyn SegmentFile,
    path: &Path,
) -> Result<Option<StreamHeader>, StoreError> {
    let len = file
        .file_len()
        .map_err(|e| StoreError::io(path, "reading size", e))?;
    let mut hb = [0u8; HEADER_LEN];
    if len < HEADER_LEN as u64 {
        return Ok(None);
    }
    file.read_exact_at(&mut hb, 0)
        .map_err(|e| StoreError::io(path, "reading stream header", e))?;
    let Ok(sh) = RecordHeader::decode(&hb) else {
        return Ok(None);
    };
    if sh.kind != RecordKind::StreamHeader || sh.record_len() > len {
        return Ok(None);
    }
    let mut payload = vec![0u8; sh.payload_len as usize];
    file.read_exact_at(&mut payload, HEADER_LEN as u64)
        .map_err(|e| StoreError::io(path, "reading stream header", e))?;
    if sh.check_payload(&payload).is_err() {
        return Ok(None);
    }
    Ok(StreamHeader::decode(&payload).ok())
}

/// An opened segment: its stream description and frame index.
pub struct SegmentReader {
    pub path: PathBuf,
    pub stream: StreamHeader,
    pub stream_origin: StreamOrigin,
    pub frames: Vec<IndexEntry>,
    /// GPS positions, in the order they were received, with their reception
    /// times (wall times corrected by a clock anchor like the frames'): from
    /// the index's position table, or the position records a scan kept.
    pub positions: Vec<PositionSample>,
    /// Whether the index came from a valid trailer (false: it was scanned).
    pub closed: bool,
    /// Closed by recovery after a cut.
    pub recovered: bool,
    /// Damaged stretches the scan stepped over (scanned segments only).
    pub holes: Vec<Hole>,
    /// Wall times were corrected by a clock anchor (`store::anchor`).
    pub relabelled: bool,
    file: Arc<dyn SegmentFile>,
}

impl SegmentReader {
    pub fn open(io: &dyn StorageIo, path: &Path) -> Result<SegmentReader, StoreError> {
        let file: Arc<dyn SegmentFile> = io
            .open_read(path)
            .map_err(|e| StoreError::io(path, "opening segment", e))?
            .into();
        if let Some(closed) = read_closed_index(file.as_ref(), path)? {
            let (stream, stream_origin) = closed
                .stream
                .unwrap_or_else(|| (rebuilt_stream(path), StreamOrigin::Rebuilt));
            let mut reader = SegmentReader {
                path: path.to_path_buf(),
                stream,
                stream_origin,
                frames: closed.frames,
                positions: samples(closed.positions),
                closed: true,
                recovered: closed.recovered,
                holes: Vec::new(),
                relabelled: false,
                file,
            };
            reader.fill_rebuilt_size();
            return Ok(reader.anchored(io));
        }
        let scanned = scan(file.as_ref(), path)?;
        let (stream, stream_origin) = match scanned.stream {
            Some(s) => (s, StreamOrigin::Recorded),
            None if !scanned.frames.is_empty() => (rebuilt_stream(path), StreamOrigin::Rebuilt),
            None => {
                return Err(StoreError::Invalid {
                    path: path.to_path_buf(),
                    message: format!(
                        "no valid record ({})",
                        scanned.stop.unwrap_or_else(|| "empty file".into())
                    ),
                })
            }
        };
        let mut reader = SegmentReader {
            path: path.to_path_buf(),
            stream,
            stream_origin,
            frames: scanned.frames,
            positions: samples(scanned.positions),
            closed: false,
            recovered: false,
            holes: scanned.holes,
            relabelled: false,
            file,
        };
        reader.fill_rebuilt_size();
        Ok(reader.anchored(io))
    }
}

fn samples(positions: Vec<PositionEntry>) -> Vec<PositionSample> {
    positions.into_iter().map(|p| p.sample).collect()
}

/// A segment kept open to read its frames later, without its index in
/// memory: a closed segment's index (40 bytes a frame) is read again from
/// the file held open when it is needed, so a day of footage held for an
/// export costs its open files, not its indexes. A scanned segment (the
/// one being written) keeps its index: scanning again would read it whole.
/// Held open, a segment that retention deletes stays readable.
pub struct HeldSegment {
    pub path: PathBuf,
    pub stream: StreamHeader,
    stream_origin: StreamOrigin,
    recovered: bool,
    frame_count: usize,
    /// The index and positions of a scanned segment.
    kept: Option<(Vec<IndexEntry>, Vec<PositionSample>)>,
    file: Arc<dyn SegmentFile>,
}

impl SegmentReader {
    /// Lets the index go and keeps the file (see [`HeldSegment`]).
    pub fn hold(self) -> HeldSegment {
        HeldSegment {
            path: self.path,
            stream: self.stream,
            stream_origin: self.stream_origin,
            recovered: self.recovered,
            frame_count: self.frames.len(),
            kept: (!self.closed).then_some((self.frames, self.positions)),
            file: self.file,
        }
    }
}

impl HeldSegment {
    /// The reader again, with its index read from the held file. Wall times
    /// are as written: the store applies clock anchors.
    pub(super) fn reopen(&self) -> Result<SegmentReader, StoreError> {
        let changed = |message: String| StoreError::Invalid {
            path: self.path.clone(),
            message,
        };
        let (frames, positions, closed) = match &self.kept {
            Some((frames, positions)) => (frames.clone(), positions.clone(), false),
            None => match read_closed_index(self.file.as_ref(), &self.path)? {
                Some(index) => (index.frames, samples(index.positions), true),
                None => return Err(changed("its index no longer reads".into())),
            },
        };
        if frames.len() != self.frame_count {
            return Err(changed(format!(
                "its index changed from {} to {} frames while it was held",
                self.frame_count,
                frames.len()
            )));
        }
        Ok(SegmentReader {
            path: self.path.clone(),
            stream: self.stream.clone(),
            stream_origin: self.stream_origin,
            frames,
            positions,
            closed,
            recovered: self.recovered,
            holes: Vec::new(),
            relabelled: false,
            file: self.file.clone(),
        })
    }
}

/// The stream description of a segment whose stream header is lost: camera
/// and segment number from where the file is, JPEG at a size read from a
/// frame later, rate and boot unknown (zero).
pub fn rebuilt_stream(path: &Path) -> StreamHeader {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    StreamHeader {
        codec: Codec::Jpeg,
        width: 0,
        height: 0,
        fps_milli: 0,
        boot_id: [0; 16],
        segment_seq: super::parse_segment_name(name).unwrap_or(0),
        camera_id: path
            .parent()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string(),
    }
}

impl SegmentReader {
    /// A rebuilt stream header takes its picture size from the first frame
    /// that reads.
    fn fill_rebuilt_size(&mut self) {
        if self.stream_origin != StreamOrigin::Rebuilt {
            return;
        }
        for i in 0..self.frames.len().min(8) {
            if let Some((w, h)) = self.read_frame(i).ok().and_then(|j| jpeg_dimensions(&j)) {
                self.stream.width = w;
                self.stream.height = h;
                return;
            }
        }
    }

    /// Applies the clock anchor of the stream's boot again, after the boot
    /// of a rebuilt stream header was learned.
    pub(crate) fn reapply_anchor(&mut self, io: &dyn StorageIo) {
        if let Some(dir) = self.path.parent() {
            self.relabelled |= super::anchor::apply(
                io,
                dir,
                &self.stream.boot_id,
                &mut self.frames,
                &mut self.positions,
            );
        }
    }

    /// Applies the clock anchor of the recording boot, if the clock was set
    /// after these frames were recorded.
    pub(super) fn anchored(mut self, io: &dyn StorageIo) -> SegmentReader {
        if let Some(dir) = self.path.parent() {
            self.relabelled = super::anchor::apply(
                io,
                dir,
                &self.stream.boot_id,
                &mut self.frames,
                &mut self.positions,
            );
        }
        self
    }

    /// The JPEG of frame `i`, after checking both CRCs again.
    pub fn read_frame(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        let entry = self.frames.get(i).ok_or_else(|| StoreError::Invalid {
            path: self.path.clone(),
            message: format!("frame {i} out of range ({} frames)", self.frames.len()),
        })?;
        let mut rec = vec![0u8; HEADER_LEN + entry.payload_len as usize];
        self.file
            .read_exact_at(&mut rec, entry.offset)
            .map_err(|e| StoreError::io(&self.path, "reading frame", e))?;
        let bad = |source| StoreError::Format {
            path: self.path.clone(),
            offset: entry.offset,
            cause: source,
        };
        let h = RecordHeader::decode(&rec[..HEADER_LEN]).map_err(bad)?;
        if h.kind != RecordKind::Frame || h.payload_len != entry.payload_len || h.seq != entry.seq {
            return Err(StoreError::Invalid {
                path: self.path.clone(),
                message: format!(
                    "byte {}: index entry {i} (frame {}) does not point at its frame record",
                    entry.offset, entry.seq
                ),
            });
        }
        h.check_payload(&rec[HEADER_LEN..]).map_err(bad)?;
        rec.drain(..HEADER_LEN);
        Ok(rec)
    }

    /// Bytes from the start of the first record of `frames` to the end of
    /// the last: what [`read_run`](SegmentReader::read_run) reads for them.
    pub fn run_bytes(&self, frames: Range<usize>) -> u64 {
        match (
            self.frames.get(frames.start),
            frames.end.checked_sub(1).and_then(|l| self.frames.get(l)),
        ) {
            (Some(first), Some(last)) if frames.start < frames.end => {
                (last.offset + HEADER_LEN as u64 + last.payload_len as u64)
                    .saturating_sub(first.offset)
            }
            _ => 0,
        }
    }

    /// Reads the records of frames `frames` (consecutive indexes) with one
    /// positional read into `buf`, and checks each one as [`read_frame`]
    /// does, plus that its frame number matches the index. Nothing of the
    /// run is returned unless every frame in it checks.
    ///
    /// [`read_frame`]: SegmentReader::read_frame
    pub fn read_run<'a>(
        &'a self,
        frames: Range<usize>,
        buf: &'a mut Vec<u8>,
    ) -> Result<FrameRun<'a>, StoreError> {
        let entries = self
            .frames
            .get(frames.clone())
            .ok_or_else(|| StoreError::Invalid {
                path: self.path.clone(),
                message: format!(
                    "frames {}..{} out of range ({} frames)",
                    frames.start,
                    frames.end,
                    self.frames.len()
                ),
            })?;
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            buf.clear();
            return Ok(FrameRun {
                entries,
                base: 0,
                bytes: buf,
            });
        };
        let base = first.offset;
        let end = last.offset + HEADER_LEN as u64 + last.payload_len as u64;
        if end < base {
            return Err(StoreError::Invalid {
                path: self.path.clone(),
                message: format!(
                    "index entries {}..{} are out of order",
                    frames.start, frames.end
                ),
            });
        }
        buf.resize((end - base) as usize, 0);
        self.file
            .read_exact_at(buf, base)
            .map_err(|e| StoreError::io(&self.path, "reading frames", e))?;
        for (k, entry) in entries.iter().enumerate() {
            let bad = |source| StoreError::Format {
                path: self.path.clone(),
                offset: entry.offset,
                cause: source,
            };
            let at = entry
                .offset
                .checked_sub(base)
                .map(|a| a as usize)
                .filter(|a| a + HEADER_LEN + entry.payload_len as usize <= buf.len())
                .ok_or_else(|| StoreError::Invalid {
                    path: self.path.clone(),
                    message: format!(
                        "index entry {} (byte {}) is out of order",
                        frames.start + k,
                        entry.offset
                    ),
                })?;
            let h = RecordHeader::decode(&buf[at..at + HEADER_LEN]).map_err(bad)?;
            if h.kind != RecordKind::Frame
                || h.payload_len != entry.payload_len
                || h.seq != entry.seq
            {
                return Err(StoreError::Invalid {
                    path: self.path.clone(),
                    message: format!(
                        "byte {}: record does not match index entry {} (frame {})",
                        entry.offset,
                        frames.start + k,
                        entry.seq
                    ),
                });
            }
            let payload = &buf[at + HEADER_LEN..at + HEADER_LEN + entry.payload_len as usize];
            h.check_payload(payload).map_err(bad)?;
        }
        Ok(FrameRun {
            entries,
            base,
            bytes: buf,
        })
    }
}

impl SegmentReader {
    /// The frames that fail their checks (CRCs, record matching its index
    /// entry, or a read error), among those from `from` on, each with why.
    /// Every other frame reads. Reads in batches of at most `batch_bytes`,
    /// frame by frame only where a batch fails.
    pub fn damaged_frames(&self, from: usize, batch_bytes: u64) -> Vec<(usize, StoreError)> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        let mut i = from;
        while i < self.frames.len() {
            let mut j = i + 1;
            while j < self.frames.len() && self.run_bytes(i..j + 1) <= batch_bytes {
                j += 1;
            }
            if self.read_run(i..j, &mut buf).is_err() {
                out.extend((i..j).filter_map(|k| self.read_frame(k).err().map(|e| (k, e))));
            }
            i = j;
        }
        out
    }
}

/// Frames read by [`SegmentReader::read_run`], every CRC checked.
pub struct FrameRun<'a> {
    entries: &'a [IndexEntry],
    /// File offset of `bytes[0]`.
    base: u64,
    bytes: &'a [u8],
}

impl FrameRun<'_> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The JPEG of the `k`-th frame of the run.
    pub fn payload(&self, k: usize) -> &[u8] {
        let e = &self.entries[k];
        let at = (e.offset - self.base) as usize + HEADER_LEN;
        &self.bytes[at..at + e.payload_len as usize]
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::frame::CaptureTime;
    use crate::store::sim::SimIo;
    use crate::store::writer::{EncodedFrame, SegmentWriter, WriterSettings};
    use crate::store::FormatError;

    const INTERVAL_NS: u64 = 33_333_333;

    fn payload(n: u64) -> Vec<u8> {
        (0..100 + n as usize * 37)
            .map(|i| (i as u64 * 7 + n) as u8)
            .collect()
    }

    /// One closed segment of `frames` frames on simulated storage.
    fn segment(frames: u64) -> (SimIo, PathBuf) {
        let sim = SimIo::default();
        let io: Arc<dyn StorageIo> = Arc::new(sim.clone());
        let settings = WriterSettings {
            camera_id: "c".into(),
            camera_dir: PathBuf::from("/d/recordings/c"),
            fps_milli: 30_000,
            segment_length_ns: 60_000_000_000,
            first_segment_length_ns: 60_000_000_000,
            sync_interval_ns: 100_000_000,
            want_direct: true,
            boot_id: [1; 16],
        };
        let mut w =
            SegmentWriter::new(io, settings, Default::default(), Default::default()).unwrap();
        for n in 0..frames {
            let t = n * INTERVAL_NS;
            let frame = EncodedFrame {
                jpeg: payload(n).into(),
                width: 8,
                height: 8,
                captured: CaptureTime {
                    mono_ns: t,
                    wall_ns: t as i64,
                },
                flags: 0,
            };
            w.append(&frame, t).unwrap();
        }
        w.close().unwrap();
        let path = sim
            .live_files()
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "dvr"))
            .unwrap();
        (sim, path)
    }

    fn position(n: u64) -> PositionSample {
        PositionSample {
            received: CaptureTime {
                mono_ns: n * 100_000_000 + 7,
                wall_ns: 1_800_000_000_000_000_000 + n as i64,
            },
            flags: 0,
            utc_ns: Some(1_799_000_000_000_000_000 + n as i64 * 100_000_000),
            lat_lon_e7: Some((485_000_000 + n as i32, 23_000_000 - n as i32)),
            altitude_mm: Some(35_000),
            speed_mm_s: (n % 4 != 0).then_some(n as u32 * 100),
            heading_cdeg: Some((n * 100 % 36_000) as u16),
            quality: 3,
            satellites: Some(9),
            hdop_centi: Some(110),
        }
    }

    /// A closed segment of `frames` frames with a position appended after
    /// every third frame, and the positions written.
    fn segment_with_positions(frames: u64) -> (SimIo, PathBuf, Vec<PositionSample>) {
        let sim = SimIo::default();
        let io: Arc<dyn StorageIo> = Arc::new(sim.clone());
        let mut w =
            SegmentWriter::new(io, settings(), Default::default(), Default::default()).unwrap();
        let mut written = Vec::new();
        // One before the first frame waits for the segment.
        w.append_position(&position(0), 0).unwrap();
        written.push(position(0));
        assert_eq!(w.pending_positions(), 1);
        for n in 0..frames {
            let t = n * INTERVAL_NS;
            w.append(&frame(n, t), t).unwrap();
            if n % 3 == 2 {
                let p = position(written.len() as u64);
                w.append_position(&p, t).unwrap();
                written.push(p);
            }
        }
        assert_eq!(w.pending_positions(), 0);
        w.close().unwrap();
        let path = dvr(&sim);
        (sim, path, written)
    }

    fn settings() -> WriterSettings {
        WriterSettings {
            camera_id: "c".into(),
            camera_dir: PathBuf::from("/d/recordings/c"),
            fps_milli: 30_000,
            segment_length_ns: 60_000_000_000,
            first_segment_length_ns: 60_000_000_000,
            sync_interval_ns: 100_000_000,
            want_direct: true,
            boot_id: [1; 16],
        }
    }

    fn frame(n: u64, t: u64) -> EncodedFrame {
        EncodedFrame {
            jpeg: payload(n).into(),
            width: 8,
            height: 8,
            captured: CaptureTime {
                mono_ns: t,
                wall_ns: t as i64,
            },
            flags: 0,
        }
    }

    fn dvr(sim: &SimIo) -> PathBuf {
        sim.live_files()
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "dvr"))
            .unwrap()
    }

    #[test]
    fn positions_between_frames_read_from_the_index_and_from_a_scan() {
        let (sim, path, written) = segment_with_positions(40);
        assert_eq!(written.len(), 14);
        let closed = SegmentReader::open(&sim, &path).unwrap();
        assert!(closed.closed);
        assert_eq!(closed.positions, written);
        let seqs: Vec<u64> = closed.frames.iter().map(|f| f.seq).collect();
        assert_eq!(seqs, (0..40).collect::<Vec<_>>(), "frame numbers disturbed");
        for i in 0..40 {
            assert_eq!(closed.read_frame(i).unwrap(), payload(i as u64));
        }
        // Held and opened again: the same positions, from the index again.
        let held = closed.hold();
        assert_eq!(held.reopen().unwrap().positions, written);
        // Without its trailer the segment is scanned: the same again.
        let mut bytes = sim.contents(&path).unwrap();
        bytes.truncate(bytes.len() - TRAILER_LEN);
        sim.put_durable(&path, bytes);
        let scanned = SegmentReader::open(&sim, &path).unwrap();
        assert!(!scanned.closed && scanned.holes.is_empty());
        assert_eq!(scanned.positions, written);
        assert_eq!(
            scanned.frames,
            SegmentReader::open(&sim, &path).unwrap().frames
        );
        assert_eq!(scanned.frames.len(), 40);
        let held = scanned.hold();
        assert_eq!(held.reopen().unwrap().positions, written);
    }

    #[test]
    fn positions_without_a_segment_wait_for_the_next_one_up_to_a_limit() {
        use crate::store::writer::PENDING_POSITIONS_MAX;
        let sim = SimIo::default();
        let io: Arc<dyn StorageIo> = Arc::new(sim.clone());
        let mut w =
            SegmentWriter::new(io, settings(), Default::default(), Default::default()).unwrap();
        let extra = 100;
        for k in 0..(PENDING_POSITIONS_MAX + extra) as u64 {
            w.append_position(&position(k), 0).unwrap();
        }
        assert_eq!(w.pending_positions(), PENDING_POSITIONS_MAX);
        assert!(sim.live_files().is_empty(), "no segment without a frame");
        w.append(&frame(0, 0), 0).unwrap();
        w.close().unwrap();
        let r = SegmentReader::open(&sim, &dvr(&sim)).unwrap();
        // The oldest were dropped; the rest are there, in order.
        let want: Vec<PositionSample> = (extra as u64..(PENDING_POSITIONS_MAX + extra) as u64)
            .map(position)
            .collect();
        assert_eq!(r.positions, want);
        assert_eq!(r.frames.len(), 1);
    }

    #[test]
    fn a_segment_recorded_without_positions_has_the_index_it_always_had() {
        let (sim, path) = segment(12);
        let bytes = sim.contents(&path).unwrap();
        let file = sim.open_read(&path).unwrap();
        let t = read_trailer(file.as_ref(), &path).unwrap().unwrap();
        assert_eq!(
            t.index_header.flags,
            crate::store::format::INDEX_FLAG_STREAM_COPY
        );
        let stream_len = read_stream_header(file.as_ref(), &path)
            .unwrap()
            .unwrap()
            .encode()
            .len();
        assert_eq!(
            t.index_header.payload_len as usize,
            12 + 32 * 12 + stream_len
        );
        // No record of the new kind anywhere: a scan finds none.
        let s = scan(file.as_ref(), &path).unwrap();
        assert!(s.positions.is_empty());
        assert!(!bytes
            .windows(5)
            .any(|w| w[..4] == RECORD_MAGIC && w[4] == RecordKind::Position as u8));
        let r = SegmentReader::open(&sim, &path).unwrap();
        assert!(r.closed && r.positions.is_empty());
    }

    #[test]
    fn a_run_reads_the_same_payloads_as_single_frames() {
        let (sim, path) = segment(40);
        let reader = SegmentReader::open(&sim, &path).unwrap();
        let mut buf = Vec::new();
        let run = reader.read_run(3..17, &mut buf).unwrap();
        assert_eq!(run.len(), 14);
        for k in 0..run.len() {
            assert_eq!(run.payload(k), reader.read_frame(3 + k).unwrap());
            assert_eq!(run.payload(k), payload(3 + k as u64));
        }
        assert_eq!(buf.len() as u64, reader.run_bytes(3..17));
        assert!(reader.read_run(5..5, &mut buf).unwrap().is_empty());
        assert_eq!(reader.run_bytes(5..5), 0);
        assert!(reader.read_run(30..41, &mut buf).is_err());
    }

    #[test]
    fn a_damaged_frame_fails_its_run_naming_the_offset() {
        let (sim, path) = segment(20);
        let offset = SegmentReader::open(&sim, &path).unwrap().frames[10].offset;
        let mut bytes = sim.contents(&path).unwrap();
        bytes[offset as usize + HEADER_LEN + 50] ^= 0x01;
        sim.put_durable(&path, bytes);
        let reader = SegmentReader::open(&sim, &path).unwrap();
        let mut buf = Vec::new();
        match reader.read_run(5..15, &mut buf) {
            Err(StoreError::Format {
                offset: at,
                cause: FormatError::PayloadCrc { .. },
                ..
            }) => assert_eq!(at, offset),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a damaged frame was served"),
        }
        // Runs that do not include it still read.
        assert_eq!(reader.read_run(11..20, &mut buf).unwrap().len(), 9);
    }
}

#[cfg(test)]
mod scan_tests {
    use super::*;
    use crate::store::format::{encode_index, INDEX_FLAG_STREAM_COPY};
    use crate::store::sim::SimIo;

    fn record(kind: RecordKind, payload: &[u8], seq: u64) -> Vec<u8> {
        let h = RecordHeader::new(
            kind,
            payload,
            seq,
            crate::frame::CaptureTime {
                mono_ns: seq * 1000,
                wall_ns: seq as i64,
            },
        );
        let mut out = h.encode().to_vec();
        out.extend_from_slice(payload);
        out
    }

    fn position_record(n: u64) -> Vec<u8> {
        let p = PositionSample {
            received: crate::frame::CaptureTime {
                mono_ns: n * 1000 + 500,
                wall_ns: n as i64,
            },
            lat_lon_e7: Some((n as i32, -(n as i32))),
            quality: 1,
            ..PositionSample::default()
        };
        let payload = p.encode_payload();
        let mut out = p.record_header(&payload, n).encode().to_vec();
        out.extend_from_slice(&payload);
        out
    }

    fn stream() -> Vec<u8> {
        StreamHeader {
            codec: Codec::Jpeg,
            width: 8,
            height: 8,
            fps_milli: 10_000,
            boot_id: [3; 16],
            segment_seq: 0,
            camera_id: "c".into(),
        }
        .encode()
    }

    /// A stream header and frames 0..n, each frame `len` bytes.
    fn file(n: u64, len: usize) -> (Vec<u8>, Vec<u64>) {
        let mut b = record(RecordKind::StreamHeader, &stream(), 0);
        let mut offsets = Vec::new();
        for seq in 0..n {
            offsets.push(b.len() as u64);
            b.extend(record(RecordKind::Frame, &vec![seq as u8 + 1; len], seq));
        }
        (b, offsets)
    }

    fn scan_bytes(bytes: Vec<u8>) -> ScanResult {
        let sim = SimIo::default();
        let path = PathBuf::from("/d/recordings/c/000000000000_x.dvr");
        sim.put_durable(&path, bytes);
        let f = sim.open_read(&path).unwrap();
        scan(f.as_ref(), &path).unwrap()
    }

    #[test]
    fn a_damaged_frame_in_the_middle_costs_that_frame_and_is_a_hole() {
        let (mut b, offsets) = file(10, 300);
        b[offsets[4] as usize + 60] ^= 0x10;
        b.extend(vec![0u8; 5000]); // a preallocated tail
        let s = scan_bytes(b);
        let seqs: Vec<u64> = s.frames.iter().map(|f| f.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 5, 6, 7, 8, 9]);
        assert_eq!(s.holes.len(), 1);
        assert_eq!(
            (s.holes[0].offset, s.holes[0].len),
            (offsets[4], offsets[5] - offsets[4])
        );
        assert!(s.tail_is_zero && s.stream.is_some());
    }

    /// A stream header, then frames 0..n each followed by position n.
    fn file_with_positions(n: u64) -> (Vec<u8>, Vec<u64>, Vec<u64>) {
        let mut b = record(RecordKind::StreamHeader, &stream(), 0);
        let (mut frames, mut positions) = (Vec::new(), Vec::new());
        for seq in 0..n {
            frames.push(b.len() as u64);
            b.extend(record(RecordKind::Frame, &[seq as u8 + 1; 150], seq));
            positions.push(b.len() as u64);
            b.extend(position_record(seq));
        }
        (b, frames, positions)
    }

    #[test]
    fn the_scan_steps_over_positions_and_a_damaged_one_costs_only_itself() {
        let (b, frames, positions) = file_with_positions(8);
        let s = scan_bytes(b.clone());
        assert_eq!(s.frames.len(), 8);
        assert_eq!(
            s.positions.iter().map(|p| p.offset).collect::<Vec<_>>(),
            positions
        );
        assert!(s.holes.is_empty() && s.stop.is_none());
        assert_eq!(s.valid_end, b.len() as u64);
        // A flipped bit in position 3's payload.
        let mut d = b.clone();
        d[positions[3] as usize + HEADER_LEN + 14] ^= 0x20;
        let s = scan_bytes(d);
        assert_eq!(s.frames.len(), 8, "a damaged position cost a frame");
        assert_eq!(s.positions.len(), 7);
        assert!(s.positions.iter().all(|p| p.offset != positions[3]));
        assert_eq!(s.holes.len(), 1);
        assert_eq!(
            (s.holes[0].offset, s.holes[0].len),
            (positions[3], frames[4] - positions[3])
        );
        // A stale position with a lower number after damage is not taken.
        let mut d = b.clone();
        d[frames[5] as usize + 60] ^= 0x01;
        let stale = position_record(1);
        let at = positions[5] as usize;
        d[at..at + stale.len()].copy_from_slice(&stale);
        let s = scan_bytes(d);
        assert_eq!(s.frames.len(), 7);
        assert!(s.positions.iter().all(|p| p.offset != positions[5]));
        assert_eq!(s.positions.len(), 7);
    }

    #[test]
    fn a_position_record_with_a_payload_we_did_not_write_is_a_hole() {
        let (mut b, frames, positions) = file_with_positions(4);
        // Valid CRCs around a latitude out of range.
        let at = positions[1] as usize;
        let mut payload = b[at + HEADER_LEN..at + HEADER_LEN + POSITION_PAYLOAD_LEN].to_vec();
        payload[12..16].copy_from_slice(&i32::MAX.to_le_bytes());
        let mut h = RecordHeader::decode(&b[at..at + HEADER_LEN]).unwrap();
        h.payload_crc = crc32fast::hash(&payload);
        b[at..at + HEADER_LEN].copy_from_slice(&h.encode());
        b[at + HEADER_LEN..at + HEADER_LEN + POSITION_PAYLOAD_LEN].copy_from_slice(&payload);
        let s = scan_bytes(b);
        assert_eq!((s.frames.len(), s.positions.len()), (4, 3));
        assert_eq!(s.holes[0].offset, positions[1]);
        assert_eq!(s.holes[0].len, frames[2] - positions[1]);
    }

    #[test]
    fn a_damaged_stream_header_costs_no_frame() {
        let (mut b, offsets) = file(5, 100);
        b[50] ^= 0x01;
        let s = scan_bytes(b);
        assert!(s.stream.is_none() && s.stream_problem.is_some());
        assert_eq!(s.frames.len(), 5);
        assert_eq!(s.holes[0].offset, 0);
        assert_eq!(s.holes[0].len, offsets[0]);
    }

    #[test]
    fn a_stale_frame_with_a_lower_number_is_not_taken_after_damage() {
        let (mut b, offsets) = file(6, 200);
        // Damage frame 3, then put an old record of frame 1 where frame 4 was.
        b[offsets[3] as usize + 60] ^= 0x01;
        let stale = record(RecordKind::Frame, &[9u8; 200], 1);
        let at = offsets[4] as usize;
        b[at..at + stale.len()].copy_from_slice(&stale);
        let s = scan_bytes(b);
        let seqs: Vec<u64> = s.frames.iter().map(|f| f.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 5]);
    }

    /// A closed segment of three frames whose index says `frames` (CRCs
    /// valid whatever the entries say).
    fn closed_with(mut frames: Vec<IndexEntry>, edit: impl Fn(&mut Vec<IndexEntry>)) -> Vec<u8> {
        let (mut b, _) = file(3, 100);
        edit(&mut frames);
        let mut index = encode_index(&frames);
        index.extend(stream());
        let mut h = RecordHeader::new(
            RecordKind::Index,
            &index,
            3,
            crate::frame::CaptureTime::default(),
        );
        h.flags = INDEX_FLAG_STREAM_COPY;
        let index_offset = b.len() as u64;
        b.extend(h.encode());
        b.extend(&index);
        b.extend(
            Trailer {
                index_offset,
                index_record_len: (HEADER_LEN + index.len()) as u32,
                frame_count: frames.len() as u32,
            }
            .encode(),
        );
        b
    }

    fn true_entries() -> Vec<IndexEntry> {
        let (_, offsets) = file(3, 100);
        offsets
            .iter()
            .enumerate()
            .map(|(i, o)| IndexEntry {
                offset: *o,
                payload_len: 100,
                flags: 0,
                seq: i as u64,
                mono_ns: i as u64 * 1000,
                wall_ns: i as i64,
            })
            .collect()
    }

    #[test]
    fn an_index_whose_entries_point_outside_the_segment_is_not_believed() {
        let sim = SimIo::default();
        let path = PathBuf::from("/d/recordings/c/000000000000_x.dvr");
        let lies: [fn(&mut Vec<IndexEntry>); 3] = [
            |f| f[1].offset = u64::MAX - 20,
            |f| f[2].payload_len = u32::MAX,
            // Frames 0 and 1 listed at each other's places (the encoder
            // keeps numbers increasing, so the lie is in the offsets).
            |f| {
                let (a, b) = (f[0].offset, f[1].offset);
                (f[0].offset, f[1].offset) = (b, a);
            },
        ];
        for lie in lies {
            sim.put_durable(&path, closed_with(true_entries(), lie));
            let r = SegmentReader::open(&sim, &path).unwrap();
            assert!(!r.closed, "a lying index was believed");
            assert_eq!(r.frames.len(), 3);
            let mut buf = Vec::new();
            assert_eq!(r.read_run(0..3, &mut buf).unwrap().len(), 3);
            assert!(r.damaged_frames(0, 1 << 20).is_empty());
        }
        sim.put_durable(&path, closed_with(true_entries(), |_| {}));
        assert!(SegmentReader::open(&sim, &path).unwrap().closed);
    }

    #[test]
    fn old_indexes_without_the_position_flag_read_as_before() {
        let sim = SimIo::default();
        let path = PathBuf::from("/d/recordings/c/000000000000_x.dvr");
        // With the stream-header copy (flag bit 0 only), as the writer has
        // always closed segments.
        sim.put_durable(&path, closed_with(true_entries(), |_| {}));
        let r = SegmentReader::open(&sim, &path).unwrap();
        assert!(r.closed && r.positions.is_empty());
        assert_eq!(r.frames, true_entries());
        assert_eq!(r.stream_origin, StreamOrigin::IndexCopy);
        // Without the copy (flags 0): the stream header from offset 0.
        let (mut b, _) = file(3, 100);
        let index = encode_index(&true_entries());
        let h = RecordHeader::new(
            RecordKind::Index,
            &index,
            3,
            crate::frame::CaptureTime::default(),
        );
        let index_offset = b.len() as u64;
        b.extend(h.encode());
        b.extend(&index);
        b.extend(
            Trailer {
                index_offset,
                index_record_len: (HEADER_LEN + index.len()) as u32,
                frame_count: 3,
            }
            .encode(),
        );
        sim.put_durable(&path, b);
        let r = SegmentReader::open(&sim, &path).unwrap();
        assert!(r.closed && r.positions.is_empty());
        assert_eq!(r.frames, true_entries());
        assert_eq!(r.stream_origin, StreamOrigin::Recorded);
    }

    #[test]
    fn an_index_whose_positions_overlap_a_frame_is_not_believed() {
        use crate::store::format::{encode_index_contents, PositionEntry};
        let (b, frames, _) = file_with_positions(3);
        let entries: Vec<IndexEntry> = frames
            .iter()
            .enumerate()
            .map(|(i, o)| IndexEntry {
                offset: *o,
                payload_len: 150,
                flags: 0,
                seq: i as u64,
                mono_ns: i as u64 * 1000,
                wall_ns: i as i64,
            })
            .collect();
        let sim = SimIo::default();
        let path = PathBuf::from("/d/recordings/c/000000000000_x.dvr");
        let scanned = scan_bytes(b.clone()).positions;
        assert_eq!(scanned.len(), 3);
        let index_offset = b.len() as u64;
        let closed = |pos: Vec<PositionEntry>| {
            let (index, flags) = encode_index_contents(&entries, &pos, None);
            let mut h = RecordHeader::new(
                RecordKind::Index,
                &index,
                3,
                crate::frame::CaptureTime::default(),
            );
            h.flags = flags;
            let mut out = b.clone();
            out.extend(h.encode());
            out.extend(&index);
            out.extend(
                Trailer {
                    index_offset,
                    index_record_len: (HEADER_LEN + index.len()) as u32,
                    frame_count: 3,
                }
                .encode(),
            );
            out
        };
        sim.put_durable(&path, closed(scanned.clone()));
        let r = SegmentReader::open(&sim, &path).unwrap();
        assert!(r.closed);
        assert_eq!(r.positions.len(), 3);
        let mut lie = scanned.clone();
        lie[1].offset = frames[1] + 10; // inside frame 1
        sim.put_durable(&path, closed(lie));
        let r = SegmentReader::open(&sim, &path).unwrap();
        assert!(
            !r.closed,
            "an index with a position inside a frame was believed"
        );
        assert_eq!((r.frames.len(), r.positions.len()), (3, 3));
        let mut lie = scanned;
        lie[2].offset = index_offset - 10; // runs into the index
        sim.put_durable(&path, closed(lie));
        assert!(!SegmentReader::open(&sim, &path).unwrap().closed);
    }

    #[test]
    fn recovery_of_a_file_starting_with_a_frame_is_done_once() {
        // Found by the fuzzer: no stream header, a frame at offset 0. The
        // recovered index was then not believed, so every start recovered
        // the file again.
        let mut b = record(RecordKind::Frame, &[7u8; 64], 0);
        b.extend(record(RecordKind::Frame, &[8u8; 64], 1));
        b.extend(vec![0u8; 300]);
        let sim = SimIo::default();
        let path = PathBuf::from("/d/recordings/c/000000000000_x.dvr");
        sim.put_durable(&path, b);
        let first = crate::store::recovery::recover_camera(&sim, Path::new("/d"), "c").unwrap();
        assert_eq!(first.len(), 1, "{first:?}");
        let again = crate::store::recovery::recover_camera(&sim, Path::new("/d"), "c").unwrap();
        assert!(again.is_empty(), "second recovery did {again:?}");
        let r = SegmentReader::open(&sim, &path).unwrap();
        assert!(r.closed && r.frames.len() == 2);
    }

    #[test]
    fn a_closed_segment_stays_closed_with_its_stream_header_damaged() {
        let mut b = closed_with(true_entries(), |_| {});
        b[20] ^= 0x40; // the stream header's own record header
        let sim = SimIo::default();
        let path = PathBuf::from("/d/recordings/c/000000000000_x.dvr");
        sim.put_durable(&path, b);
        let r = SegmentReader::open(&sim, &path).unwrap();
        assert!(r.closed);
        assert_eq!(r.stream_origin, StreamOrigin::IndexCopy);
        assert_eq!((r.stream.width, r.stream.camera_id.as_str()), (8, "c"));
        assert_eq!(r.frames.len(), 3);
    }
}
