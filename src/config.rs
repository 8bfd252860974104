//! Configuration: JSON, a superset of Dash of Pi's `config.json`.
//!
//! This module owns the config file: parsing, defaults, validation, the
//! migration of Dash of Pi's legacy single-camera form, atomic saving and the
//! last-good copy that lets the recorder start even after a bad edit.
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

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::sidecar::{self, Readers};

pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_STORAGE_CAP_GB: f64 = 10.0;
pub const DEFAULT_SEGMENT_LENGTH_S: u32 = 60;
pub const DEFAULT_SYNC_INTERVAL_MS: u32 = 1000;
pub const DEFAULT_MIN_FREE_MB: u64 = 256;
pub const DEFAULT_JPEG_QUALITY: u8 = 75;
pub const DEFAULT_ENCODER_THREADS: u8 = 2;
pub const DEFAULT_BIND: &str = "127.0.0.1";
pub const DEFAULT_DATA_DIR: &str = "data";
pub const DEFAULT_RES_WIDTH: u32 = 1280;
pub const DEFAULT_RES_HEIGHT: u32 = 720;
pub const DEFAULT_FPS: u32 = 30;
/// Id and name of the camera a legacy single-camera config migrates to.
pub const LEGACY_CAMERA_ID: &str = "default";
pub const LEGACY_CAMERA_NAME: &str = "Default Camera";

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

impl WifiConfig {
    /// Values end up in hostapd's line-based config, so control characters
    /// (a newline would start a new setting) are refused everywhere.
    fn validate(&self, errs: &mut Vec<FieldError>) {
        if let Some(ssid) = &self.ssid {
            if ssid.is_empty() || ssid.len() > 32 || ssid.chars().any(char::is_control) {
                errs.push(FieldError::new(
                    "wifi.ssid",
                    format!("{ssid:?} is not allowed; use 1-32 bytes without control characters"),
                ));
            }
        }
        if let Some(pw) = &self.password {
            let printable = pw.bytes().all(|b| (0x20..0x7f).contains(&b));
            if !(8..=63).contains(&pw.len()) || !printable {
                errs.push(FieldError::new(
                    "wifi.password",
                    format!(
                        "is {} characters long{}; WPA2 needs 8-63 printable ASCII characters",
                        pw.chars().count(),
                        if printable {
                            ""
                        } else {
                            " with characters outside printable ASCII"
                        }
                    ),
                ));
            }
        }
        if let Some(c) = &self.country {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                errs.push(FieldError::new(
                    "wifi.country",
                    format!("{c:?} is not allowed; use a two-letter country code such as DE or US"),
                ));
            }
        }
        if let Some(ch) = self.channel {
            if !(1..=13).contains(&ch) {
                errs.push(FieldError::new(
                    "wifi.channel",
                    format!("{ch} is not allowed; use a 2.4 GHz channel from 1 to 13"),
                ));
            }
        }
    }
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
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            auth_token: None,
            cameras: vec![CameraConfig::synthetic("front")],
            discover_cameras: false,
            status_led: None,
            wifi: None,
            incident: IncidentConfig::default(),
            triggers: TriggersConfig::default(),
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

    /// Checks every field against its allowed values and returns every
    /// problem found. [`load`] runs this; call it again after changing a
    /// config in memory (for example from the dashboard) before saving it.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();
        check_rule(&mut errs, "port", self.port.into(), PORT);
        if self.bind.parse::<IpAddr>().is_err() {
            errs.push(FieldError::new(
                "bind",
                format!(
                    "{:?} is not an IP address; use e.g. 127.0.0.1, 0.0.0.0 or ::",
                    self.bind
                ),
            ));
        }
        for (i, name) in self.hostnames.iter().enumerate() {
            if let Some(problem) = hostname_problem(name) {
                errs.push(FieldError::new(format!("hostnames[{i}]"), problem));
            }
        }
        if !(self.storage_cap_gb.is_finite() && self.storage_cap_gb > 0.0) {
            errs.push(FieldError::new(
                "storage_cap_gb",
                format!(
                    "{} is not allowed; use a number of gigabytes greater than 0",
                    self.storage_cap_gb
                ),
            ));
        }
        check_rule(
            &mut errs,
            "segment_length_s",
            self.segment_length_s.into(),
            SEGMENT_LENGTH_S,
        );
        check_rule(
            &mut errs,
            "sync_interval_ms",
            self.sync_interval_ms.into(),
            SYNC_INTERVAL_MS,
        );
        check_rule(
            &mut errs,
            "min_free_mb",
            self.min_free_mb.into(),
            MIN_FREE_MB,
        );
        if self.data_dir.as_os_str().is_empty() {
            errs.push(FieldError::new(
                "data_dir",
                "must not be empty; use a folder such as \"data\" or \"/var/lib/dashvault\"",
            ));
        }
        if self.cameras.is_empty() && !self.discover_cameras {
            errs.push(FieldError::new(
                "cameras",
                "no cameras; add at least one camera (a camera with no device records a synthetic test pattern), or set discover_cameras",
            ));
        }
        if let Some(led) = &self.status_led {
            let plain = led.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
            if led.is_empty() || led.len() > 64 || !plain || led.starts_with('.') {
                errs.push(FieldError::new(
                    "status_led",
                    format!("{led:?} is not an LED name; use the name of a folder under /sys/class/leds, such as \"ACT\""),
                ));
            }
        }
        self.incident.validate_into(&mut errs);
        self.triggers.validate_into(&mut errs);
        let mut first_use: HashMap<&str, usize> = HashMap::new();
        for (i, cam) in self.cameras.iter().enumerate() {
            cam.validate_into(&format!("cameras[{i}]"), &mut errs);
            if let Some(first) = first_use.get(cam.id.as_str()) {
                errs.push(FieldError::new(
                    format!("cameras[{i}].id"),
                    format!(
                        "{:?} is already used by cameras[{first}]; camera ids must be unique",
                        cam.id
                    ),
                ));
            } else {
                first_use.insert(&cam.id, i);
            }
        }
        if let Some(wifi) = &self.wifi {
            wifi.validate(&mut errs);
        }
        if let Some(problem) = self.auth_token.as_deref().and_then(auth_token_weakness) {
            errs.push(FieldError::new("auth_token", problem));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

/// Bits a configured `auth_token` must be worth: anyone who joins the
/// hotspot can guess at it.
pub const AUTH_TOKEN_BITS_MIN: f64 = 128.0;
/// Fewer different characters than this is a pattern, not a secret.
const AUTH_TOKEN_DISTINCT_MIN: usize = 8;

/// Characters that join words (`your-secure-token`): they add nothing to
/// the alphabet of a token.
const WORD_SEPARATORS: &[char] = &['-', '_', '.'];

/// An upper estimate of the bits a token is worth: length × log2 of its
/// alphabet. A token of hex digits only counts 4 bits a character (so 32
/// hex digits make 128 bits); any other counts log2 of the sum of the
/// character classes it uses: a-z 26, A-Z 26, 0-9 10, any other character
/// but `-`, `_` and `.` 33.
pub fn auth_token_bits(token: &str) -> f64 {
    let chars = token.chars().count() as f64;
    if token.chars().all(|c| c.is_ascii_hexdigit()) {
        return chars * 4.0;
    }
    let has = |f: fn(&char) -> bool| token.chars().any(|c| f(&c));
    let alphabet = [
        (has(char::is_ascii_lowercase), 26),
        (has(char::is_ascii_uppercase), 26),
        (has(char::is_ascii_digit), 10),
        (
            has(|c| !c.is_ascii_alphanumeric() && !WORD_SEPARATORS.contains(c)),
            33,
        ),
    ]
    .iter()
    .filter(|(present, _)| *present)
    .map(|(_, n)| *n)
    .sum::<u32>();
    chars * f64::from(alphabet).log2()
}

/// Why a configured token is refused, if it is: under
/// [`AUTH_TOKEN_BITS_MIN`] bits by [`auth_token_bits`], fewer than 8
/// different characters, or whitespace or control characters (it travels
/// in an HTTP header).
fn auth_token_weakness(token: &str) -> Option<String> {
    let advice = "use 32 or more random hex digits (openssl rand -hex 16), or delete auth_token to let dashvault make one";
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!(
            "contains spaces or control characters, which cannot be sent in a header; {advice}"
        ));
    }
    let mut distinct: Vec<char> = token.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let bits = auth_token_bits(token);
    if bits < AUTH_TOKEN_BITS_MIN || distinct.len() < AUTH_TOKEN_DISTINCT_MIN {
        return Some(format!(
            "is too easy to guess ({} characters, {} different, at most {bits:.0} bits; at least {AUTH_TOKEN_BITS_MIN:.0} bits are needed); {advice}",
            token.chars().count(),
            distinct.len()
        ));
    }
    None
}

impl CameraConfig {
    /// Validates one camera; `prefix` is how the camera is named in messages
    /// (`cameras[1]`).
    fn validate_into(&self, prefix: &str, errs: &mut Vec<FieldError>) {
        let field = |name: &str| format!("{prefix}.{name}");
        if let Some(message) = id_problem(&self.id) {
            errs.push(FieldError::new(field("id"), message));
        }
        if self.source == SourceKind::V4l2 && self.device.is_empty() {
            errs.push(FieldError::new(
                field("device"),
                "is required when source is \"v4l2\"; use a device such as \"/dev/video0\"",
            ));
        }
        check_rule(errs, &field("rotation"), self.rotation.into(), ROTATION);
        check_rule(errs, &field("res_width"), self.res_width.into(), RES_WIDTH);
        check_rule(
            errs,
            &field("res_height"),
            self.res_height.into(),
            RES_HEIGHT,
        );
        check_rule(errs, &field("fps"), self.fps.into(), FPS);
        check_rule(
            errs,
            &field("jpeg_quality"),
            self.jpeg_quality.into(),
            JPEG_QUALITY,
        );
        if let Some(q) = self.mjpeg_quality {
            check_rule(errs, &field("mjpeg_quality"), q.into(), MJPEG_QUALITY);
        }
        check_rule(
            errs,
            &field("encoder_threads"),
            self.encoder_threads.into(),
            ENCODER_THREADS,
        );
        check_rule(
            errs,
            &field("max_exposure_us"),
            self.max_exposure_us.into(),
            MAX_EXPOSURE_US,
        );
    }
}

/// Maps Dash of Pi's `mjpeg_quality` (ffmpeg's `-q:v` scale, 2-31, lower is
/// better) to a JPEG quality (1-100, higher is better).
///
/// The mapping is linear and rounds to the nearest integer: 2 → 95, 5 → 87,
/// 8 → 79, 31 → 20; it never increases as `q` grows. Values outside 2-31 are
/// clamped first. It is used only when a camera gives `mjpeg_quality` and no
/// `jpeg_quality`; when both are given, `jpeg_quality` wins.
pub fn jpeg_quality_from_mjpeg(q: u8) -> u8 {
    let steps = u32::from(q.clamp(2, 31)) - 2; // 0..=29
    let drop = (75 * steps + 14) / 29; // round(75 * steps / 29)
    (95 - drop) as u8
}

// ---------------------------------------------------------------------------
// Allowed values, shared by parsing (values that do not even fit the field's
// type) and by `Config::validate`, so both say the same thing.

#[derive(Clone, Copy, Debug)]
enum Rule {
    Range(i128, i128),
    EvenRange(i128, i128),
    OneOf(&'static [i128]),
}

const PORT: Rule = Rule::Range(1, 65535);
const SEGMENT_LENGTH_S: Rule = Rule::Range(10, 3600);
const SYNC_INTERVAL_MS: Rule = Rule::Range(100, 60_000);
const MIN_FREE_MB: Rule = Rule::Range(0, 1_048_576);
const ROTATION: Rule = Rule::OneOf(&[0, 90, 180, 270]);
const RES_WIDTH: Rule = Rule::EvenRange(16, 7680);
const RES_HEIGHT: Rule = Rule::EvenRange(16, 4320);
const FPS: Rule = Rule::Range(1, 120);
const JPEG_QUALITY: Rule = Rule::Range(1, 100);
const MJPEG_QUALITY: Rule = Rule::Range(2, 31);
const ENCODER_THREADS: Rule = Rule::Range(1, 8);
const BITRATE_KBPS: Rule = Rule::Range(0, u32::MAX as i128);
const MAX_EXPOSURE_US: Rule = Rule::Range(0, 1_000_000);
const CAMERA_ID_MAX_CHARS: usize = 32;

impl Rule {
    fn allows(self, v: i128) -> bool {
        match self {
            Rule::Range(lo, hi) => (lo..=hi).contains(&v),
            Rule::EvenRange(lo, hi) => (lo..=hi).contains(&v) && v % 2 == 0,
            Rule::OneOf(set) => set.contains(&v),
        }
    }

    fn describe(self) -> String {
        match self {
            Rule::Range(lo, hi) => format!("use {lo}-{hi}"),
            Rule::EvenRange(lo, hi) => format!("use an even number from {lo} to {hi}"),
            Rule::OneOf(set) => {
                let names: Vec<String> = set.iter().map(|v| v.to_string()).collect();
                match names.split_last() {
                    Some((last, rest)) if !rest.is_empty() => {
                        format!("use {} or {last}", rest.join(", "))
                    }
                    _ => format!("use {}", names.join("")),
                }
            }
        }
    }
}

fn check_rule(errs: &mut Vec<FieldError>, field: &str, v: i128, rule: Rule) {
    if !rule.allows(v) {
        errs.push(FieldError::new(
            field,
            format!("{v} is not allowed; {}", rule.describe()),
        ));
    }
}

/// Converts a number from the file into the field's type, reporting values
/// that do not fit it with the field's allowed values. Returns `default` after
/// reporting, so the caller can carry on and find more problems.
fn fit<T: TryFrom<i128>>(
    errs: &mut Vec<FieldError>,
    field: &str,
    v: Option<Int>,
    rule: Rule,
    default: T,
) -> T {
    match v {
        None => default,
        Some(Int(n)) => match T::try_from(n) {
            Ok(t) => t,
            Err(_) => {
                check_rule(errs, field, n, rule);
                default
            }
        },
    }
}

/// Why a `hostnames` entry is not a DNS name: 1-253 characters in labels
/// of 1-63 letters, digits and inner `-`, joined by dots.
fn hostname_problem(name: &str) -> Option<String> {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if (1..=253).contains(&name.len()) && name.split('.').all(label_ok) {
        return None;
    }
    Some(format!(
        "{name:?} is not a DNS name; use letters, digits and - in labels joined by dots, such as \"dashcam.home\""
    ))
}

fn id_problem(id: &str) -> Option<String> {
    let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    let allowed = "use 1-32 characters from a-z, 0-9, _ and -";
    if id.is_empty() {
        return Some(format!("must not be empty; {allowed}"));
    }
    if id.chars().count() > CAMERA_ID_MAX_CHARS {
        return Some(format!(
            "{id:?} has {} characters; {allowed}",
            id.chars().count()
        ));
    }
    if id.chars().all(valid_char) {
        return None;
    }
    let lower = id.to_ascii_lowercase();
    if lower.chars().all(valid_char) {
        return Some(format!(
            "{id:?} has uppercase letters; ids are lowercase, use {lower:?}"
        ));
    }
    Some(format!("{id:?} is not allowed; {allowed}"))
}

// ---------------------------------------------------------------------------
// Errors

/// One thing wrong with a config, named by its path in the file
/// (`cameras[1].fps`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The file could not be read (missing, permissions, I/O error).
    Unreadable(io::ErrorKind),
    /// The file is not JSON; the problem's field names the line and column.
    Syntax,
    /// The file is JSON but has unknown keys, wrong types or bad values.
    Invalid,
}

/// Everything wrong with one config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub kind: ConfigErrorKind,
    pub problems: Vec<FieldError>,
}

impl ConfigError {
    /// The file does not exist (as opposed to existing and being wrong).
    pub fn is_not_found(&self) -> bool {
        self.kind == ConfigErrorKind::Unreadable(io::ErrorKind::NotFound)
    }

    fn unreadable(path: &Path, e: &io::Error) -> ConfigError {
        ConfigError {
            path: path.to_owned(),
            kind: ConfigErrorKind::Unreadable(e.kind()),
            problems: vec![FieldError::new("file", format!("cannot read it: {e}"))],
        }
    }

    /// `at` is where in the document the error happened (`cameras[1].fps`,
    /// `.` for the top level).
    fn from_json(path: &Path, at: &str, inner: &serde_json::Error) -> ConfigError {
        let (line, column) = (inner.line(), inner.column());
        let text = inner.to_string();
        let message = text
            .strip_suffix(&format!(" at line {line} column {column}"))
            .unwrap_or(&text)
            .to_string();
        let (kind, problem) = if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            (
                ConfigErrorKind::Syntax,
                FieldError::new(format!("line {line}, column {column}"), message),
            )
        } else {
            let field = match at {
                "." => "(top level)".to_string(),
                p => p.to_string(),
            };
            (
                ConfigErrorKind::Invalid,
                FieldError::new(
                    field,
                    format!("{} (line {line}, column {column})", suggest_field(&message)),
                ),
            )
        };
        ConfigError {
            path: path.to_owned(),
            kind,
            problems: vec![problem],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "config {}: {n} problem{}:",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// serde reports an unknown key as "unknown field `fsp`, expected one of
/// `id`, `fps`, ..."; name the closest known key first when one is near.
fn suggest_field(message: &str) -> String {
    if !message.starts_with("unknown field `") {
        return message.to_string();
    }
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let Some((unknown, known)) = quoted.split_first() else {
        return message.to_string();
    };
    let best = known
        .iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, k)) if d <= 2.max(unknown.len() / 3) => {
            // Put the guess before serde's long list of every known key.
            let head = format!("unknown field `{unknown}`");
            let rest = message.strip_prefix(&head).unwrap_or_default();
            format!("{head} (did you mean `{k}`?){rest}")
        }
        _ => message.to_string(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---------------------------------------------------------------------------
// The file as written: every field optional, unknown fields rejected.

/// An integer from the file, kept wide so that out-of-range values get the
/// field's allowed range in the message instead of "expected u16".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Int(i128);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Int, D::Error> {
        struct IntVisitor;
        impl serde::de::Visitor<'_> for IntVisitor {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Int, E> {
                Ok(Int(v.into()))
            }
        }
        d.deserialize_any(IntVisitor)
    }
}

/// Accepts `T` only as a JSON object. serde's derived structs also accept an
/// array of the field values in order, which nobody means in a config file.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Object<T>, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Object<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        d.deserialize_map(ObjectVisitor(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    port: Option<Int>,
    bind: Option<String>,
    hostnames: Option<Vec<String>>,
    storage_cap_gb: Option<f64>,
    segment_length_s: Option<Int>,
    sync_interval_ms: Option<Int>,
    min_free_mb: Option<Int>,
    data_dir: Option<PathBuf>,
    /// Dash of Pi's name for `data_dir`.
    video_dir: Option<PathBuf>,
    auth_token: Option<String>,
    cameras: Option<Vec<Object<FileCamera>>>,
    discover_cameras: Option<bool>,
    status_led: Option<String>,
    wifi: Option<Object<WifiConfig>>,
    incident: Option<Object<FileIncident>>,
    triggers: Option<Object<FileTriggers>>,
    // Dash of Pi's legacy single-camera keys.
    video_res_width: Option<Int>,
    video_res_height: Option<Int>,
    video_fps: Option<Int>,
    video_bitrate: Option<Int>,
    camera_device: Option<String>,
    mjpeg_quality: Option<Int>,
    enable_timestamp: Option<bool>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCamera {
    id: Option<String>,
    name: Option<String>,
    source: Option<SourceKind>,
    device: Option<String>,
    rotation: Option<Int>,
    res_width: Option<Int>,
    res_height: Option<Int>,
    fps: Option<Int>,
    jpeg_quality: Option<Int>,
    mjpeg_quality: Option<Int>,
    bitrate: Option<Int>,
    embed_timestamp: Option<bool>,
    enabled: Option<bool>,
    encoder_threads: Option<Int>,
    pixel_format: Option<String>,
    max_exposure_us: Option<Int>,
}

/// Legacy key → the camera field it became, so problems in a legacy file are
/// reported under the key the user actually wrote.
const LEGACY_KEYS: [(&str, &str); 7] = [
    ("video_res_width", "res_width"),
    ("video_res_height", "res_height"),
    ("video_fps", "fps"),
    ("video_bitrate", "bitrate"),
    ("camera_device", "device"),
    ("mjpeg_quality", "mjpeg_quality"),
    ("enable_timestamp", "embed_timestamp"),
];

impl FileConfig {
    fn legacy_keys_present(&self) -> Vec<&'static str> {
        let present = [
            self.video_res_width.is_some(),
            self.video_res_height.is_some(),
            self.video_fps.is_some(),
            self.video_bitrate.is_some(),
            self.camera_device.is_some(),
            self.mjpeg_quality.is_some(),
            self.enable_timestamp.is_some(),
        ];
        LEGACY_KEYS
            .iter()
            .zip(present)
            .filter(|(_, p)| *p)
            .map(|((k, _), _)| *k)
            .collect()
    }

    /// Converts to a `Config` and validates it. Returns the config and whether
    /// it was migrated from the legacy single-camera form.
    fn into_config(self) -> Result<(Config, bool), Vec<FieldError>> {
        let mut errs = Vec::new();
        let legacy = self.legacy_keys_present();
        let data_dir = match (self.data_dir, self.video_dir) {
            (Some(d), Some(v)) if d != v => {
                errs.push(FieldError::new(
                    "data_dir",
                    format!(
                        "{} conflicts with video_dir {} (the same setting under its Dash of Pi name); keep one of them",
                        d.display(),
                        v.display()
                    ),
                ));
                d
            }
            (Some(d), _) => d,
            (None, Some(v)) => v,
            (None, None) => PathBuf::from(DEFAULT_DATA_DIR),
        };
        let mut migrated = false;
        let cameras = match self.cameras {
            Some(cams) => {
                if !legacy.is_empty() {
                    let keys: Vec<String> = legacy.iter().map(|k| format!("`{k}`")).collect();
                    errs.push(FieldError::new(
                        "cameras",
                        format!(
                            "cannot be combined with the legacy single-camera key{} {}; move {} into a camera entry or remove `cameras`",
                            if keys.len() == 1 { "" } else { "s" },
                            keys.join(", "),
                            if keys.len() == 1 { "it" } else { "them" },
                        ),
                    ));
                }
                cams.into_iter()
                    .enumerate()
                    .map(|(i, Object(c))| c.into_camera(i, &format!("cameras[{i}]"), &mut errs))
                    .collect()
            }
            None if !legacy.is_empty() => {
                migrated = true;
                let legacy_cam = FileCamera {
                    id: Some(LEGACY_CAMERA_ID.into()),
                    name: Some(LEGACY_CAMERA_NAME.into()),
                    device: self.camera_device,
                    res_width: self.video_res_width,
                    res_height: self.video_res_height,
                    fps: self.video_fps,
                    bitrate: self.video_bitrate,
                    mjpeg_quality: self.mjpeg_quality,
                    embed_timestamp: self.enable_timestamp,
                    ..FileCamera::default()
                };
                let mut cam_errs = Vec::new();
                let cam = legacy_cam.into_camera(0, "cameras[0]", &mut cam_errs);
                errs.extend(cam_errs.into_iter().map(legacy_field_name));
                vec![cam]
            }
            // Found at run time instead of the test pattern.
            None if self.discover_cameras == Some(true) => Vec::new(),
            None => Config::default().cameras,
        };
        let config = Config {
            port: fit(&mut errs, "port", self.port, PORT, DEFAULT_PORT),
            bind: self.bind.unwrap_or_else(|| DEFAULT_BIND.into()),
            hostnames: self.hostnames.unwrap_or_default(),
            storage_cap_gb: self.storage_cap_gb.unwrap_or(DEFAULT_STORAGE_CAP_GB),
            segment_length_s: fit(
                &mut errs,
                "segment_length_s",
                self.segment_length_s,
                SEGMENT_LENGTH_S,
                DEFAULT_SEGMENT_LENGTH_S,
            ),
            sync_interval_ms: fit(
                &mut errs,
                "sync_interval_ms",
                self.sync_interval_ms,
                SYNC_INTERVAL_MS,
                DEFAULT_SYNC_INTERVAL_MS,
            ),
            min_free_mb: fit(
                &mut errs,
                "min_free_mb",
                self.min_free_mb,
                MIN_FREE_MB,
                DEFAULT_MIN_FREE_MB,
            ),
            data_dir,
            // Dash of Pi writes "" when it has no token yet.
            auth_token: self.auth_token.filter(|t| !t.is_empty()),
            cameras,
            discover_cameras: self.discover_cameras.unwrap_or(false),
            status_led: self.status_led,
            wifi: self.wifi.map(|Object(w)| w),
            incident: self
                .incident
                .map(|Object(f)| f.into_config(&mut errs))
                .unwrap_or_default(),
            triggers: self
                .triggers
                .map(|Object(f)| f.into_config(&mut errs))
                .unwrap_or_default(),
        };
        if let Err(more) = config.validate() {
            if migrated {
                errs.extend(more.into_iter().map(legacy_field_name));
            } else {
                errs.extend(more);
            }
        }
        if errs.is_empty() {
            Ok((config, migrated))
        } else {
            Err(errs)
        }
    }
}

fn legacy_field_name(mut e: FieldError) -> FieldError {
    if let Some(rest) = e.field.strip_prefix("cameras[0].") {
        if let Some((legacy, _)) = LEGACY_KEYS.iter().find(|(_, new)| *new == rest) {
            e.field = (*legacy).to_string();
        }
    }
    e
}

/// Which capture source a camera uses when the file does not say: no device
/// means the synthetic test pattern, a `/dev/...` path is a V4L2 device
/// (`/dev/video0`, or a stable `/dev/v4l/by-id/...` link), anything else is a
/// libcamera camera id.
fn infer_source(device: &str) -> SourceKind {
    if device.is_empty() {
        SourceKind::Synthetic
    } else if device.starts_with("/dev/") {
        SourceKind::V4l2
    } else {
        SourceKind::Libcamera
    }
}

impl FileCamera {
    fn into_camera(self, index: usize, prefix: &str, errs: &mut Vec<FieldError>) -> CameraConfig {
        let field = |name: &str| format!("{prefix}.{name}");
        // Dash of Pi names cameras without an id "camera_<index>".
        let id = self
            .id
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("camera_{index}"));
        let name = self.name.filter(|s| !s.is_empty()).unwrap_or(id.clone());
        let device = self.device.unwrap_or_default();
        let source = self.source.unwrap_or_else(|| infer_source(&device));
        let mjpeg_quality: Option<u8> = self
            .mjpeg_quality
            .map(|q| fit(errs, &field("mjpeg_quality"), Some(q), MJPEG_QUALITY, 2));
        let jpeg_quality = match (self.jpeg_quality, mjpeg_quality) {
            (Some(q), _) => fit(
                errs,
                &field("jpeg_quality"),
                Some(q),
                JPEG_QUALITY,
                DEFAULT_JPEG_QUALITY,
            ),
            (None, Some(m)) => jpeg_quality_from_mjpeg(m),
            (None, None) => DEFAULT_JPEG_QUALITY,
        };
        CameraConfig {
            id,
            name,
            source,
            device,
            rotation: fit(errs, &field("rotation"), self.rotation, ROTATION, 0),
            res_width: fit(
                errs,
                &field("res_width"),
                self.res_width,
                RES_WIDTH,
                DEFAULT_RES_WIDTH,
            ),
            res_height: fit(
                errs,
                &field("res_height"),
                self.res_height,
                RES_HEIGHT,
                DEFAULT_RES_HEIGHT,
            ),
            fps: fit(errs, &field("fps"), self.fps, FPS, DEFAULT_FPS),
            jpeg_quality,
            mjpeg_quality,
            bitrate: self
                .bitrate
                .map(|b| fit(errs, &field("bitrate"), Some(b), BITRATE_KBPS, 0)),
            embed_timestamp: self.embed_timestamp.unwrap_or(true),
            enabled: self.enabled.unwrap_or(true),
            encoder_threads: fit(
                errs,
                &field("encoder_threads"),
                self.encoder_threads,
                ENCODER_THREADS,
                DEFAULT_ENCODER_THREADS,
            ),
            pixel_format: self.pixel_format.filter(|s| !s.is_empty()),
            max_exposure_us: fit(
                errs,
                &field("max_exposure_us"),
                self.max_exposure_us,
                MAX_EXPOSURE_US,
                default_max_exposure_us(),
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// Files

/// A config read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedConfig {
    pub config: Config,
    /// The file was in Dash of Pi's legacy single-camera form and was
    /// converted in memory; see [`rewrite_migrated`] to store the new form.
    pub migrated_legacy: bool,
}

impl LoadedConfig {
    pub fn migrated(&self) -> bool {
        self.migrated_legacy
    }
}

/// Parses a config from JSON text; `path` only names the file in errors.
/// The error lists every problem: after an unknown key or a wrong type,
/// the rest of the file is still read and checked.
pub fn parse(path: &Path, json: &[u8]) -> Result<LoadedConfig, ConfigError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let file = match serde_path_to_error::deserialize(&mut de) {
        Ok(Object::<FileConfig>(file)) => file,
        Err(e) => {
            let first = ConfigError::from_json(path, &e.path().to_string(), e.inner());
            return Err(match first.kind {
                ConfigErrorKind::Invalid => every_problem(first, json, e.path()),
                _ => first,
            });
        }
    };
    de.end()
        .map_err(|e| ConfigError::from_json(path, ".", &e))?;
    let (config, migrated_legacy) = file.into_config().map_err(|problems| ConfigError {
        path: path.to_owned(),
        kind: ConfigErrorKind::Invalid,
        problems,
    })?;
    Ok(LoadedConfig {
        config,
        migrated_legacy,
    })
}

/// At most this many problems are listed from one file.
const PROBLEMS_MAX: usize = 50;

/// `first` (the problem at `at`, found reading the text) and every other:
/// each field that cannot be read is left out in turn and the rest read
/// again, then what remains is validated. Later problems have no line
/// numbers: they are found in the parsed document, not the text.
fn every_problem(
    mut first: ConfigError,
    json: &[u8],
    at: &serde_path_to_error::Path,
) -> ConfigError {
    let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(json) else {
        return first;
    };
    let mut left_out = vec![at.to_string()];
    if !remove_at(&mut doc, at) {
        return first;
    }
    while first.problems.len() < PROBLEMS_MAX {
        match serde_path_to_error::deserialize::<_, Object<FileConfig>>(&doc) {
            Ok(Object(file)) => {
                // A field left out reads as unset; its follow-on problems
                // ("no cameras" after a broken `cameras`) would only mislead.
                let follows =
                    |p: &FieldError| left_out.iter().any(|l| p.field.starts_with(l.as_str()));
                if let Err(problems) = file.into_config() {
                    first
                        .problems
                        .extend(problems.into_iter().filter(|p| !follows(p)));
                }
                break;
            }
            Err(e) => {
                let field = e.path().to_string();
                first.problems.push(FieldError::new(
                    field.clone(),
                    suggest_field(&e.inner().to_string()),
                ));
                left_out.push(field);
                if !remove_at(&mut doc, e.path()) {
                    break;
                }
            }
        }
    }
    first
}

/// Removes the value at `at` from `doc`; false when there is none (the
/// top level).
fn remove_at(doc: &mut serde_json::Value, at: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = at.iter().collect();
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut parent = String::new();
    for s in parents {
        match s {
            Segment::Seq { index } => parent.push_str(&format!("/{index}")),
            Segment::Map { key } => {
                parent.push('/');
                parent.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            _ => return false,
        }
    }
    let Some(node) = doc.pointer_mut(&parent) else {
        return false;
    };
    match (last, node) {
        (Segment::Map { key }, serde_json::Value::Object(map)) => map.remove(key).is_some(),
        (Segment::Seq { index }, serde_json::Value::Array(items)) if *index < items.len() => {
            // Kept in place so later indexes still name the same items.
            items[*index] = serde_json::Value::Object(Default::default());
            true
        }
        _ => false,
    }
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    load_with_bytes(path).map(|(loaded, _)| loaded)
}

/// What `dashvault config check` runs: exactly [`load`], named for intent, so
/// the check and the service can never disagree about a file.
pub fn check(path: &Path) -> Result<LoadedConfig, ConfigError> {
    load(path)
}

fn load_with_bytes(path: &Path) -> Result<(LoadedConfig, Vec<u8>), ConfigError> {
    let bytes = fs::read(path).map_err(|e| ConfigError::unreadable(path, &e))?;
    let loaded = parse(path, &bytes)?;
    Ok((loaded, bytes))
}

/// The JSON [`save`] writes: pretty-printed, ending in a newline. Fails only
/// for a `data_dir` that is not valid UTF-8.
pub fn to_json(config: &Config) -> io::Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(config)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    out.push(b'\n');
    Ok(out)
}

/// Writes `config` to `path` atomically. It does not validate: check
/// [`Config::validate`] first when the config did not come from [`load`].
pub fn save(path: &Path, config: &Config) -> io::Result<()> {
    write_atomic(path, &to_json(config)?)
}

/// Stores a config that [`load`] migrated from the legacy form back to its
/// file in the new form. The original is kept as `<name>.legacy` (only the
/// first time, so a second migration never replaces the true original).
/// Returns the backup's path.
pub fn rewrite_migrated(path: &Path, config: &Config) -> io::Result<PathBuf> {
    let backup = with_suffix(path, ".legacy");
    if !backup.exists() {
        write_atomic(&backup, &fs::read(path)?)?;
    }
    save(path, config)?;
    Ok(backup)
}

/// `<path>.last-good`: the newest file content that loaded.
pub fn last_good_path(path: &Path) -> PathBuf {
    with_suffix(path, ".last-good")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Replaces a file beside the config ([`sidecar::replace_file`]), readable
/// by the owner only: it can hold the dashboard's token.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    sidecar::replace_file(path, Readers::Owner, |out| out.write_all(bytes))
}

/// Where the config the service runs with came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// There was no file; a default one was written.
    Created,
    /// The file loaded.
    File,
    /// The file failed to load; `<path>.last-good` was used instead.
    LastGood,
    /// Neither loaded; built-in defaults with the synthetic camera.
    Defaults,
}

/// The config `dashvault run` starts with, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    pub config: Config,
    pub origin: ConfigOrigin,
    /// Why the file was not used (origin `LastGood` or `Defaults`).
    pub problem: Option<ConfigError>,
    /// The file was in the legacy form and has been rewritten in the new one.
    pub migrated_legacy: bool,
}

/// Loads the config for the recorder, which must start whatever the file
/// says: a dash cam with a typo in its config should still record.
///
/// - No file: write a default one whose cameras are `discover()`, or the
///   synthetic test camera when that finds none (origin `Created`).
/// - The file loads: use it and refresh `<path>.last-good` when its content
///   changed (origin `File`). A legacy file is rewritten in the new form, the
///   original kept as `<path>.legacy`.
/// - The file fails but `<path>.last-good` loads: use that (origin
///   `LastGood`, `problem` says what is wrong with the file).
/// - Both fail: built-in defaults with the synthetic camera (origin
///   `Defaults`). The broken file is left as it is for the user to fix.
///
/// Failures to write (a read-only card) are logged and do not stop the start.
pub fn load_for_run(path: &Path, discover: impl FnOnce() -> Vec<CameraConfig>) -> RunConfig {
    match load_with_bytes(path) {
        Ok((loaded, mut bytes)) => {
            let config = loaded.config;
            if loaded.migrated_legacy {
                match rewrite_migrated(path, &config).and_then(|b| Ok((b, to_json(&config)?))) {
                    Ok((backup, new_bytes)) => {
                        log::info!(
                            "config {}: migrated legacy config to the multi-camera form; original kept as {}",
                            path.display(),
                            backup.display()
                        );
                        bytes = new_bytes;
                    }
                    Err(e) => log::warn!(
                        "config {}: migrated legacy config in memory but could not rewrite the file: {e}",
                        path.display()
                    ),
                }
            }
            if let Err(e) = refresh_last_good(path, &bytes) {
                log::warn!(
                    "config {}: cannot write {}: {e}",
                    path.display(),
                    last_good_path(path).display()
                );
            }
            RunConfig {
                config,
                origin: ConfigOrigin::File,
                problem: None,
                migrated_legacy: loaded.migrated_legacy,
            }
        }
        Err(e) if e.is_not_found() => {
            let found = discover();
            let mut config = Config {
                cameras: if found.is_empty() {
                    Config::default().cameras
                } else {
                    found
                },
                ..Config::default()
            };
            if let Err(problems) = config.validate() {
                // Never write a config that would not load again.
                for p in &problems {
                    log::warn!("config {}: discovered camera rejected: {p}", path.display());
                }
                config.cameras.clear();
            }
            if config.cameras.is_empty() {
                config.cameras = vec![CameraConfig::synthetic("front")];
            }
            let written = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => fs::create_dir_all(dir),
                _ => Ok(()),
            }
            .and_then(|()| save(path, &config));
            match written {
                Ok(()) => log::info!("config {}: created a default config", path.display()),
                Err(e) => log::warn!(
                    "config {}: no config and cannot write a default one: {e}",
                    path.display()
                ),
            }
            RunConfig {
                config,
                origin: ConfigOrigin::Created,
                problem: None,
                migrated_legacy: false,
            }
        }
        Err(problem) => {
            let last_good = last_good_path(path);
            let fallback = if last_good.exists() {
                load(&last_good).map_err(|lg| {
                    log::warn!("{lg}");
                })
            } else {
                Err(())
            };
            match fallback {
                Ok(loaded) => {
                    log::warn!("{problem}\nusing {}", last_good.display());
                    RunConfig {
                        config: loaded.config,
                        origin: ConfigOrigin::LastGood,
                        problem: Some(problem),
                        migrated_legacy: false,
                    }
                }
                Err(()) => {
                    log::warn!("{problem}\nusing built-in defaults");
                    RunConfig {
                        config: Config::default(),
                        origin: ConfigOrigin::Defaults,
                        problem: Some(problem),
                        migrated_legacy: false,
                    }
                }
            }
        }
    }
}

fn refresh_last_good(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let last_good = last_good_path(path);
    match fs::read(&last_good) {
        Ok(old) if old == bytes => Ok(()),
        _ => write_atomic(&last_good, bytes),
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
const ROLL_S: Rule = Rule::Range(0, 600);
const LOCKED_CAP_PERCENT: Rule = Rule::Range(1, 90);
const GPIO_LINE: Rule = Rule::Range(0, 1023);
const DEBOUNCE_MS: Rule = Rule::Range(1, 1000);
const I2C_ADDRESS: Rule = Rule::Range(0x03, 0x77);
const SAMPLE_HZ: Rule = Rule::Range(10, 1000);

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

impl IncidentConfig {
    fn validate_into(&self, errs: &mut Vec<FieldError>) {
        check_rule(errs, "incident.pre_roll_s", self.pre_roll_s.into(), ROLL_S);
        check_rule(
            errs,
            "incident.post_roll_s",
            self.post_roll_s.into(),
            ROLL_S,
        );
        check_rule(
            errs,
            "incident.locked_cap_percent",
            self.locked_cap_percent.into(),
            LOCKED_CAP_PERCENT,
        );
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

impl TriggersConfig {
    fn validate_into(&self, errs: &mut Vec<FieldError>) {
        // A device node, not a sysfs path or a file name.
        let check_device = |errs: &mut Vec<FieldError>, field: &str, path: &Path, hint: &str| {
            if !path.starts_with("/dev/") {
                errs.push(FieldError::new(
                    field,
                    format!("{} is not {hint}", path.display()),
                ));
            }
        };
        if let Some(b) = &self.gpio_button {
            check_device(
                errs,
                "triggers.gpio_button.chip",
                &b.chip,
                "a GPIO character device; use e.g. \"/dev/gpiochip0\" (sysfs GPIO is not supported)",
            );
            check_rule(errs, "triggers.gpio_button.line", b.line.into(), GPIO_LINE);
            check_rule(
                errs,
                "triggers.gpio_button.debounce_ms",
                b.debounce_ms.into(),
                DEBOUNCE_MS,
            );
        }
        if let Some(a) = &self.accelerometer {
            check_device(
                errs,
                "triggers.accelerometer.device",
                &a.device,
                "an I2C bus device; use e.g. \"/dev/i2c-1\"",
            );
            check_rule(
                errs,
                "triggers.accelerometer.address",
                a.address.into(),
                I2C_ADDRESS,
            );
            if !(a.threshold_g.is_finite() && (0.5..=16.0).contains(&a.threshold_g)) {
                errs.push(FieldError::new(
                    "triggers.accelerometer.threshold_g",
                    format!("{} is not allowed; use 0.5-16 (g)", a.threshold_g),
                ));
            }
            check_rule(
                errs,
                "triggers.accelerometer.sample_hz",
                a.sample_hz.into(),
                SAMPLE_HZ,
            );
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIncident {
    pre_roll_s: Option<Int>,
    post_roll_s: Option<Int>,
    locked_cap_percent: Option<Int>,
}

impl FileIncident {
    fn into_config(self, errs: &mut Vec<FieldError>) -> IncidentConfig {
        IncidentConfig {
            pre_roll_s: fit(
                errs,
                "incident.pre_roll_s",
                self.pre_roll_s,
                ROLL_S,
                DEFAULT_PRE_ROLL_S,
            ),
            post_roll_s: fit(
                errs,
                "incident.post_roll_s",
                self.post_roll_s,
                ROLL_S,
                DEFAULT_POST_ROLL_S,
            ),
            locked_cap_percent: fit(
                errs,
                "incident.locked_cap_percent",
                self.locked_cap_percent,
                LOCKED_CAP_PERCENT,
                DEFAULT_LOCKED_CAP_PERCENT,
            ),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTriggers {
    gpio_button: Option<Object<FileGpioButton>>,
    accelerometer: Option<Object<FileAccelerometer>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGpioButton {
    chip: Option<PathBuf>,
    line: Option<Int>,
    active_low: Option<bool>,
    debounce_ms: Option<Int>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAccelerometer {
    device: Option<PathBuf>,
    part: Option<crate::triggers::accel::AccelPart>,
    address: Option<Int>,
    threshold_g: Option<f64>,
    sample_hz: Option<Int>,
}

impl FileTriggers {
    fn into_config(self, errs: &mut Vec<FieldError>) -> TriggersConfig {
        let gpio_button = self.gpio_button.map(|Object(b)| {
            let line = match b.line {
                Some(l) => fit(errs, "triggers.gpio_button.line", Some(l), GPIO_LINE, 0),
                None => {
                    errs.push(FieldError::new(
                        "triggers.gpio_button.line",
                        "missing; give the line the button is wired to, e.g. 17",
                    ));
                    0
                }
            };
            GpioButtonConfig {
                chip: b.chip.unwrap_or_else(|| PathBuf::from("/dev/gpiochip0")),
                line,
                active_low: b.active_low.unwrap_or(true),
                debounce_ms: fit(
                    errs,
                    "triggers.gpio_button.debounce_ms",
                    b.debounce_ms,
                    DEBOUNCE_MS,
                    DEFAULT_DEBOUNCE_MS,
                ),
            }
        });
        let accelerometer = self.accelerometer.map(|Object(a)| {
            let part = a.part.unwrap_or(crate::triggers::accel::AccelPart::Mpu6050);
            AccelerometerConfig {
                device: a.device.unwrap_or_else(|| PathBuf::from("/dev/i2c-1")),
                part,
                address: fit(
                    errs,
                    "triggers.accelerometer.address",
                    a.address,
                    I2C_ADDRESS,
                    part.default_address(),
                ),
                threshold_g: a.threshold_g.unwrap_or(DEFAULT_THRESHOLD_G),
                sample_hz: fit(
                    errs,
                    "triggers.accelerometer.sample_hz",
                    a.sample_hz,
                    SAMPLE_HZ,
                    DEFAULT_SAMPLE_HZ,
                ),
            }
        });
        TriggersConfig {
            gpio_button,
            accelerometer,
        }
    }
}

#[cfg(test)]
mod incident_config_tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, Vec<String>> {
        super::parse(Path::new("dashvault.json"), json.as_bytes())
            .map(|l| l.config)
            .map_err(|e| e.problems.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn defaults_without_the_sections() {
        let c = parse("{}").unwrap();
        assert_eq!(c.incident, IncidentConfig::default());
        assert_eq!((c.incident.pre_roll_s, c.incident.post_roll_s), (30, 30));
        assert_eq!(c.incident.locked_cap_percent, 20);
        assert_eq!(c.triggers, TriggersConfig::default());
    }

    #[test]
    fn triggers_take_defaults_per_part_and_round_trip() {
        let c = parse(
            r#"{"incident": {"pre_roll_s": 10},
                "triggers": {"gpio_button": {"line": 17},
                             "accelerometer": {"part": "adxl345", "threshold_g": 2.5}}}"#,
        )
        .unwrap();
        assert_eq!(c.incident.pre_roll_s, 10);
        let b = c.triggers.gpio_button.clone().unwrap();
        assert_eq!((b.line, b.active_low, b.debounce_ms), (17, true, 30));
        assert_eq!(b.chip, PathBuf::from("/dev/gpiochip0"));
        let a = c.triggers.accelerometer.clone().unwrap();
        assert_eq!((a.address, a.threshold_g, a.sample_hz), (0x53, 2.5, 100));
        let again = super::parse(Path::new("x"), &to_json(&c).unwrap()).unwrap();
        assert_eq!(again.config, c);
    }

    #[test]
    fn bad_values_name_their_field() {
        let e =
            parse(r#"{"incident": {"post_roll_s": 601, "locked_cap_percent": 0}}"#).unwrap_err();
        assert!(
            e.iter()
                .any(|m| m.contains("incident.post_roll_s") && m.contains("0-600")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.contains("incident.locked_cap_percent")),
            "{e:?}"
        );
        let e =
            parse(r#"{"triggers": {"gpio_button": {"chip": "/sys/class/gpio", "line": 2000}}}"#)
                .unwrap_err();
        assert!(
            e.iter().any(|m| m.contains("triggers.gpio_button.chip")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.contains("triggers.gpio_button.line")),
            "{e:?}"
        );
        let e = parse(r#"{"triggers": {"gpio_button": {}}}"#).unwrap_err();
        assert!(
            e.iter()
                .any(|m| m.contains("triggers.gpio_button.line: missing")),
            "{e:?}"
        );
        let e = parse(r#"{"triggers": {"accelerometer": {"threshold_g": 0.1, "part": "lis3dh"}}}"#)
            .unwrap_err();
        assert!(
            e.iter().any(|m| m.contains("triggers.accelerometer.part")),
            "{e:?}"
        );
        let e = parse(r#"{"triggers": {"accelerometer": {"threshold_g": 0.1}}}"#).unwrap_err();
        assert!(
            e.iter()
                .any(|m| m.contains("triggers.accelerometer.threshold_g")),
            "{e:?}"
        );
        let e = parse(r#"{"incident": {"pre_roll": 5}}"#).unwrap_err();
        assert!(e.iter().any(|m| m.contains("pre_roll")), "{e:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The multi-camera example from Dash of Pi's README.
    const DASH_OF_PI_EXAMPLE: &str = r#"{
  "port": 8080,
  "storage_cap_gb": 20,
  "segment_length_s": 60,
  "cameras": [
    {
      "id": "front",
      "name": "Front Camera",
      "device": "/dev/video0",
      "rotation": 0,
      "res_width": 1920,
      "res_height": 1080,
      "bitrate": 2048,
      "fps": 30,
      "mjpeg_quality": 5,
      "embed_timestamp": true,
      "enabled": true
    },
    {
      "id": "rear",
      "name": "Rear Camera",
      "device": "/dev/video1",
      "rotation": 180,
      "res_width": 1280,
      "res_height": 720,
      "bitrate": 1024,
      "fps": 24,
      "mjpeg_quality": 8,
      "embed_timestamp": true,
      "enabled": true
    }
  ]
}"#;

    const LEGACY_EXAMPLE: &str = r#"{
  "port": 8081,
  "video_dir": "/home/pi/.local/state/dash-of-pi/videos",
  "storage_cap_gb": 5,
  "auth_token": "1f0e9a8b7c6d5e4f3a2b1c0d9e8f7a6b",
  "segment_length_s": 120,
  "video_res_width": 1640,
  "video_res_height": 1232,
  "video_fps": 15,
  "video_bitrate": 4096,
  "camera_device": "/dev/video0",
  "mjpeg_quality": 2,
  "enable_timestamp": false
}"#;

    fn p() -> &'static Path {
        Path::new("/etc/dashvault/config.json")
    }

    fn parse_str(json: &str) -> Result<LoadedConfig, ConfigError> {
        parse(p(), json.as_bytes())
    }

    fn problems(json: &str) -> Vec<FieldError> {
        let err = parse_str(json).expect_err("config should be rejected");
        assert_eq!(err.path, p());
        err.problems
    }

    /// The single problem reported for `json`, as "field: message".
    fn only_problem(json: &str) -> String {
        let ps = problems(json);
        assert_eq!(ps.len(), 1, "expected one problem, got {ps:#?}");
        ps[0].to_string()
    }

    #[test]
    fn config_check_lists_every_problem_after_an_unknown_key_or_a_wrong_type() {
        let ps = problems(
            r#"{ "port": "eighty", "storage_cap_gb": -1, "colour": 3,
                 "cameras": [ {"id": "front", "fsp": 10, "rotation": 45},
                              {"id": "rear", "res_width": "big"} ] }"#,
        );
        let fields: Vec<&str> = ps.iter().map(|p| p.field.as_str()).collect();
        for f in [
            "port",
            "colour",
            "cameras[0].fsp",
            "cameras[1].res_width",
            "storage_cap_gb",
            "cameras[0].rotation",
        ] {
            assert!(fields.contains(&f), "{f} missing from {ps:#?}");
        }
        assert_eq!(ps.len(), 6, "{ps:#?}");
        // The first keeps its place in the text.
        assert!(ps[0].message.contains("line 1"), "{}", ps[0]);
        assert!(ps.iter().any(|p| p.message.contains("did you mean `fps`")));
    }

    #[test]
    fn a_field_that_cannot_be_read_brings_no_follow_on_problems() {
        // `cameras` of the wrong type: not also "no cameras".
        let ps = problems(r#"{"cameras": "front"}"#);
        assert_eq!(ps.len(), 1, "{ps:#?}");
        assert_eq!(ps[0].field, "cameras");
    }

    fn one_camera(fields: &str) -> String {
        format!(r#"{{"cameras": [{{"id": "front"{fields}}}]}}"#)
    }

    #[test]
    fn dash_of_pi_readme_example_loads_into_the_right_fields() {
        let loaded = parse_str(DASH_OF_PI_EXAMPLE).unwrap();
        assert!(!loaded.migrated());
        let c = &loaded.config;
        assert_eq!(c.port, 8080);
        assert_eq!(c.storage_cap_gb, 20.0);
        assert_eq!(c.segment_length_s, 60);
        assert_eq!(c.bind, "127.0.0.1");
        assert_eq!(c.sync_interval_ms, DEFAULT_SYNC_INTERVAL_MS);
        assert_eq!(c.min_free_mb, DEFAULT_MIN_FREE_MB);
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert_eq!(c.cameras.len(), 2);

        let front = &c.cameras[0];
        assert_eq!(front.id, "front");
        assert_eq!(front.name, "Front Camera");
        assert_eq!(front.source, SourceKind::V4l2);
        assert_eq!(front.device, "/dev/video0");
        assert_eq!(front.rotation, 0);
        assert_eq!((front.res_width, front.res_height), (1920, 1080));
        assert_eq!(front.bitrate, Some(2048));
        assert_eq!(front.fps, 30);
        assert_eq!(front.mjpeg_quality, Some(5));
        assert_eq!(front.jpeg_quality, 87);
        assert_eq!(front.jpeg_quality, jpeg_quality_from_mjpeg(5));
        assert!(front.embed_timestamp);
        assert!(front.enabled);
        assert_eq!(front.encoder_threads, DEFAULT_ENCODER_THREADS);

        let rear = &c.cameras[1];
        assert_eq!(rear.id, "rear");
        assert_eq!(rear.device, "/dev/video1");
        assert_eq!(rear.rotation, 180);
        assert_eq!((rear.res_width, rear.res_height), (1280, 720));
        assert_eq!(rear.bitrate, Some(1024));
        assert_eq!(rear.fps, 24);
        assert_eq!(rear.jpeg_quality, 79);
    }

    /// Dash of Pi's `config.json.example`: its README example plus
    /// `video_dir`, `auth_token` and `pixel_format`.
    #[test]
    fn dash_of_pi_example_file_with_video_dir_token_and_pixel_format_loads() {
        let json = DASH_OF_PI_EXAMPLE
            .replacen(
                "\"port\": 8080,",
                "\"port\": 8080,\n  \"video_dir\": \"/home/user/.local/state/dash-of-pi\",\n  \"auth_token\": \"Kq3vN8xR2mZ7pL5wT9yB4cF6hJ1sD0gA\",",
                1,
            )
            .replace(
                "\"device\": \"/dev/video0\",",
                "\"device\": \"/dev/video0\",\n      \"pixel_format\": \"auto\",",
            );
        let c = parse_str(&json).unwrap().config;
        assert_eq!(
            c.data_dir,
            PathBuf::from("/home/user/.local/state/dash-of-pi")
        );
        assert_eq!(
            c.auth_token.as_deref(),
            Some("Kq3vN8xR2mZ7pL5wT9yB4cF6hJ1sD0gA")
        );
        assert_eq!(c.cameras[0].pixel_format.as_deref(), Some("auto"));
        assert_eq!(c.cameras[1].pixel_format, None);
    }

    #[test]
    fn empty_object_is_all_defaults() {
        let loaded = parse_str("{}").unwrap();
        assert_eq!(loaded.config, Config::default());
        assert!(!loaded.migrated());
    }

    #[test]
    fn camera_defaults_and_source_inference() {
        let loaded = parse_str(
            r#"{"cameras": [
                {"id": "a"},
                {"id": "b", "device": "/dev/video2"},
                {"id": "c", "device": "/dev/v4l/by-id/usb-cam-video-index0"},
                {"id": "d", "device": "/base/soc/i2c0mux/i2c@1/imx219@10", "pixel_format": "yuyv"},
                {"id": "e", "device": "/dev/video3", "source": "synthetic"},
                {"name": "Unnamed"},
                {"id": ""}
            ]}"#,
        )
        .unwrap();
        let cams = &loaded.config.cameras;
        let a = &cams[0];
        assert_eq!(a.name, "a", "name defaults to the id");
        assert_eq!(a.source, SourceKind::Synthetic);
        assert_eq!(a.rotation, 0);
        assert_eq!((a.res_width, a.res_height, a.fps), (1280, 720, 30));
        assert_eq!(a.jpeg_quality, 75);
        assert_eq!(a.mjpeg_quality, None);
        assert_eq!(a.bitrate, None);
        assert!(a.embed_timestamp && a.enabled);
        assert_eq!(a.encoder_threads, 2);
        assert_eq!(a.pixel_format, None);
        assert_eq!(cams[1].source, SourceKind::V4l2);
        assert_eq!(cams[2].source, SourceKind::V4l2);
        assert_eq!(cams[3].source, SourceKind::Libcamera);
        assert_eq!(cams[3].pixel_format.as_deref(), Some("yuyv"));
        assert_eq!(
            cams[4].source,
            SourceKind::Synthetic,
            "explicit source wins"
        );
        // Dash of Pi numbers cameras without an id by their position.
        assert_eq!(cams[5].id, "camera_5");
        assert_eq!(cams[5].name, "Unnamed");
        assert_eq!(cams[6].id, "camera_6");
        assert_eq!(cams[6].name, "camera_6");
    }

    #[test]
    fn global_settings_and_storage_cap_as_float() {
        let c = parse_str(
            r#"{"port": 9000, "bind": "0.0.0.0", "storage_cap_gb": 2.5,
                "segment_length_s": 300, "sync_interval_ms": 250, "min_free_mb": 0,
                "data_dir": "/var/lib/dashvault",
                "auth_token": "0123456789abcdef0123456789abcdef"}"#,
        )
        .unwrap()
        .config;
        assert_eq!(c.port, 9000);
        assert_eq!(c.bind, "0.0.0.0");
        assert_eq!(c.storage_cap_gb, 2.5);
        assert_eq!(c.segment_length_s, 300);
        assert_eq!(c.sync_interval_ms, 250);
        assert_eq!(c.min_free_mb, 0);
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/dashvault"));
        assert_eq!(
            c.auth_token.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(c.cameras, Config::default().cameras);
    }

    #[test]
    fn a_weak_auth_token_is_a_config_problem_naming_the_field() {
        for weak in [
            "abc123",
            "your-secure-token-here",
            "0123456789abcdef0123456789abcde", // 31 hex digits: 124 bits
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "correct horse battery staple and more words",
        ] {
            let json = format!(r#"{{"auth_token": "{weak}"}}"#);
            let msg = only_problem(&json);
            assert!(msg.starts_with("auth_token: "), "{weak}: {msg}");
        }
        for strong in [
            "0123456789abcdef0123456789abcdef", // 32 hex digits
            "Kq3vN8xR2mZ7pL5wT9yB4c",           // 22 base64url: 131 bits
            "zq8-w3xQk2m9p7r4t6y1b5n0",         // 24 characters of 3 classes
        ] {
            let json = format!(r#"{{"auth_token": "{strong}"}}"#);
            assert!(parse_str(&json).is_ok(), "{strong} was refused");
        }
        assert_eq!(auth_token_bits("0123456789abcdef0123456789abcdef"), 128.0);
    }

    #[test]
    fn empty_auth_token_is_no_token() {
        let c = parse_str(r#"{"auth_token": ""}"#).unwrap().config;
        assert_eq!(c.auth_token, None);
    }

    #[test]
    fn video_dir_is_data_dir_and_conflicting_values_are_rejected() {
        let c = parse_str(r#"{"video_dir": "videos"}"#).unwrap().config;
        assert_eq!(c.data_dir, PathBuf::from("videos"));
        let same = parse_str(r#"{"video_dir": "v", "data_dir": "v"}"#).unwrap();
        assert_eq!(same.config.data_dir, PathBuf::from("v"));
        let msg = only_problem(r#"{"video_dir": "a", "data_dir": "b"}"#);
        assert!(msg.starts_with("data_dir: "), "{msg}");
        assert!(msg.contains("video_dir"), "{msg}");
    }

    #[test]
    fn legacy_single_camera_form_migrates_to_one_default_camera() {
        let loaded = parse_str(LEGACY_EXAMPLE).unwrap();
        assert!(loaded.migrated());
        let c = &loaded.config;
        assert_eq!(c.port, 8081);
        assert_eq!(
            c.data_dir,
            PathBuf::from("/home/pi/.local/state/dash-of-pi/videos")
        );
        assert_eq!(c.storage_cap_gb, 5.0);
        assert_eq!(
            c.auth_token.as_deref(),
            Some("1f0e9a8b7c6d5e4f3a2b1c0d9e8f7a6b")
        );
        assert_eq!(c.segment_length_s, 120);
        assert_eq!(c.cameras.len(), 1);
        let cam = &c.cameras[0];
        assert_eq!(cam.id, "default");
        assert_eq!(cam.name, "Default Camera");
        assert_eq!(cam.device, "/dev/video0");
        assert_eq!(cam.source, SourceKind::V4l2);
        assert_eq!((cam.res_width, cam.res_height), (1640, 1232));
        assert_eq!(cam.fps, 15);
        assert_eq!(cam.bitrate, Some(4096));
        assert_eq!(cam.mjpeg_quality, Some(2));
        assert_eq!(cam.jpeg_quality, 95);
        assert!(!cam.embed_timestamp);
        assert!(cam.enabled);
    }

    #[test]
    fn legacy_problems_name_the_legacy_key() {
        let ps = problems(r#"{"video_fps": 0, "video_res_width": 641, "mjpeg_quality": 40}"#);
        let fields: Vec<&str> = ps.iter().map(|p| p.field.as_str()).collect();
        assert!(fields.contains(&"video_fps"), "{ps:#?}");
        assert!(fields.contains(&"video_res_width"), "{ps:#?}");
        assert!(fields.contains(&"mjpeg_quality"), "{ps:#?}");
        assert_eq!(ps.len(), 3, "{ps:#?}");
    }

    #[test]
    fn legacy_keys_with_cameras_is_an_error_naming_the_keys() {
        let msg = only_problem(
            r#"{"video_fps": 15, "camera_device": "/dev/video0",
                "cameras": [{"id": "front"}]}"#,
        );
        assert!(msg.starts_with("cameras: "), "{msg}");
        assert!(msg.contains("`video_fps`"), "{msg}");
        assert!(msg.contains("`camera_device`"), "{msg}");
        assert!(msg.contains("legacy"), "{msg}");
    }

    #[test]
    fn mjpeg_quality_mapping_is_documented_and_monotonic() {
        assert_eq!(jpeg_quality_from_mjpeg(2), 95);
        assert_eq!(jpeg_quality_from_mjpeg(5), 87);
        assert_eq!(jpeg_quality_from_mjpeg(8), 79);
        assert_eq!(jpeg_quality_from_mjpeg(31), 20);
        assert_eq!(jpeg_quality_from_mjpeg(0), 95, "clamped to 2");
        assert_eq!(jpeg_quality_from_mjpeg(255), 20, "clamped to 31");
        for q in 2..31 {
            assert!(jpeg_quality_from_mjpeg(q) > jpeg_quality_from_mjpeg(q + 1));
        }
    }

    #[test]
    fn jpeg_quality_wins_over_mjpeg_quality() {
        let c = parse_str(&one_camera(r#", "jpeg_quality": 60, "mjpeg_quality": 2"#)).unwrap();
        let cam = &c.config.cameras[0];
        assert_eq!(cam.jpeg_quality, 60);
        assert_eq!(cam.mjpeg_quality, Some(2));
    }

    #[test]
    fn bad_rotation() {
        let msg = only_problem(&one_camera(r#", "rotation": 45"#));
        assert_eq!(
            msg,
            "cameras[0].rotation: 45 is not allowed; use 0, 90, 180 or 270"
        );
        let msg = only_problem(&one_camera(r#", "rotation": -90"#));
        assert_eq!(
            msg,
            "cameras[0].rotation: -90 is not allowed; use 0, 90, 180 or 270"
        );
    }

    #[test]
    fn fps_zero() {
        let msg = only_problem(&one_camera(r#", "fps": 0"#));
        assert_eq!(msg, "cameras[0].fps: 0 is not allowed; use 1-120");
    }

    #[test]
    fn jpeg_quality_zero_and_101() {
        let msg = only_problem(&one_camera(r#", "jpeg_quality": 0"#));
        assert_eq!(msg, "cameras[0].jpeg_quality: 0 is not allowed; use 1-100");
        let msg = only_problem(&one_camera(r#", "jpeg_quality": 101"#));
        assert_eq!(
            msg,
            "cameras[0].jpeg_quality: 101 is not allowed; use 1-100"
        );
        // Far beyond u8 still gets the range, not a type error.
        let msg = only_problem(&one_camera(r#", "jpeg_quality": 100000"#));
        assert_eq!(
            msg,
            "cameras[0].jpeg_quality: 100000 is not allowed; use 1-100"
        );
    }

    #[test]
    fn mjpeg_quality_out_of_range() {
        let msg = only_problem(&one_camera(r#", "mjpeg_quality": 1"#));
        assert_eq!(msg, "cameras[0].mjpeg_quality: 1 is not allowed; use 2-31");
        let msg = only_problem(&one_camera(r#", "mjpeg_quality": 32"#));
        assert_eq!(msg, "cameras[0].mjpeg_quality: 32 is not allowed; use 2-31");
    }

    #[test]
    fn max_exposure_default_range_and_off() {
        let cam = &parse_str(&one_camera("")).unwrap().config.cameras[0];
        assert_eq!(cam.max_exposure_us, 10_000);
        let cam = &parse_str(&one_camera(r#", "max_exposure_us": 0"#))
            .unwrap()
            .config
            .cameras[0];
        assert_eq!(cam.max_exposure_us, 0);
        let msg = only_problem(&one_camera(r#", "max_exposure_us": 2000000"#));
        assert_eq!(
            msg,
            "cameras[0].max_exposure_us: 2000000 is not allowed; use 0-1000000"
        );
    }

    #[test]
    fn odd_width() {
        let msg = only_problem(&one_camera(r#", "res_width": 1281"#));
        assert_eq!(
            msg,
            "cameras[0].res_width: 1281 is not allowed; use an even number from 16 to 7680"
        );
        let msg = only_problem(&one_camera(r#", "res_height": 4322"#));
        assert_eq!(
            msg,
            "cameras[0].res_height: 4322 is not allowed; use an even number from 16 to 4320"
        );
    }

    #[test]
    fn encoder_threads_out_of_range() {
        let msg = only_problem(&one_camera(r#", "encoder_threads": 9"#));
        assert_eq!(msg, "cameras[0].encoder_threads: 9 is not allowed; use 1-8");
    }

    #[test]
    fn duplicate_ids() {
        let msg = only_problem(r#"{"cameras": [{"id": "cam"}, {"id": "rear"}, {"id": "cam"}]}"#);
        assert!(msg.starts_with("cameras[2].id: \"cam\""), "{msg}");
        assert!(msg.contains("cameras[0]"), "{msg}");
        assert!(msg.contains("unique"), "{msg}");
    }

    #[test]
    fn bad_id_chars() {
        let msg = only_problem(r#"{"cameras": [{"id": "front cam!"}]}"#);
        assert_eq!(
            msg,
            "cameras[0].id: \"front cam!\" is not allowed; use 1-32 characters from a-z, 0-9, _ and -"
        );
        let long = "a".repeat(33);
        let msg = only_problem(&format!(r#"{{"cameras": [{{"id": "{long}"}}]}}"#));
        assert!(msg.contains("33 characters"), "{msg}");
        assert!(msg.contains("1-32 characters"), "{msg}");
    }

    #[test]
    fn uppercase_id_suggests_lowercase() {
        let msg = only_problem(r#"{"cameras": [{"id": "Front_Cam"}]}"#);
        assert_eq!(
            msg,
            "cameras[0].id: \"Front_Cam\" has uppercase letters; ids are lowercase, use \"front_cam\""
        );
    }

    #[test]
    fn unknown_key_lists_known_keys_and_suggests_the_closest() {
        let msg = only_problem(&one_camera(r#", "fsp": 30"#));
        assert!(msg.starts_with("cameras[0]"), "{msg}");
        assert!(msg.contains("unknown field `fsp`"), "{msg}");
        assert!(msg.contains("`res_width`"), "lists the known keys: {msg}");
        assert!(
            msg.starts_with(
                "cameras[0].fsp: unknown field `fsp` (did you mean `fps`?), expected one of `id`"
            ),
            "{msg}"
        );

        let msg = only_problem(r#"{"storage_cap": 3}"#);
        assert!(msg.contains("unknown field `storage_cap`"), "{msg}");
        assert!(msg.contains("did you mean `storage_cap_gb`?"), "{msg}");

        let msg = only_problem(r#"{"zzzzzzzz": 3}"#);
        assert!(!msg.contains("did you mean"), "nothing close: {msg}");
    }

    #[test]
    fn wrong_type_names_the_path() {
        let json = r#"{"cameras": [{"id": "front"}, {"id": "rear", "fps": "x"}]}"#;
        let err = parse_str(json).unwrap_err();
        assert_eq!(err.kind, ConfigErrorKind::Invalid);
        let msg = err.problems[0].to_string();
        assert!(
            msg.starts_with(r#"cameras[1].fps: invalid type: string "x", expected an integer"#),
            "{msg}"
        );
        assert!(msg.contains("line 1"), "{msg}");

        let msg = only_problem(r#"{"storage_cap_gb": "lots"}"#);
        assert!(
            msg.starts_with("storage_cap_gb: invalid type: string"),
            "{msg}"
        );
        let msg = only_problem(&one_camera(r#", "enabled": "yes""#));
        assert!(msg.starts_with("cameras[0].enabled: invalid type"), "{msg}");
        let msg = only_problem(&one_camera(r#", "source": "usb""#));
        assert!(
            msg.starts_with("cameras[0].source: unknown variant `usb`"),
            "{msg}"
        );
        assert!(msg.contains("`v4l2`"), "{msg}");
        let msg = only_problem(r#"[1, 2]"#);
        assert!(
            msg.starts_with("(top level): invalid type: sequence"),
            "{msg}"
        );
    }

    #[test]
    fn malformed_json_gives_line_and_column() {
        let err = parse_str("{\n  \"port\": 8080,\n  \"cameras\": [\n}").unwrap_err();
        assert_eq!(err.kind, ConfigErrorKind::Syntax);
        assert_eq!(err.problems.len(), 1);
        assert_eq!(err.problems[0].field, "line 4, column 1");
        assert!(!err.problems[0].message.contains(" at line "));

        let err = parse_str(r#"{"port": 8080} trailing"#).unwrap_err();
        assert_eq!(err.kind, ConfigErrorKind::Syntax);
        assert!(err.problems[0].field.starts_with("line 1, column"));

        let err = parse_str("").unwrap_err();
        assert_eq!(err.kind, ConfigErrorKind::Syntax);
    }

    #[test]
    fn empty_cameras() {
        let msg = only_problem(r#"{"cameras": []}"#);
        assert!(msg.starts_with("cameras: "), "{msg}");
        assert!(msg.contains("at least one camera"), "{msg}");
    }

    #[test]
    fn no_enabled_camera_is_allowed() {
        let c = parse_str(r#"{"cameras": [{"id": "a", "enabled": false}]}"#).unwrap();
        assert!(!c.config.cameras[0].enabled);
    }

    #[test]
    fn segment_length_out_of_range() {
        assert_eq!(
            only_problem(r#"{"segment_length_s": 5}"#),
            "segment_length_s: 5 is not allowed; use 10-3600"
        );
        assert_eq!(
            only_problem(r#"{"segment_length_s": 3601}"#),
            "segment_length_s: 3601 is not allowed; use 10-3600"
        );
    }

    #[test]
    fn negative_storage_cap() {
        assert_eq!(
            only_problem(r#"{"storage_cap_gb": -5}"#),
            "storage_cap_gb: -5 is not allowed; use a number of gigabytes greater than 0"
        );
        assert!(only_problem(r#"{"storage_cap_gb": 0}"#).starts_with("storage_cap_gb: 0 "));
    }

    #[test]
    fn port_sync_interval_min_free_and_bind() {
        assert_eq!(
            only_problem(r#"{"port": 0}"#),
            "port: 0 is not allowed; use 1-65535"
        );
        assert_eq!(
            only_problem(r#"{"port": 70000}"#),
            "port: 70000 is not allowed; use 1-65535"
        );
        assert_eq!(
            only_problem(r#"{"sync_interval_ms": 50}"#),
            "sync_interval_ms: 50 is not allowed; use 100-60000"
        );
        assert_eq!(
            only_problem(r#"{"min_free_mb": -1}"#),
            "min_free_mb: -1 is not allowed; use 0-1048576"
        );
        let msg = only_problem(r#"{"bind": "localhost"}"#);
        assert!(
            msg.starts_with("bind: \"localhost\" is not an IP address"),
            "{msg}"
        );
        assert!(parse_str(r#"{"bind": "::"}"#).is_ok());
    }

    #[test]
    fn hostnames_are_dns_names_named_by_index() {
        let loaded = parse_str(r#"{"hostnames": ["dashcam.home", "Pi-2", "a.b-c.d"]}"#).unwrap();
        assert_eq!(loaded.config.hostnames, ["dashcam.home", "Pi-2", "a.b-c.d"]);
        for bad in [
            "",
            "-pi",
            "pi-",
            "a..b",
            "dash cam",
            "dashcam.home.",
            "x/y",
            "ü.example",
        ] {
            let msg = only_problem(&format!(r#"{{"hostnames": ["ok", {bad:?}]}}"#));
            assert!(
                msg.starts_with(&format!("hostnames[1]: {bad:?} is not a DNS name")),
                "{msg}"
            );
        }
        let long = format!(r#"{{"hostnames": ["{}"]}}"#, "a".repeat(64));
        assert!(only_problem(&long).starts_with("hostnames[0]: "));
    }

    #[test]
    fn v4l2_source_needs_a_device() {
        let msg = only_problem(&one_camera(r#", "source": "v4l2""#));
        assert!(msg.starts_with("cameras[0].device: is required"), "{msg}");
    }

    #[test]
    fn several_errors_are_all_reported() {
        let json = r#"{
            "port": 0,
            "segment_length_s": 1,
            "storage_cap_gb": -1,
            "bind": "nowhere",
            "cameras": [
                {"id": "Front", "rotation": 45, "fps": 0},
                {"id": "rear", "res_width": 1281, "jpeg_quality": 101},
                {"id": "rear", "mjpeg_quality": 1, "encoder_threads": 0}
            ]
        }"#;
        let err = parse_str(json).unwrap_err();
        assert_eq!(err.kind, ConfigErrorKind::Invalid);
        let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
        for expected in [
            "port",
            "segment_length_s",
            "storage_cap_gb",
            "bind",
            "cameras[0].id",
            "cameras[0].rotation",
            "cameras[0].fps",
            "cameras[1].res_width",
            "cameras[1].jpeg_quality",
            "cameras[2].id",
            "cameras[2].mjpeg_quality",
            "cameras[2].encoder_threads",
        ] {
            assert!(fields.contains(&expected), "{expected} missing: {fields:?}");
        }
        assert_eq!(fields.len(), 12, "{fields:?}");

        let shown = err.to_string();
        assert!(
            shown.starts_with("config /etc/dashvault/config.json: 12 problems:\n  - "),
            "{shown}"
        );
        assert!(
            shown.contains("\n  - cameras[0].rotation: 45 is not allowed; use 0, 90, 180 or 270"),
            "{shown}"
        );
        assert_eq!(shown.lines().count(), 13);
    }

    #[test]
    fn single_problem_display() {
        let err = parse_str(r#"{"port": 0}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config /etc/dashvault/config.json: 1 problem:\n  - port: 0 is not allowed; use 1-65535"
        );
    }

    #[test]
    fn missing_file_is_unreadable_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(&dir.path().join("nope.json")).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.problems[0].field, "file");
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let mut rear = CameraConfig::synthetic("rear");
        rear.source = SourceKind::V4l2;
        rear.device = "/dev/video1".into();
        rear.rotation = 180;
        rear.mjpeg_quality = Some(8);
        rear.jpeg_quality = 70;
        rear.bitrate = Some(1024);
        rear.pixel_format = Some("mjpeg".into());
        rear.enabled = false;
        let config = Config {
            port: 9999,
            bind: "0.0.0.0".into(),
            storage_cap_gb: 1.5,
            data_dir: PathBuf::from("/srv/cam"),
            auth_token: Some("5f4dcc3b5aa765d61d8327deb882cf99".into()),
            cameras: vec![CameraConfig::synthetic("front"), rear],
            ..Config::default()
        };
        save(&path, &config).unwrap();
        assert!(!with_suffix(&path, ".tmp").exists());
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.config, config);
        assert!(!loaded.migrated());
        assert_eq!(check(&path).unwrap().config, config);
        // The file is pretty JSON ending in a newline.
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\n  \"port\": 9999,"), "{text}");
        assert!(text.ends_with("}\n"));
        // Saving again replaces the file.
        save(&path, &Config::default()).unwrap();
        assert_eq!(load(&path).unwrap().config, Config::default());
    }

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

    fn discovered() -> Vec<CameraConfig> {
        let mut cam = CameraConfig::synthetic("usb0");
        cam.name = "USB camera".into();
        cam.source = SourceKind::V4l2;
        cam.device = "/dev/video0".into();
        vec![cam]
    }

    #[test]
    fn load_for_run_creates_a_config_with_discovered_cameras() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc").join("config.json");
        let run = load_for_run(&path, discovered);
        assert_eq!(run.origin, ConfigOrigin::Created);
        assert!(run.problem.is_none());
        assert_eq!(run.config.cameras, discovered());
        assert_eq!(load(&path).unwrap().config, run.config);
    }

    #[test]
    fn load_for_run_creates_a_synthetic_camera_when_none_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let run = load_for_run(&path, Vec::new);
        assert_eq!(run.origin, ConfigOrigin::Created);
        assert_eq!(run.config.cameras, vec![CameraConfig::synthetic("front")]);
        assert_eq!(load(&path).unwrap().config, run.config);
    }

    #[test]
    fn load_for_run_never_writes_invalid_discovered_cameras() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let run = load_for_run(&path, || vec![CameraConfig::synthetic("Bad Id")]);
        assert_eq!(run.origin, ConfigOrigin::Created);
        assert_eq!(run.config.cameras, vec![CameraConfig::synthetic("front")]);
        assert_eq!(load(&path).unwrap().config, run.config);
    }

    #[test]
    fn load_for_run_uses_a_good_file_and_writes_last_good() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(&path, DASH_OF_PI_EXAMPLE).unwrap();
        let run = load_for_run(&path, || panic!("no discovery for an existing file"));
        assert_eq!(run.origin, ConfigOrigin::File);
        assert!(run.problem.is_none());
        assert!(!run.migrated_legacy);
        assert_eq!(run.config.cameras.len(), 2);
        let last_good = last_good_path(&path);
        assert_eq!(last_good, dir.path().join("config.json.last-good"));
        assert_eq!(fs::read_to_string(&last_good).unwrap(), DASH_OF_PI_EXAMPLE);
        // An edit that loads replaces the last-good copy.
        let edited = DASH_OF_PI_EXAMPLE.replace("\"port\": 8080", "\"port\": 8090");
        fs::write(&path, &edited).unwrap();
        let run = load_for_run(&path, Vec::new);
        assert_eq!(run.config.port, 8090);
        assert_eq!(fs::read_to_string(&last_good).unwrap(), edited);
    }

    #[test]
    fn load_for_run_falls_back_to_last_good_and_leaves_the_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(&path, DASH_OF_PI_EXAMPLE).unwrap();
        let good = load_for_run(&path, Vec::new).config;

        let broken = "{\"port\": 8080,, }";
        fs::write(&path, broken).unwrap();
        let run = load_for_run(&path, || panic!("no discovery for an existing file"));
        assert_eq!(run.origin, ConfigOrigin::LastGood);
        assert_eq!(run.config, good);
        let problem = run.problem.expect("the broken file is reported");
        assert_eq!(problem.path, path);
        assert_eq!(problem.kind, ConfigErrorKind::Syntax);
        assert_eq!(fs::read_to_string(&path).unwrap(), broken);
        assert_eq!(
            fs::read_to_string(last_good_path(&path)).unwrap(),
            DASH_OF_PI_EXAMPLE
        );
    }

    #[test]
    fn load_for_run_uses_defaults_when_nothing_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let broken = r#"{"cameras": [{"id": "front", "fps": 0}]}"#;
        fs::write(&path, broken).unwrap();
        let run = load_for_run(&path, || panic!("no discovery for an existing file"));
        assert_eq!(run.origin, ConfigOrigin::Defaults);
        assert_eq!(run.config, Config::default());
        assert_eq!(run.config.cameras[0].source, SourceKind::Synthetic);
        let problem = run.problem.expect("the broken file is reported");
        assert_eq!(problem.problems[0].field, "cameras[0].fps");
        assert_eq!(fs::read_to_string(&path).unwrap(), broken);
        assert!(!last_good_path(&path).exists());

        // A broken last-good copy also ends in the defaults.
        fs::write(last_good_path(&path), "not json").unwrap();
        let run = load_for_run(&path, Vec::new);
        assert_eq!(run.origin, ConfigOrigin::Defaults);
        assert!(run.problem.is_some());
        assert_eq!(fs::read_to_string(&path).unwrap(), broken);
    }

    #[test]
    fn load_for_run_rewrites_a_legacy_file_and_keeps_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(&path, LEGACY_EXAMPLE).unwrap();
        let run = load_for_run(&path, Vec::new);
        assert_eq!(run.origin, ConfigOrigin::File);
        assert!(run.migrated_legacy);
        assert_eq!(run.config.cameras[0].id, "default");
        let backup = dir.path().join("config.json.legacy");
        assert_eq!(fs::read_to_string(&backup).unwrap(), LEGACY_EXAMPLE);
        let rewritten = load(&path).unwrap();
        assert!(!rewritten.migrated(), "the file is now in the new form");
        assert_eq!(rewritten.config, run.config);
        assert_eq!(
            fs::read(last_good_path(&path)).unwrap(),
            to_json(&run.config).unwrap()
        );
        // Loading again changes nothing and keeps the true original backup.
        let again = load_for_run(&path, Vec::new);
        assert!(!again.migrated_legacy);
        assert_eq!(again.config, run.config);
        assert_eq!(fs::read_to_string(&backup).unwrap(), LEGACY_EXAMPLE);
    }

    #[test]
    fn default_config_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn wifi_settings_load_and_survive_a_save() {
        let loaded = parse_str(
            r#"{"wifi": {"ssid": "dashvault-car", "password": "correct horse", "country": "DE", "channel": 6}}"#,
        )
        .unwrap();
        let wifi = loaded.config.wifi.clone().unwrap();
        assert_eq!(wifi.ssid.as_deref(), Some("dashvault-car"));
        assert_eq!(wifi.password.as_deref(), Some("correct horse"));
        assert_eq!(wifi.channel, Some(6));
        let again = parse(p(), &to_json(&loaded.config).unwrap()).unwrap();
        assert_eq!(again.config, loaded.config);
        assert_eq!(parse_str("{}").unwrap().config.wifi, None);
    }

    #[test]
    fn wifi_settings_that_hostapd_cannot_take_are_named() {
        let ps = problems(
            r#"{"wifi": {"ssid": "car\nchannel=1", "password": "short", "country": "de", "channel": 14}}"#,
        );
        let fields: Vec<&str> = ps.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            ["wifi.ssid", "wifi.password", "wifi.country", "wifi.channel"]
        );
        assert!(ps[1].message.contains("8-63"), "{}", ps[1]);
        let msg = only_problem(r#"{"wifi": {"pasword": "12345678"}}"#);
        assert!(msg.contains("unknown field `pasword`"), "{msg}");
    }
}
