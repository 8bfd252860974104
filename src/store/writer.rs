//! Appending frames (and GPS positions) to segments with bounded data at risk.
//!
//! Order of operations (the argument for each step is in `docs/storage.md`):
//! 1. create the segment with O_CREAT|O_EXCL, preallocate it, fsync its folder;
//! 2. append records (frames, and GPS positions between them, which ride
//!    the same buffer and syncs) into a block-aligned memory buffer;
//! 3. every `sync_interval` pad the buffer to a whole block, write it at the
//!    next block offset (O_DIRECT when allowed) and `fdatasync`;
//! 4. on close, pad so index + trailer end on a block boundary, write them,
//!    trim the preallocation and `fdatasync`.

use std::alloc::{self, Layout};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::catalog::Listing;
use super::format::{
    encode_index_contents, padding_record, Codec, IndexEntry, PositionEntry, PositionSample,
    RecordHeader, RecordKind, StreamHeader, Trailer, BLOCK_BYTES, HEADER_LEN, TRAILER_LEN,
};
use super::io::{SegmentFile, StorageIo};
use super::reader::{read_trailer, SegmentReader};
use super::stats::{CameraStoreStats, OpenSegmentStats};
use super::{segment_file_name, StoreError};
use crate::frame::CaptureTime;

/// Sync early when this much is buffered, whatever the cadence says.
pub const BUFFER_BYTES_MAX: usize = 16 << 20;
/// Preallocation bounds for a new segment.
const PREALLOCATE_BYTES_MIN: u64 = 1 << 20;
const PREALLOCATE_BYTES_MAX: u64 = 1 << 30;
/// Positions kept while no segment is open (before the first frame, between
/// a close and the next frame): a minute at 10 Hz. Older ones are dropped.
pub const PENDING_POSITIONS_MAX: usize = 600;

/// One encoded picture on its way to disk.
#[derive(Clone, Debug)]
pub struct EncodedFrame {
    pub jpeg: Arc<[u8]>,
    pub width: u32,
    pub height: u32,
    pub captured: CaptureTime,
    pub flags: u8,
}

/// Segments being written right now; retention must never delete them.
pub type OpenSegments = Arc<Mutex<HashSet<PathBuf>>>;

/// Called before each new segment is created, so space can be freed first.
pub type BeforeNewSegment = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone)]
pub struct WriterSettings {
    pub camera_id: String,
    pub camera_dir: PathBuf,
    pub fps_milli: u32,
    pub segment_length_ns: u64,
    /// Length of the first segment: shorter for later cameras so that
    /// segment boundaries (and their close-time syncs) are staggered.
    pub first_segment_length_ns: u64,
    pub sync_interval_ns: u64,
    pub want_direct: bool,
    pub boot_id: [u8; 16],
}

/// A heap buffer aligned for O_DIRECT.
struct AlignedBuf {
    ptr: *mut u8,
    cap: usize,
    len: usize,
}

// The buffer is plain owned memory.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    fn with_capacity(cap: usize) -> AlignedBuf {
        let cap = cap.max(BLOCK_BYTES).next_multiple_of(BLOCK_BYTES);
        let layout = Layout::from_size_align(cap, BLOCK_BYTES).expect("valid layout");
        // SAFETY: layout has non-zero size.
        let ptr = unsafe { alloc::alloc(layout) };
        if ptr.is_null() {
            alloc::handle_alloc_error(layout);
        }
        AlignedBuf { ptr, cap, len: 0 }
    }

    fn extend(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > self.cap {
            let mut bigger = AlignedBuf::with_capacity((self.len + bytes.len()) * 2);
            bigger.extend(self.as_slice());
            std::mem::swap(self, &mut bigger);
        }
        // SAFETY: capacity checked above; regions do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(self.len), bytes.len());
        }
        self.len += bytes.len();
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are initialised.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.cap, BLOCK_BYTES).expect("valid layout");
        // SAFETY: allocated with this layout.
        unsafe { alloc::dealloc(self.ptr, layout) }
    }
}

struct OpenSegment {
    path: PathBuf,
    file: Box<dyn SegmentFile>,
    /// Written first, and copied into the index on close.
    stream: StreamHeader,
    /// File offset of `buf[0]`; always a multiple of BLOCK_BYTES.
    buf_start: u64,
    frames: Vec<IndexEntry>,
    /// Position records, in file order; their header numbers are 0, 1, …
    /// within the segment (their index here).
    positions: Vec<PositionEntry>,
    width: u32,
    height: u32,
    first_mono_ns: u64,
    target_length_ns: u64,
    last_sync_mono_ns: u64,
}

pub struct SegmentWriter {
    io: Arc<dyn StorageIo>,
    settings: WriterSettings,
    stats: Arc<CameraStoreStats>,
    open_segments: OpenSegments,
    before_new_segment: Option<BeforeNewSegment>,
    current: Option<OpenSegment>,
    buf: AlignedBuf,
    next_segment_seq: u64,
    next_frame_seq: u64,
    /// Whether the numbers above were continued from the folder's listing.
    numbered: bool,
    segments_started: u64,
    last_segment_bytes: Option<u64>,
    warned_no_prealloc: bool,
    /// Segments dropped after an I/O error, to be closed when I/O works.
    abandoned: Vec<PathBuf>,
    /// Positions received while no segment was open, oldest first; they go
    /// into the next segment right after its stream header.
    pending_positions: std::collections::VecDeque<PositionSample>,
}

impl SegmentWriter {
    pub fn new(
        io: Arc<dyn StorageIo>,
        settings: WriterSettings,
        stats: Arc<CameraStoreStats>,
        open_segments: OpenSegments,
    ) -> Result<SegmentWriter, StoreError> {
        let mut writer = SegmentWriter {
            io,
            settings,
            stats,
            open_segments,
            before_new_segment: None,
            current: None,
            buf: AlignedBuf::with_capacity(1 << 20),
            next_segment_seq: 0,
            next_frame_seq: 0,
            numbered: false,
            segments_started: 0,
            last_segment_bytes: None,
            warned_no_prealloc: false,
            abandoned: Vec::new(),
            pending_positions: Default::default(),
        };
        // A folder that cannot be made or listed yet (a card mounted
        // read-only) is retried before the first segment: the writer exists,
        // so recording starts once storage works, and every failure until
        // then is the first append's error, shown in status.
        if let Err(e) = writer.number_from_folder() {
            log::error!(
                "[{}] {e}; retrying before the first segment",
                writer.settings.camera_id
            );
        }
        Ok(writer)
    }

    /// Makes the camera folder and continues its segment and frame numbers.
    fn number_from_folder(&mut self) -> Result<(), StoreError> {
        create_camera_dir(self.io.as_ref(), &self.settings.camera_dir)?;
        let listing = list_folder(self.io.as_ref(), &self.settings.camera_dir)?;
        self.next_segment_seq = listing.next_segment_seq();
        self.next_frame_seq = next_frame_seq(self.io.as_ref(), &listing);
        self.numbered = true;
        Ok(())
    }

    pub fn set_before_new_segment(&mut self, hook: BeforeNewSegment) {
        self.before_new_segment = Some(hook);
    }

    /// Bytes appended but not yet written and synced (at risk in a power cut).
    pub fn unsynced_bytes(&self) -> usize {
        self.buf.len
    }

    pub fn current_path(&self) -> Option<&Path> {
        self.current.as_ref().map(|s| s.path.as_path())
    }

    /// Appends one frame; rotates and syncs as the policy says. `now_mono_ns`
    /// is the writer's clock (the sync cadence runs on it).
    pub fn append(&mut self, frame: &EncodedFrame, now_mono_ns: u64) -> Result<(), StoreError> {
        if let Some(seg) = &self.current {
            let too_long =
                frame.captured.mono_ns.saturating_sub(seg.first_mono_ns) >= seg.target_length_ns;
            let new_size = frame.width != seg.width || frame.height != seg.height;
            if too_long || new_size {
                self.close()?;
            }
        }
        if self.current.is_none() {
            self.open_segment(frame, now_mono_ns)?;
        }
        let seg = self.current.as_mut().expect("segment opened above");
        let offset = seg.buf_start + self.buf.len as u64;
        let mut header = RecordHeader::new(
            RecordKind::Frame,
            &frame.jpeg,
            self.next_frame_seq,
            frame.captured,
        );
        header.flags = frame.flags;
        self.buf.extend(&header.encode());
        self.buf.extend(&frame.jpeg);
        seg.frames.push(IndexEntry {
            offset,
            payload_len: frame.jpeg.len() as u32,
            flags: frame.flags,
            seq: self.next_frame_seq,
            mono_ns: frame.captured.mono_ns,
            wall_ns: frame.captured.wall_ns,
        });
        self.next_frame_seq += 1;
        self.stats.written.fetch_add(1, Ordering::Relaxed);
        self.stats
            .written_bytes
            .fetch_add(frame.jpeg.len() as u64, Ordering::Relaxed);
        {
            let mut open = self.stats.open_segment();
            open.spans.push(
                frame.captured.wall_ns,
                frame.flags & super::format::FLAG_WALL_ESTIMATED != 0,
            );
            open.bytes = seg.buf_start + self.buf.len as u64;
        }
        self.tick(now_mono_ns)
    }

    /// Appends one GPS position to the segment being written, in the same
    /// buffer as the frames, so it is written and synced on their cadence
    /// (and with their guarantees). With no segment open (no frame yet, or
    /// between a close and the next frame) it waits, with at most
    /// [`PENDING_POSITIONS_MAX`] others, for the next segment.
    pub fn append_position(
        &mut self,
        position: &PositionSample,
        now_mono_ns: u64,
    ) -> Result<(), StoreError> {
        if self.current.is_none() {
            if self.pending_positions.len() == PENDING_POSITIONS_MAX {
                self.pending_positions.pop_front();
            }
            self.pending_positions.push_back(*position);
            return Ok(());
        }
        self.buffer_position(position);
        self.tick(now_mono_ns)
    }

    /// Positions waiting for a segment to be opened.
    pub fn pending_positions(&self) -> usize {
        self.pending_positions.len()
    }

    fn buffer_position(&mut self, position: &PositionSample) {
        let seg = self.current.as_mut().expect("a segment is open");
        let offset = seg.buf_start + self.buf.len as u64;
        let payload = position.encode_payload();
        let header = position.record_header(&payload, seg.positions.len() as u64);
        self.buf.extend(&header.encode());
        self.buf.extend(&payload);
        seg.positions.push(PositionEntry {
            offset,
            sample: *position,
        });
        let mut open = self.stats.open_segment();
        open.bytes = seg.buf_start + self.buf.len as u64;
        open.positions.push(*position);
    }

    /// When the buffered frames must be synced (monotonic ns), if any are
    /// buffered: one sync interval after the last sync. The caller wakes
    /// then, whether or not another frame has arrived.
    pub fn sync_due_ns(&self) -> Option<u64> {
        let seg = self.current.as_ref()?;
        (self.buf.len > 0).then(|| seg.last_sync_mono_ns + self.settings.sync_interval_ns)
    }

    /// Syncs if the cadence says so. Call this when idle too.
    pub fn tick(&mut self, now_mono_ns: u64) -> Result<(), StoreError> {
        let due = match &self.current {
            Some(seg) => {
                now_mono_ns.saturating_sub(seg.last_sync_mono_ns) >= self.settings.sync_interval_ns
                    || self.buf.len >= BUFFER_BYTES_MAX
            }
            None => false,
        };
        if due {
            self.sync(now_mono_ns)?;
        }
        Ok(())
    }

    /// Pads the buffered records to a block, writes and fdatasyncs them.
    pub fn sync(&mut self, now_mono_ns: u64) -> Result<(), StoreError> {
        let Some(seg) = self.current.as_mut() else {
            return Ok(());
        };
        if self.buf.len > 0 {
            sync_buffer(seg, &mut self.buf)?;
            // A segment whose name is gone (the data folder was deleted or
            // unmounted under us) takes frames nowhere: fail, so the caller
            // starts a new segment where it can be found again.
            if !self.io.exists(&seg.path) {
                return Err(StoreError::Invalid {
                    path: seg.path.clone(),
                    message: "segment file disappeared while being written (data folder removed?)"
                        .into(),
                });
            }
            self.stats.syncs.fetch_add(1, Ordering::Relaxed);
            self.stats
                .last_sync_mono_ns
                .store(now_mono_ns.max(1), Ordering::Relaxed);
        }
        seg.last_sync_mono_ns = now_mono_ns;
        Ok(())
    }

    /// Writes index and trailer, trims the preallocation and syncs.
    pub fn close(&mut self) -> Result<(), StoreError> {
        let Some(mut seg) = self.current.take() else {
            return Ok(());
        };
        let result = self.finish_segment(&mut seg);
        self.buf.clear();
        self.forget_open(&seg.path);
        if result.is_err() {
            // Closed again (by the recovery rule) once storage works.
            self.abandoned.push(seg.path);
        }
        result
    }

    /// Drops the current segment without closing it (after an I/O error):
    /// what was synced stays readable and recovery closes it on next start.
    pub fn abandon(&mut self) {
        if let Some(seg) = self.current.take() {
            self.buf.clear();
            self.forget_open(&seg.path);
            self.abandoned.push(seg.path);
        }
    }

    /// Closes segments abandoned after I/O errors once storage works again,
    /// so they do not wait for the next start (which only walks back to the
    /// newest closed segment). Runs before each new segment; call it when
    /// stopping too.
    pub fn close_abandoned(&mut self) {
        for path in std::mem::take(&mut self.abandoned) {
            match super::recovery::recover_segment(self.io.as_ref(), &path, true) {
                Ok(Some(r)) => log::info!(
                    "[{}] closed {} left open by an I/O error: {}",
                    self.settings.camera_id,
                    r.segment,
                    r.action
                ),
                Ok(None) => {}
                // Gone already (retention, or the folder was removed).
                Err(_) if !self.io.exists(&path) => {}
                Err(e) => {
                    log::warn!(
                        "[{}] {} stays open until storage works again: {e}",
                        self.settings.camera_id,
                        path.display()
                    );
                    // Tried again before the next segment: start-up recovery
                    // only walks back to the newest closed segment.
                    self.abandoned.push(path);
                }
            }
        }
    }

    fn forget_open(&self, path: &Path) {
        self.open_segments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path);
        *self.stats.open_segment() = Default::default();
    }

    fn finish_segment(&mut self, seg: &mut OpenSegment) -> Result<(), StoreError> {
        if seg.frames.is_empty() {
            // Nothing worth keeping: remove rather than leave an empty file.
            self.io
                .remove_file(&seg.path)
                .map_err(|e| StoreError::io(&seg.path, "removing empty segment", e))?;
            return self
                .io
                .sync_dir(&self.settings.camera_dir)
                .map_err(|e| StoreError::io(&self.settings.camera_dir, "fsync folder", e));
        }
        // Frames first, index and trailer after: a device that reorders
        // writes within one flush could otherwise keep a valid trailer over
        // frame blocks that never landed.
        if self.buf.len > 0 {
            sync_buffer(seg, &mut self.buf)?;
        }
        let (index, flags) = encode_index_contents(&seg.frames, &seg.positions, Some(&seg.stream));
        let mut index_header = RecordHeader::new(
            RecordKind::Index,
            &index,
            self.next_frame_seq,
            CaptureTime::default(),
        );
        index_header.flags = flags;
        let index_record_len = HEADER_LEN + index.len();
        let pos = seg.buf_start + self.buf.len as u64;
        let pad = padding_record(pos, BLOCK_BYTES, index_record_len + TRAILER_LEN);
        self.buf.extend(&pad);
        let index_offset = seg.buf_start + self.buf.len as u64;
        self.buf.extend(&index_header.encode());
        self.buf.extend(&index);
        let trailer = Trailer {
            index_offset,
            index_record_len: index_record_len as u32,
            frame_count: seg.frames.len() as u32,
        };
        self.buf.extend(&trailer.encode());
        write_buffer(seg, &self.buf)?;
        let end = seg.buf_start + self.buf.len as u64;
        seg.file
            .set_len(end)
            .map_err(|e| StoreError::io(&seg.path, "trimming preallocation", e))?;
        seg.file
            .sync_data()
            .map_err(|e| StoreError::io(&seg.path, "fdatasync on close", e))?;
        if !seg.file.is_direct() {
            seg.file.drop_cache(0, end);
        }
        self.last_segment_bytes = Some(end);
        self.stats.segments_closed.fetch_add(1, Ordering::Relaxed);
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        log::debug!(
            "[{}] closed {} ({} frames, {} bytes)",
            self.settings.camera_id,
            seg.path.display(),
            seg.frames.len(),
            end
        );
        Ok(())
    }

    fn open_segment(&mut self, frame: &EncodedFrame, now_mono_ns: u64) -> Result<(), StoreError> {
        if let Some(hook) = &self.before_new_segment {
            hook();
        }
        // Before the new segment takes the space retention just freed.
        self.close_abandoned();
        if !self.numbered {
            // Never numbered from the folder: starting at 0 could reuse
            // numbers already stored.
            self.number_from_folder()?;
        } else if !self.io.exists(&self.settings.camera_dir) {
            // The data folder vanished (deleted, card unmounted): make it
            // again so recording resumes as soon as storage is writable.
            self.create_camera_dir()?;
        }
        let seq = self.next_segment_seq;
        let name = segment_file_name(seq, frame.captured.wall_ns);
        let path = self.settings.camera_dir.join(&name);
        // Registered before it exists, so retention can never see it unlisted.
        self.open_segments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.clone());
        let mut file = match self.io.create_new(&path, self.settings.want_direct) {
            Ok(f) => f,
            Err(e) => {
                self.forget_open(&path);
                return Err(StoreError::io(&path, "creating segment", e));
            }
        };
        self.next_segment_seq += 1;
        let expected = self.expected_segment_bytes(frame);
        if let Err(e) = file.preallocate(expected) {
            // Not fatal: without preallocation the file grows as written, and
            // a disk that is really full fails the first write instead.
            if e.raw_os_error() == Some(libc::ENOSPC) {
                log::warn!(
                    "[{}] no room to preallocate {expected} bytes; writing without",
                    self.settings.camera_id
                );
            } else if !self.warned_no_prealloc {
                log::info!(
                    "[{}] filesystem cannot preallocate ({e}); segments grow as written",
                    self.settings.camera_id
                );
                self.warned_no_prealloc = true;
            }
        }
        if let Err(e) = self.io.sync_dir(&self.settings.camera_dir) {
            // Without a durable name the file must not stay behind as an
            // empty, zero-filled segment that readers report as unreadable.
            drop(file);
            if let Err(rm) = self.io.remove_file(&path) {
                log::warn!(
                    "[{}] cannot remove {}: {rm}",
                    self.settings.camera_id,
                    path.display()
                );
            }
            self.forget_open(&path);
            return Err(StoreError::io(&self.settings.camera_dir, "fsync folder", e));
        }
        let direct = file.is_direct();
        if self.segments_started == 0 {
            log::info!(
                "[{}] writing with {}",
                self.settings.camera_id,
                if direct {
                    "O_DIRECT (page cache bypassed)"
                } else {
                    "buffered I/O + fdatasync (filesystem refused O_DIRECT)"
                }
            );
        }
        self.stats.direct_io.store(direct, Ordering::Relaxed);
        let stream = StreamHeader {
            codec: Codec::Jpeg,
            width: frame.width,
            height: frame.height,
            fps_milli: self.settings.fps_milli,
            boot_id: self.settings.boot_id,
            segment_seq: seq,
            camera_id: self.settings.camera_id.clone(),
        };
        let payload = stream.encode();
        let header = RecordHeader::new(RecordKind::StreamHeader, &payload, 0, frame.captured);
        self.buf.clear();
        self.buf.extend(&header.encode());
        self.buf.extend(&payload);
        let target_length_ns = if self.segments_started == 0 {
            self.settings.first_segment_length_ns
        } else {
            self.settings.segment_length_ns
        };
        self.segments_started += 1;
        *self.stats.open_segment() = OpenSegmentStats {
            name: Some(name),
            bytes: self.buf.len as u64,
            ..OpenSegmentStats::default()
        };
        self.current = Some(OpenSegment {
            path,
            file,
            stream,
            buf_start: 0,
            frames: Vec::new(),
            positions: Vec::new(),
            width: frame.width,
            height: frame.height,
            first_mono_ns: frame.captured.mono_ns,
            target_length_ns,
            last_sync_mono_ns: now_mono_ns,
        });
        for p in std::mem::take(&mut self.pending_positions) {
            self.buffer_position(&p);
        }
        Ok(())
    }

    fn create_camera_dir(&self) -> Result<(), StoreError> {
        create_camera_dir(self.io.as_ref(), &self.settings.camera_dir)
    }

    fn expected_segment_bytes(&self, frame: &EncodedFrame) -> u64 {
        let estimate = self.last_segment_bytes.unwrap_or_else(|| {
            let seconds = self.settings.segment_length_ns / 1_000_000_000;
            let fps = (self.settings.fps_milli as u64).div_ceil(1000);
            // Room for frames 25% larger than the first one.
            (frame.jpeg.len() as u64 + HEADER_LEN as u64) * fps * seconds * 5 / 4
        });
        estimate
            .clamp(PREALLOCATE_BYTES_MIN, PREALLOCATE_BYTES_MAX)
            .next_multiple_of(BLOCK_BYTES as u64)
    }
}

impl Drop for SegmentWriter {
    fn drop(&mut self) {
        if let Some(seg) = &self.current {
            let path = seg.path.clone();
            if let Err(e) = self.close() {
                log::error!("closing {} failed: {e}", path.display());
            }
        }
    }
}

/// Creates a camera folder and makes it (and `recordings/`) durable.
fn create_camera_dir(io: &dyn StorageIo, camera_dir: &Path) -> Result<(), StoreError> {
    io.create_dir_all(camera_dir)
        .map_err(|e| StoreError::io(camera_dir, "creating camera folder", e))?;
    // The folders themselves must survive a power cut too.
    for dir in camera_dir.ancestors().skip(1).take(2) {
        io.sync_dir(dir)
            .map_err(|e| StoreError::io(dir, "fsync folder", e))?;
    }
    Ok(())
}

/// Pads the buffered records to a whole block, writes them at `buf_start`,
/// fdatasyncs, and moves `buf_start` past them.
fn sync_buffer(seg: &mut OpenSegment, buf: &mut AlignedBuf) -> Result<(), StoreError> {
    let pad = padding_record(seg.buf_start + buf.len as u64, BLOCK_BYTES, 0);
    buf.extend(&pad);
    write_buffer(seg, buf)?;
    seg.file
        .sync_data()
        .map_err(|e| StoreError::io(&seg.path, "fdatasync", e))?;
    if !seg.file.is_direct() {
        seg.file.drop_cache(seg.buf_start, buf.len as u64);
    }
    seg.buf_start += buf.len as u64;
    buf.clear();
    Ok(())
}

fn write_buffer(seg: &mut OpenSegment, buf: &AlignedBuf) -> Result<(), StoreError> {
    seg.file
        .write_all_at(buf.as_slice(), seg.buf_start)
        .map_err(|e| StoreError::io(&seg.path, "writing records", e))
}

/// The segments, quarantined and stray names of a camera folder.
fn list_folder(io: &dyn StorageIo, dir: &Path) -> Result<Listing, StoreError> {
    let (Some(camera), Some(data_dir)) = (
        dir.file_name().and_then(|n| n.to_str()),
        dir.parent().and_then(|r| r.parent()),
    ) else {
        return Ok(Listing::default());
    };
    super::catalog::list_segments(io, data_dir, camera)
}

/// One above the highest frame number of any readable segment, so that a
/// number is never used twice whatever is damaged, renamed or missing.
/// Closed segments cost two small reads (their index record's number is
/// one past their last frame); unclosed ones are scanned.
fn next_frame_seq(io: &dyn StorageIo, listing: &Listing) -> u64 {
    let mut next = 0u64;
    for seg in &listing.segments {
        let Ok(file) = io.open_read(&seg.path) else {
            continue;
        };
        let seg_next = match read_trailer(file.as_ref(), &seg.path) {
            Ok(Some(t)) => Some(t.next_frame_seq()),
            _ => SegmentReader::open(io, &seg.path)
                .ok()
                .and_then(|r| r.frames.last().map(|f| f.seq + 1)),
        };
        next = next.max(seg_next.unwrap_or(0));
    }
    next
}
