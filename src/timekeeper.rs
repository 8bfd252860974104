//! Keeping the wall clock right on a board without a real-time clock.
//!
//! - The last known wall time is saved on the data partition
//!   (`<data_dir>/last-wall-time`, replaced atomically and durably) every
//!   minute and at each segment boundary.
//! - At start-up the recorder's wall clock is never behind it: the system
//!   clock is set forward when the service may (`CAP_SYS_TIME`), otherwise
//!   the recorder runs from an offset. Either way the time is marked
//!   estimated, and so are the frames recorded with it.
//! - When the right time arrives (a phone on the dashboard), the system
//!   clock is set (or the offset changed) and the recordings of this boot are
//!   relabelled through a clock anchor (`store::anchor`): their monotonic
//!   times are exact, only the wall-clock anchor changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::clock::{boot_id_hex, format_rfc3339_ms, AdjustableClock, Clock, WallClockSetter};
use crate::store::io::StorageIo;
use crate::store::{sidecar, BootRelabel, Store, StoreError};

pub const SAVED_TIME_FILE: &str = "last-wall-time";
/// How often the wall time is saved while recording.
pub const SAVE_INTERVAL_NS: u64 = 60_000_000_000;

/// How the wall clock came to be what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockSource {
    /// The system clock as the machine had it.
    System,
    /// Moved forward to the saved time at start-up (an estimate).
    RestoredSystem,
    /// Running from an offset to the saved time (not allowed to set the clock).
    RestoredOffset,
    /// Set from a phone: the system clock was set.
    SetSystem,
    /// Set from a phone as an offset (not allowed to set the system clock).
    SetOffset,
}

/// Who told the recorder the right time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeAuthority {
    /// A phone on the dashboard.
    Phone,
    /// A GPS receiver's fix.
    Gps,
}

/// Run after the clock was set (relabelling what holds wall times in
/// memory, refreshing the status).
pub type ClockSetHook = Box<dyn Fn(&Timekeeper, &ClockSetResult) + Send + Sync>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClockReport {
    pub time: String,
    pub estimated: bool,
    pub source: ClockSource,
    /// Who set the clock this run, if anyone (`source` says how).
    #[serde(default)]
    pub set_by: Option<TimeAuthority>,
    /// Recorder wall time minus the system clock, ms (0 unless running from an offset).
    pub offset_ms: i64,
    pub saved_time: Option<String>,
    pub last_save_error: Option<String>,
}

/// What setting the clock did (`http::answers::ClockSetAnswer` shows it).
#[derive(Clone, Debug)]
pub struct ClockSetResult {
    pub by: TimeAuthority,
    pub previous: String,
    pub time: String,
    pub step_ms: i64,
    pub source: ClockSource,
    pub relabelled_segments: usize,
    /// Wall minus monotonic time before and after, for callers that must
    /// shift times they hold in memory.
    pub old_wall_minus_mono_ns: i64,
    pub new_wall_minus_mono_ns: i64,
}

struct State {
    source: ClockSource,
    set_by: Option<TimeAuthority>,
    saved_ns: Option<i64>,
    last_save_mono_ns: u64,
    last_save_error: Option<String>,
}

pub struct Timekeeper {
    /// The saved time and clock anchors live in the store.
    store: Store,
    clock: Arc<AdjustableClock>,
    setter: Box<dyn WallClockSetter>,
    boot_id: [u8; 16],
    /// Per camera, the first segment number this boot can have written.
    boot_first_seq: HashMap<String, u64>,
    state: Mutex<State>,
    hooks: Mutex<Vec<ClockSetHook>>,
}

pub fn saved_time_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SAVED_TIME_FILE)
}

/// How far past the saved time the clock of a new boot may be and still be
/// taken for a restore of it (by us in an earlier start, or by the boot
/// scripts, which save on their own minute): one save interval and some
/// margin, on top of the time since boot. A clock that is right after a
/// power cut shorter than that is flagged estimated too, which costs
/// nothing but the stripes on the timeline.
const RESTORED_SLACK_NS: i64 = SAVE_INTERVAL_NS as i64 + 10_000_000_000;
/// Within one boot the clock follows monotonic time; a difference larger
/// than this since the last save means someone set it.
const SAME_BOOT_SLACK_NS: i64 = 2_000_000_000;

/// What `last-wall-time` holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedTime {
    pub wall_ns: i64,
    /// The boot and monotonic time of the save, when known: a restart
    /// within the same boot resumes from them exactly.
    pub boot_id: Option<String>,
    pub mono_ns: Option<u64>,
    /// The saved time was itself an estimate.
    pub estimated: bool,
}

impl SavedTime {
    pub fn encode(&self) -> String {
        let mut s = format!("{}\n{}\n", self.wall_ns, format_rfc3339_ms(self.wall_ns));
        if let (Some(boot), Some(mono)) = (&self.boot_id, self.mono_ns) {
            s.push_str(&format!(
                "boot {boot}\nmono_ns {mono}\nestimated {}\n",
                self.estimated
            ));
        }
        s
    }

    /// The first token is the wall time (older files hold nothing else);
    /// the `boot`, `mono_ns` and `estimated` lines are optional.
    pub fn decode(text: &str) -> Option<SavedTime> {
        let wall_ns = text.split_whitespace().next()?.parse::<i64>().ok()?;
        let mut saved = SavedTime {
            wall_ns,
            boot_id: None,
            mono_ns: None,
            estimated: true,
        };
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("boot", v)) => saved.boot_id = Some(v.to_string()),
                Some(("mono_ns", v)) => saved.mono_ns = v.parse().ok(),
                Some(("estimated", v)) => saved.estimated = v != "false",
                _ => {}
            }
        }
        Some(saved)
    }
}

/// The saved wall time, if there is a readable one.
pub fn read_saved(io: &dyn StorageIo, data_dir: &Path) -> Option<i64> {
    read_saved_time(io, data_dir).map(|s| s.wall_ns)
}

/// Everything the saved time file says, if it is readable.
pub fn read_saved_time(io: &dyn StorageIo, data_dir: &Path) -> Option<SavedTime> {
    let path = saved_time_path(data_dir);
    let bytes = match sidecar::read_small(io, &path) {
        Ok(b) => b?,
        Err(e) => {
            log::warn!("cannot read {}: {e}", path.display());
            return None;
        }
    };
    let saved = SavedTime::decode(&String::from_utf8_lossy(&bytes));
    if saved.is_none() {
        log::warn!("ignoring {}: not a saved time", path.display());
    }
    saved
}

/// Where the clock must be at start-up, and whether that is an estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StartTime {
    /// The clock must not be behind this.
    floor_ns: i64,
    /// ...by more than this (within a boot, NTP slewing and the instants
    /// between reading the two clocks are no reason to step it).
    tolerance_ns: i64,
    /// The clock is an estimate if it is at most this (it was restored
    /// rather than set by someone who knew).
    estimated_up_to_ns: i64,
    /// Moving the clock to `floor_ns` yields an estimate.
    floor_estimated: bool,
}

fn start_time(saved: &SavedTime, boot_hex: &str, mono_now_ns: u64) -> StartTime {
    let same_boot = boot_hex.bytes().any(|b| b != b'0')
        && saved.boot_id.as_deref() == Some(boot_hex)
        && saved.mono_ns.is_some_and(|m| m <= mono_now_ns);
    match saved.mono_ns {
        // A restart within the boot: monotonic time went on exactly.
        Some(mono) if same_boot => {
            let floor_ns = saved.wall_ns + (mono_now_ns - mono) as i64;
            StartTime {
                floor_ns,
                tolerance_ns: SAME_BOOT_SLACK_NS,
                estimated_up_to_ns: if saved.estimated {
                    floor_ns + SAME_BOOT_SLACK_NS
                } else {
                    i64::MIN
                },
                floor_estimated: saved.estimated,
            }
        }
        _ => StartTime {
            floor_ns: saved.wall_ns,
            tolerance_ns: 0,
            estimated_up_to_ns: saved.wall_ns + mono_now_ns as i64 + RESTORED_SLACK_NS,
            floor_estimated: true,
        },
    }
}

impl Timekeeper {
    /// Restores the wall clock from the saved time if the clock is behind it.
    /// Call before recording starts (and after recovery).
    pub fn start(
        store: Store,
        clock: Arc<AdjustableClock>,
        setter: Box<dyn WallClockSetter>,
        boot_id: [u8; 16],
    ) -> Timekeeper {
        let (io, data_dir) = (store.io().clone(), store.data_dir().to_path_buf());
        if let Err(e) = io.create_dir_all(&data_dir) {
            log::warn!("cannot create {}: {e}", data_dir.display());
        }
        let saved = read_saved_time(io.as_ref(), &data_dir);
        let mut source = ClockSource::System;
        if let Some(saved) = &saved {
            let target = start_time(saved, &boot_id_hex(&boot_id), clock.mono_ns());
            let now = clock.wall_ns();
            if now < target.floor_ns - target.tolerance_ns {
                let floor_ns = target.floor_ns;
                let behind =
                    std::time::Duration::from_secs(((floor_ns - now) / 1_000_000_000) as u64);
                let kind = if target.floor_estimated {
                    "the saved time (estimated)"
                } else {
                    "the time set earlier in this boot"
                };
                match setter.set_wall_ns(floor_ns) {
                    Ok(()) => {
                        clock.set_offset_ns(0);
                        source = if target.floor_estimated {
                            ClockSource::RestoredSystem
                        } else {
                            ClockSource::SetSystem
                        };
                        log::warn!(
                            "clock was {} behind {kind}; set the system clock to {}",
                            humantime::format_duration(behind),
                            format_rfc3339_ms(floor_ns)
                        );
                    }
                    Err(e) => {
                        clock.set_offset_ns(floor_ns - clock.system_wall_ns());
                        source = if target.floor_estimated {
                            ClockSource::RestoredOffset
                        } else {
                            ClockSource::SetOffset
                        };
                        log::warn!(
                            "clock is behind {kind} {} and cannot be set ({e}); \
                             recording with an offset",
                            format_rfc3339_ms(floor_ns)
                        );
                    }
                }
                clock.set_estimated(target.floor_estimated);
            } else if now <= target.estimated_up_to_ns {
                // Already at the saved time, by our own earlier start or by
                // the boot scripts: still only an estimate.
                source = ClockSource::RestoredSystem;
                clock.set_estimated(true);
            }
        }
        let saved = saved.map(|s| s.wall_ns);
        let boot_first_seq = store.boot_first_sequences(&boot_id);
        let keeper = Timekeeper {
            store,
            clock,
            setter,
            boot_id,
            boot_first_seq,
            state: Mutex::new(State {
                source,
                set_by: None,
                saved_ns: saved,
                last_save_mono_ns: 0,
                last_save_error: None,
            }),
            hooks: Mutex::new(Vec::new()),
        };
        keeper.save_now();
        keeper
    }

    pub fn clock(&self) -> &Arc<AdjustableClock> {
        &self.clock
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Saves the current wall time, atomically and durably.
    pub fn save_now(&self) {
        let mono = self.clock.mono_ns();
        let now = self.clock.wall_ns();
        let text = SavedTime {
            wall_ns: now,
            boot_id: Some(boot_id_hex(&self.boot_id)),
            mono_ns: Some(mono),
            estimated: self.clock.wall_estimated(),
        }
        .encode();
        let path = saved_time_path(self.store.data_dir());
        let result = sidecar::write_atomic(self.store.io().as_ref(), &path, text.as_bytes());
        let mut st = self.state();
        st.last_save_mono_ns = self.clock.mono_ns().max(1);
        match result {
            Ok(()) => {
                st.saved_ns = Some(now);
                st.last_save_error = None;
            }
            Err(e) => {
                let message = format!("cannot save the wall time to {}: {e}", path.display());
                if st.last_save_error.is_none() {
                    log::warn!("{message}");
                }
                st.last_save_error = Some(message);
            }
        }
    }

    /// Saves if a minute has passed since the last save.
    pub fn save_if_due(&self) {
        let due = {
            let st = self.state();
            self.clock.mono_ns().saturating_sub(st.last_save_mono_ns) >= SAVE_INTERVAL_NS
        };
        if due {
            self.save_now();
        }
    }

    pub fn report(&self) -> ClockReport {
        let st = self.state();
        ClockReport {
            time: format_rfc3339_ms(self.clock.wall_ns()),
            estimated: self.clock.wall_estimated(),
            source: st.source,
            set_by: st.set_by,
            offset_ms: self.clock.offset_ns() / 1_000_000,
            saved_time: st.saved_ns.map(format_rfc3339_ms),
            last_save_error: st.last_save_error.clone(),
        }
    }

    /// Runs `hook` after every setting of the clock.
    pub fn on_set(&self, hook: ClockSetHook) {
        self.hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(hook);
    }

    /// Sets the wall clock to `wall_ns` (a time `by` says is right) and
    /// relabels this boot's recordings, then runs the hooks.
    ///
    /// The anchor is written before the clock moves: if the power is cut in
    /// between, the recordings are already labelled right and the next start
    /// restores from the saved time as usual.
    pub fn set_wall(&self, wall_ns: i64, by: TimeAuthority) -> Result<ClockSetResult, StoreError> {
        let mut st = self.state();
        let mono = self.clock.mono_ns() as i64;
        let previous = self.clock.wall_ns();
        let old_offset = previous - mono;
        let new_offset = wall_ns - mono;
        let relabelled = self.store.relabel_boot(&BootRelabel {
            boot_id: self.boot_id,
            wall_minus_mono_ns: new_offset,
            current_offset_ns: old_offset,
            first_seq: self.boot_first_seq.clone(),
            set_at_wall_ns: wall_ns,
        })?;
        let source = match self.setter.set_wall_ns(wall_ns) {
            Ok(()) => {
                self.clock.set_offset_ns(0);
                ClockSource::SetSystem
            }
            Err(e) => {
                log::info!("cannot set the system clock ({e}); the recorder keeps an offset");
                // Measured after the attempt so the time it took is not lost.
                let mono_now = self.clock.mono_ns() as i64;
                self.clock
                    .set_offset_ns(new_offset + mono_now - self.clock.system_wall_ns());
                ClockSource::SetOffset
            }
        };
        self.clock.set_estimated(false);
        st.source = source;
        st.set_by = Some(by);
        drop(st);
        self.save_now();
        log::info!(
            "clock set from {} to {} (was {}), {relabelled} segments of this boot relabelled",
            match by {
                TimeAuthority::Phone => "a phone",
                TimeAuthority::Gps => "GPS",
            },
            format_rfc3339_ms(wall_ns),
            format_rfc3339_ms(previous)
        );
        let result = ClockSetResult {
            by,
            previous: format_rfc3339_ms(previous),
            time: format_rfc3339_ms(self.clock.wall_ns()),
            step_ms: (wall_ns - previous) / 1_000_000,
            source,
            relabelled_segments: relabelled,
            old_wall_minus_mono_ns: old_offset,
            new_wall_minus_mono_ns: new_offset,
        };
        for hook in self.hooks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            hook(self, &result);
        }
        Ok(result)
    }

    pub fn boot_id(&self) -> [u8; 16] {
        self.boot_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn saved_times_round_trip_and_old_files_read_as_estimates() {
        let t = SavedTime {
            wall_ns: 1_800_000_000 * S,
            boot_id: Some("0b".repeat(16)),
            mono_ns: Some(42),
            estimated: false,
        };
        assert_eq!(SavedTime::decode(&t.encode()), Some(t));
        let old = SavedTime::decode("1800000000000000000\n2027-01-15T08:00:00.000Z\n").unwrap();
        assert_eq!(
            (old.boot_id, old.mono_ns, old.estimated),
            (None, None, true)
        );
        assert_eq!(SavedTime::decode("soon"), None);
    }

    #[test]
    fn within_one_boot_the_floor_follows_monotonic_time_with_some_tolerance() {
        let boot = "0b".repeat(16);
        let saved = SavedTime {
            wall_ns: 1_000 * S,
            boot_id: Some(boot.clone()),
            mono_ns: Some(10 * S as u64),
            estimated: false,
        };
        let t = start_time(&saved, &boot, 70 * S as u64);
        assert_eq!(t.floor_ns, 1_060 * S);
        assert!(t.tolerance_ns > 0 && !t.floor_estimated);
        assert_eq!(t.estimated_up_to_ns, i64::MIN);
        // Another boot, or a boot id we could not read: the saved time only.
        for other in ["0c".repeat(16), "00".repeat(16)] {
            let t = start_time(&saved, &other, 70 * S as u64);
            assert_eq!((t.floor_ns, t.tolerance_ns), (1_000 * S, 0));
            assert!(t.floor_estimated);
        }
    }
}
