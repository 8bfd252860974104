//! Rolling storage: delete the oldest segments until usage is under the cap
//! and enough space is free. Never the segments being written, never the
//! protected ones. Every deletion and every failure is logged and counted.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::catalog::{list_all, SegmentEntry};
use super::io::StorageIo;
use super::writer::OpenSegments;
use crate::status::Status;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub cap_bytes: u64,
    pub min_free_bytes: u64,
}

/// Which segments to delete, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    pub delete: Vec<SegmentEntry>,
    /// Bytes still over the cap (or short of free space) after the plan.
    pub shortfall_bytes: u64,
}

/// Plans deletions. Oldest is judged per camera by sequence number, and
/// across cameras by the start time in the name, so each camera always
/// loses its oldest segment first even if the wall clock jumped.
pub fn plan(
    segments: &[SegmentEntry],
    free_bytes: u64,
    policy: RetentionPolicy,
    open: &HashSet<PathBuf>,
) -> RetentionPlan {
    let used: u64 = segments.iter().map(|s| s.len).sum();
    let over_cap = used.saturating_sub(policy.cap_bytes);
    let under_free = policy.min_free_bytes.saturating_sub(free_bytes);
    let mut need = over_cap.max(under_free);
    let mut queues: Vec<VecDeque<&SegmentEntry>> = Vec::new();
    let mut cameras: Vec<&str> = segments.iter().map(|s| s.camera.as_str()).collect();
    cameras.sort();
    cameras.dedup();
    for cam in cameras {
        let mut q: Vec<&SegmentEntry> = segments
            .iter()
            .filter(|s| s.camera == cam && !s.protected && !open.contains(&s.path))
            .collect();
        q.sort_by_key(|s| s.seq);
        queues.push(q.into());
    }
    let mut delete = Vec::new();
    while need > 0 {
        let Some(next) = queues
            .iter_mut()
            .filter(|q| !q.is_empty())
            .min_by(|a, b| a[0].start_label().cmp(b[0].start_label()))
        else {
            break;
        };
        let seg = next.pop_front().expect("queue is not empty");
        need = need.saturating_sub(seg.len.max(1));
        delete.push(seg.clone());
    }
    RetentionPlan {
        delete,
        shortfall_bytes: need,
    }
}

pub struct Retention {
    io: Arc<dyn StorageIo>,
    data_dir: PathBuf,
    policy: RetentionPolicy,
    open: OpenSegments,
    status: Arc<Status>,
    /// One pass at a time, whichever thread asks.
    running: Mutex<()>,
}

impl Retention {
    pub fn new(
        io: Arc<dyn StorageIo>,
        data_dir: &Path,
        policy: RetentionPolicy,
        open: OpenSegments,
        status: Arc<Status>,
    ) -> Retention {
        Retention {
            io,
            data_dir: data_dir.to_path_buf(),
            policy,
            open,
            status,
            running: Mutex::new(()),
        }
    }

    /// One pass: measure, plan, delete. Returns the number of segments deleted.
    pub fn enforce(&self) -> usize {
        self.enforce_freeing(0)
    }

    /// After a write failed for lack of space: deletes at least the oldest
    /// deletable segment even when the cap and `min_free_mb` are met (a
    /// floor of 0, or other files filling the disk, would otherwise stop
    /// recording for good).
    pub fn free_after_no_space(&self) -> usize {
        self.enforce_freeing(1)
    }

    /// [`enforce`](Retention::enforce), also freeing `extra_bytes` beyond
    /// what the policy asks.
    fn enforce_freeing(&self, extra_bytes: u64) -> usize {
        let _one_at_a_time = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let store = &self.status.store;
        let segments = match list_all(self.io.as_ref(), &self.data_dir) {
            Ok(s) => s,
            Err(e) => {
                self.fail(format!("retention could not list recordings: {e}"));
                return 0;
            }
        };
        let space = match self.io.space(&self.data_dir) {
            Ok(s) => s,
            Err(e) => {
                self.fail(format!(
                    "retention could not read free space of {}: {e}",
                    self.data_dir.display()
                ));
                return 0;
            }
        };
        let used: u64 = segments.iter().map(|s| s.len).sum();
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut policy = self.policy;
        if extra_bytes > 0 {
            policy.min_free_bytes = policy
                .min_free_bytes
                .max(space.free_bytes.saturating_add(extra_bytes));
        }
        let plan = plan(&segments, space.free_bytes, policy, &open);
        let mut deleted = 0;
        let mut freed = 0;
        let mut dirs: HashSet<PathBuf> = HashSet::new();
        for seg in &plan.delete {
            match self.io.remove_file(&seg.path) {
                Ok(()) => {
                    log::info!(
                        "[{}] retention deleted {} ({} bytes)",
                        seg.camera,
                        seg.name,
                        seg.len
                    );
                    deleted += 1;
                    freed += seg.len;
                    store
                        .retention_deleted_segments
                        .fetch_add(1, Ordering::Relaxed);
                    store
                        .retention_deleted_bytes
                        .fetch_add(seg.len, Ordering::Relaxed);
                    if let Some(d) = seg.path.parent() {
                        dirs.insert(d.to_path_buf());
                    }
                }
                Err(e) => self.fail(format!(
                    "retention could not delete {}: {e}",
                    seg.path.display()
                )),
            }
        }
        for d in dirs {
            if let Err(e) = self.io.sync_dir(&d) {
                self.fail(format!("retention could not fsync {}: {e}", d.display()));
            }
        }
        store
            .used_bytes
            .store(used.saturating_sub(freed), Ordering::Relaxed);
        store
            .free_bytes
            .store(space.free_bytes + freed, Ordering::Relaxed);
        let unreachable = plan.shortfall_bytes > 0;
        if unreachable && !store.cap_unreachable.load(Ordering::Relaxed) {
            log::warn!(
                "storage cap cannot be met: {} bytes over, and every remaining segment is \
                 protected or being written",
                plan.shortfall_bytes
            );
        }
        store.cap_unreachable.store(unreachable, Ordering::Relaxed);
        deleted
    }

    fn fail(&self, message: String) {
        log::error!("{message}");
        let store = &self.status.store;
        store.retention_failures.fetch_add(1, Ordering::Relaxed);
        *store
            .last_retention_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(camera: &str, seq: u64, label: &str, len: u64) -> SegmentEntry {
        let name = format!("{seq:012}_{label}.dvr");
        SegmentEntry {
            camera: camera.into(),
            seq,
            path: PathBuf::from(format!("/d/{camera}/{name}")),
            name,
            len,
            protected: false,
        }
    }

    #[test]
    fn deletes_oldest_across_cameras_until_under_cap() {
        let segs = vec![
            seg("front", 0, "20260101T000000Z", 100),
            seg("front", 1, "20260101T000100Z", 100),
            seg("rear", 0, "20260101T000030Z", 100),
            seg("rear", 1, "20260101T000130Z", 100),
        ];
        let policy = RetentionPolicy {
            cap_bytes: 250,
            min_free_bytes: 0,
        };
        let p = plan(&segs, 1 << 30, policy, &HashSet::new());
        let names: Vec<_> = p
            .delete
            .iter()
            .map(|s| (s.camera.as_str(), s.seq))
            .collect();
        assert_eq!(names, vec![("front", 0), ("rear", 0)]);
        assert_eq!(p.shortfall_bytes, 0);
    }

    #[test]
    fn per_camera_sequence_wins_over_a_wall_clock_jump() {
        // Segment 1 was named after the clock jumped back a year.
        let segs = vec![
            seg("front", 0, "20270101T000000Z", 100),
            seg("front", 1, "20260101T000000Z", 100),
        ];
        let policy = RetentionPolicy {
            cap_bytes: 150,
            min_free_bytes: 0,
        };
        let p = plan(&segs, 1 << 30, policy, &HashSet::new());
        assert_eq!(p.delete.len(), 1);
        assert_eq!(p.delete[0].seq, 0);
    }

    #[test]
    fn never_deletes_open_or_protected_and_reports_shortfall() {
        let mut segs = vec![
            seg("front", 0, "20260101T000000Z", 100),
            seg("front", 1, "20260101T000100Z", 100),
            seg("front", 2, "20260101T000200Z", 100),
        ];
        segs[0].protected = true;
        let open: HashSet<PathBuf> = [segs[2].path.clone()].into();
        let policy = RetentionPolicy {
            cap_bytes: 0,
            min_free_bytes: 0,
        };
        let p = plan(&segs, 1 << 30, policy, &open);
        assert_eq!(p.delete.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![1]);
        assert_eq!(p.shortfall_bytes, 200);
    }

    #[test]
    fn low_free_space_triggers_deletion_under_the_cap() {
        let segs = vec![
            seg("front", 0, "20260101T000000Z", 100),
            seg("front", 1, "20260101T000100Z", 100),
        ];
        let policy = RetentionPolicy {
            cap_bytes: 1 << 40,
            min_free_bytes: 1000,
        };
        let p = plan(&segs, 950, policy, &HashSet::new());
        assert_eq!(p.delete.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![0]);
    }
}
