//! Clock anchors: how the recordings of one boot are relabelled once the
//! right wall time is known (set from a phone), without rewriting a byte of
//! video.
//!
//! Every frame carries its monotonic capture time, which is exact within a
//! boot, and the boot id is in each segment's stream header. An anchor
//! `recordings/<camera>/<boot id hex>.anchor` says "for frames of this boot,
//! wall time = monotonic time + `wall_minus_mono_ns`", and lists the
//! corrected start time of every segment of that boot that was named before
//! the clock was set, because segment names carry the start time the clock
//! said then. Readers apply the anchor when they open a segment; the catalog
//! uses the corrected start times to find segments by time. The file is
//! replaced atomically (`sidecar::write_atomic`), so a power cut leaves the
//! old labels or the new ones, and the segments themselves never change.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::catalog::list_segments;
use super::format::{IndexEntry, FLAG_WALL_ESTIMATED};
use super::io::StorageIo;
use super::reader::SegmentReader;
use super::{sidecar, StoreError};
use crate::clock::boot_id_hex;

pub const ANCHOR_SUFFIX: &str = ".anchor";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BootAnchor {
    pub boot_id: String,
    /// Wall time minus monotonic time for every frame of this boot, ns.
    pub wall_minus_mono_ns: i64,
    /// When the anchor was set (corrected wall time), for people.
    pub set_at: String,
    /// `[segment number, corrected start in ns]` of segments named before
    /// the clock was set.
    pub labels: Vec<(u64, i64)>,
}

pub fn anchor_path(camera_dir: &Path, boot_id: &[u8; 16]) -> PathBuf {
    camera_dir.join(format!("{}{ANCHOR_SUFFIX}", boot_id_hex(boot_id)))
}

/// The anchor at `path`; a damaged one is logged and ignored (the
/// recordings then show the times they were recorded with).
pub fn read_anchor(io: &dyn StorageIo, path: &Path) -> Option<BootAnchor> {
    match sidecar::read_small(io, path) {
        Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
            Ok(a) => Some(a),
            Err(e) => {
                log::warn!("ignoring clock anchor {}: {e}", path.display());
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            log::warn!("cannot read clock anchor {}: {e}", path.display());
            None
        }
    }
}

/// Rewrites the wall times of `frames` (recorded in boot `boot_id`, in the
/// folder `camera_dir`) from the boot's anchor, if there is one. Returns
/// whether it did; relabelled frames are no longer estimated.
pub fn apply(
    io: &dyn StorageIo,
    camera_dir: &Path,
    boot_id: &[u8; 16],
    frames: &mut [IndexEntry],
) -> bool {
    let path = anchor_path(camera_dir, boot_id);
    if !io.exists(&path) {
        return false;
    }
    let Some(anchor) = read_anchor(io, &path) else {
        return false;
    };
    for f in frames {
        f.wall_ns = f.mono_ns as i64 + anchor.wall_minus_mono_ns;
        f.flags &= !FLAG_WALL_ESTIMATED;
    }
    true
}

/// Corrected segment start times from every anchor in a camera folder,
/// given the folder's file names.
pub fn corrected_starts(
    io: &dyn StorageIo,
    camera_dir: &Path,
    names: &[&str],
) -> HashMap<u64, i64> {
    let mut out = HashMap::new();
    for name in names.iter().filter(|n| n.ends_with(ANCHOR_SUFFIX)) {
        if let Some(a) = read_anchor(io, &camera_dir.join(name)) {
            out.extend(a.labels);
        }
    }
    out
}

/// Anchors the recordings of boot `boot_id` in every camera folder to
/// `wall_minus_mono_ns`. `first_seq` gives, per camera, the first segment
/// number this boot may have written (segments before it are older boots).
/// `current_offset_ns` is wall minus monotonic as the clock had it until
/// now; it corrects the start of a segment too new to be read yet.
/// Returns the number of segments relabelled.
pub fn relabel_boot(
    io: &dyn StorageIo,
    data_dir: &Path,
    boot_id: &[u8; 16],
    wall_minus_mono_ns: i64,
    current_offset_ns: i64,
    first_seq: &HashMap<String, u64>,
    set_at_wall_ns: i64,
) -> Result<usize, StoreError> {
    let mut count = 0;
    for camera in super::catalog::list_cameras(io, data_dir)? {
        let dir = super::camera_dir(data_dir, &camera);
        let first = first_seq.get(&camera).copied().unwrap_or(0);
        let (segments, _) = list_segments(io, data_dir, &camera)?;
        let mut labels = Vec::new();
        for seg in segments.iter().filter(|s| s.seq >= first) {
            let start = match SegmentReader::open(io, &seg.path) {
                Ok(r) if r.stream.boot_id != *boot_id => continue,
                Ok(r) => match r.frames.first() {
                    Some(f) => f.mono_ns as i64 + wall_minus_mono_ns,
                    None => continue,
                },
                // Nothing synced yet: it was named with the current offset.
                Err(_) => match super::query::label_start_ns(seg) {
                    Some(s) => s + (wall_minus_mono_ns - current_offset_ns),
                    None => continue,
                },
            };
            labels.push((seg.seq, start));
        }
        if labels.is_empty() {
            continue;
        }
        count += labels.len();
        let anchor = BootAnchor {
            boot_id: boot_id_hex(boot_id),
            wall_minus_mono_ns,
            set_at: crate::clock::format_rfc3339_ms(set_at_wall_ns),
            labels,
        };
        let bytes = serde_json::to_vec(&anchor).map_err(|e| StoreError::Invalid {
            path: dir.clone(),
            message: format!("encoding the clock anchor: {e}"),
        })?;
        let path = anchor_path(&dir, boot_id);
        sidecar::write_atomic(io, &path, &bytes)
            .map_err(|e| StoreError::io(&path, "writing the clock anchor", e))?;
    }
    Ok(count)
}
