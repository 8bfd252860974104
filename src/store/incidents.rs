//! Incident records and the locks they hold on segments.
//!
//! An incident is a span of footage someone asked to keep (a tap, the
//! console, a button, a shock). Its record lives in
//! `<data_dir>/incidents/<id>.json`, replaced atomically; each segment it
//! covers gets a `<segment>.lock` sidecar, which retention never deletes.
//! Locked footage has its own cap: when it is exceeded, the oldest finished
//! incidents are released (their locks removed, the record kept and marked)
//! so that rotation may reuse the space in time.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::catalog::SegmentEntry;
use super::io::StorageIo;
use super::{sidecar, StoreError, PROTECT_SUFFIX};

pub const INCIDENTS_DIR: &str = "incidents";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedSegment {
    pub camera: String,
    pub name: String,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    pub id: String,
    /// What asked for it: dashboard, console, api, button, g-sensor.
    pub triggers: Vec<String>,
    /// Wall time of the (first) trigger, ns.
    pub at_ns: i64,
    /// The same in monotonic time of the boot that recorded it.
    #[serde(default)]
    pub at_mono_ns: u64,
    /// Protected wall-clock range, ns.
    pub from_ns: i64,
    pub to_ns: i64,
    /// The same range in monotonic time of the boot that recorded it.
    pub from_mono_ns: u64,
    pub to_mono_ns: u64,
    pub boot_id: String,
    /// The wall time was an estimate when the incident happened.
    pub estimated: bool,
    /// Post-roll is over and every segment of the range is locked.
    pub complete: bool,
    pub segments: Vec<LockedSegment>,
    /// Why the locks were released, if they were.
    #[serde(default)]
    pub released: Option<String>,
    /// The power went off during the post-roll: what was recorded until then
    /// is locked, and the incident counts as complete.
    #[serde(default)]
    pub cut_short: bool,
}

impl IncidentRecord {
    pub fn locked_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }
}

pub fn incidents_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(INCIDENTS_DIR)
}

fn record_path(data_dir: &Path, id: &str) -> PathBuf {
    incidents_dir(data_dir).join(format!("{id}.json"))
}

/// Every readable record, oldest first (ids sort in creation order). Damaged
/// records are logged and skipped.
pub fn list(io: &dyn StorageIo, data_dir: &Path) -> Result<Vec<IncidentRecord>, StoreError> {
    let dir = incidents_dir(data_dir);
    if !io.exists(&dir) {
        return Ok(Vec::new());
    }
    let entries = io
        .list_dir(&dir)
        .map_err(|e| StoreError::io(&dir, "listing incidents", e))?;
    let mut out = Vec::new();
    for e in entries.iter().filter(|e| e.name.ends_with(".json")) {
        let path = dir.join(&e.name);
        match sidecar::read_small(io, &path) {
            Ok(Some(bytes)) => match serde_json::from_slice::<IncidentRecord>(&bytes) {
                Ok(r) => out.push(r),
                Err(err) => log::warn!("skipping incident record {}: {err}", path.display()),
            },
            Ok(None) => {}
            Err(err) => log::warn!("cannot read incident record {}: {err}", path.display()),
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// A new id: one more than the highest, zero-padded so names sort.
pub fn next_id(io: &dyn StorageIo, data_dir: &Path) -> Result<String, StoreError> {
    let dir = incidents_dir(data_dir);
    let mut next = 1u64;
    if io.exists(&dir) {
        let entries = io
            .list_dir(&dir)
            .map_err(|e| StoreError::io(&dir, "listing incidents", e))?;
        for e in entries {
            if let Some(n) = e
                .name
                .strip_suffix(".json")
                .and_then(|s| s.parse::<u64>().ok())
            {
                next = next.max(n + 1);
            }
        }
    }
    Ok(format!("{next:06}"))
}

pub fn save(io: &dyn StorageIo, data_dir: &Path, rec: &IncidentRecord) -> Result<(), StoreError> {
    let dir = incidents_dir(data_dir);
    if !io.exists(&dir) {
        io.create_dir_all(&dir)
            .map_err(|e| StoreError::io(&dir, "creating the incidents folder", e))?;
        io.sync_dir(data_dir)
            .map_err(|e| StoreError::io(data_dir, "fsync folder", e))?;
    }
    let path = record_path(data_dir, &rec.id);
    let bytes = serde_json::to_vec_pretty(rec).map_err(|e| StoreError::Invalid {
        path: path.clone(),
        message: format!("encoding the incident: {e}"),
    })?;
    sidecar::write_atomic(io, &path, &bytes)
        .map_err(|e| StoreError::io(&path, "writing the incident record", e))
}

pub fn lock_path(segment: &Path) -> PathBuf {
    let mut s = segment.as_os_str().to_owned();
    s.push(PROTECT_SUFFIX);
    PathBuf::from(s)
}

/// Puts a lock sidecar beside `segment` (durably) unless one is there.
pub fn lock_segment(
    io: &dyn StorageIo,
    segment: &Path,
    incident_id: &str,
) -> Result<(), StoreError> {
    let path = lock_path(segment);
    if io.exists(&path) {
        return Ok(());
    }
    sidecar::write_atomic(io, &path, format!("incident {incident_id}\n").as_bytes())
        .map_err(|e| StoreError::io(&path, "writing a lock", e))
}

/// The locked-footage cap: which finished incidents to release, oldest
/// first, so that locked bytes fit under `cap_bytes`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockedCapPlan {
    pub locked_bytes: u64,
    /// Incident ids to release, oldest first.
    pub release: Vec<String>,
    /// Segments whose lock goes with them (no other active incident holds them).
    pub unlock: Vec<(String, String)>,
    /// Locked bytes after the plan.
    pub locked_after: u64,
}

/// Plans the locked cap. `segments` are the catalog's entries (their
/// `protected` flag and size count, whoever locked them).
pub fn plan_locked_cap(
    incidents: &[IncidentRecord],
    segments: &[SegmentEntry],
    cap_bytes: u64,
) -> LockedCapPlan {
    let locked: Vec<&SegmentEntry> = segments.iter().filter(|s| s.protected).collect();
    let locked_bytes: u64 = locked.iter().map(|s| s.len).sum();
    let mut plan = LockedCapPlan {
        locked_bytes,
        locked_after: locked_bytes,
        ..LockedCapPlan::default()
    };
    let active: Vec<&IncidentRecord> = incidents.iter().filter(|i| i.released.is_none()).collect();
    let mut released: HashSet<&str> = HashSet::new();
    let mut unlocked: HashSet<(String, String)> = HashSet::new();
    for inc in active.iter().filter(|i| i.complete) {
        if plan.locked_after <= cap_bytes {
            break;
        }
        released.insert(&inc.id);
        plan.release.push(inc.id.clone());
        for seg in &inc.segments {
            let key = (seg.camera.clone(), seg.name.clone());
            let held_elsewhere = active.iter().any(|o| {
                !released.contains(o.id.as_str())
                    && o.segments
                        .iter()
                        .any(|s| s.camera == seg.camera && s.name == seg.name)
            });
            if held_elsewhere || unlocked.contains(&key) {
                continue;
            }
            if let Some(entry) = locked
                .iter()
                .find(|s| s.camera == seg.camera && s.name == seg.name)
            {
                plan.locked_after = plan.locked_after.saturating_sub(entry.len);
                unlocked.insert(key.clone());
                plan.unlock.push(key);
            }
        }
    }
    plan
}

/// Carries out a plan: locks removed first, then each record marked released.
pub fn release(
    io: &dyn StorageIo,
    data_dir: &Path,
    incidents: &[IncidentRecord],
    plan: &LockedCapPlan,
    reason: &str,
) -> Result<(), StoreError> {
    for (camera, name) in &plan.unlock {
        let seg = super::camera_dir(data_dir, camera).join(name);
        let lock = lock_path(&seg);
        sidecar::remove_durably(io, &lock)
            .map_err(|e| StoreError::io(&lock, "removing a lock", e))?;
    }
    for id in &plan.release {
        if let Some(rec) = incidents.iter().find(|i| &i.id == id) {
            let mut rec = rec.clone();
            rec.released = Some(reason.to_string());
            save(io, data_dir, &rec)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(name: &str, len: u64, protected: bool) -> SegmentEntry {
        SegmentEntry {
            camera: "front".into(),
            seq: name.parse().unwrap_or(0),
            name: name.into(),
            path: PathBuf::from(format!("/d/front/{name}")),
            len,
            protected,
            corrected_start_ns: None,
        }
    }

    fn incident(id: &str, names: &[&str], complete: bool) -> IncidentRecord {
        IncidentRecord {
            id: id.into(),
            triggers: vec!["api".into()],
            at_ns: 0,
            at_mono_ns: 0,
            from_ns: 0,
            to_ns: 0,
            from_mono_ns: 0,
            to_mono_ns: 0,
            boot_id: String::new(),
            estimated: false,
            complete,
            segments: names
                .iter()
                .map(|n| LockedSegment {
                    camera: "front".into(),
                    name: (*n).into(),
                    bytes: 100,
                })
                .collect(),
            released: None,
            cut_short: false,
        }
    }

    #[test]
    fn releases_oldest_incidents_until_under_the_locked_cap() {
        let segs = vec![
            seg("1", 100, true),
            seg("2", 100, true),
            seg("3", 100, true),
            seg("4", 100, true),
            seg("5", 100, false),
        ];
        let incs = vec![
            incident("000001", &["1"], true),
            incident("000002", &["2", "3"], true),
            incident("000003", &["3", "4"], true),
        ];
        let p = plan_locked_cap(&incs, &segs, 250);
        assert_eq!(p.locked_bytes, 400);
        // The oldest goes first; the second follows, but segment 3 stays
        // locked for the third incident.
        assert_eq!(p.release, vec!["000001", "000002"]);
        let unlocked: Vec<&str> = p.unlock.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(unlocked, vec!["1", "2"]);
        assert_eq!(p.locked_after, 200);
        // Under the cap: nothing to do.
        assert!(plan_locked_cap(&incs, &segs, 400).release.is_empty());
    }

    #[test]
    fn an_incident_still_in_its_post_roll_is_never_released() {
        let segs = vec![seg("1", 100, true), seg("2", 100, true)];
        let incs = vec![incident("000001", &["1", "2"], false)];
        let p = plan_locked_cap(&incs, &segs, 50);
        assert!(p.release.is_empty());
        assert_eq!(p.locked_after, 200);
    }
}
