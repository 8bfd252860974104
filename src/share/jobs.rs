//! Share clips made in the background: encoding on a Pi takes minutes, so a
//! request starts a job and the dashboard polls its progress.
//!
//! One job at a time (a second gets [`StartError::Busy`]); the job thread
//! runs at a lower CPU priority than recording, checks the free space as it
//! goes and stops when recording would need it. The finished clip goes in
//! the [`ShareCache`]; asking again for the same clip answers from there.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::SpeedUnit;
use crate::export::{range_file_name, ExportError};
use crate::store::query::candidate_segments;
use crate::store::Store;

use super::cache::ShareCache;
use super::clip::{write_clip, ClipProgress, ShareError, ShareOptions};
use super::encoder::{EncodeError, EncoderSettings, H264Encoder};

/// Makes the encoder for a job (the best this machine has, in service).
pub type MakeEncoder =
    Arc<dyn Fn(EncoderSettings) -> Result<Box<dyn H264Encoder>, EncodeError> + Send + Sync>;

/// What to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareRequest {
    pub camera: String,
    pub from_ns: i64,
    pub to_ns: i64,
    pub options: ShareOptions,
}

impl ShareRequest {
    /// The clip's file name, the same for the same request:
    /// `front_20261204T101500Z_20261204T102000Z_720p_standard.mp4`, with
    /// `_mph` before `.mp4` when its text track shows miles per hour.
    pub fn clip_name(&self) -> String {
        let unit = match self.options.speed_unit {
            SpeedUnit::Kmh => "",
            SpeedUnit::Mph => "_mph",
        };
        let rest = format!(
            "_{}p_{}{unit}.mp4",
            self.options.size.lines(),
            self.options.quality.name()
        );
        range_file_name(&self.camera, self.from_ns, self.to_ns, &rest)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// A job as it stands.
#[derive(Clone, Debug)]
pub struct JobSnapshot {
    pub request: ShareRequest,
    pub state: JobState,
    /// Frames read and checked before encoding starts.
    pub frames_checked: usize,
    /// Frames encoded.
    pub frames_done: usize,
    pub frames_total: usize,
    pub elapsed: Duration,
    /// From the rate so far; `None` until a few frames are done.
    pub eta: Option<Duration>,
    pub encoder: Option<String>,
    /// The clip's picture size, once the encoder is open (never more than
    /// the footage's, whatever size was asked for).
    pub picture: Option<(u32, u32)>,
    /// The finished clip: its name in the cache and its size.
    pub clip: Option<(String, u64)>,
    pub error: Option<String>,
    /// Frames of the range left out (damaged or missing), as in the export.
    pub skipped_frames: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("a share clip is being made ({camera}, {done} of {total} frames); one is made at a time: try again when it is done")]
    Busy {
        camera: String,
        done: usize,
        total: usize,
    },
    #[error(transparent)]
    Range(#[from] ExportError),
    /// Not enough space beside what recording keeps free, or over the
    /// cache's cap.
    #[error("{0}")]
    NoRoom(String),
}

struct Job {
    snapshot: JobSnapshot,
    started: Instant,
    /// When the first frame was encoded: the time left follows the rate
    /// since (the check before it reads, it does not encode).
    encoding_since: Option<Instant>,
    cancel: Arc<AtomicBool>,
}

pub struct ShareJobs {
    store: Store,
    cache: Arc<ShareCache>,
    make_encoder: MakeEncoder,
    /// Which encoder `make_encoder` picks on this machine (status).
    describe_encoder: Arc<dyn Fn() -> String + Send + Sync>,
    /// The last description and when it was made: the Pi's codec driver
    /// is a module that can load after the service starts, so a
    /// description without a hardware encoder is made again now and then.
    encoder_description: Mutex<(Instant, String)>,
    /// What recording keeps free on the data partition; a job never
    /// writes into it.
    min_free_bytes: u64,
    current: Arc<Mutex<Option<Job>>>,
    starting: Mutex<()>,
}

/// A running job stops this far above what recording keeps free, so that
/// it stops before retention would delete footage for the space.
const SPACE_MARGIN_BYTES: u64 = 16_000_000;
/// Free space is read this often (in frames) while a job runs.
const SPACE_CHECK_FRAMES: usize = 64;
/// How often status looks again for a hardware encoder it did not find.
const ENCODER_LOOK_AGAIN: Duration = Duration::from_secs(10);
/// Nice value of the job thread: recording comes first.
const JOB_NICE: i32 = 10;

impl ShareJobs {
    pub fn new(
        store: Store,
        cache: Arc<ShareCache>,
        make_encoder: MakeEncoder,
        describe_encoder: Arc<dyn Fn() -> String + Send + Sync>,
        min_free_bytes: u64,
    ) -> ShareJobs {
        let description = describe_encoder();
        ShareJobs {
            store,
            cache,
            make_encoder,
            describe_encoder,
            encoder_description: Mutex::new((Instant::now(), description)),
            min_free_bytes,
            current: Arc::default(),
            starting: Mutex::new(()),
        }
    }

    /// Which encoder a job would use now, for status.
    pub fn encoder_description(&self) -> String {
        let mut d = self
            .encoder_description
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !d.1.starts_with("hardware") && d.0.elapsed() >= ENCODER_LOOK_AGAIN {
            *d = (Instant::now(), (self.describe_encoder)());
        }
        d.1.clone()
    }

    pub fn cache(&self) -> &Arc<ShareCache> {
        &self.cache
    }

    /// The running job, or the last one.
    pub fn snapshot(&self) -> Option<JobSnapshot> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.as_ref().map(|job| {
            let mut s = job.snapshot.clone();
            if s.state == JobState::Running {
                s.elapsed = job.started.elapsed();
                s.eta = job
                    .encoding_since
                    .and_then(|t| eta(t.elapsed(), s.frames_done, s.frames_total));
            }
            s
        })
    }

    /// Asks the running job to stop; its snapshot, or `None` when no job runs.
    pub fn cancel(&self) -> Option<JobSnapshot> {
        {
            let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            let job = current
                .as_ref()
                .filter(|j| j.snapshot.state == JobState::Running)?;
            job.cancel.store(true, Ordering::Relaxed);
        }
        // The job thread notices at its next frame.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.snapshot() {
                Some(s) if s.state == JobState::Running => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                other => return other,
            }
        }
        self.snapshot()
    }

    /// The size a clip of this request would have, from the bitrate.
    pub fn estimate(&self, request: &ShareRequest) -> Result<ShareEstimate, StartError> {
        estimate(&self.store, request)
    }

    /// Starts a job, or answers at once with the clip already made.
    pub fn start(&self, request: ShareRequest) -> Result<JobSnapshot, StartError> {
        // Starts one at a time; `current` is held only for moments, so
        // progress polls are answered while the range is measured.
        let _one_start = self.starting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(job) = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|j| j.snapshot.state == JobState::Running)
        {
            return Err(StartError::Busy {
                camera: job.snapshot.request.camera.clone(),
                done: job.snapshot.frames_done,
                total: job.snapshot.frames_total,
            });
        }
        let name = request.clip_name();
        let mut snapshot = JobSnapshot {
            request: request.clone(),
            state: JobState::Running,
            frames_checked: 0,
            frames_done: 0,
            frames_total: 0,
            elapsed: Duration::ZERO,
            eta: None,
            encoder: None,
            picture: None,
            clip: None,
            error: None,
            skipped_frames: 0,
        };
        if let Some((_, bytes)) = self.cache.finished(&name) {
            snapshot.state = JobState::Done;
            snapshot.clip = Some((name, bytes));
            *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Job {
                snapshot: snapshot.clone(),
                started: Instant::now(),
                encoding_since: None,
                cancel: Arc::default(),
            });
            return Ok(snapshot);
        }
        let estimate = estimate(&self.store, &request)?;
        snapshot.frames_total = estimate.frames as usize;
        self.check_room(estimate.share_bytes)?;

        let cancel = Arc::new(AtomicBool::new(false));
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Job {
            snapshot: snapshot.clone(),
            started: Instant::now(),
            encoding_since: None,
            cancel: cancel.clone(),
        });
        let worker = Worker {
            store: self.store.clone(),
            cache: self.cache.clone(),
            make_encoder: self.make_encoder.clone(),
            min_free_bytes: self.min_free_bytes,
            current: self.current.clone(),
            cancel,
        };
        let spawned = std::thread::Builder::new()
            .name("share-job".into())
            .spawn(move || worker.run(request, name));
        if let Err(e) = spawned {
            self.finish(JobState::Failed, format!("could not start the job: {e}"));
        }
        Ok(self.snapshot().unwrap_or(snapshot))
    }

    /// Room for a clip of about `bytes`: twice that (the body, then the
    /// file) beside what recording keeps free, and within the cache's cap.
    fn check_room(&self, bytes: u64) -> Result<(), StartError> {
        if !self.cache.make_room(bytes, None) {
            return Err(StartError::NoRoom(format!(
                "the clip would be about {} MB, over the share cache's cap of {} MB \
                 (share_cache_mb): choose a shorter range, a smaller size or a lower quality",
                bytes.div_ceil(1_000_000),
                self.cache.cap_bytes() / 1_000_000
            )));
        }
        let free = free_bytes(&self.store, self.cache.dir());
        if free.saturating_sub(bytes.saturating_mul(2)) < self.min_free_bytes {
            return Err(StartError::NoRoom(format!(
                "not enough free space for a clip of about {} MB: {} MB free, and recording \
                 keeps {} MB (min_free_mb); a storage_cap_gb below the card's size leaves room",
                bytes.div_ceil(1_000_000),
                free / 1_000_000,
                self.min_free_bytes / 1_000_000
            )));
        }
        Ok(())
    }

    fn finish(&self, state: JobState, error: String) {
        finish(&self.current, state, Some(error), None);
    }
}

/// What the dashboard shows before a tap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShareEstimate {
    /// Frames in the range (from the segments' spans; not read one by one).
    pub frames: u64,
    pub duration_s: f64,
    pub width: u32,
    pub height: u32,
    pub share_bytes: u64,
    /// The lossless export: the stored frames' bytes over the range.
    pub lossless_bytes: u64,
}

/// Estimates both clips of a range from the segment list and one stream
/// header: the lossless one as the stored bytes in proportion to the time
/// covered, the share one from its bitrate.
pub fn estimate(store: &Store, request: &ShareRequest) -> Result<ShareEstimate, StartError> {
    let (from, to) = (request.from_ns, request.to_ns);
    if to <= from {
        return Err(ExportError::BadTimeRange { from, to }.into());
    }
    let no_footage = || ExportError::NoFootage {
        camera: request.camera.clone(),
        from,
        to,
    };
    let listing = store
        .segments(&request.camera)
        .map_err(|e| StartError::Range(ExportError::Store(e)))?;
    let segments = &listing.segments;
    let mut frames = 0f64;
    let mut covered_ns = 0i64;
    let mut lossless = 0f64;
    let mut stream = None;
    for i in candidate_segments(segments, from, to) {
        let Ok(reader) = store.open_segment(&segments[i]) else {
            continue;
        };
        let (Some(first), Some(last)) = (reader.frames.first(), reader.frames.last()) else {
            continue;
        };
        let (start, end) = (first.wall_ns, last.wall_ns.max(first.wall_ns + 1));
        let overlap = end.min(to) - start.max(from);
        if overlap <= 0 && !(from..to).contains(&start) {
            continue;
        }
        let part = overlap.max(0) as f64 / (end - start) as f64;
        frames += (reader.frames.len() as f64 * part).max(1.0);
        covered_ns += overlap.max(0);
        lossless += reader
            .frames
            .iter()
            .map(|f| f.payload_len as f64 + 32.0)
            .sum::<f64>()
            * part;
        stream.get_or_insert(reader.stream.clone());
    }
    let stream = stream.ok_or_else(no_footage)?;
    let (width, height) = request
        .options
        .size
        .picture_size(stream.width, stream.height);
    let fps = ((stream.fps_milli + 500) / 1000).clamp(1, 240);
    let duration_s = covered_ns as f64 / 1e9;
    let bitrate = request.options.quality.bitrate_bps(width, height, fps) as f64;
    // The encoder meets its bitrate over seconds, not per frame: a short
    // clip comes out larger, by its first key frame.
    let share = bitrate * duration_s / 8.0 + (width * height / 4) as f64 + 4096.0;
    Ok(ShareEstimate {
        frames: frames.round() as u64,
        duration_s,
        width,
        height,
        share_bytes: share as u64,
        lossless_bytes: lossless as u64,
    })
}

/// `20261204T101500Z`, with milliseconds when the time has them, so two
/// ranges that differ by less than a second are two clips.
fn eta(elapsed: Duration, done: usize, total: usize) -> Option<Duration> {
    if done < 8 || elapsed.is_zero() {
        return None;
    }
    let per_frame = elapsed.as_secs_f64() / done as f64;
    Some(Duration::from_secs_f64(
        per_frame * total.saturating_sub(done) as f64,
    ))
}

fn free_bytes(store: &Store, dir: &Path) -> u64 {
    store.io().space(dir).map_or(u64::MAX, |s| s.free_bytes)
}

fn finish(
    current: &Mutex<Option<Job>>,
    state: JobState,
    error: Option<String>,
    clip: Option<(String, u64)>,
) {
    let mut current = current.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(job) = current.as_mut() {
        job.snapshot.state = state;
        job.snapshot.error = error;
        job.snapshot.clip = clip;
        job.snapshot.elapsed = job.started.elapsed();
        job.snapshot.eta = None;
    }
}

/// The job thread's share of [`ShareJobs`].
struct Worker {
    store: Store,
    cache: Arc<ShareCache>,
    make_encoder: MakeEncoder,
    min_free_bytes: u64,
    current: Arc<Mutex<Option<Job>>>,
    cancel: Arc<AtomicBool>,
}

impl Worker {
    fn run(self, request: ShareRequest, name: String) {
        lower_priority();
        let path = self.cache.path(&name);
        let ShareRequest {
            camera,
            from_ns,
            to_ns,
            options,
        } = &request;
        let current = self.current.clone();
        let make = |settings: EncoderSettings| {
            let encoder = (self.make_encoder)(settings)?;
            let name = encoder.name();
            log::info!("share clip {}: encoding with {name}", request.clip_name());
            if let Some(job) = current.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                job.snapshot.encoder = Some(name);
                job.snapshot.picture = Some((settings.width, settings.height));
            }
            Ok(encoder)
        };
        let mut out_of_space = None;
        let mut progress = |p: ClipProgress| {
            if let Some(job) = current.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                if job.snapshot.frames_done == 0 && p.encoded > 0 {
                    job.encoding_since = Some(Instant::now());
                }
                job.snapshot.frames_checked = p.checked;
                job.snapshot.frames_done = p.encoded;
                job.snapshot.frames_total = p.total;
            }
            if p.encoded > 0 && p.encoded % SPACE_CHECK_FRAMES == 0 {
                let free = free_bytes(&self.store, self.cache.dir());
                if free < self.min_free_bytes.saturating_add(SPACE_MARGIN_BYTES) {
                    out_of_space = Some(free);
                    return false;
                }
            }
            !self.cancel.load(Ordering::Relaxed)
        };
        let result = write_clip(
            &self.store,
            camera,
            *from_ns,
            *to_ns,
            *options,
            &path,
            &make,
            &mut progress,
        );
        match result {
            Ok(report) => {
                let skipped = report.skipped.iter().map(|s| s.frames).sum();
                if let Some(job) = current.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                    job.snapshot.skipped_frames = skipped;
                    job.snapshot.frames_done = report.frames;
                    job.snapshot.frames_total = report.frames;
                }
                log::info!(
                    "share clip {name}: {} frames, {} bytes, with {}",
                    report.frames,
                    report.bytes,
                    report.encoder
                );
                self.cache.make_room(0, Some(&name));
                finish(&current, JobState::Done, None, Some((name, report.bytes)));
            }
            Err(ShareError::Cancelled { done, total }) => {
                let (state, why) = match out_of_space {
                    Some(free) => (
                        JobState::Failed,
                        format!(
                            "stopped after {done} of {total} frames: recording needs the space \
                             ({} MB free, {} MB kept free)",
                            free / 1_000_000,
                            self.min_free_bytes / 1_000_000
                        ),
                    ),
                    None => (
                        JobState::Cancelled,
                        format!("cancelled after {done} of {total} frames"),
                    ),
                };
                log::info!("share clip {name}: {why}");
                finish(&current, state, Some(why), None);
            }
            Err(e) => {
                log::warn!("share clip {name}: {e}");
                finish(&current, JobState::Failed, Some(e.to_string()), None);
            }
        }
    }
}

/// Recording and the dashboard's live view come first: the job's thread
/// (and the encoder threads it starts, which inherit it) run niced.
fn lower_priority() {
    // SAFETY: gettid and setpriority take plain integers and touch no memory.
    let r = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, JOB_NICE)
    };
    if r != 0 {
        log::debug!(
            "share job runs at normal priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::clip::Quality;
    use crate::share::picture::ShareSize;

    #[test]
    fn the_same_request_names_the_same_clip_and_every_option_changes_it() {
        let r = ShareRequest {
            camera: "front cam".into(),
            from_ns: 1_764_843_300_000_000_000,
            to_ns: 1_764_843_600_000_000_000,
            options: ShareOptions::default(),
        };
        assert_eq!(
            r.clip_name(),
            "front_cam_20251204T101500Z_20251204T102000Z_720p_standard.mp4"
        );
        assert!(super::super::cache::is_clip_name(&r.clip_name()));
        let mut other = r.clone();
        other.options.size = ShareSize::P480;
        assert_ne!(other.clip_name(), r.clip_name());
        other = r.clone();
        other.options.quality = Quality::High;
        assert_ne!(other.clip_name(), r.clip_name());
        other = r.clone();
        other.from_ns += 250_000_000;
        assert_eq!(
            other.clip_name(),
            "front_cam_20251204T101500.250Z_20251204T102000Z_720p_standard.mp4"
        );
        assert!(super::super::cache::is_clip_name(&other.clip_name()));
    }

    #[test]
    fn status_finds_the_hardware_encoder_when_its_driver_loads_after_start() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ShareCache::open(&dir.path().join("c"), 1000).unwrap();
        let looks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = looks.clone();
        let jobs = ShareJobs::new(
            Store::on_disk(dir.path()),
            Arc::new(cache),
            Arc::new(|_| unreachable!("no job is started")),
            Arc::new(move || match counted.fetch_add(1, Ordering::SeqCst) {
                0 => "none: no hardware H.264 encoder".to_string(),
                _ => "hardware (/dev/video11)".to_string(),
            }),
            0,
        );
        // Not looked for again on every status poll...
        assert!(jobs.encoder_description().starts_with("none"));
        assert_eq!(looks.load(Ordering::SeqCst), 1);
        // ...but after a while, and then kept once found.
        let back = Instant::now() - ENCODER_LOOK_AGAIN - Duration::from_secs(1);
        jobs.encoder_description.lock().unwrap().0 = back;
        assert_eq!(jobs.encoder_description(), "hardware (/dev/video11)");
        jobs.encoder_description.lock().unwrap().0 = back;
        assert_eq!(jobs.encoder_description(), "hardware (/dev/video11)");
        assert_eq!(looks.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn eta_comes_from_the_rate_so_far() {
        assert_eq!(eta(Duration::from_secs(2), 4, 100), None);
        assert_eq!(
            eta(Duration::from_secs(10), 100, 400),
            Some(Duration::from_secs(30))
        );
    }
}
