//! Share clips over HTTP: `POST /api/share` starts one (a job: encoding
//! takes minutes on a Pi), `GET /api/share` shows its progress,
//! `POST /api/share/cancel` stops it, `GET /api/share/clip/<name>` serves
//! the finished file, and `GET /api/export.mp4?...&format=h264` serves the
//! clip of that range once made. `GET /api/export/estimate` gives the size
//! of both the lossless export and the share clip before either is made.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use serde_json::Value;

use crate::clock::{format_rfc3339_ms, parse_rfc3339};
use crate::export::ExportError;
use crate::share::clip::{Quality, ShareOptions};
use crate::share::jobs::{JobSnapshot, JobState, ShareJobs, ShareRequest, StartError};
use crate::share::picture::ShareSize;

use super::answers::{ExportEstimateAnswer, ShareJobAnswer};
use super::context::{required_time_param, ApiContext, ApiError, ApiResult};
use super::export::mp4_answer;
use super::names;
use super::server::{Request, Response};

/// Where finished clips are served.
pub const CLIP_PATH: &str = "/api/share/clip/";

fn jobs(ctx: &ApiContext) -> Result<&Arc<ShareJobs>, ApiError> {
    ctx.share.as_ref().ok_or_else(|| {
        ApiError::Unavailable(
            "share clips are off: their folder on the data partition could not be made (see the log)"
                .into(),
        )
    })
}

fn answer(s: Option<&JobSnapshot>) -> ShareJobAnswer {
    let Some(s) = s else {
        return ShareJobAnswer {
            state: "idle".into(),
            camera: None,
            from: None,
            to: None,
            size: None,
            quality: None,
            phase: None,
            frames_checked: 0,
            frames_done: 0,
            frames_total: 0,
            elapsed_s: 0.0,
            eta_s: None,
            encoder: None,
            width: None,
            height: None,
            bytes: None,
            url: None,
            skipped_frames: 0,
            error: None,
        };
    };
    ShareJobAnswer {
        state: s.state.name().into(),
        camera: Some(s.request.camera.clone()),
        from: Some(format_rfc3339_ms(s.request.from_ns)),
        to: Some(format_rfc3339_ms(s.request.to_ns)),
        size: Some(s.request.options.size.lines()),
        quality: Some(s.request.options.quality.name().into()),
        phase: (s.state == JobState::Running).then(|| {
            if s.frames_done == 0 {
                "checking".into()
            } else {
                "encoding".into()
            }
        }),
        frames_checked: s.frames_checked as u64,
        frames_done: s.frames_done as u64,
        frames_total: s.frames_total as u64,
        elapsed_s: s.elapsed.as_secs_f64(),
        eta_s: s.eta.map(|d| d.as_secs_f64()),
        encoder: s.encoder.clone(),
        width: s.picture.map(|p| p.0),
        height: s.picture.map(|p| p.1),
        bytes: s.clip.as_ref().map(|c| c.1),
        url: s.clip.as_ref().map(|c| format!("{CLIP_PATH}{}", c.0)),
        skipped_frames: s.skipped_frames,
        error: s.error.clone(),
    }
}

fn start_error(e: StartError) -> ApiError {
    match e {
        StartError::Busy { .. } => ApiError::Busy {
            message: e.to_string(),
            retry_after_s: 5,
        },
        StartError::NoRoom(m) => ApiError::InsufficientStorage(m),
        StartError::Range(e @ ExportError::NoFootage { .. }) => ApiError::NotFound(e.to_string()),
        StartError::Range(
            e @ (ExportError::BadTimeRange { .. } | ExportError::TooManyFrames { .. }),
        ) => ApiError::BadRequest(e.to_string()),
        StartError::Range(other) => {
            log::error!("share clip: {other}");
            ApiError::Internal(other.to_string())
        }
    }
}

/// A camera the dashboard may name: configured, found, or with recordings.
fn known_camera(ctx: &ApiContext, id: &str) -> Result<String, ApiError> {
    if id.is_empty() {
        return Err(ApiError::BadRequest("camera: missing".into()));
    }
    if ctx.cameras().iter().any(|c| c.id == id) || ctx.store.cameras()?.iter().any(|c| c == id) {
        Ok(id.to_string())
    } else {
        Err(ApiError::NotFound(format!("camera: no camera '{id}'")))
    }
}

fn size(value: Option<String>) -> Result<ShareSize, ApiError> {
    match value {
        None => Ok(ShareOptions::default().size),
        Some(s) => ShareSize::parse(&s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "size: '{s}' is not a share clip size; use {}",
                ShareSize::ACCEPTED
            ))
        }),
    }
}

fn quality(value: Option<String>) -> Result<Quality, ApiError> {
    match value {
        None => Ok(ShareOptions::default().quality),
        Some(s) => Quality::parse(&s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "quality: '{s}' is not a quality; use {}",
                Quality::ACCEPTED
            ))
        }),
    }
}

/// The request named by query parameters (estimate, `format=h264`).
fn request_from_query(ctx: &ApiContext, req: &Request) -> Result<ShareRequest, ApiError> {
    let camera = ctx.camera_param(req, false)?;
    let from = required_time_param(req, "from")?;
    let to = required_time_param(req, "to")?;
    Ok(ShareRequest {
        camera,
        from_ns: from,
        to_ns: to,
        options: ShareOptions {
            size: size(req.param("size").map(str::to_string))?,
            quality: quality(req.param("quality").map(str::to_string))?,
            speed_unit: ctx.config.speed_unit(),
        },
    })
}

/// `POST /api/share` with `{"camera", "from", "to", "size", "quality"}`.
pub fn start(ctx: &ApiContext, req: &Request) -> ApiResult {
    let jobs = jobs(ctx)?;
    let body: Value = serde_json::from_slice(&req.body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body: not JSON ({e}); send {{\"camera\": \"front\", \"from\": \"2026-12-04T10:00:00Z\", \"to\": \"2026-12-04T10:05:00Z\"}}"
        ))
    })?;
    let text = |key: &str| -> Result<Option<String>, ApiError> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) if key == "size" => Ok(Some(n.to_string())),
            Some(other) => Err(ApiError::BadRequest(format!(
                "{key}: {other} is not a string"
            ))),
        }
    };
    let time = |key: &str| -> Result<i64, ApiError> {
        let s = text(key)?.ok_or_else(|| ApiError::BadRequest(format!("{key}: missing")))?;
        parse_rfc3339(&s).map_err(|e| ApiError::BadRequest(format!("{key}: {e}")))
    };
    let request = ShareRequest {
        camera: known_camera(ctx, &text("camera")?.unwrap_or_default())?,
        from_ns: time("from")?,
        to_ns: time("to")?,
        options: ShareOptions {
            size: size(text("size")?)?,
            quality: quality(text("quality")?)?,
            speed_unit: ctx.config.speed_unit(),
        },
    };
    let snapshot = jobs.start(request).map_err(start_error)?;
    let status = if snapshot.state == JobState::Done {
        200
    } else {
        202
    };
    Ok(Response::json(status, &answer(Some(&snapshot))).with_header("Location", "/api/share"))
}

/// `GET /api/share`.
pub fn progress(ctx: &ApiContext, _req: &Request) -> ApiResult {
    let snapshot = jobs(ctx)?.snapshot();
    Ok(Response::json(200, &answer(snapshot.as_ref())).with_header("Cache-Control", "no-store"))
}

/// `POST /api/share/cancel`.
pub fn cancel(ctx: &ApiContext, _req: &Request) -> ApiResult {
    match jobs(ctx)?.cancel() {
        Some(s) => Ok(Response::json(200, &answer(Some(&s)))),
        None => Err(ApiError::NotFound("no share clip is being made".into())),
    }
}

/// `GET /api/export/estimate?camera=&from=&to=&size=&quality=`.
pub fn estimate(ctx: &ApiContext, req: &Request) -> ApiResult {
    let request = request_from_query(ctx, req)?;
    let e = crate::share::jobs::estimate(&ctx.store, &request).map_err(start_error)?;
    Ok(Response::json(
        200,
        &ExportEstimateAnswer {
            frames: e.frames,
            duration_s: e.duration_s,
            lossless_bytes: e.lossless_bytes,
            share_bytes: e.share_bytes,
            share_width: e.width,
            share_height: e.height,
        },
    ))
}

/// `GET /api/share/clip/<name>`.
pub fn clip(ctx: &ApiContext, req: &Request) -> ApiResult {
    let name = req.path.strip_prefix(CLIP_PATH).unwrap_or_default();
    serve_clip(ctx, req, name)
}

/// `GET /api/export.mp4?...&format=h264`: the share clip of that range,
/// once a job has made it. Never starts one: a GET changes nothing.
pub fn export_h264(ctx: &ApiContext, req: &Request) -> ApiResult {
    let request = request_from_query(ctx, req)?;
    let name = request.clip_name();
    if jobs(ctx)?.cache().finished(&name).is_none() {
        return Err(ApiError::Conflict(
            "no share clip of this range at this size and quality yet: start one with POST /api/share \
             (the same camera, from, to, size and quality), then fetch this again when GET /api/share says done"
                .into(),
        ));
    }
    serve_clip(ctx, req, &name)
}

fn serve_clip(ctx: &ApiContext, req: &Request, name: &str) -> ApiResult {
    let not_found = || ApiError::NotFound(format!("no share clip '{name}'"));
    let (path, _) = jobs(ctx)?.cache().finished(name).ok_or_else(not_found)?;
    // Opened now: removed from the cache later, the file is still sent whole.
    let mut file = std::fs::File::open(&path).map_err(|_| not_found())?;
    let len = file
        .metadata()
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .len();
    mp4_answer(
        req.header("range"),
        len,
        names::attachment(name),
        move |start, end, out| {
            file.seek(SeekFrom::Start(start))?;
            let copied = std::io::copy(&mut (&mut file).take(end - start), out)?;
            if copied != end - start {
                return Err(std::io::Error::other("the clip got shorter while sent"));
            }
            Ok(())
        },
    )
}
