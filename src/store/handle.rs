//! [`Store`]: the one way into stored footage. It owns the I/O, the data
//! folder, the set of segments being written, retention's pass lock, the
//! hook writers run before each new segment, and the storage statistics;
//! writers, retention, readers, recovery and `verify` are all had from it,
//! so they share those invariants without anyone wiring them by hand.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::catalog::{self, Listing, SegmentEntry};
use super::format::PositionSample;
use super::io::{RealIo, StorageIo};
use super::query::{self, FrameRange};
use super::reader::{HeldSegment, SegmentReader, StreamOrigin};
use super::retention::{Retention, RetentionPolicy};
use super::stats::{CameraStoreStats, RecoveryReport, StoreStats};
use super::verify::VerifyReport;
use super::writer::{BeforeNewSegment, OpenSegments, SegmentWriter, WriterSettings};
use super::{anchor, recovery, StoreError};

/// Frames of one segment that may borrow the boot of the segment before
/// them, when their own stream header is lost: the gap in monotonic time
/// between the two must be under this (the same boot goes on).
const SAME_BOOT_GAP_NS: u64 = 10_000_000_000;

/// A handle on the store in one data folder; clones share everything.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    io: Arc<dyn StorageIo>,
    data_dir: PathBuf,
    /// Segments being written; retention and incident locking consult it.
    open: OpenSegments,
    /// Held by every retention pass and by incident locking, so a segment
    /// is never deleted between being found and being locked.
    pass_lock: Arc<Mutex<()>>,
    stats: Arc<StoreStats>,
    cameras: Mutex<HashMap<String, Arc<CameraStoreStats>>>,
    /// Run by every writer before it creates a segment (retention, saving
    /// the time).
    before_new_segment: Mutex<Option<BeforeNewSegment>>,
    /// Frames already checked per segment: how many, and which failed. A
    /// segment's frames only ever grow at the end, so checks resume there.
    checked: Mutex<HashMap<PathBuf, CheckedFrames>>,
    /// Bumped by every relabelling: what was read before it may carry old
    /// wall times.
    relabels: std::sync::atomic::AtomicU64,
}

#[derive(Clone, Debug)]
struct CheckedFrames {
    count: usize,
    damaged: Vec<(usize, String)>,
    at: Instant,
}

/// Segments whose checks are remembered, at most.
const CHECKED_SEGMENTS_MAX: usize = 10_000;
/// How long a check is trusted before the frames are read again: longer
/// than the range requests of one download, short enough that damage at
/// rest since is found by the next export.
const CHECK_TRUSTED_FOR: Duration = Duration::from_secs(600);

/// One stored frame, read and checked.
#[derive(Clone, Debug)]
pub struct StoredFrame {
    pub jpeg: Vec<u8>,
    pub wall_ns: i64,
    /// The segment's file name and the frame's place in it.
    pub segment: String,
    pub index: usize,
}

impl Store {
    pub fn new(io: Arc<dyn StorageIo>, data_dir: impl Into<PathBuf>) -> Store {
        Store {
            inner: Arc::new(Inner {
                io,
                data_dir: data_dir.into(),
                open: OpenSegments::default(),
                pass_lock: Arc::default(),
                stats: Arc::default(),
                cameras: Mutex::default(),
                checked: Mutex::default(),
                before_new_segment: Mutex::default(),
                relabels: Default::default(),
            }),
        }
    }

    /// The store on the real filesystem.
    pub fn on_disk(data_dir: impl Into<PathBuf>) -> Store {
        Store::new(Arc::new(RealIo::new()), data_dir)
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// The I/O under the store, for its small sidecar files (saved time,
    /// incident records); segment files are reached only through methods.
    pub fn io(&self) -> &Arc<dyn StorageIo> {
        &self.inner.io
    }

    pub fn stats(&self) -> &Arc<StoreStats> {
        &self.inner.stats
    }

    /// The storage counters of one camera (created on first use).
    pub fn camera_stats(&self, camera: &str) -> Arc<CameraStoreStats> {
        self.inner
            .cameras
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(camera.to_string())
            .or_default()
            .clone()
    }

    /// Segments being written right now.
    pub fn open_segments(&self) -> &OpenSegments {
        &self.inner.open
    }

    pub fn is_open(&self, path: &Path) -> bool {
        self.inner
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(path)
    }

    /// The lock retention passes hold.
    pub fn pass_lock(&self) -> &Arc<Mutex<()>> {
        &self.inner.pass_lock
    }

    fn io_ref(&self) -> &dyn StorageIo {
        self.inner.io.as_ref()
    }

    /// Where the segment `name` of `camera` is (or would be).
    pub fn segment_path(&self, camera: &str, name: &str) -> PathBuf {
        super::camera_dir(self.data_dir(), camera).join(name)
    }

    /// Makes the recordings folder (and the data folder) exist.
    pub fn create(&self) -> Result<(), StoreError> {
        let dir = super::recordings_dir(self.data_dir());
        self.io_ref()
            .create_dir_all(&dir)
            .map_err(|e| StoreError::io(&dir, "creating the recordings folder", e))
    }

    /// Camera ids with a recordings folder, sorted.
    pub fn cameras(&self) -> Result<Vec<String>, StoreError> {
        catalog::list_cameras(self.io_ref(), self.data_dir())
    }

    /// One camera's segments, with quarantined and stray names.
    pub fn segments(&self, camera: &str) -> Result<Listing, StoreError> {
        catalog::list_segments(self.io_ref(), self.data_dir(), camera)
    }

    /// Bytes a segment holds: its file's length, or for the segment being
    /// written, the bytes written into it so far (its file is preallocated
    /// to the expected size until it is closed).
    pub fn segment_bytes(&self, entry: &SegmentEntry) -> u64 {
        let stats = self.camera_stats(&entry.camera);
        let open = stats.open_segment();
        if open.name.as_deref() == Some(entry.name.as_str()) {
            open.bytes
        } else {
            entry.len
        }
    }

    /// Every camera's segments.
    pub fn all_segments(&self) -> Result<Vec<SegmentEntry>, StoreError> {
        catalog::list_all(self.io_ref(), self.data_dir())
    }

    /// The first camera (by id) that has a segment.
    pub fn first_camera_with_recordings(&self) -> Result<Option<String>, StoreError> {
        for camera in self.cameras()? {
            if !self.segments(&camera)?.segments.is_empty() {
                return Ok(Some(camera));
            }
        }
        Ok(None)
    }

    /// Opens a listed segment. A segment whose stream header is lost gets
    /// one rebuilt from its frames, with the boot and rate of the segment
    /// before it when its frames go on from that one's in the same boot.
    pub fn open_segment(&self, entry: &SegmentEntry) -> Result<SegmentReader, StoreError> {
        let mut reader = SegmentReader::open(self.io_ref(), &entry.path)?;
        if reader.stream_origin == StreamOrigin::Rebuilt {
            self.borrow_boot(entry, &mut reader);
        }
        Ok(reader)
    }

    fn borrow_boot(&self, entry: &SegmentEntry, reader: &mut SegmentReader) {
        let Ok(listing) = self.segments(&entry.camera) else {
            return;
        };
        let Some(prev) = listing
            .segments
            .iter()
            .filter(|s| s.seq < entry.seq)
            .max_by_key(|s| s.seq)
        else {
            return;
        };
        let Ok(before) = SegmentReader::open(self.io_ref(), &prev.path) else {
            return;
        };
        let (Some(last), Some(first)) = (before.frames.last(), reader.frames.first()) else {
            return;
        };
        let continues = first.seq > last.seq
            && first.mono_ns >= last.mono_ns
            && first.mono_ns - last.mono_ns <= SAME_BOOT_GAP_NS
            && before.stream_origin != StreamOrigin::Rebuilt;
        if continues {
            reader.stream.boot_id = before.stream.boot_id;
            reader.stream.fps_milli = before.stream.fps_milli;
            reader.reapply_anchor(self.io_ref());
        }
    }

    /// The frames of `camera` with wall time in `[from_ns, to_ns)`.
    pub fn range(&self, camera: &str, from_ns: i64, to_ns: i64) -> Result<FrameRange, StoreError> {
        query::open_range(self, camera, from_ns, to_ns, usize::MAX)
    }

    /// As [`range`](Store::range), with damaged frames left out and named
    /// (`FrameRange::skipped`): what an export serves.
    pub fn intact_range(
        &self,
        camera: &str,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<FrameRange, StoreError> {
        query::intact_range(self, camera, from_ns, to_ns, usize::MAX)
    }

    /// The intact frames of `camera` in `[from_ns, to_ns)`, one segment at
    /// a time, each handed to `visit` (which returns false to stop): what
    /// [`intact_range`](Store::intact_range) holds all at once. Segments are
    /// counted first, each index read and let go, and none is visited if
    /// more than `frames_max` frames are found (`over_limit`).
    pub fn walk_intact_range(
        &self,
        camera: &str,
        from_ns: i64,
        to_ns: i64,
        frames_max: usize,
        visit: &mut dyn FnMut(query::SegmentRuns) -> bool,
    ) -> Result<query::RangeWalk, StoreError> {
        query::walk_intact_range(self, camera, from_ns, to_ns, frames_max, visit)
    }

    /// The GPS positions of `camera` received in `[from_ns, to_ns)`, oldest
    /// first, handed to `visit` a segment's worth at a time (see
    /// `query::walk_positions`).
    pub fn walk_positions(
        &self,
        camera: &str,
        from_ns: i64,
        to_ns: i64,
        visit: &mut dyn FnMut(&[PositionSample]),
    ) -> Result<query::PositionWalk, StoreError> {
        query::walk_positions(self, camera, from_ns, to_ns, visit)
    }

    /// A held segment's reader again (see [`HeldSegment`]), with the clock
    /// anchors applied as [`open_segment`](Store::open_segment) does.
    pub fn reopen_held(&self, held: &HeldSegment) -> Result<SegmentReader, StoreError> {
        Ok(held.reopen()?.anchored(self.io_ref()))
    }

    /// As [`intact_range`](Store::intact_range), opening segments only
    /// until more than `frames_max` frames were found; then the range is
    /// `over_limit`, incomplete, and unchecked.
    pub fn intact_range_at_most(
        &self,
        camera: &str,
        from_ns: i64,
        to_ns: i64,
        frames_max: usize,
    ) -> Result<FrameRange, StoreError> {
        query::intact_range(self, camera, from_ns, to_ns, frames_max)
    }

    /// The frames of an opened segment that fail their checks, with why.
    /// Remembered, so a range asked for again (an HTTP range request) costs
    /// no second read; read errors are not remembered.
    pub fn damaged_frames(&self, reader: &SegmentReader, batch_bytes: u64) -> Vec<(usize, String)> {
        if !reader.closed {
            // Scanned just now: the scan kept only frames whose CRCs check.
            return Vec::new();
        }
        let key = reader.path.clone();
        let (checked_count, known_damaged) = self
            .inner
            .checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .filter(|c| c.count <= reader.frames.len() && c.at.elapsed() < CHECK_TRUSTED_FOR)
            .map_or((0, Vec::new()), |c| (c.count, c.damaged.clone()));
        if checked_count == reader.frames.len() {
            return known_damaged;
        }
        let found = reader.damaged_frames(checked_count, batch_bytes);
        let transient = found
            .iter()
            .any(|(_, e)| matches!(e, StoreError::Io { .. }));
        let mut damaged = known_damaged;
        damaged.extend(found.into_iter().map(|(k, e)| (k, e.to_string())));
        if !transient {
            let mut checked = self.inner.checked.lock().unwrap_or_else(|e| e.into_inner());
            if checked.len() >= CHECKED_SEGMENTS_MAX {
                checked.clear();
            }
            checked.insert(
                key,
                CheckedFrames {
                    count: reader.frames.len(),
                    damaged: damaged.clone(),
                    at: Instant::now(),
                },
            );
        }
        damaged
    }

    /// Wall time of the newest readable frame of `camera`.
    pub fn newest_frame_wall_ns(&self, camera: &str) -> Result<Option<i64>, StoreError> {
        query::newest_frame_wall_ns(self, camera)
    }

    /// The intact frame nearest `at_ns` (within `window_ns`), then `step`
    /// intact frames further on (negative: back). A damaged frame is
    /// stepped over, never served.
    pub fn frame_near(
        &self,
        camera: &str,
        at_ns: i64,
        window_ns: i64,
        step: i64,
    ) -> Result<Option<StoredFrame>, StoreError> {
        query::frame_near(self, camera, at_ns, window_ns, step)
    }

    /// Recovers every camera folder (configured or not): closes what a cut
    /// left open. Reports are kept in each camera's statistics.
    pub fn recover(&self) -> Result<BTreeMap<String, Vec<RecoveryReport>>, StoreError> {
        let mut out = BTreeMap::new();
        for camera in self.cameras()? {
            // A folder that cannot be listed is reported; the others go on.
            let reports = recovery::recover_camera(self.io_ref(), self.data_dir(), &camera)
                .unwrap_or_else(|e| {
                    log::error!("[{camera}] recovery could not run: {e}");
                    vec![RecoveryReport {
                        segment: String::new(),
                        action: format!("recovery could not run: {e}"),
                        ..RecoveryReport::default()
                    }]
                });
            *self
                .camera_stats(&camera)
                .recovery
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = reports.clone();
            out.insert(camera, reports);
        }
        Ok(out)
    }

    /// Checks what is stored; changes nothing.
    pub fn verify(&self, deep: bool) -> Result<VerifyReport, StoreError> {
        super::verify::verify(self.io_ref(), self.data_dir(), deep)
    }

    /// Sets what every writer had from this store runs before it creates a
    /// segment (writers made before keep what they had).
    pub fn before_new_segment(&self, hook: BeforeNewSegment) {
        *self
            .inner
            .before_new_segment
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    /// A writer for one camera, sharing the store's set of open segments,
    /// the camera's statistics and the before-new-segment hook.
    /// `settings.camera_dir` is set from the camera id.
    pub fn writer(&self, mut settings: WriterSettings) -> Result<SegmentWriter, StoreError> {
        settings.camera_dir = super::camera_dir(self.data_dir(), &settings.camera_id);
        let stats = self.camera_stats(&settings.camera_id);
        let mut writer = SegmentWriter::new(
            self.inner.io.clone(),
            settings,
            stats,
            self.inner.open.clone(),
        )?;
        let hook = self
            .inner
            .before_new_segment
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(hook) = hook {
            writer.set_before_new_segment(hook);
        }
        Ok(writer)
    }

    /// Retention over this store, holding the store's pass lock.
    pub fn retention(&self, policy: RetentionPolicy) -> Retention {
        let stats = &self.inner.stats;
        stats
            .cap_bytes
            .store(policy.cap_bytes, std::sync::atomic::Ordering::Relaxed);
        stats
            .min_free_bytes
            .store(policy.min_free_bytes, std::sync::atomic::Ordering::Relaxed);
        Retention::new(
            self.inner.io.clone(),
            self.data_dir(),
            policy,
            self.inner.open.clone(),
            stats.clone(),
        )
        .with_pass_lock(self.inner.pass_lock.clone())
    }

    /// Anchors the recordings of boot `boot_id` to `wall_minus_mono_ns`
    /// (see `store::anchor`); returns the number of segments relabelled.
    pub fn relabel_boot(&self, relabel: &BootRelabel) -> Result<usize, StoreError> {
        let mut count = 0;
        for camera in self.cameras()? {
            let first = relabel.first_seq.get(&camera).copied().unwrap_or(0);
            let mut labels = Vec::new();
            for seg in self
                .segments(&camera)?
                .segments
                .iter()
                .filter(|s| s.seq >= first)
            {
                let start = match self.open_segment(seg) {
                    Ok(r) if r.stream.boot_id != relabel.boot_id => continue,
                    Ok(r) => match r.frames.first() {
                        Some(f) => f.mono_ns as i64 + relabel.wall_minus_mono_ns,
                        None => continue,
                    },
                    // Nothing synced yet: it was named with the current offset.
                    Err(_) => match query::label_start_ns(seg) {
                        Some(s) => s + (relabel.wall_minus_mono_ns - relabel.current_offset_ns),
                        None => continue,
                    },
                };
                labels.push((seg.seq, start));
            }
            if labels.is_empty() {
                continue;
            }
            count += labels.len();
            let dir = super::camera_dir(self.data_dir(), &camera);
            anchor::write_anchor(
                self.io_ref(),
                &dir,
                &relabel.boot_id,
                relabel.wall_minus_mono_ns,
                relabel.set_at_wall_ns,
                labels,
            )?;
        }
        // The spans of the segments being written follow their recordings.
        let shift = relabel.wall_minus_mono_ns - relabel.current_offset_ns;
        let cameras = self.inner.cameras.lock().unwrap_or_else(|e| e.into_inner());
        for stats in cameras.values() {
            for s in stats.open_segment().spans.spans.iter_mut() {
                s.start_ns += shift;
                s.end_ns += shift;
                s.estimated = false;
            }
        }
        drop(cameras);
        self.inner
            .relabels
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(count)
    }

    /// How many relabellings there were: a cache of anything holding wall
    /// times is stale once it changes.
    pub fn relabel_generation(&self) -> u64 {
        self.inner
            .relabels
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Per camera: the oldest segment number of the newest run of segments
    /// recorded in boot `boot_id`, or one past the newest segment if none
    /// was. (A service restarted within one boot keeps its earlier
    /// segments in the boot.)
    pub fn boot_first_sequences(&self, boot_id: &[u8; 16]) -> HashMap<String, u64> {
        let mut out = HashMap::new();
        let Ok(cameras) = self.cameras() else {
            return out;
        };
        for camera in cameras {
            let Ok(listing) = self.segments(&camera) else {
                continue;
            };
            let mut first = listing.segments.last().map_or(0, |s| s.seq + 1);
            for seg in listing.segments.iter().rev() {
                match self.open_segment(seg) {
                    Ok(r) if r.stream.boot_id == *boot_id => first = seg.seq,
                    _ => break,
                }
            }
            out.insert(camera, first);
        }
        out
    }
}

/// What a clock setting relabels: one boot's recordings, from the segment
/// numbers it may have written.
#[derive(Clone, Debug)]
pub struct BootRelabel {
    pub boot_id: [u8; 16],
    /// The anchor: wall time minus monotonic time, as it truly was.
    pub wall_minus_mono_ns: i64,
    /// Wall minus monotonic as the clock had it until now; it corrects the
    /// start of a segment too new to be read yet.
    pub current_offset_ns: i64,
    /// Per camera, the first segment number this boot may have written.
    pub first_seq: HashMap<String, u64>,
    pub set_at_wall_ns: i64,
}
