//! The values each config field allows, and [`Config::validate`], which
//! checks them all and reports every broken rule as a [`FieldError`] named
//! by the field's path in the file (`cameras[1].fps`).
//!
//! Each struct of the model has one table, `RULES`, with a line per field
//! that has a rule, in the order problems are reported. Parsing looks up the
//! same table for numbers that do not even fit the field's type, so a value
//! out of range gets the same message either way.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use super::{
    AccelerometerConfig, CameraConfig, Config, GpioButtonConfig, GpsConfig, IncidentConfig,
    SourceKind, TriggersConfig, WifiConfig,
};
use Check::{Field, Integer, OptionalInteger, Within};

/// One thing wrong with a config, named by its path in the file
/// (`cameras[1].fps`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub(super) fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
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

/// The values an integer field allows.
#[derive(Clone, Copy, Debug)]
pub(super) enum Rule {
    Range(i128, i128),
    EvenRange(i128, i128),
    OneOf(&'static [i128]),
}

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

    fn refusal(self, v: i128) -> String {
        format!("{v} is not allowed; {}", self.describe())
    }
}

/// One line of a struct's rule table: a field, by its key in the file, and
/// what it allows.
pub(super) enum Check<M> {
    /// An integer field.
    Integer(&'static str, Rule, fn(&M) -> i128),
    /// An integer field that may be unset.
    OptionalInteger(&'static str, Rule, fn(&M) -> Option<i128>),
    /// Any other field: why its value is refused, if it is.
    Field(&'static str, fn(&M) -> Option<String>),
    /// What a field holds (list entries, a nested object), checked with the
    /// field's path in the file.
    Within(&'static str, fn(&M, &str, &mut Vec<FieldError>)),
}

/// Checks `m`, found at `at` in the file (`""` for the top level), against
/// its table.
pub(super) fn check_all<M>(rules: &[Check<M>], m: &M, at: &str, errs: &mut Vec<FieldError>) {
    for check in rules {
        match check {
            Integer(name, rule, value) => {
                let v = value(m);
                if !rule.allows(v) {
                    errs.push(FieldError::new(path(at, name), rule.refusal(v)));
                }
            }
            OptionalInteger(name, rule, value) => {
                if let Some(v) = value(m).filter(|v| !rule.allows(*v)) {
                    errs.push(FieldError::new(path(at, name), rule.refusal(v)));
                }
            }
            Field(name, problem) => {
                if let Some(message) = problem(m) {
                    errs.push(FieldError::new(path(at, name), message));
                }
            }
            Within(name, check) => check(m, &path(at, name), errs),
        }
    }
}

fn path(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_string()
    } else {
        format!("{at}.{name}")
    }
}

/// The problem with a number from the file that does not fit the type of
/// the integer field `name` of `M` (found at `at`): the values its rule
/// allows.
pub(super) fn out_of_type<M>(rules: &[Check<M>], at: &str, name: &str, v: i128) -> FieldError {
    let rule = rules.iter().find_map(|check| match check {
        Integer(n, rule, _) | OptionalInteger(n, rule, _) if *n == name => Some(*rule),
        _ => None,
    });
    let message = match rule {
        Some(rule) => rule.refusal(v),
        // Not reached: every integer in the file has a line in its table
        // (a test gives each one a number too large for any field).
        None => format!("{v} is not allowed"),
    };
    FieldError::new(path(at, name), message)
}

impl Config {
    /// Checks every field against its allowed values and returns every
    /// problem found. [`load`](super::load) runs this; call it again after
    /// changing a config in memory (for example from the dashboard) before
    /// saving it.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();
        check_all(Config::RULES, self, "", &mut errs);
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    pub(super) const RULES: &'static [Check<Config>] = &[
        Integer("port", Rule::Range(1, 65535), |c| c.port.into()),
        Field("bind", |c| {
            c.bind.parse::<IpAddr>().is_err().then(|| {
                format!(
                    "{:?} is not an IP address; use e.g. 127.0.0.1, 0.0.0.0 or ::",
                    c.bind
                )
            })
        }),
        Within("hostnames", |c, at, errs| {
            for (i, name) in c.hostnames.iter().enumerate() {
                if let Some(problem) = hostname_problem(name) {
                    errs.push(FieldError::new(format!("{at}[{i}]"), problem));
                }
            }
        }),
        Field("storage_cap_gb", |c| {
            let gb = c.storage_cap_gb;
            (!(gb.is_finite() && gb > 0.0))
                .then(|| format!("{gb} is not allowed; use a number of gigabytes greater than 0"))
        }),
        Integer("segment_length_s", Rule::Range(10, 3600), |c| {
            c.segment_length_s.into()
        }),
        Integer("sync_interval_ms", Rule::Range(100, 60_000), |c| {
            c.sync_interval_ms.into()
        }),
        Integer("min_free_mb", Rule::Range(0, 1_048_576), |c| {
            c.min_free_mb.into()
        }),
        Integer("share_cache_mb", Rule::Range(0, 1_048_576), |c| {
            c.share_cache_mb.into()
        }),
        Field("data_dir", |c| {
            c.data_dir.as_os_str().is_empty().then(|| {
                "must not be empty; use a folder such as \"data\" or \"/var/lib/dashvault\"".into()
            })
        }),
        Field("cameras", |c| {
            (c.cameras.is_empty() && !c.discover_cameras).then(|| {
                "no cameras; add at least one camera (a camera with no device records a synthetic test pattern), or set discover_cameras".into()
            })
        }),
        Field("status_led", |c| {
            let led = c.status_led.as_deref()?;
            let plain = led.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
            (led.is_empty() || led.len() > 64 || !plain || led.starts_with('.')).then(|| {
                format!("{led:?} is not an LED name; use the name of a folder under /sys/class/leds, such as \"ACT\"")
            })
        }),
        Within("incident", |c, at, errs| {
            check_all(IncidentConfig::RULES, &c.incident, at, errs)
        }),
        Within("triggers", |c, at, errs| {
            check_all(TriggersConfig::RULES, &c.triggers, at, errs)
        }),
        Within("cameras", |c, at, errs| {
            let mut first_use: HashMap<&str, usize> = HashMap::new();
            for (i, cam) in c.cameras.iter().enumerate() {
                let cam_at = format!("{at}[{i}]");
                check_all(CameraConfig::RULES, cam, &cam_at, errs);
                if let Some(first) = first_use.get(cam.id.as_str()) {
                    errs.push(FieldError::new(
                        format!("{cam_at}.id"),
                        format!(
                            "{:?} is already used by cameras[{first}]; camera ids must be unique",
                            cam.id
                        ),
                    ));
                } else {
                    first_use.insert(&cam.id, i);
                }
            }
        }),
        Within("wifi", |c, at, errs| {
            if let Some(wifi) = &c.wifi {
                check_all(WifiConfig::RULES, wifi, at, errs);
            }
        }),
        Within("gps", |c, at, errs| {
            if let Some(gps) = &c.gps {
                check_all(GpsConfig::RULES, gps, at, errs);
            }
        }),
        Field("auth_token", |c| {
            c.auth_token.as_deref().and_then(auth_token_weakness)
        }),
    ];
}

impl GpsConfig {
    pub(super) const RULES: &'static [Check<GpsConfig>] = &[
        Field("device", |g| {
            let plain = g.device == "auto" || g.device.starts_with('/');
            (!plain).then(|| {
                format!(
                    "{:?} is not a device path; use \"auto\" or a path such as \"/dev/ttyACM0\" or \"/dev/serial0\"",
                    g.device
                )
            })
        }),
        OptionalInteger(
            "baud",
            Rule::OneOf(&[4800, 9600, 19200, 38400, 57600, 115200]),
            |g| g.baud.map(Into::into),
        ),
    ];
}

impl CameraConfig {
    pub(super) const RULES: &'static [Check<CameraConfig>] = &[
        Field("id", |c| id_problem(&c.id)),
        Field("device", |c| {
            (c.source == SourceKind::V4l2 && c.device.is_empty()).then(|| {
                "is required when source is \"v4l2\"; use a device such as \"/dev/video0\"".into()
            })
        }),
        Integer("rotation", Rule::OneOf(&[0, 90, 180, 270]), |c| {
            c.rotation.into()
        }),
        Integer("res_width", Rule::EvenRange(16, 7680), |c| {
            c.res_width.into()
        }),
        Integer("res_height", Rule::EvenRange(16, 4320), |c| {
            c.res_height.into()
        }),
        Integer("fps", Rule::Range(1, 120), |c| c.fps.into()),
        Integer("jpeg_quality", Rule::Range(1, 100), |c| {
            c.jpeg_quality.into()
        }),
        OptionalInteger("mjpeg_quality", Rule::Range(2, 31), |c| {
            c.mjpeg_quality.map(Into::into)
        }),
        // Kilobits per second; any u32.
        OptionalInteger("bitrate", Rule::Range(0, u32::MAX as i128), |c| {
            c.bitrate.map(Into::into)
        }),
        Integer("encoder_threads", Rule::Range(1, 8), |c| {
            c.encoder_threads.into()
        }),
        Integer("max_exposure_us", Rule::Range(0, 1_000_000), |c| {
            c.max_exposure_us.into()
        }),
    ];
}

impl WifiConfig {
    // Values end up in hostapd's line-based config, so control characters
    // (a newline would start a new setting) are refused everywhere.
    pub(super) const RULES: &'static [Check<WifiConfig>] = &[
        Field("ssid", |w| {
            let ssid = w.ssid.as_deref()?;
            (ssid.is_empty() || ssid.len() > 32 || ssid.chars().any(char::is_control)).then(|| {
                format!("{ssid:?} is not allowed; use 1-32 bytes without control characters")
            })
        }),
        Field("password", |w| {
            let pw = w.password.as_deref()?;
            let printable = pw.bytes().all(|b| (0x20..0x7f).contains(&b));
            (!(8..=63).contains(&pw.len()) || !printable).then(|| {
                format!(
                    "is {} characters long{}; WPA2 needs 8-63 printable ASCII characters",
                    pw.chars().count(),
                    if printable {
                        ""
                    } else {
                        " with characters outside printable ASCII"
                    }
                )
            })
        }),
        Field("country", |w| {
            let c = w.country.as_deref()?;
            (c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase())).then(|| {
                format!("{c:?} is not allowed; use a two-letter country code such as DE or US")
            })
        }),
        Field("channel", |w| {
            let ch = w.channel?;
            (!(1..=13).contains(&ch))
                .then(|| format!("{ch} is not allowed; use a 2.4 GHz channel from 1 to 13"))
        }),
    ];
}

impl IncidentConfig {
    pub(super) const RULES: &'static [Check<IncidentConfig>] = &[
        Integer("pre_roll_s", Rule::Range(0, 600), |c| c.pre_roll_s.into()),
        Integer("post_roll_s", Rule::Range(0, 600), |c| c.post_roll_s.into()),
        Integer("locked_cap_percent", Rule::Range(1, 90), |c| {
            c.locked_cap_percent.into()
        }),
    ];
}

impl TriggersConfig {
    pub(super) const RULES: &'static [Check<TriggersConfig>] = &[
        Within("gpio_button", |t, at, errs| {
            if let Some(b) = &t.gpio_button {
                check_all(GpioButtonConfig::RULES, b, at, errs);
            }
        }),
        Within("accelerometer", |t, at, errs| {
            if let Some(a) = &t.accelerometer {
                check_all(AccelerometerConfig::RULES, a, at, errs);
            }
        }),
    ];
}

impl GpioButtonConfig {
    pub(super) const RULES: &'static [Check<GpioButtonConfig>] = &[
        Field("chip", |b| {
            device_problem(
                &b.chip,
                "a GPIO character device; use e.g. \"/dev/gpiochip0\" (sysfs GPIO is not supported)",
            )
        }),
        Integer("line", Rule::Range(0, 1023), |b| b.line.into()),
        Integer("debounce_ms", Rule::Range(1, 1000), |b| {
            b.debounce_ms.into()
        }),
    ];
}

impl AccelerometerConfig {
    pub(super) const RULES: &'static [Check<AccelerometerConfig>] = &[
        Field("device", |a| {
            device_problem(&a.device, "an I2C bus device; use e.g. \"/dev/i2c-1\"")
        }),
        Integer("address", Rule::Range(0x03, 0x77), |a| a.address.into()),
        Field("threshold_g", |a| {
            let g = a.threshold_g;
            (!(g.is_finite() && (0.5..=16.0).contains(&g)))
                .then(|| format!("{g} is not allowed; use 0.5-16 (g)"))
        }),
        Integer("sample_hz", Rule::Range(10, 1000), |a| a.sample_hz.into()),
    ];
}

/// A device node, not a sysfs path or a file name.
fn device_problem(path: &Path, hint: &str) -> Option<String> {
    (!path.starts_with("/dev/")).then(|| format!("{} is not {hint}", path.display()))
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

const CAMERA_ID_MAX_CHARS: usize = 32;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testutil::*;

    #[test]
    fn bad_values_name_their_field() {
        let e =
            config_or_messages(r#"{"incident": {"post_roll_s": 601, "locked_cap_percent": 0}}"#)
                .unwrap_err();
        assert!(
            e.iter()
                .any(|m| m.contains("incident.post_roll_s") && m.contains("0-600")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.contains("incident.locked_cap_percent")),
            "{e:?}"
        );
        let e = config_or_messages(
            r#"{"triggers": {"gpio_button": {"chip": "/sys/class/gpio", "line": 2000}}}"#,
        )
        .unwrap_err();
        assert!(
            e.iter().any(|m| m.contains("triggers.gpio_button.chip")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.contains("triggers.gpio_button.line")),
            "{e:?}"
        );
        let e = config_or_messages(r#"{"triggers": {"gpio_button": {}}}"#).unwrap_err();
        assert!(
            e.iter()
                .any(|m| m.contains("triggers.gpio_button.line: missing")),
            "{e:?}"
        );
        let e = config_or_messages(
            r#"{"triggers": {"accelerometer": {"threshold_g": 0.1, "part": "lis3dh"}}}"#,
        )
        .unwrap_err();
        assert!(
            e.iter().any(|m| m.contains("triggers.accelerometer.part")),
            "{e:?}"
        );
        let e = config_or_messages(r#"{"triggers": {"accelerometer": {"threshold_g": 0.1}}}"#)
            .unwrap_err();
        assert!(
            e.iter()
                .any(|m| m.contains("triggers.accelerometer.threshold_g")),
            "{e:?}"
        );
        let e = config_or_messages(r#"{"incident": {"pre_roll": 5}}"#).unwrap_err();
        assert!(e.iter().any(|m| m.contains("pre_roll")), "{e:?}");
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
    fn default_config_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn gps_settings_load_with_defaults_and_bad_ones_are_named() {
        let c = config_or_messages(r#"{"gps": {}}"#).unwrap();
        assert_eq!(c.gps, Some(GpsConfig::default()));
        assert_eq!(c.gps.unwrap().device, "auto");
        let c = config_or_messages(
            r#"{"gps": {"device": "/dev/ttyAMA0", "baud": 9600, "speed_unit": "mph"}}"#,
        )
        .unwrap();
        let g = c.gps.unwrap();
        assert_eq!(
            (g.baud, g.speed_unit),
            (Some(9600), super::super::SpeedUnit::Mph)
        );
        assert!((g.speed_unit.from_mps(10.0) - 22.37).abs() < 0.01);
        assert_eq!(config_or_messages("{}").unwrap().gps, None);
        let msg = only_problem(r#"{"gps": {"baud": 1200}}"#);
        assert!(msg.starts_with("gps.baud: "), "{msg}");
        assert!(msg.contains("9600"), "{msg}");
        let msg = only_problem(r#"{"gps": {"device": "ttyUSB0"}}"#);
        assert!(msg.starts_with("gps.device: "), "{msg}");
        let msg = only_problem(r#"{"gps": {"bauds": 9600}}"#);
        assert!(msg.contains("gps") && msg.contains("bauds"), "{msg}");
        let g = GpsConfig {
            baud: Some(1),
            ..GpsConfig::default()
        };
        assert!(g.validate().unwrap_err().starts_with("gps.baud"));
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
