//! The GPS track stored with a camera's footage: `GET /api/track` (a few
//! points of a range, for the dashboard's track shape and speed graph) and
//! `GET /api/export.gpx` (every position of a range as GPX 1.1).

use crate::clock::format_rfc3339;
use crate::export::gpx::GpxExport;
use crate::export::track;
use crate::export::ExportError;

use super::answers::{TrackAnswer, TrackPointAnswer};
use super::context::{required_time_param, ApiContext, ApiError, ApiResult};
use super::names;
use super::server::{Body, Request, Response};

/// Points `/api/track` keeps by default, and at most.
const TRACK_POINTS_DEFAULT: usize = 1000;
const TRACK_POINTS_MAX: usize = 5000;

fn range(req: &Request) -> Result<(i64, i64), ApiError> {
    let from = required_time_param(req, "from")?;
    let to = required_time_param(req, "to")?;
    if from >= to {
        return Err(ApiError::BadRequest("from: must be before to".into()));
    }
    Ok((from, to))
}

fn track_error(e: ExportError) -> ApiError {
    match e {
        ExportError::NoPositions { .. } => ApiError::NotFound(e.to_string()),
        ExportError::BadTimeRange { .. } => ApiError::BadRequest(e.to_string()),
        other => {
            log::error!("track: {other}");
            ApiError::Internal(other.to_string())
        }
    }
}

pub fn track(ctx: &ApiContext, req: &Request) -> ApiResult {
    let camera = ctx.camera_param(req, true)?;
    let (from, to) = range(req)?;
    let points_max = match req.param("points") {
        None | Some("") => TRACK_POINTS_DEFAULT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (2..=TRACK_POINTS_MAX).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "points: '{v}' is not a whole number from 2 to {TRACK_POINTS_MAX}"
                )))
            }
        },
    };
    let summary = track::summarize(&ctx.store, &camera, from, to, points_max, Some(&ctx.tracks))
        .map_err(track_error)?;
    let answer = TrackAnswer {
        camera,
        from: format_rfc3339(from),
        to: format_rfc3339(to),
        speed_unit: ctx.config.speed_unit(),
        gps_configured: ctx.config.gps.is_some(),
        positions: summary.positions as u64,
        points: summary
            .points
            .iter()
            .map(|p| TrackPointAnswer {
                t_ms: p.wall_ms,
                lat: p.lat,
                lon: p.lon,
                speed_mps: p.speed_mps,
                alt_m: p.altitude_m,
            })
            .collect(),
        distance_m: (summary.distance_m * 10.0).round() / 10.0,
        max_speed_mps: summary.max_speed_mps,
        problems: summary.problems,
    };
    Ok(Response::json(200, &answer))
}

pub fn export_gpx(ctx: &ApiContext, req: &Request) -> ApiResult {
    let camera = ctx.camera_param(req, false)?;
    let (from, to) = range(req)?;
    let gpx = GpxExport::open(&ctx.store, &camera, from, to).map_err(track_error)?;
    let disposition = names::attachment(&gpx.file_name());
    let body = Body::Sized {
        len: gpx.len(),
        write: Box::new(move |out| gpx.write(out).map_err(std::io::Error::other)),
    };
    Ok(Response::new(200, "application/gpx+xml", body)
        .with_header("Content-Disposition", disposition)
        .with_header("Cache-Control", "no-store"))
}
