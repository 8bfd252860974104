//! Configuration: JSON, a superset of Dash of Pi's `config.json`.
//!
//! This module owns the config file: its model, the values each field
//! allows, the file format with Dash of Pi's legacy form, and the file on
//! disk. Each concern has its own file, and each imports only from those
//! above it in this list:
//! - `mod.rs` (here): the model, [`Config`] and its parts as the rest of the
//!   program uses them, with their defaults.
//! - `rules.rs`: the values each field allows and [`Config::validate`],
//!   which reports every broken rule as a [`FieldError`].
//! - `file.rs`: the file format: the file's own view of the model (every
//!   field optional, integers kept wide), the migration of Dash of Pi's
//!   legacy single-camera form, [`parse`], [`to_json`], and the
//!   [`ConfigError`] that lists every problem in a file.
//! - `persist.rs`: the file on disk: [`load`], [`save`], atomic replacement,
//!   the last-good copy that lets the recorder start even after a bad edit,
//!   and [`load_for_run`].
//!
//! Adding a field takes:
//! 1. here: the field in its struct, and its default in the struct's
//!    `Default` (`CameraConfig::synthetic` for a camera);
//! 2. `rules.rs`, if it has a rule: one line in the struct's `RULES` table,
//!    `Integer` with its allowed values or `Field` with a check (every
//!    integer needs one: a test fails for an integer key without it);
//! 3. `file.rs`: the field in the file's view of the struct (`FileCamera`
//!    for a camera), optional, an integer as `Option<Int>`; and its line in
//!    the conversion to the model: `ints.fit(errs, "name", self.name,
//!    defaults.name)` for an integer, `self.name.unwrap_or(defaults.name)`
//!    otherwise;
//! 4. a row in README.md's configuration table (a test holds the table to
//!    the keys the parser accepts).
//!
//! Invariants:
//! - A [`Config`] returned by [`load`] has passed [`Config::validate`]; every
//!   camera has a unique, non-empty id of `[a-z0-9_-]`.
//! - Every field in the file is optional; missing fields take the defaults
//!   below. Unknown fields are rejected, so a typo is never silently ignored.
//! - Problems are collected, not returned one at a time: a [`ConfigError`]
//!   lists every field that is wrong and what it accepts, also after an
//!   unknown key or a value of the wrong type. (A file that is not JSON
//!   reports the one spot where it stops being JSON.)
//! - Files are only ever replaced atomically (write `<name>.tmp`, fsync,
//!   rename, fsync the folder), so a power cut leaves the old or the new file,
//!   never half of one.
//! - A file that fails to load is never overwritten.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod file;
mod persist;
mod rules;
#[cfg(test)]
mod testutil;

pub use file::{
    jpeg_quality_from_mjpeg, parse, to_json, ConfigError, ConfigErrorKind, LoadedConfig,
    LEGACY_CAMERA_ID, LEGACY_CAMERA_NAME,
};
pub use persist::{
    check, last_good_path, load, load_for_run, rewrite_migrated, save, write_atomic, ConfigOrigin,
    RunConfig,
};
pub use rules::{auth_token_bits, FieldError, AUTH_TOKEN_BITS_MIN};

pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_STORAGE_CAP_GB: f64 = 10.0;
pub const DEFAULT_SEGMENT_LENGTH_S: u32 = 60;
pub const DEFAULT_SYNC_INTERVAL_MS: u32 = 1000;
pub const DEFAULT_MIN_FREE_MB: u64 = 256;
/// Room for a few five-minute 720p share clips.
pub const DEFAULT_SHARE_CACHE_MB: u64 = 500;
pub const DEFAULT_JPEG_QUALITY: u8 = 75;
pub const DEFAULT_ENCODER_THREADS: u8 = 2;
pub const DEFAULT_BIND: &str = "127.0.0.1";
pub const DEFAULT_DATA_DIR: &str = "data";
pub const DEFAULT_RES_WIDTH: u32 = 1280;
pub const DEFAULT_RES_HEIGHT: u32 = 720;
pub const DEFAULT_FPS: u32 = 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Synthetic,
    V4l2,
    Libcamera,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub port: u16,
    /// Address the dashboard listens on.
    pub bind: String,
    /// Names the dashboard answers to besides its IP addresses, `localhost`
    /// and the machine's host name (`dashcam.home`); requests naming any
    /// other host are refused (docs/http.md, "Host names").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    pub storage_cap_gb: f64,
    pub segment_length_s: u32,
    pub sync_interval_ms: u32,
    pub min_free_mb: u64,
    /// Cap of the finished share clips kept on the data partition.
    pub share_cache_mb: u64,
    /// Where recordings live; relative paths are relative to the config file's folder.
    pub data_dir: PathBuf,
    /// Dash of Pi stored its token here; kept so its configs load. Ours lives beside the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    pub cameras: Vec<CameraConfig>,
    /// Record every camera found while running, besides those in `cameras`
    /// (the appliance: camera drivers load late, webcams are plugged in on
    /// the road). With it, no camera found means waiting for one, never the
    /// test pattern.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub discover_cameras: bool,
    /// The LED under /sys/class/leds that shows the recorder's state (`ACT`
    /// on a Pi); none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_led: Option<String>,
    /// The appliance image's Wi-Fi hotspot; its boot scripts read it with
    /// `dashvault config get wifi.<field>`. The recorder itself ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wifi: Option<WifiConfig>,
    /// Incident locks: pre-roll, post-roll and the locked-footage cap.
    #[serde(default)]
    pub incident: IncidentConfig,
    /// Hardware incident triggers (button, G-sensor); both optional.
    #[serde(default)]
    pub triggers: TriggersConfig,
    /// A GPS receiver (NMEA 0183 on a serial port): satellite time for the
    /// clock, position and speed with the footage. None: no receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gps: Option<GpsConfig>,
}

/// Where the GPS receiver is and how its speed is shown. Plain serde with
/// every field optional.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpsConfig {
    /// A tty path, or "auto" for the first of /dev/serial/by-id/*,
    /// /dev/ttyACM0, /dev/ttyUSB0.
    #[serde(default = "GpsConfig::auto")]
    pub device: String,
    /// The line rate (4800, 9600, 19200, 38400, 57600 or 115200); absent to
    /// detect it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baud: Option<u32>,
    /// Speed in the picture, on the dashboard and the console: `kmh` or
    /// `mph`.
    #[serde(default)]
    pub speed_unit: SpeedUnit,
    /// Burn the speed into the picture after the time (cameras with
    /// `embed_timestamp`).
    #[serde(default = "GpsConfig::yes")]
    pub overlay_speed: bool,
    /// Burn the position too.
    #[serde(default)]
    pub overlay_position: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeedUnit {
    #[default]
    Kmh,
    Mph,
}

impl SpeedUnit {
    /// `speed_mps` in this unit.
    pub fn from_mps(self, speed_mps: f64) -> f64 {
        match self {
            SpeedUnit::Kmh => speed_mps * 3.6,
            SpeedUnit::Mph => speed_mps * 3600.0 / 1609.344,
        }
    }

    /// `speed_mps` rounded to whole units, with the unit: `50 km/h`.
    pub fn text(self, speed_mps: f64) -> String {
        format!("{:.0} {}", self.from_mps(speed_mps), self.label())
    }

    pub fn label(self) -> &'static str {
        match self {
            SpeedUnit::Kmh => "km/h",
            SpeedUnit::Mph => "mph",
        }
    }
}

impl Default for GpsConfig {
    fn default() -> GpsConfig {
        GpsConfig {
            device: GpsConfig::auto(),
            baud: None,
            speed_unit: SpeedUnit::default(),
            overlay_speed: true,
            overlay_position: false,
        }
    }
}

impl GpsConfig {
    fn auto() -> String {
        "auto".to_string()
    }

    fn yes() -> bool {
        true
    }

    /// Checks the fields; each message names its field (`gps.baud: ...`).
    pub fn validate(&self) -> Result<(), String> {
        let mut errs = Vec::new();
        rules::check_all(GpsConfig::RULES, self, "gps", &mut errs);
        match errs.is_empty() {
            true => Ok(()),
            false => Err(errs
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")),
        }
    }
}

/// Hotspot settings. Every field is optional: the image generates what is
/// missing on first boot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WifiConfig {
    /// Network name, 1-32 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssid: Option<String>,
    /// WPA2 passphrase, 8-63 printable ASCII characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Regulatory country, two capital letters (e.g. `DE`, `US`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// 2.4 GHz channel, 1-13.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u8>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CameraConfig {
    pub id: String,
    pub name: String,
    pub source: SourceKind,
    /// `/dev/videoN` for v4l2, a libcamera camera id, ignored for synthetic.
    pub device: String,
    pub rotation: u16,
    pub res_width: u32,
    pub res_height: u32,
    pub fps: u32,
    pub jpeg_quality: u8,
    /// Dash of Pi's quality scale (2-31, lower is better); mapped to `jpeg_quality` on load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mjpeg_quality: Option<u8>,
    /// Accepted for Dash of Pi compatibility; JPEG recording has no bitrate target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u32>,
    pub embed_timestamp: bool,
    pub enabled: bool,
    pub encoder_threads: u8,
    /// Dash of Pi's capture format hint (e.g. `mjpeg`, `yuyv`; `auto` or
    /// absent means no preference); kept for the capture layer, which may
    /// ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_format: Option<String>,
    /// Longest automatic exposure in microseconds for libcamera cameras
    /// (0: only the frame duration limits it); see docs/camera.md.
    #[serde(default = "default_max_exposure_us")]
    pub max_exposure_us: u32,
}

/// Longest automatic exposure by default: 1/100 s. At 50 km/h the car moves
/// 14 cm in that time, against 46 cm at the 1/30 s a 30 fps camera would
/// otherwise use (docs/camera.md).
pub const DEFAULT_MAX_EXPOSURE_US: u32 = 10_000;

fn default_max_exposure_us() -> u32 {
    DEFAULT_MAX_EXPOSURE_US
}

impl Default for Config {
    fn default() -> Config {
        Config {
            port: DEFAULT_PORT,
            bind: DEFAULT_BIND.into(),
            hostnames: Vec::new(),
            storage_cap_gb: DEFAULT_STORAGE_CAP_GB,
            segment_length_s: DEFAULT_SEGMENT_LENGTH_S,
            sync_interval_ms: DEFAULT_SYNC_INTERVAL_MS,
            min_free_mb: DEFAULT_MIN_FREE_MB,
            share_cache_mb: DEFAULT_SHARE_CACHE_MB,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            auth_token: None,
            cameras: vec![CameraConfig::synthetic("front")],
            discover_cameras: false,
            status_led: None,
            wifi: None,
            incident: IncidentConfig::default(),
            triggers: TriggersConfig::default(),
            gps: None,
        }
    }
}

impl CameraConfig {
    pub fn synthetic(id: &str) -> CameraConfig {
        CameraConfig {
            id: id.into(),
            name: "Test camera".into(),
            source: SourceKind::Synthetic,
            device: String::new(),
            rotation: 0,
            res_width: DEFAULT_RES_WIDTH,
            res_height: DEFAULT_RES_HEIGHT,
            fps: DEFAULT_FPS,
            jpeg_quality: DEFAULT_JPEG_QUALITY,
            mjpeg_quality: None,
            bitrate: None,
            embed_timestamp: true,
            enabled: true,
            encoder_threads: DEFAULT_ENCODER_THREADS,
            pixel_format: None,
            max_exposure_us: default_max_exposure_us(),
        }
    }
}

impl Config {
    /// The unit speeds are shown in: `gps.speed_unit`, km/h without a GPS.
    pub fn speed_unit(&self) -> SpeedUnit {
        self.gps.as_ref().map(|g| g.speed_unit).unwrap_or_default()
    }

    /// Where recordings live. A relative `data_dir` is taken relative to the
    /// folder holding the config file, so the service does not depend on the
    /// working directory it was started from.
    pub fn resolved_data_dir(&self, config_path: &Path) -> PathBuf {
        if self.data_dir.is_absolute() {
            return self.data_dir.clone();
        }
        match config_path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(&self.data_dir),
            _ => self.data_dir.clone(),
        }
    }
}

// ---------------------------------------------------------------------------
// Incident locks and their triggers (`incident`, `triggers`)

pub const DEFAULT_PRE_ROLL_S: u32 = 30;
pub const DEFAULT_POST_ROLL_S: u32 = 30;
pub const DEFAULT_LOCKED_CAP_PERCENT: u8 = 20;
pub const DEFAULT_DEBOUNCE_MS: u32 = 30;
pub const DEFAULT_THRESHOLD_G: f64 = 2.0;
pub const DEFAULT_SAMPLE_HZ: u32 = 100;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentConfig {
    /// Seconds kept before the trigger.
    pub pre_roll_s: u32,
    /// Seconds kept after the trigger.
    pub post_roll_s: u32,
    /// Locked footage may use at most this share of `storage_cap_gb`.
    pub locked_cap_percent: u8,
}

impl Default for IncidentConfig {
    fn default() -> IncidentConfig {
        IncidentConfig {
            pre_roll_s: DEFAULT_PRE_ROLL_S,
            post_roll_s: DEFAULT_POST_ROLL_S,
            locked_cap_percent: DEFAULT_LOCKED_CAP_PERCENT,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TriggersConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpio_button: Option<GpioButtonConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerometer: Option<AccelerometerConfig>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpioButtonConfig {
    /// GPIO character device, e.g. `/dev/gpiochip0`.
    pub chip: PathBuf,
    /// Line offset on that chip (the BCM number on a Raspberry Pi).
    pub line: u32,
    /// Pressed pulls the line to ground (internal pull-up enabled).
    pub active_low: bool,
    pub debounce_ms: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccelerometerConfig {
    /// I2C bus device, e.g. `/dev/i2c-1`.
    pub device: PathBuf,
    pub part: crate::triggers::accel::AccelPart,
    /// 7-bit I2C address; the part's usual one when absent.
    pub address: u16,
    /// Deviation from gravity that counts as a shock, in g.
    pub threshold_g: f64,
    pub sample_hz: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolved_data_dir_is_relative_to_the_config_folder() {
        let mut c = Config::default();
        let cfg = Path::new("/etc/dashvault/config.json");
        assert_eq!(
            c.resolved_data_dir(cfg),
            PathBuf::from("/etc/dashvault/data")
        );
        assert_eq!(
            c.resolved_data_dir(Path::new("config.json")),
            PathBuf::from("data")
        );
        c.data_dir = PathBuf::from("/var/lib/dashvault");
        assert_eq!(
            c.resolved_data_dir(cfg),
            PathBuf::from("/var/lib/dashvault")
        );
    }
}
