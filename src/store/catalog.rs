//! What is stored: cameras and their segment files, found by listing folders.
//! The files describe themselves, so there is no database to drift from them.

use std::path::{Path, PathBuf};

use super::io::StorageIo;
use super::{parse_segment_name, recordings_dir, StoreError, PROTECT_SUFFIX, QUARANTINE_SUFFIX};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentEntry {
    pub camera: String,
    pub seq: u64,
    pub name: String,
    pub path: PathBuf,
    pub len: u64,
    /// Protected from retention (an incident lock sidecar exists).
    pub protected: bool,
    /// Start time corrected by a clock anchor (the name's label is what the
    /// clock said when the segment was created).
    pub corrected_start_ns: Option<i64>,
}

impl SegmentEntry {
    /// The `YYYYMMDDTHHMMSSZ` part of the name: start time as known then.
    pub fn start_label(&self) -> &str {
        self.name
            .split_once('_')
            .map_or("", |(_, rest)| rest.split('.').next().unwrap_or(""))
    }
}

/// Camera ids that have a recordings folder, sorted.
pub fn list_cameras(io: &dyn StorageIo, data_dir: &Path) -> Result<Vec<String>, StoreError> {
    let dir = recordings_dir(data_dir);
    if !io.exists(&dir) {
        return Ok(Vec::new());
    }
    let entries = io
        .list_dir(&dir)
        .map_err(|e| StoreError::io(&dir, "listing recordings", e))?;
    Ok(entries
        .into_iter()
        .filter(|e| e.is_dir)
        .map(|e| e.name)
        .collect())
}

/// Segments of one camera, oldest first, and quarantined file names.
pub fn list_segments(
    io: &dyn StorageIo,
    data_dir: &Path,
    camera: &str,
) -> Result<(Vec<SegmentEntry>, Vec<String>), StoreError> {
    let dir = super::camera_dir(data_dir, camera);
    if !io.exists(&dir) {
        return Ok((Vec::new(), Vec::new()));
    }
    let entries = io
        .list_dir(&dir)
        .map_err(|e| StoreError::io(&dir, "listing camera folder", e))?;
    let protected: std::collections::HashSet<&str> = entries
        .iter()
        .filter_map(|e| e.name.strip_suffix(PROTECT_SUFFIX))
        .collect();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let corrected = super::anchor::corrected_starts(io, &dir, &names);
    let mut segments: Vec<SegmentEntry> = entries
        .iter()
        .filter(|e| !e.is_dir)
        .filter_map(|e| {
            parse_segment_name(&e.name).map(|seq| SegmentEntry {
                camera: camera.to_string(),
                seq,
                name: e.name.clone(),
                path: dir.join(&e.name),
                len: e.len,
                protected: protected.contains(e.name.as_str()),
                corrected_start_ns: corrected.get(&seq).copied(),
            })
        })
        .collect();
    segments.sort_by_key(|s| s.seq);
    let quarantined = entries
        .iter()
        .filter(|e| e.name.ends_with(QUARANTINE_SUFFIX))
        .map(|e| e.name.clone())
        .collect();
    Ok((segments, quarantined))
}

/// Every camera's segments.
pub fn list_all(io: &dyn StorageIo, data_dir: &Path) -> Result<Vec<SegmentEntry>, StoreError> {
    let mut all = Vec::new();
    for camera in list_cameras(io, data_dir)? {
        all.extend(list_segments(io, data_dir, &camera)?.0);
    }
    Ok(all)
}
