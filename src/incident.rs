//! Incident locks: whatever asks (dashboard, console, API, button,
//! G-sensor), the footage from `pre_roll` before the trigger to `post_roll`
//! after it is protected, in every camera.
//!
//! The pre-roll is already on disk (closed segments, and the one being
//! written), so it is locked at once. The post-roll is still to come: while
//! it runs, every pass also locks the segments being written, and a pass
//! runs before each new segment (under retention's lock, through its
//! `before_plan` hook), so no segment of the window is ever a deletion
//! candidate. Once the post-roll is over, a last pass locks the segment
//! that held its end, and the incident is complete.
//!
//! Segments of this boot are matched by monotonic time (exact whatever the
//! wall clock did); segments of an earlier boot by wall time.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::clock::{boot_id_hex, Clock};
use crate::store::incidents::{self, IncidentRecord, LockedSegment};
use crate::store::io::StorageIo;
use crate::store::reader::SegmentReader;
use crate::store::{Store, StoreError};

const NS_PER_S: u64 = 1_000_000_000;
/// The last pass waits this long after the post-roll so that the frames of
/// its end have been synced into a segment that can be read.
const SETTLE_NS: u64 = 3 * NS_PER_S;
/// A trigger during a post-roll extends the incident, but only up to this
/// many times its pre- plus post-roll; then it starts a new one. Otherwise
/// a rough road that sets the G-sensor off every few seconds would make one
/// endless incident that the locked cap could never release, and locked
/// footage would crowd out everything else.
const INCIDENT_ROLLS_MAX: u64 = 10;

/// What asked for an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerSource {
    Dashboard,
    Console,
    Api,
    Button,
    GSensor,
}

impl TriggerSource {
    pub fn name(self) -> &'static str {
        match self {
            TriggerSource::Dashboard => "dashboard",
            TriggerSource::Console => "console",
            TriggerSource::Api => "api",
            TriggerSource::Button => "button",
            TriggerSource::GSensor => "g-sensor",
        }
    }

    pub fn parse(s: &str) -> Option<TriggerSource> {
        [
            TriggerSource::Dashboard,
            TriggerSource::Console,
            TriggerSource::Api,
            TriggerSource::Button,
            TriggerSource::GSensor,
        ]
        .into_iter()
        .find(|t| t.name() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RollSettings {
    pub pre_roll_ns: u64,
    pub post_roll_ns: u64,
}

pub struct IncidentKeeper {
    /// Segments, the set being written and retention's pass lock.
    store: Store,
    clock: Arc<dyn Clock>,
    boot_id: [u8; 16],
    roll: RollSettings,
    /// Incidents whose post-roll is not over yet.
    pending: Mutex<Vec<IncidentRecord>>,
}

impl IncidentKeeper {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        boot_id: [u8; 16],
        roll: RollSettings,
    ) -> IncidentKeeper {
        let keeper = IncidentKeeper {
            store,
            clock,
            boot_id,
            roll,
            pending: Mutex::default(),
        };
        keeper.finish_interrupted();
        keeper
    }

    /// Incident records are sidecar files of the store.
    fn io(&self) -> &dyn StorageIo {
        self.store.io().as_ref()
    }

    /// Incidents that never finished. Those of an earlier boot lost their
    /// post-roll with the power: their locks are made whole again (a cut
    /// may fall between saving the record and writing a lock) and they
    /// count as complete, so the locked cap can release them in turn.
    /// Those of this boot (the service restarted, the boot went on) are
    /// pending again and finish as usual.
    fn finish_interrupted(&self) {
        let hex = boot_id_hex(&self.boot_id);
        let records = match incidents::list(self.io(), self.store.data_dir()) {
            Ok(r) => r,
            Err(e) => {
                log::error!("cannot list incidents: {e}");
                return;
            }
        };
        for mut rec in records.into_iter().filter(|r| !r.complete) {
            if rec.boot_id == hex {
                log::info!("incident {}: resuming its post-roll", rec.id);
                self.pending().push(rec);
                continue;
            }
            for seg in &rec.segments {
                let path = self.store.segment_path(&seg.camera, &seg.name);
                if self.io().exists(&path) {
                    if let Err(e) = incidents::lock_segment(self.io(), &path, &rec.id) {
                        log::error!("incident {}: {e}", rec.id);
                    }
                }
            }
            rec.complete = true;
            rec.cut_short = true;
            match incidents::save(self.io(), self.store.data_dir(), &rec) {
                Ok(()) => log::warn!(
                    "incident {}: the power went off during its post-roll; {} segments stay locked",
                    rec.id,
                    rec.segments.len()
                ),
                Err(e) => log::error!("incident {}: {e}", rec.id),
            }
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<IncidentRecord>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Protects the footage around now. A trigger during another incident's
    /// post-roll extends that incident instead of starting a new one.
    pub fn trigger(&self, source: TriggerSource) -> Result<IncidentRecord, StoreError> {
        let _pass = self
            .store
            .pass_lock()
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now();
        let mut pending = self.pending();
        let post = self.roll.post_roll_ns;
        let span_max = INCIDENT_ROLLS_MAX * (self.roll.pre_roll_ns + self.roll.post_roll_ns);
        if let Some(rec) = pending.iter_mut().find(|r| {
            now.mono_ns <= r.to_mono_ns && now.mono_ns + post - r.from_mono_ns <= span_max
        }) {
            rec.to_mono_ns = now.mono_ns + post;
            rec.to_ns = now.wall_ns + post as i64;
            if !rec.triggers.iter().any(|t| t == source.name()) {
                rec.triggers.push(source.name().into());
            }
            self.lock_pass(rec, false)?;
            log::info!("incident {} extended by {}", rec.id, source.name());
            return Ok(rec.clone());
        }
        let pre = self.roll.pre_roll_ns;
        let mut rec = IncidentRecord {
            id: incidents::next_id(self.io(), self.store.data_dir())?,
            triggers: vec![source.name().into()],
            at_ns: now.wall_ns,
            at_mono_ns: now.mono_ns,
            from_ns: now.wall_ns - pre as i64,
            to_ns: now.wall_ns + post as i64,
            from_mono_ns: now.mono_ns.saturating_sub(pre),
            to_mono_ns: now.mono_ns + post,
            boot_id: boot_id_hex(&self.boot_id),
            estimated: self.clock.wall_estimated(),
            complete: false,
            segments: Vec::new(),
            released: None,
            cut_short: false,
        };
        incidents::save(self.io(), self.store.data_dir(), &rec)?;
        self.lock_pass(&mut rec, false)?;
        log::info!(
            "incident {} ({}): protecting {} .. {}",
            rec.id,
            source.name(),
            crate::clock::format_rfc3339(rec.from_ns),
            crate::clock::format_rfc3339(rec.to_ns)
        );
        pending.push(rec.clone());
        Ok(rec)
    }

    /// Runs the lock passes of pending incidents; finishes those whose
    /// post-roll is over. Call with retention's pass lock held (retention's
    /// `before_plan` hook) or through [`IncidentKeeper::tick`].
    pub fn lock_pending(&self) {
        let now = self.clock.mono_ns();
        let mut pending = self.pending();
        for rec in pending.iter_mut() {
            let last = now >= rec.to_mono_ns + SETTLE_NS;
            if let Err(e) = self.lock_pass(rec, last) {
                log::error!("incident {}: cannot lock footage: {e}", rec.id);
                continue;
            }
            // Finished once no segment of it is still being written, so
            // the record holds the sizes they closed with.
            let still_open = {
                let open = self
                    .store
                    .open_segments()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                rec.segments.iter().any(|s| {
                    open.iter().any(|p| {
                        p.file_name().and_then(|n| n.to_str()) == Some(s.name.as_str())
                            && p.parent()
                                .and_then(|d| d.file_name())
                                .and_then(|n| n.to_str())
                                == Some(s.camera.as_str())
                    })
                })
            };
            if last && !still_open {
                rec.complete = true;
                if let Err(e) = incidents::save(self.io(), self.store.data_dir(), rec) {
                    log::error!("incident {}: {e}", rec.id);
                    rec.complete = false;
                }
            }
        }
        pending.retain(|r| !r.complete);
    }

    /// One pass outside retention.
    pub fn tick(&self) {
        let _pass = self
            .store
            .pass_lock()
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.lock_pending();
    }

    pub fn has_pending(&self) -> bool {
        !self.pending().is_empty()
    }

    /// Locks the segments of every camera that hold frames of the window.
    fn lock_pass(&self, rec: &mut IncidentRecord, last: bool) -> Result<(), StoreError> {
        let open = self
            .store
            .open_segments()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let now_mono = self.clock.mono_ns();
        let mut changed = false;
        let mut to_lock = Vec::new();
        for camera in self.store.cameras()? {
            let segments = self.store.segments(&camera)?.segments;
            for seg in segments.iter().rev() {
                let is_open = open.contains(&seg.path);
                let verdict = if is_open && !last && now_mono <= rec.to_mono_ns + SETTLE_NS {
                    // Being written during the window: part of it for sure.
                    Verdict::Inside
                } else {
                    match self.store.open_segment(seg) {
                        Ok(r) => self.judge(&r, rec),
                        // Nothing synced yet: it began within the last sync
                        // interval, after the window if this is the last pass.
                        Err(_) if is_open && last => Verdict::After,
                        Err(_) if is_open => Verdict::Inside,
                        Err(e) => {
                            log::warn!("incident {}: skipping {}: {e}", rec.id, seg.name);
                            continue;
                        }
                    }
                };
                match verdict {
                    Verdict::After => continue,
                    Verdict::Before => break,
                    Verdict::Inside => {}
                }
                let known = rec
                    .segments
                    .iter()
                    .position(|s| s.camera == camera && s.name == seg.name);
                if !seg.protected || known.is_none() {
                    to_lock.push(seg.path.clone());
                }
                match known {
                    Some(i) if rec.segments[i].bytes != seg.len => {
                        rec.segments[i].bytes = seg.len;
                        changed = true;
                    }
                    Some(_) => {}
                    None => {
                        rec.segments.push(LockedSegment {
                            camera: camera.clone(),
                            name: seg.name.clone(),
                            bytes: seg.len,
                        });
                        changed = true;
                    }
                }
            }
        }
        // The record names a segment before its lock exists: a lock the
        // record does not know of could never be released by the cap,
        // while a named segment without its lock is locked again at the
        // next start (`finish_interrupted`).
        if changed {
            rec.segments
                .sort_by(|a, b| (&a.camera, &a.name).cmp(&(&b.camera, &b.name)));
            incidents::save(self.io(), self.store.data_dir(), rec)?;
        }
        for path in &to_lock {
            incidents::lock_segment(self.io(), path, &rec.id)?;
        }
        Ok(())
    }

    fn judge(&self, r: &SegmentReader, rec: &IncidentRecord) -> Verdict {
        let (Some(first), Some(last)) = (r.frames.first(), r.frames.last()) else {
            return Verdict::After;
        };
        if r.stream.boot_id == self.boot_id {
            if first.mono_ns > rec.to_mono_ns {
                Verdict::After
            } else if last.mono_ns < rec.from_mono_ns {
                Verdict::Before
            } else {
                Verdict::Inside
            }
        } else if first.wall_ns > rec.to_ns {
            Verdict::After
        } else if last.wall_ns < rec.from_ns {
            Verdict::Before
        } else {
            Verdict::Inside
        }
    }

    /// Shifts the wall times of this boot's incidents after the clock was set.
    pub fn relabel(&self, wall_minus_mono_ns: i64) -> Result<(), StoreError> {
        // Retention's pass may be releasing one of these records: read and
        // rewrite them under its lock so neither change is lost.
        let _pass = self
            .store
            .pass_lock()
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let hex = boot_id_hex(&self.boot_id);
        let shift = |rec: &mut IncidentRecord| {
            rec.at_ns = rec.at_mono_ns as i64 + wall_minus_mono_ns;
            rec.from_ns = rec.from_mono_ns as i64 + wall_minus_mono_ns;
            rec.to_ns = rec.to_mono_ns as i64 + wall_minus_mono_ns;
            rec.estimated = false;
        };
        let mut pending = self.pending();
        for rec in pending.iter_mut() {
            shift(rec);
        }
        for mut rec in incidents::list(self.io(), self.store.data_dir())? {
            if rec.boot_id != hex {
                continue;
            }
            if let Some(p) = pending.iter().find(|p| p.id == rec.id) {
                rec = p.clone();
            } else {
                shift(&mut rec);
            }
            incidents::save(self.io(), self.store.data_dir(), &rec)?;
        }
        Ok(())
    }

    /// Incidents, newest first, as stored.
    pub fn list(&self) -> Result<Vec<IncidentRecord>, StoreError> {
        let mut all = incidents::list(self.io(), self.store.data_dir())?;
        let pending = self.pending();
        for rec in all.iter_mut() {
            if let Some(p) = pending.iter().find(|p| p.id == rec.id) {
                *rec = p.clone();
            }
        }
        all.reverse();
        Ok(all)
    }

    pub fn roll(&self) -> RollSettings {
        self.roll
    }
}

enum Verdict {
    /// Starts after the window (newer): skip, keep walking back.
    After,
    Inside,
    /// Ends before the window: older ones do too.
    Before,
}
