//! Wires cameras to storage: per camera one capture thread, a pool of
//! encoder threads and one writer thread, joined by bounded queues.
//!
//! Backpressure flows backwards: a slow disk fills the writer queue, which
//! blocks the encoders, which fills the encode queue, and then the capture
//! thread drops frames (counted by reason) instead of queueing them. Memory
//! never grows with a slow disk or a slow encoder.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::camera::CameraSource;
use crate::clock::Clock;
use crate::config::{CameraConfig, Config};
use crate::config::{GpsConfig, SpeedUnit};
use crate::encode::caption::Caption;
use crate::encode::{EncoderSettings, JpegEncoder};
use crate::export::timeline::lat_lon_text;
use crate::frame::CaptureTime;
use crate::frame::VideoFrame;
use crate::gps::clock::{GpsClockPolicy, RecorderClock};
use crate::gps::{GpsFix, GpsSource};
use crate::incident::{IncidentKeeper, RollSettings};
use crate::led::{LedState, StatusLed};
use crate::live::{LiveHub, LiveSlot};
use crate::share::cache::ShareCache;
use crate::share::clip::{best_encoder, share_encoder_description};
use crate::share::jobs::ShareJobs;
use crate::status::GpsStatus;
use crate::status::{CameraStatus, DropReason, Status};
use crate::store::format::PositionSample;
use crate::store::retention::{Retention, RetentionPolicy};
use crate::store::sidecar;
use crate::store::writer::{EncodedFrame, SegmentWriter, WriterSettings};
use crate::store::{Store, StoreError};
use crate::timekeeper::{TimeAuthority, Timekeeper};

/// What of a GPS fix is burned into the picture after the time.
#[derive(Clone, Copy, Debug)]
struct CaptionStyle {
    speed: bool,
    position: bool,
    unit: SpeedUnit,
}

impl CaptionStyle {
    fn of(config: &GpsConfig) -> CaptionStyle {
        CaptionStyle {
            speed: config.overlay_speed,
            position: config.overlay_position,
            unit: config.speed_unit,
        }
    }

    /// What shows without a fresh fix (`-- km/h`), if anything is shown.
    fn placeholder(self) -> Option<String> {
        let mut parts = Vec::new();
        if self.speed {
            parts.push(format!("-- {}", self.unit.label()));
        }
        if self.position {
            parts.push("no position".to_string());
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    /// `50 km/h 52.52001N 13.40700E`; None for a fix without a position.
    fn text(self, fix: &GpsFix) -> Option<String> {
        if !(self.speed || self.position) || !fix.has_position() {
            return None;
        }
        let mut parts = Vec::new();
        if self.speed {
            parts.push(self.unit.text(fix.speed_mps.unwrap_or(0.0)));
        }
        if let (true, Some(lat), Some(lon)) = (self.position, fix.lat, fix.lon) {
            parts.push(lat_lon_text(lat, lon));
        }
        Some(parts.join(" "))
    }
}

/// What each GPS fix does, on the receiver's reader thread: the caption,
/// the stored position, and the clock.
struct FixHandler {
    show: CaptionStyle,
    caption: Arc<Caption>,
    positions: Arc<PositionFeed>,
    clock: Arc<dyn Clock>,
    timekeeper: Option<Arc<Timekeeper>>,
    policy: GpsClockPolicy,
    /// Why the last fix's time was not used, for status.
    rejection: Arc<Mutex<Option<String>>>,
}

impl FixHandler {
    fn on_fix(&mut self, fix: GpsFix) {
        if let Some(text) = self.show.text(&fix) {
            self.caption.set(fix.mono_ns, text);
        }
        self.store_position(&fix);
        self.set_clock(&fix);
    }

    /// Stored with the recorder's time of reception, like a frame's capture
    /// time (relabelled with the frames if the clock is set).
    fn store_position(&self, fix: &GpsFix) {
        let (mono, wall) = (self.clock.mono_ns(), self.clock.wall_ns());
        let received = CaptureTime {
            mono_ns: fix.mono_ns,
            wall_ns: wall - mono.saturating_sub(fix.mono_ns) as i64,
        };
        self.positions
            .publish(fix.to_position(received, self.clock.wall_estimated()));
    }

    fn set_clock(&mut self, fix: &GpsFix) {
        let Some(tk) = &self.timekeeper else {
            return;
        };
        let c = tk.clock();
        let now = RecorderClock {
            wall_minus_mono_ns: c.wall_ns() - c.mono_ns() as i64,
            estimated: c.wall_estimated(),
        };
        let set = self.policy.on_fix(fix, now);
        let why = self.policy.last_rejection.as_ref().map(|r| r.to_string());
        let mut shown = self.rejection.lock().unwrap_or_else(|e| e.into_inner());
        if why.is_some() && *shown != why {
            log::info!("GPS time not used: {}", why.as_deref().unwrap_or(""));
        }
        *shown = why;
        drop(shown);
        if let Some(offset) = set {
            if let Err(e) = tk.set_wall(c.mono_ns() as i64 + offset, TimeAuthority::Gps) {
                log::error!("GPS time: could not relabel the recordings: {e}");
            }
        }
    }
}

/// Frames waiting for an encoder, per encoder thread.
const ENCODE_QUEUE_PER_THREAD: usize = 2;
/// Encoded frames waiting for the writer.
const WRITER_QUEUE_FRAMES: usize = 8;
const BACKOFF_MIN_MS: u64 = 500;
const BACKOFF_MAX_MS: u64 = 30_000;
/// How often retention and the status file are refreshed.
const HOUSEKEEPING_INTERVAL_MS: u64 = 5_000;
pub const STATUS_FILE_NAME: &str = "status.json";

struct EncodeJob {
    seq: u64,
    frame: VideoFrame,
}

enum Encoded {
    Frame(u64, EncodedFrame),
    /// The encoder could not use this frame; the writer must not wait for it.
    Skipped(u64),
}

pub struct Recorder {
    pipelines: Arc<Pipelines>,
    /// The thread that looks for new cameras and drives the status LED.
    watch: Option<JoinHandle<()>>,
    pub status: Arc<Status>,
    /// The newest frame of every camera, for live viewers.
    pub live: Arc<LiveHub>,
    /// Incident locks (dashboard, console, button, G-sensor).
    pub incidents: Arc<IncidentKeeper>,
    timekeeper: Option<Arc<Timekeeper>>,
    gps: Mutex<Option<GpsSource>>,
}

/// Everything a recorder needs from outside, so tests can substitute any part.
pub struct RecorderParts {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// One source per enabled camera, in the order of `config.cameras`.
    pub sources: Vec<(CameraConfig, Box<dyn CameraSource>)>,
    pub want_direct: bool,
    pub boot_id: [u8; 16],
    /// Saves the wall time at each segment boundary and every minute.
    pub timekeeper: Option<Arc<Timekeeper>>,
    /// Looks for cameras while recording (`discover_cameras`).
    pub discovery: Option<Discovery>,
    /// Shows the recorder's state (`status_led`).
    pub status_led: Option<StatusLed>,
}

/// Opens the capture source for a camera the search found.
pub type SourceFor = Box<dyn Fn(&CameraConfig) -> Box<dyn CameraSource> + Send>;

/// How the recorder finds cameras while running; the search and the
/// sources are passed in so tests can make cameras appear at will.
pub struct Discovery {
    /// Cheap and changes when devices come or go; the search runs again then.
    pub fingerprint: Box<dyn FnMut() -> u64 + Send>,
    /// Every camera attached now.
    pub search: Box<dyn FnMut() -> Vec<CameraConfig> + Send>,
    pub source_for: SourceFor,
    /// Told about each camera found, e.g. to keep it in the config file.
    pub on_found: Box<dyn FnMut(&CameraConfig) + Send>,
}

/// How often the watch thread looks at devices and the LED.
const WATCH_INTERVAL_MS: u64 = 1_000;
/// Device nodes appear one by one while a driver loads; the search waits
/// this long after a change so it sees the finished set.
const DEVICE_SETTLE_MS: u64 = 500;

/// What every camera's pipeline shares, so a camera found while running
/// starts exactly like one in the config.
struct Pipelines {
    store: Store,
    clock: Arc<dyn Clock>,
    retention: Arc<Retention>,
    status: Arc<Status>,
    live: Arc<LiveHub>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    segment_ns: u64,
    sync_interval_ns: u64,
    want_direct: bool,
    boot_id: [u8; 16],
    /// Burned in after the time by every camera (GPS speed, when on).
    caption: Arc<Caption>,
    /// GPS positions on their way to every camera's segments.
    positions: Arc<PositionFeed>,
}

/// Positions waiting for one camera's writer, at most (a minute at 10 Hz):
/// a writer that cannot keep up loses the oldest.
const POSITIONS_QUEUED_MAX: usize = 600;

/// GPS positions handed to every camera's writer thread, which stores them
/// between its frames.
#[derive(Default)]
struct PositionFeed {
    queues: Mutex<Vec<Arc<Mutex<VecDeque<PositionSample>>>>>,
}

impl PositionFeed {
    /// A queue of its own for one writer.
    fn subscribe(&self) -> Arc<Mutex<VecDeque<PositionSample>>> {
        let q = Arc::new(Mutex::new(VecDeque::new()));
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(q.clone());
        q
    }

    fn publish(&self, position: PositionSample) {
        for q in self.queues.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
            if q.len() == POSITIONS_QUEUED_MAX {
                q.pop_front();
            }
            q.push_back(position);
        }
    }
}

impl Pipelines {
    /// Starts capture, encoders and writer for one camera. `stagger` of
    /// `of` shortens its first segment so cameras close segments apart.
    fn start(
        &self,
        cam: &CameraConfig,
        source: Box<dyn CameraSource>,
        (stagger, of): (u64, u64),
    ) -> Result<(), StoreError> {
        let cs = match self.status.camera(&cam.id) {
            Some(cs) => cs,
            None => {
                let cs = CameraStatus::with_storage(&cam.id, self.store.camera_stats(&cam.id));
                self.status.add_camera(cs.clone());
                cs
            }
        };
        cs.detail().source = source.describe();
        let writer = self.store.writer(WriterSettings {
            camera_id: cam.id.clone(),
            camera_dir: PathBuf::new(), // the store sets it
            fps_milli: cam.fps * 1000,
            segment_length_ns: self.segment_ns,
            first_segment_length_ns: self.segment_ns * (of - stagger) / of,
            sync_interval_ns: self.sync_interval_ns,
            want_direct: self.want_direct,
            boot_id: self.boot_id,
        })?;
        let slot = self.live.add(&cam.id);
        let threads = spawn_camera(self, cam, source, (writer, slot), cs);
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(threads);
        Ok(())
    }
}

impl Recorder {
    /// Recovers unfinished segments, applies retention once, then starts
    /// recording every camera.
    pub fn start(config: &Config, parts: RecorderParts) -> Result<Recorder, StoreError> {
        let RecorderParts {
            store,
            clock,
            sources,
            want_direct,
            boot_id,
            timekeeper,
            discovery,
            status_led,
        } = parts;
        let status = Arc::new(Status {
            cameras: sources
                .iter()
                .map(|(c, _)| CameraStatus::with_storage(&c.id, store.camera_stats(&c.id)))
                .collect::<Vec<_>>()
                .into(),
            store: store.stats().clone(),
            ..Status::default()
        });
        let live = Arc::new(LiveHub::new(sources.iter().map(|(c, _)| c.id.as_str())));
        // A data folder that cannot be made or listed now (a card mounted
        // read-only, a failing reader) must not stop the recorder: each
        // writer keeps trying, counts the failure and shows it in status.
        if let Err(e) = store.create() {
            log::error!("STORAGE: {e}; recording starts as soon as it can be written");
        }
        // Every camera folder is recovered, including cameras no longer configured.
        if let Err(e) = store.recover() {
            log::error!("STORAGE: recovery could not list the recordings: {e}");
        }
        status
            .started_mono_ns
            .store(clock.mono_ns(), Ordering::Relaxed);
        let cap_bytes = (config.storage_cap_gb * 1e9) as u64;
        let min_free_bytes = config.min_free_mb * 1_000_000;
        let retention = Arc::new(store.retention(RetentionPolicy {
            cap_bytes,
            min_free_bytes,
        }));
        let locked_cap = cap_bytes / 100 * config.incident.locked_cap_percent as u64;
        retention.set_locked_cap(Some(locked_cap));
        let incidents = Arc::new(IncidentKeeper::new(
            store.clone(),
            clock.clone(),
            boot_id,
            RollSettings {
                pre_roll_ns: config.incident.pre_roll_s as u64 * 1_000_000_000,
                post_roll_ns: config.incident.post_roll_s as u64 * 1_000_000_000,
            },
        ));
        {
            let keeper = incidents.clone();
            retention.set_before_plan(Arc::new(move || keeper.lock_pending()));
        }
        retention.enforce();
        if let Some(tk) = &timekeeper {
            // Whoever sets the clock, what holds wall times follows it.
            let (keeper, status) = (incidents.clone(), status.clone());
            tk.on_set(Box::new(move |tk, result| {
                if let Err(e) = keeper.relabel(result.new_wall_minus_mono_ns) {
                    log::error!("incidents keep their old times: {e}");
                }
                *status.clock.lock().unwrap_or_else(|e| e.into_inner()) = Some(tk.report());
            }));
        }
        {
            let (r, tk) = (retention.clone(), timekeeper.clone());
            store.before_new_segment(Arc::new(move || {
                // A segment just closed (or is the first): save the time.
                if let Some(tk) = &tk {
                    tk.save_now();
                }
                r.enforce();
            }));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let pipelines = Arc::new(Pipelines {
            store: store.clone(),
            clock: clock.clone(),
            retention: retention.clone(),
            status: status.clone(),
            live: live.clone(),
            stop: stop.clone(),
            threads: Mutex::new(Vec::new()),
            segment_ns: config.segment_length_s as u64 * 1_000_000_000,
            sync_interval_ns: config.sync_interval_ms as u64 * 1_000_000,
            want_direct,
            boot_id,
            caption: Arc::default(),
            positions: Arc::default(),
        });
        let n = sources.len().max(1) as u64;
        for (i, (cam, source)) in sources.into_iter().enumerate() {
            pipelines.start(&cam, source, (i as u64, n))?;
        }
        pipelines
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(spawn_housekeeping(
                retention,
                status.clone(),
                clock,
                stop.clone(),
                store.clone(),
                timekeeper.clone(),
            ));
        let watch = (discovery.is_some() || status_led.is_some()).then(|| {
            let known = config.cameras.clone();
            let p = pipelines.clone();
            spawn_named("watch".into(), move || {
                watch_loop(p, discovery, status_led, known)
            })
        });
        Ok(Recorder {
            pipelines,
            watch,
            status,
            live,
            incidents,
            timekeeper,
            gps: Mutex::new(None),
        })
    }

    /// Reads the GPS receiver `config` names: its state goes to status, and
    /// its trusted fixes set the clock (`gps::clock`). A receiver that is
    /// missing or unplugged is shown and retried; recording never waits
    /// for it.
    pub fn start_gps(&self, config: &GpsConfig) -> std::io::Result<()> {
        let show = CaptionStyle::of(config);
        let caption = self.pipelines.caption.clone();
        if let Some(placeholder) = show.placeholder() {
            caption.set_placeholder(Some(placeholder));
        }
        let rejection: Arc<Mutex<Option<String>>> = Arc::default();
        let mut handler = FixHandler {
            show,
            caption,
            positions: self.pipelines.positions.clone(),
            clock: self.pipelines.clock.clone(),
            timekeeper: self.timekeeper.clone(),
            policy: GpsClockPolicy::new(crate::gps::DATE_FLOOR_DAYS),
            rejection: rejection.clone(),
        };
        let on_fix = Box::new(move |fix: GpsFix| handler.on_fix(fix));
        let source = GpsSource::start(config.clone(), self.pipelines.clock.clone(), on_fix)?;
        *self.status.gps.lock().unwrap_or_else(|e| e.into_inner()) = Some(GpsStatus {
            state: source.state(),
            speed_unit: config.speed_unit,
            clock_rejection: rejection,
        });
        *self.gps.lock().unwrap_or_else(|e| e.into_inner()) = Some(source);
        Ok(())
    }

    /// Share clips for the dashboard, kept in `share-cache` beside the
    /// recordings, with the best encoder this machine has. Finished clips
    /// make way before any footage when recording needs the space. `None`
    /// (and a log line) when the folder cannot be made.
    pub fn start_share_jobs(&self, config: &Config) -> Option<Arc<ShareJobs>> {
        let store = &self.pipelines.store;
        let dir = store.data_dir().join("share-cache");
        let cache = match ShareCache::open(&dir, config.share_cache_mb * 1_000_000) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                log::error!("share clips off: cannot use {}: {e}", dir.display());
                return None;
            }
        };
        let yielding = cache.clone();
        self.pipelines
            .retention
            .set_space_yielder(Arc::new(move |bytes| yielding.yield_space(bytes)));
        let jobs = ShareJobs::new(
            store.clone(),
            cache,
            Arc::new(best_encoder),
            Arc::new(share_encoder_description),
            config.min_free_mb * 1_000_000,
        );
        log::info!("share clips: encoder {}", jobs.encoder_description());
        Some(Arc::new(jobs))
    }

    /// Stops capture, lets queued frames drain, closes every segment.
    pub fn stop(self) {
        if let Some(gps) = self.gps.lock().unwrap_or_else(|e| e.into_inner()).take() {
            gps.stop();
        }
        self.pipelines.stop.store(true, Ordering::SeqCst);
        // First the watch thread, so no camera starts while the others stop.
        let threads = self.watch.into_iter().chain(std::mem::take(
            &mut *self
                .pipelines
                .threads
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        ));
        for t in threads {
            let name = t.thread().name().unwrap_or("?").to_string();
            if t.join().is_err() {
                log::error!("thread {name} panicked while stopping");
            }
        }
        if let Some(tk) = &self.timekeeper {
            tk.save_now();
        }
    }
}

/// Every second: when the devices changed, looks for cameras and starts
/// the new ones; shows the state on the LED. Off when the recorder stops.
fn watch_loop(
    pipelines: Arc<Pipelines>,
    mut discovery: Option<Discovery>,
    mut led: Option<StatusLed>,
    mut known: Vec<CameraConfig>,
) {
    let status = &pipelines.status;
    let started_ns = pipelines.clock.mono_ns();
    let mut last_fingerprint = None;
    let mut storage_errors_seen = 0u64;
    let mut storage_failing_until_ns = 0u64;
    let data_dir = pipelines.store.data_dir().to_path_buf();
    loop {
        if let Some(d) = discovery.as_mut() {
            let fingerprint = (d.fingerprint)();
            if last_fingerprint != Some(fingerprint) {
                if last_fingerprint.is_some() && !pause(&pipelines.stop, DEVICE_SETTLE_MS) {
                    break;
                }
                last_fingerprint = Some((d.fingerprint)());
                let found = crate::discovery::new_cameras((d.search)(), &known);
                let n = found.len() as u64;
                for (i, cam) in found.into_iter().enumerate() {
                    log::info!(
                        "[{}] found {} ({:?} {}): recording it",
                        cam.id,
                        cam.name,
                        cam.source,
                        cam.device
                    );
                    match pipelines.start(&cam, (d.source_for)(&cam), (i as u64, n)) {
                        Ok(()) => {
                            (d.on_found)(&cam);
                            status
                                .found_cameras
                                .write()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(cam.clone());
                            known.push(cam);
                        }
                        Err(e) => log::error!("[{}] cannot record it: {e}", cam.id),
                    }
                }
            }
            let none = status.cameras().is_empty();
            *status.no_camera.lock().unwrap_or_else(|e| e.into_inner()) =
                none.then(|| crate::status::NoCamera {
                    message: crate::discovery::NO_CAMERA_MESSAGE.into(),
                    searching_s: pipelines.clock.mono_ns().saturating_sub(started_ns) as f64 / 1e9,
                    checks: crate::discovery::NO_CAMERA_CHECKS
                        .iter()
                        .map(|c| c.to_string())
                        .collect(),
                });
        }
        if let Some(led) = led.as_mut() {
            let now = pipelines.clock.mono_ns();
            let cameras = status.cameras();
            let errors: u64 = cameras
                .iter()
                .map(|c| c.storage_errors.load(Ordering::Relaxed))
                .sum();
            if errors > storage_errors_seen {
                // Shown for a while after the last failed write.
                storage_failing_until_ns = now + STORAGE_ERROR_SHOWN_NS;
                storage_errors_seen = errors;
            }
            let connected = cameras
                .iter()
                .filter(|c| c.connected.load(Ordering::Relaxed))
                .count();
            let failing = now < storage_failing_until_ns || crate::led::on_ram_disk(&data_dir);
            let state = crate::led::state_for(connected, failing);
            led.show(state);
            *status.status_led.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(state.describe().to_string());
        }
        if !pause(&pipelines.stop, WATCH_INTERVAL_MS) {
            break;
        }
    }
    if let Some(led) = led.as_mut() {
        led.show(LedState::Off);
    }
}

/// How long the LED shows a storage error after the last failed write.
const STORAGE_ERROR_SHOWN_NS: u64 = 10_000_000_000;

fn spawn_named(name: String, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .unwrap_or_else(|e| panic!("cannot start thread {name}: {e}"))
}

fn spawn_camera(
    shared: &Pipelines,
    cam: &CameraConfig,
    source: Box<dyn CameraSource>,
    (writer, live): (SegmentWriter, Arc<LiveSlot>),
    status: Arc<CameraStatus>,
) -> Vec<JoinHandle<()>> {
    let (clock, stop) = (shared.clock.clone(), shared.stop.clone());
    let (retention, caption) = (shared.retention.clone(), shared.caption.clone());
    let positions = shared.positions.subscribe();
    let pool = cam.encoder_threads.max(1) as usize;
    let (job_tx, job_rx) = mpsc::sync_channel::<EncodeJob>(pool * ENCODE_QUEUE_PER_THREAD);
    let (enc_tx, enc_rx) = mpsc::sync_channel::<Encoded>(WRITER_QUEUE_FRAMES);
    let writer_depth = Arc::new(AtomicUsize::new(0));
    let job_rx = Arc::new(Mutex::new(job_rx));
    let mut threads = Vec::new();
    let id = &cam.id;
    {
        let (status, stop, depth) = (status.clone(), stop.clone(), writer_depth.clone());
        threads.push(spawn_named(format!("cam-{id}-capture"), move || {
            capture_loop(source, job_tx, status, stop, depth)
        }));
    }
    for k in 0..pool {
        let settings = EncoderSettings::from_camera(cam);
        let encoder = JpegEncoder::new(settings).with_caption(caption.clone());
        let (rx, tx, status, depth) = (
            job_rx.clone(),
            enc_tx.clone(),
            status.clone(),
            writer_depth.clone(),
        );
        threads.push(spawn_named(format!("cam-{id}-enc{k}"), move || {
            encode_loop(encoder, rx, tx, status, depth)
        }));
    }
    drop(enc_tx);
    threads.push(spawn_named(format!("cam-{id}-writer"), move || {
        write_loop(
            writer,
            live,
            (enc_rx, positions),
            status,
            clock,
            retention,
            writer_depth,
        )
    }));
    threads
}

/// Sleeps up to `ms`, waking early when asked to stop. Returns false if stopping.
fn pause(stop: &AtomicBool, ms: u64) -> bool {
    let mut left = ms;
    while left > 0 && !stop.load(Ordering::Relaxed) {
        let step = left.min(50);
        std::thread::sleep(Duration::from_millis(step));
        left -= step;
    }
    !stop.load(Ordering::Relaxed)
}

fn capture_loop(
    mut source: Box<dyn CameraSource>,
    jobs: SyncSender<EncodeJob>,
    status: Arc<CameraStatus>,
    stop: Arc<AtomicBool>,
    writer_depth: Arc<AtomicUsize>,
) {
    let id = status.id.clone();
    let mut backoff_ms = BACKOFF_MIN_MS;
    let mut is_open = false;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if !is_open {
            match source.open() {
                Ok(fmt) => {
                    log::info!(
                        "[{id}] {} open: {} {}x{} @ {:.2} fps",
                        source.describe(),
                        fmt.format,
                        fmt.width,
                        fmt.height,
                        fmt.fps_milli as f64 / 1000.0
                    );
                    status.detail().format = format!("{} {}x{}", fmt.format, fmt.width, fmt.height);
                    status.connected.store(true, Ordering::Relaxed);
                    is_open = true;
                    backoff_ms = BACKOFF_MIN_MS;
                }
                Err(e) => {
                    status.camera_errors.fetch_add(1, Ordering::Relaxed);
                    log::warn!("[{id}] {e}; retrying in {} ms", backoff_ms);
                    status.set_error(e.to_string());
                    if !pause(&stop, backoff_ms) {
                        break;
                    }
                    backoff_ms = (backoff_ms * 2).min(BACKOFF_MAX_MS);
                    continue;
                }
            }
        }
        match source.next_frame() {
            Ok(frame) => {
                status.captured.fetch_add(1, Ordering::Relaxed);
                match jobs.try_send(EncodeJob { seq, frame }) {
                    Ok(()) => seq += 1,
                    Err(TrySendError::Full(_)) => {
                        let reason = if writer_depth.load(Ordering::Relaxed) >= WRITER_QUEUE_FRAMES
                        {
                            DropReason::WriterBusy
                        } else {
                            DropReason::EncoderBusy
                        };
                        status.count_drop(reason);
                    }
                    Err(TrySendError::Disconnected(_)) => break,
                }
            }
            Err(e) => {
                status.camera_errors.fetch_add(1, Ordering::Relaxed);
                status.reconnects.fetch_add(1, Ordering::Relaxed);
                status.connected.store(false, Ordering::Relaxed);
                log::warn!("[{id}] {e}; reopening in {} ms", backoff_ms);
                status.set_error(e.to_string());
                source.close();
                is_open = false;
                if !pause(&stop, backoff_ms) {
                    break;
                }
                backoff_ms = (backoff_ms * 2).min(BACKOFF_MAX_MS);
            }
        }
    }
    source.close();
    status.connected.store(false, Ordering::Relaxed);
}

fn encode_loop(
    mut encoder: JpegEncoder,
    jobs: Arc<Mutex<Receiver<EncodeJob>>>,
    out: SyncSender<Encoded>,
    status: Arc<CameraStatus>,
    writer_depth: Arc<AtomicUsize>,
) {
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv()
        };
        let Ok(job) = job else { break };
        let msg = match encoder.encode(&job.frame) {
            Ok(img) => {
                let counter = if img.passthrough {
                    &status.passthrough
                } else {
                    &status.encoded
                };
                counter.fetch_add(1, Ordering::Relaxed);
                Encoded::Frame(
                    job.seq,
                    EncodedFrame {
                        jpeg: img.jpeg.into(),
                        width: img.width,
                        height: img.height,
                        captured: job.frame.captured,
                        flags: 0,
                    },
                )
            }
            Err(e) => {
                status.count_drop(DropReason::EncodeError);
                log::warn!("[{}] frame dropped: {e}", status.id);
                status.set_error(e.to_string());
                Encoded::Skipped(job.seq)
            }
        };
        drop(job.frame); // hand a borrowed camera buffer back before blocking
        writer_depth.fetch_add(1, Ordering::Relaxed);
        if out.send(msg).is_err() {
            break;
        }
    }
}

fn write_loop(
    mut writer: SegmentWriter,
    live: Arc<LiveSlot>,
    (input, positions): (Receiver<Encoded>, Arc<Mutex<VecDeque<PositionSample>>>),
    status: Arc<CameraStatus>,
    clock: Arc<dyn Clock>,
    retention: Arc<Retention>,
    writer_depth: Arc<AtomicUsize>,
) {
    let id = status.id.clone();
    let mut pending: BTreeMap<u64, Option<EncodedFrame>> = BTreeMap::new();
    let mut next = 0u64;
    let mut retry_at_ns = 0u64;
    let mut backoff_ms = BACKOFF_MIN_MS;
    let mut rate = FrameRate::default();
    let store_error = |e: StoreError, writer: &mut SegmentWriter, now: u64, backoff: &mut u64| {
        status.storage_errors.fetch_add(1, Ordering::Relaxed);
        log::error!("[{id}] storage error: {e}; retrying in {} ms", *backoff);
        status.set_error(e.to_string());
        writer.abandon();
        if e.is_no_space() {
            retention.free_after_no_space();
        }
        let at = now + *backoff * 1_000_000;
        *backoff = (*backoff * 2).min(BACKOFF_MAX_MS);
        at
    };
    loop {
        let msg = input.recv_timeout(next_wait(writer.sync_due_ns(), clock.mono_ns()));
        let now = clock.mono_ns();
        match msg {
            Ok(m) => {
                writer_depth.fetch_sub(1, Ordering::Relaxed);
                match m {
                    Encoded::Frame(seq, f) => pending.insert(seq, Some(f)),
                    Encoded::Skipped(seq) => pending.insert(seq, None),
                };
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // Encoders finish out of order; write in capture order.
        while let Some(done) = pending.remove(&next) {
            next += 1;
            let Some(mut frame) = done else { continue };
            if clock.wall_estimated() {
                frame.flags |= crate::store::format::FLAG_WALL_ESTIMATED;
            }
            // Viewers see every frame, even while the disk is failing.
            live.publish(
                frame.jpeg.clone(),
                frame.width,
                frame.height,
                frame.captured,
            );
            rate.count(now, &status);
            if now < retry_at_ns {
                status.count_drop(DropReason::StorageError);
                continue;
            }
            status.buffer_latency_max_ns.fetch_max(
                now.saturating_sub(frame.captured.mono_ns),
                Ordering::Relaxed,
            );
            match writer.append(&frame, now) {
                Ok(()) => backoff_ms = BACKOFF_MIN_MS,
                Err(e) => {
                    status.count_drop(DropReason::StorageError);
                    retry_at_ns = store_error(e, &mut writer, now, &mut backoff_ms);
                }
            }
        }
        // GPS positions go between the frames, synced with them.
        let arrived: Vec<PositionSample> = positions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for p in arrived {
            if now < retry_at_ns {
                break;
            }
            if let Err(e) = writer.append_position(&p, now) {
                retry_at_ns = store_error(e, &mut writer, now, &mut backoff_ms);
            }
        }
        if let Err(e) = writer.tick(now) {
            retry_at_ns = store_error(e, &mut writer, now, &mut backoff_ms);
        }
    }
    if let Err(e) = writer.close() {
        log::error!("[{}] closing the last segment failed: {e}", status.id);
    }
    writer.close_abandoned();
}

/// Longest the writer waits for a frame before looking at its clock again.
const WRITER_POLL_MS: u64 = 100;

/// How long the writer may wait for the next frame: until the buffered
/// frames' sync is due, so the deadline is kept by time even when the
/// camera is slow or stalled, and never longer than a poll.
fn next_wait(sync_due_ns: Option<u64>, now_ns: u64) -> Duration {
    let poll = Duration::from_millis(WRITER_POLL_MS);
    match sync_due_ns {
        Some(due) => Duration::from_nanos(due.saturating_sub(now_ns)).min(poll),
        None => poll,
    }
}

/// Frames per second delivered to the writer, measured over windows of about
/// a second and stored in status.
#[derive(Default)]
struct FrameRate {
    window_start_ns: u64,
    frames: u64,
}

impl FrameRate {
    const WINDOW_NS: u64 = 1_000_000_000;

    fn count(&mut self, now_ns: u64, status: &CameraStatus) {
        self.frames += 1;
        let elapsed = now_ns.saturating_sub(self.window_start_ns);
        if self.window_start_ns == 0 {
            self.window_start_ns = now_ns;
            self.frames = 0;
        } else if elapsed >= Self::WINDOW_NS {
            let fps_milli = self.frames * 1_000_000_000_000 / elapsed;
            status.fps_milli.store(fps_milli, Ordering::Relaxed);
            self.window_start_ns = now_ns;
            self.frames = 0;
        }
    }
}

fn spawn_housekeeping(
    retention: Arc<Retention>,
    status: Arc<Status>,
    clock: Arc<dyn Clock>,
    stop: Arc<AtomicBool>,
    store: Store,
    timekeeper: Option<Arc<Timekeeper>>,
) -> JoinHandle<()> {
    spawn_named("housekeeping".into(), move || loop {
        if let Some(tk) = &timekeeper {
            tk.save_if_due();
            *status.clock.lock().unwrap_or_else(|e| e.into_inner()) = Some(tk.report());
        }
        retention.enforce();
        write_status_file(&store, &status, clock.as_ref());
        if !pause(&stop, HOUSEKEEPING_INTERVAL_MS) {
            write_status_file(&store, &status, clock.as_ref());
            break;
        }
    })
}

/// Writes `status.json` for `dashvault status`, durably: after a power cut
/// it tells what the recorder last saw.
fn write_status_file(store: &Store, status: &Status, clock: &dyn Clock) {
    let snap = status.snapshot(clock.mono_ns(), clock.wall_ns());
    let path = store.data_dir().join(STATUS_FILE_NAME);
    let result = serde_json::to_vec_pretty(&snap)
        .map_err(std::io::Error::other)
        .and_then(|bytes| sidecar::write_atomic(store.io().as_ref(), &path, &bytes));
    if let Err(e) = result {
        log::debug!("cannot write {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_wakes_when_a_sync_is_due_not_when_a_frame_comes() {
        let ms = |n: u64| n * 1_000_000;
        // Nothing buffered: poll.
        assert_eq!(
            next_wait(None, ms(5)),
            Duration::from_millis(WRITER_POLL_MS)
        );
        // Due in 30 ms: wake in 30 ms, even though frames come every 100.
        assert_eq!(
            next_wait(Some(ms(1030)), ms(1000)),
            Duration::from_millis(30)
        );
        // Overdue: do not wait at all.
        assert_eq!(next_wait(Some(ms(900)), ms(1000)), Duration::ZERO);
        // Far off: still poll.
        assert_eq!(
            next_wait(Some(ms(60_000)), ms(1000)),
            Duration::from_millis(WRITER_POLL_MS)
        );
    }

    #[test]
    fn the_gps_caption_shows_speed_in_the_unit_and_the_position_when_asked() {
        let fix = GpsFix {
            utc_ns: Some(1_795_168_800_000_000_000),
            mono_ns: 5,
            lat: Some(52.520008),
            lon: Some(-13.407003),
            alt_m: None,
            speed_mps: Some(13.89),
            heading_deg: None,
            quality: crate::gps::FixQuality::Fix3d,
            status_valid: true,
            sats: Some(9),
            hdop: None,
        };
        let style = |speed, position, unit| {
            CaptionStyle::of(&GpsConfig {
                overlay_speed: speed,
                overlay_position: position,
                speed_unit: unit,
                ..GpsConfig::default()
            })
        };
        let kmh = style(true, false, SpeedUnit::Kmh);
        assert_eq!(kmh.text(&fix).as_deref(), Some("50 km/h"));
        assert_eq!(kmh.placeholder().as_deref(), Some("-- km/h"));
        let both = style(true, true, SpeedUnit::Mph);
        assert_eq!(
            both.text(&fix).as_deref(),
            Some("31 mph 52.52001N 13.40700W")
        );
        assert_eq!(both.placeholder().as_deref(), Some("-- mph no position"));
        // Off: nothing is added, not even a placeholder.
        let off = style(false, false, SpeedUnit::Kmh);
        assert_eq!((off.text(&fix), off.placeholder()), (None, None));
        // A fix without a position (a tunnel) leaves the placeholder to show.
        let lost = GpsFix {
            status_valid: false,
            ..fix
        };
        assert_eq!(kmh.text(&lost), None);
    }
}
