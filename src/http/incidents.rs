//! `POST /api/lock` (protect the footage around now) and `GET /api/incidents`
//! (what is protected, with one export link per camera).

use std::collections::HashMap;

use serde_json::Value;

use crate::clock::format_rfc3339_ms;
use crate::incident::{IncidentKeeper, TriggerSource};
use crate::store::incidents::IncidentRecord;

use super::answers::{ExportLinkAnswer, IncidentAnswer, IncidentsAnswer, LockAnswer};
use super::context::{ApiContext, ApiError};
use super::names::percent_encode as enc;
use super::server::{Request, Response};

fn keeper(ctx: &ApiContext) -> Result<&IncidentKeeper, ApiError> {
    ctx.incidents
        .as_deref()
        .ok_or_else(|| ApiError::Unavailable("this service is not recording".into()))
}

/// Bytes each locked segment holds now, by camera and name: one figure for
/// the incidents and for their total, so the two always agree (a segment
/// still being written counts what was written, not its preallocation).
fn locked_sizes(ctx: &ApiContext) -> Result<HashMap<(String, String), u64>, ApiError> {
    Ok(ctx
        .store
        .all_segments()?
        .iter()
        .filter(|s| s.protected)
        .map(|s| {
            (
                (s.camera.clone(), s.name.clone()),
                ctx.store.segment_bytes(s),
            )
        })
        .collect())
}

/// An incident as the API shows it.
fn incident_answer(
    ctx: &ApiContext,
    rec: &IncidentRecord,
    sizes: &HashMap<(String, String), u64>,
) -> IncidentAnswer {
    let mut cameras: Vec<&str> = rec.segments.iter().map(|s| s.camera.as_str()).collect();
    cameras.sort();
    cameras.dedup();
    let configured = ctx.cameras();
    if cameras.is_empty() {
        cameras = configured.iter().map(|c| c.id.as_str()).collect();
    }
    let (from, to) = (format_rfc3339_ms(rec.from_ns), format_rfc3339_ms(rec.to_ns));
    let exports = cameras
        .iter()
        .map(|c| ExportLinkAnswer {
            camera: c.to_string(),
            url: format!(
                "/api/export.mp4?camera={}&from={}&to={}",
                enc(c),
                enc(&from),
                enc(&to)
            ),
        })
        .collect();
    IncidentAnswer {
        id: rec.id.clone(),
        triggers: rec.triggers.clone(),
        at: format_rfc3339_ms(rec.at_ns),
        from,
        to,
        estimated: rec.estimated,
        complete: rec.complete,
        released: rec.released.clone(),
        cut_short: rec.cut_short,
        segments: rec.segments.len(),
        bytes: rec
            .segments
            .iter()
            .map(|s| {
                sizes
                    .get(&(s.camera.clone(), s.name.clone()))
                    .copied()
                    .unwrap_or(s.bytes)
            })
            .sum(),
        exports,
    }
}

pub fn lock(ctx: &ApiContext, req: &Request) -> Result<Response, ApiError> {
    let k = keeper(ctx)?;
    let source = if req.body.iter().all(u8::is_ascii_whitespace) {
        TriggerSource::Api
    } else {
        let v: Value = serde_json::from_slice(&req.body).map_err(|e| {
            ApiError::BadRequest(format!(
                "body: not JSON ({e}); send {{}} or {{\"source\": \"dashboard\"}}"
            ))
        })?;
        match v.get("source").and_then(Value::as_str) {
            None => TriggerSource::Api,
            Some(s) => match TriggerSource::parse(s) {
                Some(
                    t @ (TriggerSource::Dashboard | TriggerSource::Console | TriggerSource::Api),
                ) => t,
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "source: '{s}' is not one of dashboard, console, api"
                    )))
                }
            },
        }
    };
    let rec = k.trigger(source)?;
    let roll = k.roll();
    let answer = LockAnswer {
        incident: incident_answer(ctx, &rec, &locked_sizes(ctx)?),
        pre_roll_s: roll.pre_roll_ns / 1_000_000_000,
        post_roll_s: roll.post_roll_ns / 1_000_000_000,
    };
    Ok(Response::json(200, &answer))
}

pub fn list(ctx: &ApiContext, _: &Request) -> Result<Response, ApiError> {
    let k = keeper(ctx)?;
    let sizes = locked_sizes(ctx)?;
    let incidents = k
        .list()?
        .iter()
        .map(|r| incident_answer(ctx, r, &sizes))
        .collect();
    let st = &ctx.status.store;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let answer = IncidentsAnswer {
        incidents,
        locked_bytes: sizes.values().sum(),
        locked_cap_bytes: get(&st.locked_cap_bytes),
        message: st
            .locked_message
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    };
    Ok(Response::json(200, &answer).with_header("Cache-Control", "no-store"))
}
