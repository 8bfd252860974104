//! Every JSON answer of the API, as types: the contract between the
//! handlers, the dashboard (`web/app.js`), the command line and
//! `docs/api.md`. Handlers build these and nothing else; the route table
//! says which one each route answers ([`Answer`]), and `tests/api_docs.rs`
//! parses every example in `docs/api.md` into its type and back, so the
//! docs cannot drift from the code.
//!
//! Besides the types, the module holds only [`Answer::check`], which says
//! whether a JSON value is exactly one of them. It imports no other part of
//! `http`: it sits at the bottom, under the server, the handlers and the
//! router.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{SourceKind, SpeedUnit};
use crate::status::{CameraSnapshot, StatusSnapshot};
use crate::timekeeper::{ClockReport, ClockSetResult, ClockSource};

/// What a route answers when it succeeds.
#[derive(Clone, Copy)]
pub enum Answer {
    /// JSON of one type of this module. The function parses a JSON value
    /// as that type and writes it back (see [`json`]).
    Json(fn(&Value) -> Result<Value, String>),
    /// A page, a dashboard file, a picture, a stream or a download.
    NotJson,
}

impl Answer {
    /// Whether `example` is exactly what this answer looks like: it must
    /// parse as the answer's type, and written back it must have the same
    /// keys at every level, so a field the type lacks and a field the
    /// example lacks both show. Each problem names the key, e.g.
    /// `cameras[0].last_sync_age_s`. Values are not compared.
    pub fn check(&self, example: &Value) -> Result<(), Vec<String>> {
        let Answer::Json(round_trip) = self else {
            return Err(vec!["this route does not answer JSON".into()]);
        };
        let written = round_trip(example).map_err(|e| vec![misfit(*round_trip, example, e)])?;
        let mut problems = Vec::new();
        compare_keys("", example, &written, &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// Names the key of an example that did not parse. serde loses the path
/// inside flattened fields, so it is searched for, deepest first: the key
/// whose value the error quotes, and that, given a value of another kind,
/// fails with the same expectation (`..., expected u64`). A missing field
/// is named by serde already.
fn misfit(
    round_trip: fn(&Value) -> Result<Value, String>,
    example: &Value,
    error: String,
) -> String {
    if error.contains("missing field") {
        return error;
    }
    let expected = error.find(", expected").map(|i| &error[i..]);
    let mut paths = Vec::new();
    key_paths(example, &mut Vec::new(), &mut paths);
    paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for path in paths {
        let mut changed = example.clone();
        let Some(value) = value_at(&mut changed, &path) else {
            continue;
        };
        if !error.contains(&quoted(value)) {
            continue;
        }
        *value = match value {
            Value::String(_) => Value::Bool(false),
            _ => Value::String(String::new()),
        };
        let culprit = match round_trip(&changed) {
            Ok(_) => true,
            Err(e) => e != error && expected.is_none_or(|x| e.ends_with(x)),
        };
        if culprit {
            return format!("{}: {error}", show_path(&path));
        }
    }
    error
}

/// How serde quotes a value in an error.
fn quoted(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("`{n}`"),
        Value::String(s) => s.clone(),
        Value::Array(_) => "sequence".into(),
        Value::Object(_) => "map".into(),
    }
}

#[derive(Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn key_paths(v: &Value, at: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                at.push(PathStep::Key(k.clone()));
                out.push(at.clone());
                key_paths(v, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                at.push(PathStep::Index(i));
                key_paths(v, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn value_at<'a>(v: &'a mut Value, path: &[PathStep]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |here, step| match step {
        PathStep::Key(k) => here.get_mut(k.as_str()),
        PathStep::Index(i) => here.get_mut(*i),
    })
}

fn show_path(path: &[PathStep]) -> String {
    let mut shown = String::new();
    for step in path {
        match step {
            PathStep::Key(k) if shown.is_empty() => shown.push_str(k),
            PathStep::Key(k) => {
                shown.push('.');
                shown.push_str(k);
            }
            PathStep::Index(i) => shown.push_str(&format!("[{i}]")),
        }
    }
    shown
}

/// Collects the keys that `example` and `written` do not share, walking
/// objects and arrays in step.
fn compare_keys(at: &str, example: &Value, written: &Value, problems: &mut Vec<String>) {
    let key = |k: &str| {
        if at.is_empty() {
            k.to_string()
        } else {
            format!("{at}.{k}")
        }
    };
    match (example, written) {
        (Value::Object(e), Value::Object(w)) => {
            for k in e.keys().filter(|k| !w.contains_key(*k)) {
                problems.push(format!(
                    "{}: in the example, but the type has no such field (or leaves it out when empty)",
                    key(k)
                ));
            }
            for k in w.keys().filter(|k| !e.contains_key(*k)) {
                problems.push(format!("{}: in the answer, but not in the example", key(k)));
            }
            for (k, v) in e {
                if let Some(w) = w.get(k) {
                    compare_keys(&key(k), v, w, problems);
                }
            }
        }
        (Value::Array(e), Value::Array(w)) => {
            for (i, (e, w)) in e.iter().zip(w).enumerate() {
                compare_keys(&format!("{at}[{i}]"), e, w, problems);
            }
        }
        _ => {}
    }
}

/// The answer of a route that answers `T` as JSON.
pub const fn json<T: Serialize + DeserializeOwned>() -> Answer {
    Answer::Json(round_trip::<T>)
}

/// Parses `value` as a `T` and writes it back: what a field the type does
/// not know (dropped) or one it always writes (added) looks like.
/// [`Answer::check`] names the key where the value did not fit.
pub fn round_trip<T: Serialize + DeserializeOwned>(value: &Value) -> Result<Value, String> {
    let parsed = T::deserialize(value).map_err(|e| e.to_string())?;
    serde_json::to_value(parsed).map_err(|e| e.to_string())
}

/// Every failure, with a message a person can act on, naming the
/// parameter or field at fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    pub error: String,
}

/// `GET /health`: the one route that needs no credentials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthAnswer {
    /// Always `ok`: the service answers.
    pub status: String,
    pub version: String,
    /// At least one camera is connected.
    pub recording: bool,
}

/// `POST /api/login` and `POST /api/logout`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OkAnswer {
    pub ok: bool,
}

/// `GET /api/session`: the CSRF token to send as `X-CSRF-Token` with every
/// POST, and when the session ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionAnswer {
    pub csrf: String,
    /// RFC 3339.
    pub expires: String,
}

/// `POST /api/auth/rotate`: the new token, shown once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RotateAnswer {
    pub token: String,
    /// The first 8 hex digits of the token's SHA-256, as the log shows it.
    pub fingerprint: String,
}

/// `POST /api/links`: a signed link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkAnswer {
    /// Path and query, with `exp` and `sig` last.
    pub url: String,
    /// RFC 3339.
    pub expires: String,
    pub ttl_s: u64,
}

/// `GET /api/status`: the recorder's status (what `dashvault status` reads
/// too), each camera with its settings, and the HTTP server's counters.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusAnswer {
    #[serde(flatten)]
    pub recorder: StatusSnapshot<CameraStatusAnswer>,
    /// Absent until the server runs (handlers driven without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpAnswer>,
    /// Which H.264 encoder share clips use here; absent when share clips
    /// are off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_encoder: Option<String>,
}

/// `GET /api/share`, `POST /api/share`, `POST /api/share/cancel`: the
/// share clip job running now, or the last one.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShareJobAnswer {
    /// `idle` (no job since start), `running`, `done`, `failed` or `cancelled`.
    pub state: String,
    pub camera: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Lines asked for (480, 720, 1080); the clip is never upscaled.
    pub size: Option<u32>,
    pub quality: Option<String>,
    /// While running: `checking` (every frame of the range is read and its
    /// CRCs checked first), then `encoding`.
    pub phase: Option<String>,
    /// Frames checked so far.
    pub frames_checked: u64,
    /// Frames encoded so far.
    pub frames_done: u64,
    /// Frames in the range: counted from the indexes while checking, then
    /// the frames the clip holds (damaged ones left out).
    pub frames_total: u64,
    pub elapsed_s: f64,
    /// From the rate so far; null until a few frames are done.
    pub eta_s: Option<f64>,
    /// The encoder the job uses, once it has opened one.
    pub encoder: Option<String>,
    /// The clip's picture, once the encoder is open: never larger than
    /// the footage, whatever `size` asked for.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The finished clip's size.
    pub bytes: Option<u64>,
    /// Where the finished clip is served.
    pub url: Option<String>,
    /// Frames of the range left out (damaged or missing).
    pub skipped_frames: u64,
    pub error: Option<String>,
}

/// `GET /api/export/estimate`: both clips' sizes before either is made.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportEstimateAnswer {
    pub frames: u64,
    pub duration_s: f64,
    /// The lossless export (`/api/export.mp4`).
    pub lossless_bytes: u64,
    /// The share clip at the size and quality asked for.
    pub share_bytes: u64,
    pub share_width: u32,
    pub share_height: u32,
}

/// `GET /api/track`: the GPS track of a range, thinned for drawing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrackAnswer {
    pub camera: String,
    pub from: String,
    pub to: String,
    /// `kmh` or `mph`: the config's `gps.speed_unit`.
    pub speed_unit: SpeedUnit,
    /// The recorder has a GPS receiver configured.
    pub gps_configured: bool,
    /// Positions with coordinates stored in the range.
    pub positions: u64,
    /// At most `points` of them, spread evenly, oldest first.
    pub points: Vec<TrackPointAnswer>,
    /// Along every position of the range, metres.
    pub distance_m: f64,
    pub max_speed_mps: Option<f64>,
    /// Segments left out because they could not be read.
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrackPointAnswer {
    /// When the recorder received the fix, ms since 1970 UTC.
    pub t_ms: i64,
    pub lat: f64,
    pub lon: f64,
    pub speed_mps: Option<f64>,
    pub alt_m: Option<f64>,
}

/// One camera in `/api/status`: its counters, then what its config asks for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CameraStatusAnswer {
    #[serde(flatten)]
    pub status: CameraSnapshot,
    /// The four settings below are absent for a camera that is recorded
    /// but no longer configured or found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_fps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// The HTTP server's counters in `/api/status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HttpAnswer {
    /// Connections open now.
    pub connections: u64,
    /// Live, playback and long download streams open now.
    pub streams: u64,
    /// Connections and streams refused because all were taken.
    pub rejected_busy: u64,
    /// Idle connections closed to make room for a new one.
    pub evicted: u64,
}

/// One camera in `GET /api/cameras` (a list of these) and
/// `GET /api/cameras/<id>`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CameraAnswer {
    pub id: String,
    pub name: String,
    pub source: SourceKind,
    pub device: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub rotation: u16,
    pub enabled: bool,
    /// As in `/api/status`; `null` while the camera is not being recorded.
    pub status: Option<CameraStatusAnswer>,
}

/// `GET /api/recordings`: what is stored of one camera in a range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordingsAnswer {
    pub camera: String,
    pub from: String,
    pub to: String,
    /// Stretches of footage without gaps longer than 2 s.
    pub spans: Vec<SpanAnswer>,
    pub segments: Vec<SegmentAnswer>,
    /// Files that could not be read, each named with why.
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpanAnswer {
    pub start: String,
    pub end: String,
    pub frames: u64,
    /// The wall times were estimated (before the clock was set).
    pub estimated: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentAnswer {
    pub name: String,
    pub start: String,
    pub end: String,
    pub frames: u64,
    /// The file's size; for the segment being written, what was written.
    pub bytes: u64,
    pub closed: bool,
    pub protected: bool,
}

/// `GET /api/videos`: every stored segment, Dash of Pi's list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VideosAnswer {
    pub videos: Vec<VideoAnswer>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VideoAnswer {
    pub camera: String,
    pub name: String,
    /// Bytes, counted like a segment's `bytes` in `/api/recordings`.
    pub size: u64,
    /// `null` when the name carries no time.
    pub start: Option<String>,
    pub protected: bool,
    /// A signed link to `/api/video/download`, valid an hour.
    pub download: String,
}

/// `GET /api/clock`: the recorder's clock report and the time in ms.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClockAnswer {
    #[serde(flatten)]
    pub clock: ClockReport,
    pub unix_ms: i64,
}

/// `POST /api/clock`: what setting the clock did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClockSetAnswer {
    pub previous: String,
    pub time: String,
    pub step_ms: i64,
    pub source: ClockSource,
    pub relabelled_segments: usize,
}

impl From<&ClockSetResult> for ClockSetAnswer {
    fn from(r: &ClockSetResult) -> ClockSetAnswer {
        ClockSetAnswer {
            previous: r.previous.clone(),
            time: r.time.clone(),
            step_ms: r.step_ms,
            source: r.source,
            relabelled_segments: r.relabelled_segments,
        }
    }
}

/// An incident in `GET /api/incidents`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentAnswer {
    pub id: String,
    /// What asked for it: dashboard, console, api, button, g-sensor.
    pub triggers: Vec<String>,
    pub at: String,
    pub from: String,
    pub to: String,
    pub estimated: bool,
    pub complete: bool,
    /// Why the locks were released, if they were.
    pub released: Option<String>,
    pub cut_short: bool,
    /// Locked segments.
    pub segments: usize,
    /// What the locked segments hold now.
    pub bytes: u64,
    /// One export of the range per camera.
    pub exports: Vec<ExportLinkAnswer>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportLinkAnswer {
    pub camera: String,
    /// `/api/export.mp4?...` of the incident's range.
    pub url: String,
}

/// `POST /api/lock`: the incident, and the rolls it protects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LockAnswer {
    #[serde(flatten)]
    pub incident: IncidentAnswer,
    pub pre_roll_s: u64,
    pub post_roll_s: u64,
}

/// `GET /api/incidents`: newest first, and the locked footage's cap.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentsAnswer {
    pub incidents: Vec<IncidentAnswer>,
    pub locked_bytes: u64,
    pub locked_cap_bytes: u64,
    /// Why incidents were released, when the cap made it so.
    pub message: Option<String>,
}

/// `GET /api/config`: the running config itself, with the token and the
/// Wi-Fi password reading [`REDACTED`] when they are set.
pub type ConfigAnswer = crate::config::Config;

/// What `/api/config` shows for a secret that is set.
pub const REDACTED: &str = "(set)";

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(answer: Answer, example: &str) -> Vec<String> {
        let example: Value = serde_json::from_str(example).unwrap();
        answer.check(&example).err().unwrap_or_default()
    }

    #[test]
    fn a_field_the_type_lacks_and_one_the_example_lacks_are_named() {
        let found = problems(
            json::<HealthAnswer>(),
            r#"{"status": "ok", "version": "0.1.0", "recording": true, "uptime": 5}"#,
        );
        assert_eq!(
            found,
            ["uptime: in the example, but the type has no such field (or leaves it out when empty)"]
        );
        let found = problems(
            json::<HealthAnswer>(),
            r#"{"status": "ok", "version": "0.1.0"}"#,
        );
        assert_eq!(found, ["missing field `recording`"]);
        // A field the type may do without, but always writes.
        let found = problems(
            json::<StatusAnswer>(),
            r#"{"time": "2026-11-20T10:00:00.250Z", "cameras": [], "config_problem": null,
                "storage": {"used_bytes": 1, "free_bytes": 2, "cap_bytes": 3,
                    "min_free_bytes": 4, "retention_deleted_segments": 0,
                    "retention_deleted_bytes": 0, "retention_failures": 0,
                    "cap_unreachable": false, "last_retention_error": null,
                    "locked_bytes": 0, "locked_cap_bytes": 0, "incidents_released": 0,
                    "locked_message": null},
                "clock": null, "triggers": [], "uptime_s": 1.5}"#,
        );
        assert_eq!(found, ["version: in the answer, but not in the example"]);
        assert!(problems(
            json::<HealthAnswer>(),
            r#"{"status": "ok", "version": "0.1.0", "recording": true}"#
        )
        .is_empty());
    }

    #[test]
    fn nested_keys_are_named_with_their_path() {
        let found = problems(
            json::<VideosAnswer>(),
            r#"{"videos": [{"camera": "front", "name": "a.dvr", "size": 1, "start": null,
                 "protected": false, "download": "/x", "bytes": 1}]}"#,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("videos[0].bytes: "), "{found:?}");
    }

    /// docs/api.md showed `dropped` as a number and fields
    /// `dropped_by_reason` and `last_sync_age_s` that no answer ever had.
    #[test]
    fn the_status_example_that_had_drifted_is_refused() {
        let camera = r#"{"id": "front", "source": "synthetic", "format": "jpeg",
            "connected": true, "fps": 10.0, "live_viewers": 0, "captured": 1,
            "encoded": 1, "passthrough": 0, "written": 1, "written_bytes": 1,
            "dropped": DROPPED, "camera_errors": 0, "reconnects": 0,
            "storage_errors": 0, "segments_closed": 0, "syncs": 1, LAST_SYNC,
            "buffer_latency_max_ms": 3, "io_mode": "direct",
            "current_segment": null, "last_error": null, "recovery": []}"#;
        let status = |camera: &str| {
            format!(
                r#"{{"time": "2026-11-20T10:00:00.250Z", "version": "0.1.0",
                "uptime_s": 1.5, "cameras": [{camera}],
                "storage": {{"used_bytes": 1, "free_bytes": 2, "cap_bytes": 3,
                    "min_free_bytes": 4, "retention_deleted_segments": 0,
                    "retention_deleted_bytes": 0, "retention_failures": 0,
                    "cap_unreachable": false, "last_retention_error": null,
                    "locked_bytes": 0, "locked_cap_bytes": 0, "incidents_released": 0,
                    "locked_message": null}},
                "config_problem": null, "clock": null, "triggers": []}}"#
            )
        };
        let right = camera
            .replace(
                "DROPPED",
                r#"{"encoder_busy": 0, "writer_busy": 0, "encode_error": 0, "storage_error": 0}"#,
            )
            .replace("LAST_SYNC", r#""last_sync_age_ms": 400"#);
        assert_eq!(
            problems(json::<StatusAnswer>(), &status(&right)),
            Vec::<String>::new()
        );

        let old = camera
            .replace("DROPPED", r#"0, "dropped_by_reason": {}"#)
            .replace("LAST_SYNC", r#""last_sync_age_s": 0.4"#);
        let found = problems(json::<StatusAnswer>(), &status(&old));
        assert_eq!(
            found,
            ["cameras[0].dropped: invalid type: integer `0`, expected struct DroppedSnapshot"]
        );
        let old = camera
            .replace("DROPPED", r#"{"encoder_busy": 0, "writer_busy": 0, "encode_error": 0, "storage_error": 0}, "dropped_by_reason": {}"#)
            .replace("LAST_SYNC", r#""last_sync_age_s": 0.4"#);
        let found = problems(json::<StatusAnswer>(), &status(&old)).join("\n");
        for key in [
            "cameras[0].dropped_by_reason: in the example",
            "cameras[0].last_sync_age_s: in the example",
            "cameras[0].last_sync_age_ms: in the answer",
        ] {
            assert!(found.contains(key), "{key} not in {found}");
        }
    }
}
