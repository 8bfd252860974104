//! Every JSON answer of the API, as types: the contract between the
//! handlers, the dashboard (`web/app.js`), the command line and
//! `docs/api.md`. Handlers build these and nothing else; the route table
//! says which one each route answers ([`Answer`]), and `tests/api_docs.rs`
//! parses every example in `docs/api.md` into its type and back, so the
//! docs cannot drift from the code.
//!
//! The module owns no behaviour and imports no other part of `http`: it
//! sits at the bottom, under the server, the handlers and the router.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::SourceKind;
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

/// The answer of a route that answers `T` as JSON.
pub const fn json<T: Serialize + DeserializeOwned>() -> Answer {
    Answer::Json(round_trip::<T>)
}

/// Parses `value` as a `T` and writes it back: what a field the type does
/// not know (dropped) or one it always writes (added) looks like. An error
/// names where the value did not fit, e.g. `cameras[0].dropped`.
pub fn round_trip<T: Serialize + DeserializeOwned>(value: &Value) -> Result<Value, String> {
    let parsed: T = serde_path_to_error::deserialize(value).map_err(|e| e.to_string())?;
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
