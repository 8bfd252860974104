//! What the recorder is and does: `GET /health`, `/api/status`,
//! `/api/cameras` (and one camera) and `/api/config`.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::context::{ApiContext, ApiError, ApiResult};
use super::server::{Request, Response};

pub fn health(ctx: &ApiContext, _: &Request) -> ApiResult {
    let recording = ctx
        .status
        .cameras()
        .iter()
        .any(|c| c.connected.load(Ordering::Relaxed));
    Ok(Response::json(
        200,
        &json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "recording": recording}),
    ))
}

fn status_value(ctx: &ApiContext) -> Value {
    let snap = ctx
        .status
        .snapshot(ctx.clock.mono_ns(), ctx.clock.wall_ns());
    let mut v = serde_json::to_value(snap).unwrap_or(Value::Null);
    let configs = ctx.cameras();
    if let Some(cams) = v.get_mut("cameras").and_then(Value::as_array_mut) {
        for cam in cams {
            let id = cam.get("id").and_then(Value::as_str).unwrap_or("");
            if let Some(c) = configs.iter().find(|c| c.id == id) {
                cam["name"] = json!(c.name);
                cam["target_fps"] = json!(c.fps);
                cam["width"] = json!(c.res_width);
                cam["height"] = json!(c.res_height);
            }
        }
    }
    let stats = ctx
        .server_stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(s) = stats {
        v["http"] = json!({
            "connections": s.connections.load(Ordering::Relaxed),
            "streams": s.streams.load(Ordering::Relaxed),
            "rejected_busy": s.rejected_busy.load(Ordering::Relaxed),
            "evicted": s.evicted.load(Ordering::Relaxed),
        });
    }
    v
}

pub fn status(ctx: &ApiContext, _: &Request) -> ApiResult {
    Ok(Response::json(200, &status_value(ctx)).with_header("Cache-Control", "no-store"))
}

fn camera_values(ctx: &ApiContext) -> Vec<Value> {
    let status = status_value(ctx);
    let live: Vec<Value> = status["cameras"].as_array().cloned().unwrap_or_default();
    ctx.cameras()
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "name": c.name,
                "source": c.source,
                "device": c.device,
                "width": c.res_width,
                "height": c.res_height,
                "fps": c.fps,
                "rotation": c.rotation,
                "enabled": c.enabled,
                "status": live.iter().find(|s| s["id"] == json!(c.id)),
            })
        })
        .collect()
}

pub fn cameras(ctx: &ApiContext, _: &Request) -> ApiResult {
    Ok(Response::json(200, &camera_values(ctx)))
}

pub fn camera(ctx: &ApiContext, req: &Request) -> ApiResult {
    let id = req.path.trim_start_matches("/api/cameras/");
    camera_values(ctx)
        .into_iter()
        .find(|c| c["id"] == json!(id))
        .map(|c| Response::json(200, &c))
        .ok_or_else(|| ApiError::NotFound(format!("no camera '{id}'")))
}

/// What `/api/config` shows for a secret that is set.
pub const REDACTED: &str = "(set)";

/// The running config without its secrets: the token and the Wi-Fi
/// password read `(set)` when they are set.
pub fn config(ctx: &ApiContext, _: &Request) -> ApiResult {
    let mut c = ctx.config.clone();
    if c.auth_token.is_some() {
        c.auth_token = Some(REDACTED.into());
    }
    if let Some(pw) = c.wifi.as_mut().and_then(|w| w.password.as_mut()) {
        *pw = REDACTED.into();
    }
    Ok(Response::json(200, &c))
}
