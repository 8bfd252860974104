//! What every handler reads ([`ApiContext`]) and how it fails
//! ([`ApiError`], mapped to a status code in one place). The route table
//! (`routes`) and the handler modules all build on this, not on each other.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use crate::clock::{parse_rfc3339, Clock};
use crate::config::{CameraConfig, Config};
use crate::export::track::TrackCache;
use crate::live::LiveHub;
use crate::status::Status;
use crate::store::query::Span;
use crate::store::{Store, StoreError};

use super::answers::ErrorAnswer;
use super::auth::{Auth, Verdict};
use super::server::{Request, Response, ServerStats};

/// Everything the handlers read.
pub struct ApiContext {
    pub config: Config,
    /// Stored footage: the only way the handlers reach it.
    pub store: Store,
    pub status: Arc<Status>,
    pub live: Arc<LiveHub>,
    pub clock: Arc<dyn Clock>,
    pub auth: Auth,
    /// Set when the service stops; streams watch it.
    pub stop: Arc<AtomicBool>,
    pub server_stats: Mutex<Option<Arc<ServerStats>>>,
    /// Clock control (`/api/clock`); `None` when the service does not own the clock.
    pub timekeeper: Option<Arc<crate::timekeeper::Timekeeper>>,
    /// Incident locks (`/api/lock`, `/api/incidents`).
    pub incidents: Option<Arc<crate::incident::IncidentKeeper>>,
    /// Share clips (`/api/share`); `None` when their folder could not be made.
    pub share: Option<Arc<crate::share::jobs::ShareJobs>>,
    /// Timeline summaries of segments that no longer change, by path, with
    /// the size and the store's relabel generation they were made at.
    pub(super) summaries: Mutex<HashMap<PathBuf, (u64, u64, SegmentSummary)>>,
    /// GPS tracks of segments that no longer change, for `/api/track`.
    pub(super) tracks: TrackCache,
}

/// What the timeline shows of one segment.
#[derive(Clone, Debug)]
pub(super) struct SegmentSummary {
    pub frames: usize,
    pub spans: Vec<Span>,
    pub closed: bool,
}

/// Errors a route can answer with; the status code is chosen here only.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized(String),
    /// The credentials are right, but the request may not do this (a
    /// session's change without proof that the dashboard sent it).
    Forbidden(String),
    NotFound(String),
    MethodNotAllowed(String),
    /// The request names a host this recorder is not (`http::host`).
    MisdirectedRequest(String),
    /// A body that is not `application/json` (`http::body_type`).
    UnsupportedMediaType(String),
    /// The thing asked for exists but is damaged (a segment download).
    Conflict(String),
    RangeNotSatisfiable {
        len: u64,
    },
    SlowDown(u64),
    Unavailable(String),
    /// Busy with something done one at a time (a share clip): try later.
    Busy {
        message: String,
        retry_after_s: u64,
    },
    /// No room on the data partition beside what recording keeps.
    InsufficientStorage(String),
    Internal(String),
}

impl ApiError {
    pub fn response(&self) -> Response {
        let (status, error) = match self {
            ApiError::BadRequest(m) => (400, m.clone()),
            ApiError::Unauthorized(m) => (401, m.clone()),
            ApiError::Forbidden(m) => (403, m.clone()),
            ApiError::NotFound(m) => (404, m.clone()),
            ApiError::MethodNotAllowed(m) => (405, m.clone()),
            ApiError::Conflict(m) => (409, m.clone()),
            ApiError::UnsupportedMediaType(m) => (415, m.clone()),
            ApiError::MisdirectedRequest(m) => (421, m.clone()),
            ApiError::RangeNotSatisfiable { len } => (
                416,
                format!("the range is outside the {len} bytes of this file"),
            ),
            ApiError::SlowDown(s) => (
                429,
                format!("too many wrong tokens lately; wait {s} s before trying again"),
            ),
            ApiError::Unavailable(m) => (503, m.clone()),
            ApiError::Busy { message, .. } => (503, message.clone()),
            ApiError::InsufficientStorage(m) => (507, m.clone()),
            ApiError::Internal(m) => (500, m.clone()),
        };
        let mut r = Response::json(status, &ErrorAnswer { error });
        match self {
            ApiError::SlowDown(s) => r = r.with_header("Retry-After", s.to_string()),
            ApiError::Busy { retry_after_s, .. } => {
                r = r.with_header("Retry-After", retry_after_s.to_string())
            }
            ApiError::Unauthorized(_) => r = r.with_header("WWW-Authenticate", "Bearer"),
            ApiError::UnsupportedMediaType(_) => {
                r = r.with_header("Accept-Post", "application/json")
            }
            ApiError::RangeNotSatisfiable { len } => {
                r = r.with_header("Content-Range", format!("bytes */{len}"))
            }
            _ => {}
        }
        r
    }
}

impl ApiError {
    /// Why credentials were refused, as an answer. Only wrong tokens are
    /// ever slowed down.
    pub fn from_verdict(v: Verdict) -> ApiError {
        match v {
            Verdict::Allowed => ApiError::Internal("allowed credentials treated as refused".into()),
            Verdict::SlowDown(s) => ApiError::SlowDown(s),
            Verdict::Wrong => ApiError::Unauthorized("wrong token".into()),
            Verdict::Missing => ApiError::Unauthorized(
                "log in, or send Authorization: Bearer <token>".into(),
            ),
            Verdict::TokenInUrl => ApiError::Unauthorized(
                "token: not accepted in a URL (URLs end up in histories and logs); send Authorization: Bearer <token>, log in, or open a signed link from POST /api/links".into(),
            ),
            Verdict::BadLink(why) => ApiError::Unauthorized(why.into()),
            Verdict::CrossSite => ApiError::Forbidden(
                "missing or wrong X-CSRF-Token header, and Origin is not this server's; the dashboard gets its token from GET /api/session".into(),
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        log::error!("http: {e}");
        ApiError::Internal(e.to_string())
    }
}

pub type ApiResult = Result<Response, ApiError>;

impl ApiContext {
    pub fn new(
        config: Config,
        store: Store,
        status: Arc<Status>,
        live: Arc<LiveHub>,
        clock: Arc<dyn Clock>,
        auth: Auth,
    ) -> ApiContext {
        ApiContext {
            config,
            store,
            status,
            live,
            clock,
            auth,
            stop: Arc::default(),
            server_stats: Mutex::default(),
            timekeeper: None,
            incidents: None,
            share: None,
            summaries: Mutex::default(),
            tracks: TrackCache::default(),
        }
    }

    /// The configured cameras, then those found while running.
    pub fn cameras(&self) -> Vec<CameraConfig> {
        let mut cameras = self.config.cameras.clone();
        let found = self
            .status
            .found_cameras
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for c in found {
            if !cameras.iter().any(|k| k.id == c.id) {
                cameras.push(c);
            }
        }
        cameras
    }

    /// A camera the request names (`camera=`), configured or with recordings.
    /// Without the parameter, the first configured camera when `default_first`.
    pub fn camera_param(&self, req: &Request, default_first: bool) -> Result<String, ApiError> {
        let id = match req.param("camera") {
            Some(id) if !id.is_empty() => id.to_string(),
            _ if default_first => {
                return self
                    .cameras()
                    .first()
                    .map(|c| c.id.clone())
                    .ok_or_else(|| ApiError::NotFound("no camera is configured".into()))
            }
            _ => return Err(ApiError::BadRequest("camera: missing".into())),
        };
        let known =
            self.cameras().iter().any(|c| c.id == id) || self.store.cameras()?.contains(&id);
        if known {
            Ok(id)
        } else {
            Err(ApiError::NotFound(format!("camera: no camera '{id}'")))
        }
    }
}

/// A time parameter the request must carry, RFC 3339.
pub fn required_time_param(req: &Request, name: &str) -> Result<i64, ApiError> {
    time_param(req, name)?.ok_or_else(|| ApiError::BadRequest(format!("{name}: missing")))
}

/// A time parameter, RFC 3339.
pub fn time_param(req: &Request, name: &str) -> Result<Option<i64>, ApiError> {
    req.param(name)
        .filter(|v| !v.is_empty())
        .map(|v| parse_rfc3339(v).map_err(|e| ApiError::BadRequest(format!("{name}: {e}"))))
        .transpose()
}
