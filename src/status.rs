//! Counters and health of the recorder: capture and encoding are counted
//! here by the recorder threads; what was stored is counted by the store
//! ([`crate::store::stats`]) and read from there. The `status` command and
//! the HTTP API read [`StatusSnapshot`]s of both.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

/// Why a frame was dropped instead of stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Encoders were all busy and their queue full.
    EncoderBusy,
    /// The writer's queue was full (storage slower than the camera).
    WriterBusy,
    /// The encoder rejected the frame (corrupt camera data).
    EncodeError,
    /// Storage failed (disk full or I/O error) and the frame could not be written.
    StorageError,
}

use crate::config::{CameraConfig, SpeedUnit};
use crate::gps::GpsState;
pub use crate::store::stats::RecoveryReport;
use crate::store::stats::{CameraStoreStats, StoreStats};
use crate::timekeeper::ClockReport;

#[derive(Debug, Default)]
pub struct CameraStatus {
    pub id: String,
    pub captured: AtomicU64,
    pub encoded: AtomicU64,
    pub passthrough: AtomicU64,
    pub dropped_encoder_busy: AtomicU64,
    pub dropped_writer_busy: AtomicU64,
    pub dropped_encode_error: AtomicU64,
    pub dropped_storage_error: AtomicU64,
    pub camera_errors: AtomicU64,
    pub reconnects: AtomicU64,
    pub storage_errors: AtomicU64,
    pub connected: AtomicBool,
    /// Longest time from a frame's capture to its arrival in the writer's
    /// buffer (ns): what a cut can lose beyond the sync interval.
    pub buffer_latency_max_ns: AtomicU64,
    /// Frames per second reaching the writer, times 1000.
    pub fps_milli: AtomicU64,
    /// Live and playback streams open right now.
    pub live_viewers: AtomicU64,
    /// What the store holds of this camera (the writer and recovery keep it).
    pub storage: Arc<CameraStoreStats>,
    pub detail: Mutex<CameraDetail>,
}

#[derive(Clone, Debug, Default)]
pub struct CameraDetail {
    pub source: String,
    pub format: String,
    pub last_error: Option<String>,
}

impl CameraStatus {
    pub fn new(id: &str) -> Arc<CameraStatus> {
        CameraStatus::with_storage(id, Arc::default())
    }

    /// A camera whose storage counters are the store's own.
    pub fn with_storage(id: &str, storage: Arc<CameraStoreStats>) -> Arc<CameraStatus> {
        Arc::new(CameraStatus {
            id: id.to_string(),
            storage,
            ..CameraStatus::default()
        })
    }

    pub fn count_drop(&self, reason: DropReason) {
        let c = match reason {
            DropReason::EncoderBusy => &self.dropped_encoder_busy,
            DropReason::WriterBusy => &self.dropped_writer_busy,
            DropReason::EncodeError => &self.dropped_encode_error,
            DropReason::StorageError => &self.dropped_storage_error,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_error(&self, message: String) {
        self.detail().last_error = Some(message);
    }

    pub fn detail(&self) -> std::sync::MutexGuard<'_, CameraDetail> {
        self.detail.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self, now_mono_ns: u64) -> CameraSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let st = &self.storage;
        let last_sync = get(&st.last_sync_mono_ns);
        let d = self.detail().clone();
        let connected = self.connected.load(Ordering::Relaxed);
        CameraSnapshot {
            id: self.id.clone(),
            source: d.source,
            format: d.format,
            connected,
            checks: if connected {
                Vec::new()
            } else {
                crate::discovery::NO_CAMERA_CHECKS
                    .iter()
                    .map(|c| c.to_string())
                    .collect()
            },
            fps: get(&self.fps_milli) as f64 / 1000.0,
            live_viewers: get(&self.live_viewers),
            captured: get(&self.captured),
            encoded: get(&self.encoded),
            passthrough: get(&self.passthrough),
            written: get(&st.written),
            written_bytes: get(&st.written_bytes),
            dropped: DroppedSnapshot {
                encoder_busy: get(&self.dropped_encoder_busy),
                writer_busy: get(&self.dropped_writer_busy),
                encode_error: get(&self.dropped_encode_error),
                storage_error: get(&self.dropped_storage_error),
            },
            camera_errors: get(&self.camera_errors),
            reconnects: get(&self.reconnects),
            storage_errors: get(&self.storage_errors),
            segments_closed: get(&st.segments_closed),
            syncs: get(&st.syncs),
            buffer_latency_max_ms: get(&self.buffer_latency_max_ns) / 1_000_000,
            last_sync_age_ms: (last_sync > 0)
                .then(|| now_mono_ns.saturating_sub(last_sync) / 1_000_000),
            io_mode: if st.direct_io.load(Ordering::Relaxed) {
                "direct".into()
            } else {
                "buffered".into()
            },
            current_segment: st.current_segment(),
            last_error: d.last_error,
            recovery: st.recovery(),
        }
    }
}

#[derive(Debug, Default)]
pub struct Status {
    /// Monotonic time the recorder started, for uptime.
    pub started_mono_ns: AtomicU64,
    /// Every camera being recorded; discovery adds cameras while running.
    pub cameras: RwLock<Vec<Arc<CameraStatus>>>,
    /// Cameras found while running (the config names the others).
    pub found_cameras: RwLock<Vec<CameraConfig>>,
    /// Set while the recorder looks for cameras and has found none.
    pub no_camera: Mutex<Option<NoCamera>>,
    /// What the status LED shows, when there is one.
    pub status_led: Mutex<Option<String>>,
    /// Kept by the store's retention.
    pub store: Arc<StoreStats>,
    pub config_problem: Mutex<Option<String>>,
    /// Which config is in use: `file`, `created`, `last_good` or `defaults`.
    pub config_origin: Mutex<Option<String>>,
    /// The state of the wall clock, refreshed by the housekeeping thread.
    pub clock: Mutex<Option<ClockReport>>,
    /// Incident trigger devices and whether they opened.
    pub triggers: Mutex<Vec<String>>,
    /// The GPS receiver's live state, when one is configured.
    pub gps: Mutex<Option<GpsStatus>>,
}

/// Where the GPS reader keeps its state, and how speed is shown.
#[derive(Clone, Debug)]
pub struct GpsStatus {
    pub state: Arc<Mutex<GpsState>>,
    pub speed_unit: SpeedUnit,
    /// Why the last fix could not set the clock, if it could not.
    pub clock_rejection: Arc<Mutex<Option<String>>>,
}

/// The receiver as status shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpsSnapshot {
    #[serde(flatten)]
    pub state: GpsState,
    pub speed_unit: SpeedUnit,
    /// `speed_mps` in `speed_unit`.
    pub speed: Option<f64>,
    /// Why the last fix could not set the clock (no date yet, a void fix,
    /// a week-number rollover...); null once fixes are trusted.
    pub clock_rejection: Option<String>,
}

impl Status {
    pub fn camera(&self, id: &str) -> Option<Arc<CameraStatus>> {
        self.cameras().into_iter().find(|c| c.id == id)
    }

    /// The cameras being recorded now.
    pub fn cameras(&self) -> Vec<Arc<CameraStatus>> {
        self.cameras
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn add_camera(&self, camera: Arc<CameraStatus>) {
        self.cameras
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(camera);
    }

    pub fn snapshot(&self, now_mono_ns: u64, wall_ns: i64) -> StatusSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let s = &self.store;
        StatusSnapshot {
            time: crate::clock::format_rfc3339_ms(wall_ns),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_s: now_mono_ns.saturating_sub(get(&self.started_mono_ns)) as f64 / 1e9,
            cameras: self
                .cameras()
                .iter()
                .map(|c| c.snapshot(now_mono_ns))
                .collect(),
            no_camera: self
                .no_camera
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            status_led: self
                .status_led
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            storage: StorageSnapshot {
                used_bytes: get(&s.used_bytes),
                free_bytes: get(&s.free_bytes),
                cap_bytes: get(&s.cap_bytes),
                min_free_bytes: get(&s.min_free_bytes),
                retention_deleted_segments: get(&s.retention_deleted_segments),
                retention_deleted_bytes: get(&s.retention_deleted_bytes),
                retention_failures: get(&s.retention_failures),
                cap_unreachable: s.cap_unreachable.load(Ordering::Relaxed),
                last_retention_error: s
                    .last_retention_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
                locked_bytes: get(&s.locked_bytes),
                locked_cap_bytes: get(&s.locked_cap_bytes),
                incidents_released: get(&s.incidents_released),
                locked_message: s
                    .locked_message
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            },
            clock: self.clock.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            gps: self
                .gps
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(|g| {
                    let mut state = g.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    state.refresh_age(now_mono_ns);
                    GpsSnapshot {
                        speed: state.speed_mps.map(|v| g.speed_unit.from_mps(v)),
                        speed_unit: g.speed_unit,
                        clock_rejection: g
                            .clock_rejection
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .clone(),
                        state,
                    }
                }),
            triggers: self
                .triggers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            config_problem: self
                .config_problem
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            config_origin: self
                .config_origin
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// No camera has been found yet: what to check, for status and the dashboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoCamera {
    pub message: String,
    /// Seconds since the search began.
    pub searching_s: f64,
    pub checks: Vec<String>,
}

/// The recorder's status. `C` is what each camera shows: its counters
/// here and in the status file, more in the HTTP answer
/// (`http::answers::StatusAnswer`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusSnapshot<C = CameraSnapshot> {
    /// The recorder's wall clock, RFC 3339 with milliseconds.
    pub time: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub uptime_s: f64,
    pub cameras: Vec<C>,
    /// Present while the recorder looks for cameras and has found none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_camera: Option<NoCamera>,
    /// What the status LED shows (`recording`, `no camera`, `storage error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_led: Option<String>,
    pub storage: StorageSnapshot,
    pub config_problem: Option<String>,
    /// Which config is in use: `file`, `created` (written with defaults
    /// because there was none), `last_good` (the file is broken; the copy
    /// of the last one that loaded is used) or `defaults` (neither loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_origin: Option<String>,
    /// Whether the wall time is estimated, and where it came from.
    #[serde(default)]
    pub clock: Option<ClockReport>,
    #[serde(default)]
    pub triggers: Vec<String>,
    /// The GPS receiver; absent when none is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gps: Option<GpsSnapshot>,
}

impl<C> StatusSnapshot<C> {
    /// The same status with each camera shown as `show` makes it.
    pub fn map_cameras<D>(self, show: impl FnMut(C) -> D) -> StatusSnapshot<D> {
        StatusSnapshot {
            time: self.time,
            version: self.version,
            uptime_s: self.uptime_s,
            cameras: self.cameras.into_iter().map(show).collect(),
            no_camera: self.no_camera,
            status_led: self.status_led,
            storage: self.storage,
            config_problem: self.config_problem,
            config_origin: self.config_origin,
            clock: self.clock,
            triggers: self.triggers,
            gps: self.gps,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CameraSnapshot {
    pub id: String,
    pub source: String,
    pub format: String,
    pub connected: bool,
    /// What to check while the camera is not connected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// Frames per second being stored, measured.
    #[serde(default)]
    pub fps: f64,
    #[serde(default)]
    pub live_viewers: u64,
    pub captured: u64,
    pub encoded: u64,
    pub passthrough: u64,
    pub written: u64,
    pub written_bytes: u64,
    pub dropped: DroppedSnapshot,
    pub camera_errors: u64,
    pub reconnects: u64,
    pub storage_errors: u64,
    pub segments_closed: u64,
    pub syncs: u64,
    pub last_sync_age_ms: Option<u64>,
    /// Longest capture-to-buffer time so far (ms): a cut loses at most the
    /// sync interval plus this.
    #[serde(default)]
    pub buffer_latency_max_ms: u64,
    pub io_mode: String,
    pub current_segment: Option<String>,
    pub last_error: Option<String>,
    pub recovery: Vec<RecoveryReport>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DroppedSnapshot {
    pub encoder_busy: u64,
    pub writer_busy: u64,
    pub encode_error: u64,
    pub storage_error: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StorageSnapshot {
    pub used_bytes: u64,
    pub free_bytes: u64,
    #[serde(default)]
    pub cap_bytes: u64,
    #[serde(default)]
    pub min_free_bytes: u64,
    pub retention_deleted_segments: u64,
    pub retention_deleted_bytes: u64,
    pub retention_failures: u64,
    pub cap_unreachable: bool,
    pub last_retention_error: Option<String>,
    #[serde(default)]
    pub locked_bytes: u64,
    #[serde(default)]
    pub locked_cap_bytes: u64,
    #[serde(default)]
    pub incidents_released: u64,
    #[serde(default)]
    pub locked_message: Option<String>,
}
