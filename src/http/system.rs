//! What the recorder is and does: `GET /health`, `/api/status`,
//! `/api/cameras` (and one camera) and `/api/config`.

use std::sync::atomic::Ordering;

use super::answers::{
    CameraAnswer, CameraStatusAnswer, ConfigAnswer, HealthAnswer, HttpAnswer, StatusAnswer,
    REDACTED,
};
use super::context::{ApiContext, ApiError, ApiResult};
use super::server::{Request, Response};

pub fn health(ctx: &ApiContext, _: &Request) -> ApiResult {
    let recording = ctx
        .status
        .cameras()
        .iter()
        .any(|c| c.connected.load(Ordering::Relaxed));
    let answer = HealthAnswer {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        recording,
    };
    Ok(Response::json(200, &answer))
}

fn status_answer(ctx: &ApiContext) -> StatusAnswer {
    let configs = ctx.cameras();
    let recorder = ctx
        .status
        .snapshot(ctx.clock.mono_ns(), ctx.clock.wall_ns())
        .map_cameras(|status| {
            let config = configs.iter().find(|c| c.id == status.id);
            CameraStatusAnswer {
                name: config.map(|c| c.name.clone()),
                target_fps: config.map(|c| c.fps),
                width: config.map(|c| c.res_width),
                height: config.map(|c| c.res_height),
                status,
            }
        });
    let stats = ctx
        .server_stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let get = |a: &std::sync::atomic::AtomicUsize| a.load(Ordering::Relaxed) as u64;
    let http = stats.map(|s| HttpAnswer {
        connections: get(&s.connections),
        streams: get(&s.streams),
        rejected_busy: get(&s.rejected_busy),
        evicted: get(&s.evicted),
    });
    StatusAnswer {
        recorder,
        http,
        share_encoder: ctx.share.as_ref().map(|s| s.encoder_description()),
    }
}

pub fn status(ctx: &ApiContext, _: &Request) -> ApiResult {
    Ok(Response::json(200, &status_answer(ctx)).with_header("Cache-Control", "no-store"))
}

fn camera_answers(ctx: &ApiContext) -> Vec<CameraAnswer> {
    let live = status_answer(ctx).recorder.cameras;
    ctx.cameras()
        .into_iter()
        .map(|c| CameraAnswer {
            status: live.iter().find(|s| s.status.id == c.id).cloned(),
            id: c.id,
            name: c.name,
            source: c.source,
            device: c.device,
            width: c.res_width,
            height: c.res_height,
            fps: c.fps,
            rotation: c.rotation,
            enabled: c.enabled,
        })
        .collect()
}

pub fn cameras(ctx: &ApiContext, _: &Request) -> ApiResult {
    Ok(Response::json(200, &camera_answers(ctx)))
}

pub fn camera(ctx: &ApiContext, req: &Request) -> ApiResult {
    let id = req.path.trim_start_matches("/api/cameras/");
    camera_answers(ctx)
        .into_iter()
        .find(|c| c.id == id)
        .map(|c| Response::json(200, &c))
        .ok_or_else(|| ApiError::NotFound(format!("no camera '{id}'")))
}

/// The running config without its secrets: the token and the Wi-Fi
/// password read `(set)` when they are set.
pub fn config(ctx: &ApiContext, _: &Request) -> ApiResult {
    let mut c: ConfigAnswer = ctx.config.clone();
    if c.auth_token.is_some() {
        c.auth_token = Some(REDACTED.into());
    }
    if let Some(pw) = c.wifi.as_mut().and_then(|w| w.password.as_mut()) {
        *pw = REDACTED.into();
    }
    Ok(Response::json(200, &c))
}
