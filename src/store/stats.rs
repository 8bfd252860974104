//! What the store reports about itself: recovery results now, and the
//! counters kept by its writers and retention.

use serde::{Deserialize, Serialize};

/// What start-up recovery did to one segment that was not closed cleanly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecoveryReport {
    pub segment: String,
    pub frames: u64,
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
