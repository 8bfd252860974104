//! Rolling storage: delete the oldest segments until usage is under the cap
//! and enough space is free. Never the segments being written, never the
//! protected ones. Every deletion and every failure is logged and counted.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::catalog::{list_all, SegmentEntry};
use super::incidents;
use super::io::StorageIo;
use super::stats::StoreStats;
use super::writer::OpenSegments;

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
            .min_by_key(|q| super::query::label_start_ns(q[0]).unwrap_or(i64::MIN))
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
    stats: Arc<StoreStats>,
    /// One pass at a time, whichever thread asks; incident locking takes it
    /// too, so a segment is never deleted between being found and locked.
    running: Arc<Mutex<()>>,
    /// Cap on locked (incident) footage; `None`: no cap.
    locked_cap_bytes: Mutex<Option<u64>>,
    /// The status message says locked footage is over its cap and cannot
    /// be released; it goes once that is no longer true.
    locked_cap_stuck: AtomicBool,
    /// Runs under the pass lock before segments are listed (incident locks
    /// for a post-roll in progress).
    before_plan: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
    /// Frees space that is not footage (finished share clips) before any
    /// segment is deleted for free space; given the bytes wanted, returns
    /// the bytes freed.
    yield_space: Mutex<Option<SpaceYielder>>,
}

pub type SpaceYielder = Arc<dyn Fn(u64) -> u64 + Send + Sync>;

impl Retention {
    pub fn new(
        io: Arc<dyn StorageIo>,
        data_dir: &Path,
        policy: RetentionPolicy,
        open: OpenSegments,
        stats: Arc<StoreStats>,
    ) -> Retention {
        Retention {
            io,
            data_dir: data_dir.to_path_buf(),
            policy,
            open,
            stats,
            running: Arc::default(),
            locked_cap_bytes: Mutex::new(None),
            locked_cap_stuck: AtomicBool::new(false),
            before_plan: Mutex::new(None),
            yield_space: Mutex::new(None),
        }
    }

    /// Shares a pass lock held elsewhere too (the store's, which incident
    /// locking takes).
    pub fn with_pass_lock(mut self, lock: Arc<Mutex<()>>) -> Retention {
        self.running = lock;
        self
    }

    pub fn set_locked_cap(&self, bytes: Option<u64>) {
        *self
            .locked_cap_bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = bytes;
        self.stats
            .locked_cap_bytes
            .store(bytes.unwrap_or(0), Ordering::Relaxed);
    }

    pub fn set_before_plan(&self, hook: Arc<dyn Fn() + Send + Sync>) {
        *self.before_plan.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    pub fn set_space_yielder(&self, yielder: SpaceYielder) {
        *self.yield_space.lock().unwrap_or_else(|e| e.into_inner()) = Some(yielder);
    }

    /// The lock every pass holds.
    pub fn pass_lock(&self) -> Arc<Mutex<()>> {
        self.running.clone()
    }

    /// Releases the oldest finished incidents while locked footage is over
    /// its cap, and says so in status.
    fn enforce_locked_cap(&self, segments: &mut [SegmentEntry]) {
        let store = &self.stats;
        // A segment being written is preallocated: its size says little
        // until it is closed, so it counts from then on.
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let closed: Vec<SegmentEntry> = segments
            .iter()
            .filter(|s| !open.contains(&s.path))
            .cloned()
            .collect();
        let locked: u64 = closed.iter().filter(|s| s.protected).map(|s| s.len).sum();
        store.locked_bytes.store(locked, Ordering::Relaxed);
        let cap = *self
            .locked_cap_bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cap.is_none_or(|cap| locked <= cap) {
            if self.locked_cap_stuck.swap(false, Ordering::Relaxed) {
                *store
                    .locked_message
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = None;
            }
            return;
        }
        let Some(cap) = cap else { return };
        let incidents = match incidents::list(self.io.as_ref(), &self.data_dir) {
            Ok(i) => i,
            Err(e) => {
                self.fail(format!("retention could not list incidents: {e}"));
                return;
            }
        };
        let plan = incidents::plan_locked_cap(&incidents, &closed, cap);
        let mb = |b: u64| b as f64 / 1e6;
        self.locked_cap_stuck
            .store(plan.release.is_empty(), Ordering::Relaxed);
        let message = if plan.release.is_empty() {
            format!(
                "locked footage ({:.1} MB) is over its cap ({:.1} MB) and nothing more can be released \
                 (incidents still recording, or locks without an incident)",
                mb(locked),
                mb(cap)
            )
        } else {
            let reason = format!(
                "released to make room: locked footage ({:.1} MB) was over its cap ({:.1} MB)",
                mb(locked),
                mb(cap)
            );
            if let Err(e) =
                incidents::release(self.io.as_ref(), &self.data_dir, &incidents, &plan, &reason)
            {
                self.fail(format!("retention could not release locked footage: {e}"));
                return;
            }
            for s in segments.iter_mut() {
                if plan
                    .unlock
                    .iter()
                    .any(|(c, n)| *c == s.camera && *n == s.name)
                {
                    s.protected = false;
                }
            }
            store
                .locked_bytes
                .store(plan.locked_after, Ordering::Relaxed);
            store
                .incidents_released
                .fetch_add(plan.release.len() as u64, Ordering::Relaxed);
            format!(
                "locked footage was over its cap ({:.1} of {:.1} MB): released the oldest \
                 incident{} {} to normal rotation",
                mb(locked),
                mb(cap),
                if plan.release.len() == 1 { "" } else { "s" },
                plan.release.join(", ")
            )
        };
        log::warn!("{message}");
        *store
            .locked_message
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(message);
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
        let hook = self
            .before_plan
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(hook) = hook {
            hook();
        }
        let store = &self.stats;
        let mut segments = match list_all(self.io.as_ref(), &self.data_dir) {
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
        self.enforce_locked_cap(&mut segments);
        let used: u64 = segments.iter().map(|s| s.len).sum();
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut policy = self.policy;
        // A free-space floor meant for an SD card would empty a small
        // filesystem (the appliance's RAM stand-in for a broken data
        // partition): never ask for more than a quarter of it.
        policy.min_free_bytes = policy.min_free_bytes.min(space.total_bytes / 4);
        if extra_bytes > 0 {
            policy.min_free_bytes = policy
                .min_free_bytes
                .max(space.free_bytes.saturating_add(extra_bytes));
        }
        let mut free_bytes = space.free_bytes;
        let short = policy.min_free_bytes.saturating_sub(free_bytes);
        let yielder = self
            .yield_space
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(yielder) = yielder.filter(|_| short > 0) {
            let yielded = yielder(short);
            if yielded > 0 {
                free_bytes = match self.io.space(&self.data_dir) {
                    Ok(s) => s.free_bytes,
                    Err(_) => free_bytes.saturating_add(yielded),
                };
            }
        }
        let plan = plan(&segments, free_bytes, policy, &open);
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
        let store = &self.stats;
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
            corrected_start_ns: None,
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
