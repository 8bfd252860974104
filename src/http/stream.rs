//! Pictures: the newest live frame, the live MJPEG stream, recorded frames by
//! time, and paced playback of recordings as an MJPEG stream.
//!
//! Live viewers read the live hub, so they never cause extra encoding; a
//! viewer that stops reading is dropped after the server's write timeout.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::status::CameraStatus;
use crate::store::query;
use crate::store::StoredFrame;

use crate::clock::format_rfc3339_ms;

use super::context::{required_time_param, time_param, ApiContext, ApiError};
use super::names;
use super::server::{Body, Request, Response};

const BOUNDARY: &str = "dashvaultframe";
/// How long a live viewer waits for a frame before sending the last one
/// again (which also finds out whether the viewer is still there).
const LIVE_RESEND_AFTER: Duration = Duration::from_secs(2);
/// How far `/api/frame` looks for the nearest frame.
const NEAREST_WINDOW_NS: i64 = 10_000_000_000;
const SPEED_MIN: f64 = 0.25;
const SPEED_MAX: f64 = 16.0;
/// Playback jumps over gaps longer than this instead of waiting them out.
const PLAYBACK_MAX_WAIT: Duration = Duration::from_secs(1);

type ApiResult = Result<Response, ApiError>;

fn multipart_response(write: super::server::BodyWriter) -> Response {
    Response::new(
        200,
        &format!("multipart/x-mixed-replace; boundary={BOUNDARY}"),
        Body::Endless(write),
    )
    .with_header("Cache-Control", "no-store")
}

fn write_part(out: &mut dyn Write, jpeg: &[u8], wall_ns: i64) -> std::io::Result<()> {
    write!(
        out,
        "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Frame-Time: {}\r\n\r\n",
        jpeg.len(),
        format_rfc3339_ms(wall_ns)
    )?;
    out.write_all(jpeg)?;
    out.write_all(b"\r\n")?;
    out.flush()
}

/// Counts a viewer in the camera's status for as long as it lives.
struct ViewerCount(Option<Arc<CameraStatus>>);

impl ViewerCount {
    fn new(ctx: &ApiContext, camera: &str) -> ViewerCount {
        let cs = ctx.status.camera(camera);
        if let Some(c) = &cs {
            c.live_viewers.fetch_add(1, Ordering::Relaxed);
        }
        ViewerCount(cs)
    }
}

impl Drop for ViewerCount {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.live_viewers.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn live_slot(ctx: &ApiContext, camera: &str) -> Result<Arc<crate::live::LiveSlot>, ApiError> {
    ctx.live.slot(camera).ok_or_else(|| {
        ApiError::NotFound(format!(
            "camera: '{camera}' is not recording, so it has no live view"
        ))
    })
}

fn newest_jpeg(ctx: &ApiContext, req: &Request) -> Result<(String, Response, i64), ApiError> {
    let camera = ctx.camera_param(req, true)?;
    let frame = live_slot(ctx, &camera)?.latest().ok_or_else(|| {
        ApiError::Unavailable(format!("camera '{camera}' has not delivered a frame yet"))
    })?;
    let wall = frame.captured.wall_ns;
    let r = Response::new(200, "image/jpeg", Body::Bytes(frame.jpeg.to_vec()))
        .with_header("Cache-Control", "no-store")
        .with_header("X-Frame-Time", format_rfc3339_ms(wall));
    Ok((camera, r, wall))
}

pub fn live_frame(ctx: &ApiContext, req: &Request) -> ApiResult {
    newest_jpeg(ctx, req).map(|(_, r, _)| r)
}

pub fn snapshot(ctx: &ApiContext, req: &Request) -> ApiResult {
    let (camera, r, wall) = newest_jpeg(ctx, req)?;
    let name = format!("{camera}_{}.jpg", crate::clock::format_compact(wall));
    Ok(r.with_header("Content-Disposition", names::attachment(&name)))
}

pub fn live_mjpeg(ctx: &ApiContext, req: &Request) -> ApiResult {
    let camera = ctx.camera_param(req, true)?;
    let slot = live_slot(ctx, &camera)?;
    let viewer = ViewerCount::new(ctx, &camera);
    let stop = ctx.stop.clone();
    Ok(multipart_response(Box::new(move |out| {
        let _viewer = viewer;
        let mut last = 0;
        while !stop.load(Ordering::Relaxed) {
            let frame = match slot.wait_newer(last, LIVE_RESEND_AFTER) {
                Some(f) => f,
                None => match slot.latest() {
                    Some(f) => f,
                    None => continue,
                },
            };
            last = frame.number;
            write_part(out, &frame.jpeg, frame.captured.wall_ns)?;
        }
        Ok(())
    })))
}

/// `/api/frame?camera=&at=&step=`: the recorded frame nearest `at`, or `step`
/// frames from it.
pub fn recorded_frame(ctx: &ApiContext, req: &Request) -> ApiResult {
    let camera = ctx.camera_param(req, true)?;
    let at = time_param(req, "at")?.ok_or_else(|| ApiError::BadRequest("at: missing".into()))?;
    let step: i64 = match req.param("step") {
        None | Some("") => 0,
        Some(s) => s
            .parse()
            .ok()
            // Not `abs()`: it wraps (or panics) on i64::MIN.
            .filter(|n: &i64| (-10_000..=10_000).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "step: '{s}' is not a whole number from -10000 to 10000"
                ))
            })?,
    };
    // A damaged frame is stepped over: the nearest intact one is served.
    let frame = ctx
        .store
        .frame_near(&camera, at, NEAREST_WINDOW_NS, step)?
        .ok_or_else(|| {
            if step == 0 {
                ApiError::NotFound(format!(
                    "no frame of camera '{camera}' within 10 s of {}",
                    format_rfc3339_ms(at)
                ))
            } else {
                ApiError::NotFound(format!("step: no stored frame {step} frames from there"))
            }
        })?;
    let StoredFrame {
        jpeg,
        wall_ns,
        segment,
        index,
    } = frame;
    Ok(Response::new(200, "image/jpeg", Body::Bytes(jpeg))
        .with_header("X-Frame-Time", format_rfc3339_ms(wall_ns))
        .with_header("X-Frame-Segment", names::percent_encode(&segment))
        .with_header("X-Frame-Index", index.to_string()))
}

/// `/api/playback?camera=&from=&to=&speed=`: recorded frames from `from`,
/// paced by their capture times divided by `speed`.
pub fn playback(ctx: &ApiContext, req: &Request) -> ApiResult {
    let camera = ctx.camera_param(req, true)?;
    let from = required_time_param(req, "from")?;
    let to = time_param(req, "to")?.unwrap_or(i64::MAX);
    let speed = match req.param("speed") {
        None | Some("") => 1.0,
        Some(s) => s
            .parse::<f64>()
            .ok()
            .filter(|v| (SPEED_MIN..=SPEED_MAX).contains(v))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "speed: '{s}' is not a number from {SPEED_MIN} to {SPEED_MAX}"
                ))
            })?,
    };
    let segments = ctx.store.segments(&camera)?.segments;
    let candidates: Vec<_> = query::candidate_segments(&segments, from, to)
        .into_iter()
        .map(|i| segments[i].clone())
        .collect();
    if candidates.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no recording of camera '{camera}' after {}",
            format_rfc3339_ms(from)
        )));
    }
    let store = ctx.store.clone();
    let stop = ctx.stop.clone();
    let viewer = ViewerCount::new(ctx, &camera);
    Ok(multipart_response(Box::new(move |out| {
        let _viewer = viewer;
        let mut pacer = Pacer::new(speed);
        // One segment open at a time keeps memory and descriptors bounded.
        for entry in candidates {
            let reader = match store.open_segment(&entry) {
                Ok(r) => r,
                Err(e) => {
                    log::warn!("playback skips a segment: {e}");
                    continue;
                }
            };
            for (i, f) in reader.frames.iter().enumerate() {
                if f.wall_ns < from {
                    continue;
                }
                if f.wall_ns >= to || stopped(&stop) {
                    return Ok(());
                }
                pacer.wait_for(f.wall_ns, &stop);
                match reader.read_frame(i) {
                    Ok(jpeg) => write_part(out, &jpeg, f.wall_ns)?,
                    Err(e) => log::warn!("playback skips a frame: {e}"),
                }
            }
        }
        Ok(())
    })))
}

fn stopped(stop: &AtomicBool) -> bool {
    stop.load(Ordering::Relaxed)
}

/// Schedules frames at their recorded spacing, scaled by speed, without
/// drifting; gaps in the recording are shortened to `PLAYBACK_MAX_WAIT`.
struct Pacer {
    speed: f64,
    last_wall_ns: Option<i64>,
    due: Instant,
}

impl Pacer {
    fn new(speed: f64) -> Pacer {
        Pacer {
            speed,
            last_wall_ns: None,
            due: Instant::now(),
        }
    }

    fn wait_for(&mut self, wall_ns: i64, stop: &AtomicBool) {
        if let Some(last) = self.last_wall_ns {
            let gap_ns = (wall_ns - last).max(0) as f64 / self.speed;
            let gap = Duration::from_nanos(gap_ns as u64).min(PLAYBACK_MAX_WAIT);
            self.due += gap;
        }
        self.last_wall_ns = Some(wall_ns);
        let now = Instant::now();
        if now > self.due + PLAYBACK_MAX_WAIT {
            // Far behind (slow client): start pacing again from now.
            self.due = now;
        }
        while Instant::now() < self.due && !stopped(stop) {
            std::thread::sleep((self.due - Instant::now()).min(Duration::from_millis(200)));
        }
    }
}
