//! What the store reports about itself: recovery results now, and the
//! counters kept by its writers and retention.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::spans::SpanBuilder;

/// What start-up recovery did to one segment that was not closed cleanly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecoveryReport {
    pub segment: String,
    pub frames: u64,
    /// GPS positions kept.
    #[serde(default)]
    pub positions: u64,
    pub seconds: f64,
    /// Bytes after the last valid record that were not zero (a torn write).
    pub torn_bytes: u64,
    /// Zero-filled preallocated bytes trimmed away.
    pub trimmed_bytes: u64,
    /// Damaged bytes between valid records, stepped over and kept in place.
    #[serde(default)]
    pub skipped_bytes: u64,
    /// Each damaged stretch: its length, offset and why it was refused.
    #[serde(default)]
    pub skipped: Vec<String>,
    pub action: String,
}

/// Store-wide counters, kept by retention (it works across cameras).
#[derive(Debug, Default)]
pub struct StoreStats {
    pub retention_deleted_segments: AtomicU64,
    pub retention_deleted_bytes: AtomicU64,
    pub retention_failures: AtomicU64,
    pub used_bytes: AtomicU64,
    pub free_bytes: AtomicU64,
    /// The configured cap and free-space floor, for gauges.
    pub cap_bytes: AtomicU64,
    pub min_free_bytes: AtomicU64,
    pub last_retention_error: Mutex<Option<String>>,
    /// Set when the cap cannot be met (everything left is protected or open).
    pub cap_unreachable: AtomicBool,
    /// Bytes of locked (incident) footage and their own cap (0: none).
    pub locked_bytes: AtomicU64,
    pub locked_cap_bytes: AtomicU64,
    pub incidents_released: AtomicU64,
    /// What the locked-footage cap last had to do, for people.
    pub locked_message: Mutex<Option<String>>,
}

/// What one camera's writer stored, and what recovery found of it.
#[derive(Debug, Default)]
pub struct CameraStoreStats {
    pub written: AtomicU64,
    pub written_bytes: AtomicU64,
    pub segments_closed: AtomicU64,
    pub syncs: AtomicU64,
    /// Monotonic ns of the last completed fdatasync (0: never).
    pub last_sync_mono_ns: AtomicU64,
    pub direct_io: AtomicBool,
    /// The segment being written, so the timeline need not rescan (or
    /// believe the preallocated size of) a file that is still growing.
    pub open: Mutex<OpenSegmentStats>,
    /// What start-up recovery did to this camera's segments.
    pub recovery: Mutex<Vec<RecoveryReport>>,
}

/// What went into the segment being written so far.
#[derive(Clone, Debug, Default)]
pub struct OpenSegmentStats {
    /// Its file name; `None` between segments.
    pub name: Option<String>,
    /// The spans of its frames' wall times.
    pub spans: SpanBuilder,
    /// Bytes of records written into it (buffered ones included): its
    /// file is preallocated, so the file's length says nothing until it
    /// is closed and trimmed.
    pub bytes: u64,
}

impl CameraStoreStats {
    /// The name of the segment being written, if any.
    pub fn current_segment(&self) -> Option<String> {
        lock(&self.open).name.clone()
    }

    pub fn open_segment(&self) -> MutexGuard<'_, OpenSegmentStats> {
        lock(&self.open)
    }

    pub fn recovery(&self) -> Vec<RecoveryReport> {
        lock(&self.recovery).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
