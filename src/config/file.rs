//! The config file's format: JSON with every field optional, unknown keys
//! refused, and Dash of Pi's legacy single-camera keys migrated to one
//! camera.
//!
//! The file is read into its own view of the model (`FileConfig` and its
//! parts): every field optional, integers kept wide so that a number too
//! large for its field still gets the field's allowed values in the
//! message. That view is then converted to a [`Config`] and validated. A
//! field that cannot be read at all (an unknown key, a wrong type) is left
//! out and the rest read again, so one [`ConfigError`] lists every
//! problem.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::rules::{out_of_type, Check, FieldError};
use super::{
    AccelerometerConfig, CameraConfig, Config, GpioButtonConfig, GpsConfig, IncidentConfig,
    SourceKind, TriggersConfig, WifiConfig, DEFAULT_DEBOUNCE_MS, DEFAULT_SAMPLE_HZ,
    DEFAULT_THRESHOLD_G,
};

/// Id and name of the camera a legacy single-camera config migrates to.
pub const LEGACY_CAMERA_ID: &str = "default";
pub const LEGACY_CAMERA_NAME: &str = "Default Camera";

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

    pub(super) fn unreadable(path: &Path, e: &io::Error) -> ConfigError {
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
    share_cache_mb: Option<Int>,
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
    gps: Option<Object<GpsConfig>>,
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
        let defaults = Config::default();
        let ints = Ints::new(Config::RULES, "");
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
            (None, None) => defaults.data_dir,
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
            None => defaults.cameras,
        };
        let config = Config {
            port: ints.fit(&mut errs, "port", self.port, defaults.port),
            bind: self.bind.unwrap_or(defaults.bind),
            hostnames: self.hostnames.unwrap_or(defaults.hostnames),
            storage_cap_gb: self.storage_cap_gb.unwrap_or(defaults.storage_cap_gb),
            segment_length_s: ints.fit(
                &mut errs,
                "segment_length_s",
                self.segment_length_s,
                defaults.segment_length_s,
            ),
            sync_interval_ms: ints.fit(
                &mut errs,
                "sync_interval_ms",
                self.sync_interval_ms,
                defaults.sync_interval_ms,
            ),
            min_free_mb: ints.fit(
                &mut errs,
                "min_free_mb",
                self.min_free_mb,
                defaults.min_free_mb,
            ),
            share_cache_mb: ints.fit(
                &mut errs,
                "share_cache_mb",
                self.share_cache_mb,
                defaults.share_cache_mb,
            ),
            data_dir,
            // Dash of Pi writes "" when it has no token yet.
            auth_token: self.auth_token.filter(|t| !t.is_empty()),
            cameras,
            discover_cameras: self.discover_cameras.unwrap_or(defaults.discover_cameras),
            status_led: self.status_led,
            wifi: self.wifi.map(|Object(w)| w),
            incident: self
                .incident
                .map(|Object(f)| f.into_config(&mut errs))
                .unwrap_or(defaults.incident),
            triggers: self
                .triggers
                .map(|Object(f)| f.into_config(&mut errs))
                .unwrap_or(defaults.triggers),
            gps: self.gps.map(|Object(g)| g),
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
        // The synthetic camera has every default.
        let defaults = CameraConfig::synthetic("");
        let ints = Ints::new(CameraConfig::RULES, prefix);
        // Dash of Pi names cameras without an id "camera_<index>".
        let id = self
            .id
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("camera_{index}"));
        let name = self.name.filter(|s| !s.is_empty()).unwrap_or(id.clone());
        let device = self.device.unwrap_or(defaults.device);
        let source = self.source.unwrap_or_else(|| infer_source(&device));
        let mjpeg_quality = ints.fit_optional(errs, "mjpeg_quality", self.mjpeg_quality);
        let jpeg_quality = match (self.jpeg_quality, mjpeg_quality) {
            (Some(q), _) => ints.fit(errs, "jpeg_quality", Some(q), defaults.jpeg_quality),
            (None, Some(m)) => jpeg_quality_from_mjpeg(m),
            (None, None) => defaults.jpeg_quality,
        };
        CameraConfig {
            id,
            name,
            source,
            device,
            rotation: ints.fit(errs, "rotation", self.rotation, defaults.rotation),
            res_width: ints.fit(errs, "res_width", self.res_width, defaults.res_width),
            res_height: ints.fit(errs, "res_height", self.res_height, defaults.res_height),
            fps: ints.fit(errs, "fps", self.fps, defaults.fps),
            jpeg_quality,
            mjpeg_quality,
            bitrate: ints.fit_optional(errs, "bitrate", self.bitrate),
            embed_timestamp: self.embed_timestamp.unwrap_or(defaults.embed_timestamp),
            enabled: self.enabled.unwrap_or(defaults.enabled),
            encoder_threads: ints.fit(
                errs,
                "encoder_threads",
                self.encoder_threads,
                defaults.encoder_threads,
            ),
            pixel_format: self.pixel_format.filter(|s| !s.is_empty()),
            max_exposure_us: ints.fit(
                errs,
                "max_exposure_us",
                self.max_exposure_us,
                defaults.max_exposure_us,
            ),
        }
    }
}

/// Converts the integers of one object in the file to their fields' types.
/// A number that does not fit is reported with the values the field allows,
/// from the rule table of the model struct `M`.
struct Ints<M: 'static> {
    rules: &'static [Check<M>],
    /// The object's path in the file (`cameras[1]`, `""` for the top level).
    at: String,
}

impl<M> Ints<M> {
    fn new(rules: &'static [Check<M>], at: &str) -> Ints<M> {
        Ints {
            rules,
            at: at.to_string(),
        }
    }

    /// The field `name`, or `default` when it is not given or does not fit
    /// (reported), so the caller can carry on and find more problems.
    fn fit<T: TryFrom<i128>>(
        &self,
        errs: &mut Vec<FieldError>,
        name: &str,
        v: Option<Int>,
        default: T,
    ) -> T {
        self.fit_optional(errs, name, v).unwrap_or(default)
    }

    /// An optional field: `None` when it is not given or does not fit
    /// (reported).
    fn fit_optional<T: TryFrom<i128>>(
        &self,
        errs: &mut Vec<FieldError>,
        name: &str,
        v: Option<Int>,
    ) -> Option<T> {
        let Int(n) = v?;
        let fitted = T::try_from(n).ok();
        if fitted.is_none() {
            errs.push(out_of_type(self.rules, &self.at, name, n));
        }
        fitted
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIncident {
    pre_roll_s: Option<Int>,
    post_roll_s: Option<Int>,
    locked_cap_percent: Option<Int>,
}

impl FileIncident {
    fn into_config(self, errs: &mut Vec<FieldError>) -> IncidentConfig {
        let defaults = IncidentConfig::default();
        let ints = Ints::new(IncidentConfig::RULES, "incident");
        IncidentConfig {
            pre_roll_s: ints.fit(errs, "pre_roll_s", self.pre_roll_s, defaults.pre_roll_s),
            post_roll_s: ints.fit(errs, "post_roll_s", self.post_roll_s, defaults.post_roll_s),
            locked_cap_percent: ints.fit(
                errs,
                "locked_cap_percent",
                self.locked_cap_percent,
                defaults.locked_cap_percent,
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
            let ints = Ints::new(GpioButtonConfig::RULES, "triggers.gpio_button");
            let line = match b.line {
                Some(l) => ints.fit(errs, "line", Some(l), 0),
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
                debounce_ms: ints.fit(errs, "debounce_ms", b.debounce_ms, DEFAULT_DEBOUNCE_MS),
            }
        });
        let accelerometer = self.accelerometer.map(|Object(a)| {
            let ints = Ints::new(AccelerometerConfig::RULES, "triggers.accelerometer");
            let part = a.part.unwrap_or(crate::triggers::accel::AccelPart::Mpu6050);
            AccelerometerConfig {
                device: a.device.unwrap_or_else(|| PathBuf::from("/dev/i2c-1")),
                part,
                address: ints.fit(errs, "address", a.address, part.default_address()),
                threshold_g: a.threshold_g.unwrap_or(DEFAULT_THRESHOLD_G),
                sample_hz: ints.fit(errs, "sample_hz", a.sample_hz, DEFAULT_SAMPLE_HZ),
            }
        });
        TriggersConfig {
            gpio_button,
            accelerometer,
        }
    }
}

// ---------------------------------------------------------------------------
// Reading and writing the text

/// A config read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedConfig {
    pub config: Config,
    /// The file was in Dash of Pi's legacy single-camera form and was
    /// converted in memory; see [`rewrite_migrated`](super::rewrite_migrated)
    /// to store the new form.
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

/// The JSON [`save`](super::save) writes: pretty-printed, ending in a
/// newline. Fails only for a `data_dir` that is not valid UTF-8.
pub fn to_json(config: &Config) -> io::Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(config)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testutil::*;
    use crate::config::{DEFAULT_ENCODER_THREADS, DEFAULT_MIN_FREE_MB, DEFAULT_SYNC_INTERVAL_MS};

    #[test]
    fn defaults_without_the_sections() {
        let c = config_or_messages("{}").unwrap();
        assert_eq!(c.incident, IncidentConfig::default());
        assert_eq!((c.incident.pre_roll_s, c.incident.post_roll_s), (30, 30));
        assert_eq!(c.incident.locked_cap_percent, 20);
        assert_eq!(c.triggers, TriggersConfig::default());
    }

    #[test]
    fn triggers_take_defaults_per_part_and_round_trip() {
        let c = config_or_messages(
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
        let again = crate::config::parse(Path::new("x"), &to_json(&c).unwrap()).unwrap();
        assert_eq!(again.config, c);
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

    /// Puts members (`"fps": 1`) where one level of the file expects an
    /// object; a button gets the line it needs.
    type Wrap = fn(&str) -> String;

    /// The keys `parse` accepts in the object `wrap` places, from its
    /// "expected one of" list for an unknown key.
    fn accepted_keys(wrap: Wrap) -> Vec<String> {
        let e = parse_str(&wrap(r#""\u0001": 1"#)).unwrap_err();
        let (_, expected) = e.problems[0].message.split_once("expected").unwrap();
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    /// The conversion finds each integer's rule in its struct's table by
    /// the key's name: a key without a line there would go unchecked.
    #[test]
    fn every_integer_key_too_large_for_its_type_gets_its_allowed_values() {
        let levels: [(&str, Wrap); 5] = [
            ("", |m| format!("{{{m}}}")),
            ("cameras[0].", |m| format!(r#"{{"cameras": [{{{m}}}]}}"#)),
            ("incident.", |m| format!(r#"{{"incident": {{{m}}}}}"#)),
            ("triggers.gpio_button.", |m| {
                let line = if m.starts_with(r#""line""#) {
                    ""
                } else {
                    r#""line": 1, "#
                };
                format!(r#"{{"triggers": {{"gpio_button": {{{line}{m}}}}}}}"#)
            }),
            ("triggers.accelerometer.", |m| {
                format!(r#"{{"triggers": {{"accelerometer": {{{m}}}}}}}"#)
            }),
        ];
        let too_large = u64::MAX;
        let mut integers = 0;
        for (prefix, wrap) in levels {
            for key in accepted_keys(wrap) {
                let not_integer = parse_str(&wrap(&format!(r#""{key}": 0.5"#)));
                let is_integer = not_integer.is_err_and(|e| {
                    e.problems
                        .iter()
                        .any(|p| p.message.contains("expected an integer"))
                });
                if !is_integer {
                    continue;
                }
                integers += 1;
                // Dash of Pi's camera keys at the top level keep their name.
                let field = format!("{prefix}{key}");
                let ps = problems(&wrap(&format!(r#""{key}": {too_large}"#)));
                let p = ps.iter().find(|p| p.field == field);
                let expected = format!("{too_large} is not allowed; use ");
                assert!(
                    p.is_some_and(|p| p.message.starts_with(&expected)),
                    "{field}: {ps:#?}"
                );
            }
        }
        assert!(integers >= 25, "only {integers} integer keys found");
    }
}
