//! The status LED: the one thing a driver can see from the seat.
//!
//! Solid on: recording. Slow blink: no camera found or connected. Fast
//! blink: storage failing (writes fail, or /data is a RAM stand-in). Off:
//! the recorder is not running. Written through the kernel's LED class
//! (/sys/class/leds/NAME), blinking with its `timer` trigger so the LED
//! keeps blinking without the recorder's help.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedState {
    Recording,
    NoCamera,
    StorageError,
    Off,
}

impl LedState {
    pub fn describe(self) -> &'static str {
        match self {
            LedState::Recording => "recording (solid)",
            LedState::NoCamera => "no camera (slow blink)",
            LedState::StorageError => "storage error (fast blink)",
            LedState::Off => "off",
        }
    }

    /// Blink period halves in milliseconds (on, off), or None for steady.
    fn blink_ms(self) -> Option<(u32, u32)> {
        match self {
            LedState::NoCamera => Some((1000, 1000)),
            LedState::StorageError => Some((100, 100)),
            LedState::Recording | LedState::Off => None,
        }
    }
}

/// What the LED should show. Storage trouble outranks a missing camera: a
/// camera that records into nothing is the worse surprise.
pub fn state_for(cameras_connected: usize, storage_failing: bool) -> LedState {
    if storage_failing {
        LedState::StorageError
    } else if cameras_connected == 0 {
        LedState::NoCamera
    } else {
        LedState::Recording
    }
}

pub struct StatusLed {
    dir: PathBuf,
    shown: Option<LedState>,
    /// The last failure, logged once rather than every second.
    failed: Option<String>,
}

impl StatusLed {
    /// The LED `name` under /sys/class/leds.
    pub fn named(name: &str) -> StatusLed {
        StatusLed::at(Path::new("/sys/class/leds").join(name))
    }

    /// An LED class folder anywhere (tests use a plain folder).
    pub fn at(dir: PathBuf) -> StatusLed {
        StatusLed {
            dir,
            shown: None,
            failed: None,
        }
    }

    /// Shows `state`, touching the files only when it changed (or the last
    /// attempt failed).
    pub fn show(&mut self, state: LedState) {
        if self.shown == Some(state) {
            return;
        }
        match self.write(state) {
            Ok(()) => {
                log::info!("status LED {}: {}", self.dir.display(), state.describe());
                self.shown = Some(state);
                self.failed = None;
            }
            Err(e) => {
                let msg = format!("status LED {}: {e}", self.dir.display());
                if self.failed.as_deref() != Some(msg.as_str()) {
                    log::warn!("{msg}");
                    self.failed = Some(msg);
                }
            }
        }
    }

    fn write(&self, state: LedState) -> io::Result<()> {
        let put = |file: &str, value: &str| {
            fs::write(self.dir.join(file), value).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot write {value:?} to {file}: {e}"))
            })
        };
        match state.blink_ms() {
            Some((on, off)) => {
                // delay_on and delay_off appear once the trigger is set.
                put("trigger", "timer")?;
                put("delay_on", &on.to_string())?;
                put("delay_off", &off.to_string())
            }
            None => {
                put("trigger", "none")?;
                let level = if state == LedState::Off {
                    "0".to_string()
                } else {
                    fs::read_to_string(self.dir.join("max_brightness"))
                        .map(|s| s.trim().to_string())
                        .unwrap_or_else(|_| "1".into())
                };
                put("brightness", &level)
            }
        }
    }
}

/// Whether `dir` is on a RAM filesystem: the appliance mounts one on /data
/// when the card's data partition is unusable, and recordings there are
/// lost at the next power cut.
pub fn on_ram_disk(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn led_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("max_brightness"), "255\n").unwrap();
        d
    }

    fn read(d: &Path, f: &str) -> String {
        fs::read_to_string(d.join(f)).unwrap()
    }

    #[test]
    fn recording_is_solid_at_full_brightness() {
        let d = led_dir();
        let mut led = StatusLed::at(d.path().to_path_buf());
        led.show(state_for(1, false));
        assert_eq!(read(d.path(), "trigger"), "none");
        assert_eq!(read(d.path(), "brightness"), "255");
    }

    #[test]
    fn no_camera_blinks_slowly_and_storage_errors_fast() {
        let d = led_dir();
        let mut led = StatusLed::at(d.path().to_path_buf());
        led.show(state_for(0, false));
        assert_eq!(read(d.path(), "trigger"), "timer");
        assert_eq!(read(d.path(), "delay_on"), "1000");
        led.show(state_for(2, true));
        assert_eq!(read(d.path(), "delay_on"), "100");
        assert_eq!(read(d.path(), "delay_off"), "100");
    }

    #[test]
    fn an_unchanged_state_is_not_written_again() {
        let d = led_dir();
        let mut led = StatusLed::at(d.path().to_path_buf());
        led.show(LedState::Recording);
        fs::write(d.path().join("trigger"), "mmc0").unwrap();
        led.show(LedState::Recording);
        assert_eq!(read(d.path(), "trigger"), "mmc0");
        led.show(LedState::Off);
        assert_eq!(read(d.path(), "brightness"), "0");
    }

    #[test]
    fn a_ram_filesystem_is_told_from_a_disk() {
        let mounts = fs::read_to_string("/proc/mounts").unwrap();
        if mounts
            .lines()
            .any(|l| l.split(' ').nth(1) == Some("/dev/shm") && l.contains(" tmpfs "))
        {
            assert!(on_ram_disk(Path::new("/dev/shm")));
        }
        // The build folder: whatever /proc/mounts says it is on.
        let here = Path::new(env!("CARGO_MANIFEST_DIR"))
            .canonicalize()
            .unwrap();
        let fstype = mounts
            .lines()
            .filter_map(|l| {
                let mut f = l.split(' ');
                let (point, fstype) = (f.nth(1)?, f.next()?);
                here.starts_with(point).then_some((point.len(), fstype))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, t)| t)
            .unwrap();
        assert_eq!(
            on_ram_disk(&here),
            fstype == "tmpfs",
            "{here:?} is on {fstype}"
        );
    }

    #[test]
    fn a_missing_led_is_reported_and_retried_without_stopping_anything() {
        let d = tempfile::tempdir().unwrap();
        let mut led = StatusLed::at(d.path().join("nope"));
        led.show(LedState::Recording);
        assert!(led.failed.as_deref().unwrap().contains("trigger"));
        assert_eq!(led.shown, None, "tried again next time");
    }
}
