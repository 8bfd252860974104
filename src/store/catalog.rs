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

/// What a camera folder holds besides clock anchors and locks.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// Regular files with a segment's name, oldest (lowest number) first.
    pub segments: Vec<SegmentEntry>,
    /// Files recovery set aside as unreadable (`.dvr.bad`).
    pub quarantined: Vec<String>,
    /// Entries with a segment's name that are not regular files (a folder,
    /// a symlink): never read, reported by `verify`.
    pub strays: Vec<String>,
}

impl Listing {
    /// One past the highest segment number any entry is named with
    /// (quarantined and stray names included, so none is handed out again).
    pub fn next_segment_seq(&self) -> u64 {
        let quarantined = self
            .quarantined
            .iter()
            .filter_map(|n| parse_segment_name(n.strip_suffix(QUARANTINE_SUFFIX)?));
        let strays = self.strays.iter().filter_map(|n| parse_segment_name(n));
        self.segments
            .iter()
            .map(|s| s.seq)
            .chain(quarantined)
            .chain(strays)
            .max()
            .map_or(0, |s| s + 1)
    }
}

/// Segments of one camera, oldest first, with quarantined and stray names.
pub fn list_segments(
    io: &dyn StorageIo,
    data_dir: &Path,
    camera: &str,
) -> Result<Listing, StoreError> {
    let dir = super::camera_dir(data_dir, camera);
    if !io.exists(&dir) {
        return Ok(Listing::default());
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
    let mut listing = Listing::default();
    for e in &entries {
        if let Some(seq) = parse_segment_name(&e.name) {
            if !e.is_file {
                listing.strays.push(e.name.clone());
                continue;
            }
            listing.segments.push(SegmentEntry {
                camera: camera.to_string(),
                seq,
                name: e.name.clone(),
                path: dir.join(&e.name),
                len: e.len,
                protected: protected.contains(e.name.as_str()),
                corrected_start_ns: corrected.get(&seq).copied(),
            });
        } else if e.name.ends_with(QUARANTINE_SUFFIX) {
            listing.quarantined.push(e.name.clone());
        }
    }
    listing.segments.sort_by_key(|s| s.seq);
    Ok(listing)
}

/// Every camera's segments.
pub fn list_all(io: &dyn StorageIo, data_dir: &Path) -> Result<Vec<SegmentEntry>, StoreError> {
    let mut all = Vec::new();
    for camera in list_cameras(io, data_dir)? {
        all.extend(list_segments(io, data_dir, &camera)?.segments);
    }
    Ok(all)
}
