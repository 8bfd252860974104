//! Stored footage as lists and files: `GET /api/recordings` (what the
//! timeline shows of a range), `/api/videos` (every segment, with a signed
//! download link) and `/api/video/download` (one segment as `.mjpeg`).

use crate::clock::{format_rfc3339, format_rfc3339_ms};
use crate::store::catalog::SegmentEntry;
use crate::store::query::{self, Span, SpanBuilder};
use crate::store::StoreError;

use super::answers::{RecordingsAnswer, SegmentAnswer, SpanAnswer, VideoAnswer, VideosAnswer};
use super::auth;
use super::context::{time_param, ApiContext, ApiError, ApiResult, SegmentSummary};
use super::names;
use super::server::{Body, Request, Response};

const DAY_NS: i64 = 24 * 3600 * 1_000_000_000;

pub fn recordings(ctx: &ApiContext, req: &Request) -> ApiResult {
    let camera = ctx.camera_param(req, true)?;
    let now = ctx.clock.wall_ns();
    let to = time_param(req, "to")?.unwrap_or(now);
    let from = time_param(req, "from")?.unwrap_or(to.saturating_sub(DAY_NS));
    if from >= to {
        return Err(ApiError::BadRequest("from: must be before to".into()));
    }
    let listing = ctx.store.segments(&camera)?;
    let segments = listing.segments;
    let mut spans = SpanBuilder::default();
    let mut listed = Vec::new();
    let mut problems: Vec<String> = listing
        .quarantined
        .iter()
        .map(|q| format!("{q}: quarantined as unreadable"))
        .chain(
            listing
                .strays
                .iter()
                .map(|s| format!("{s}: not a regular file; never read")),
        )
        .collect();
    for i in query::candidate_segments(&segments, from, to) {
        let entry = &segments[i];
        let summary = match summarize(ctx, &camera, entry) {
            Ok(s) => s,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        let inside: Vec<Span> = summary
            .spans
            .iter()
            .filter(|s| s.end_ns >= from && s.start_ns < to)
            .copied()
            .collect();
        if inside.is_empty() {
            continue;
        }
        for s in &inside {
            spans.extend(*s);
        }
        listed.push(SegmentAnswer {
            name: entry.name.clone(),
            start: format_rfc3339_ms(summary.spans.first().map_or(0, |s| s.start_ns)),
            end: format_rfc3339_ms(summary.spans.last().map_or(0, |s| s.end_ns)),
            frames: summary.frames as u64,
            bytes: ctx.store.segment_bytes(entry),
            closed: summary.closed,
            protected: entry.protected,
        });
    }
    let spans = spans
        .spans
        .iter()
        .map(|s| SpanAnswer {
            start: format_rfc3339_ms(s.start_ns),
            end: format_rfc3339_ms(s.end_ns),
            frames: s.frames,
            estimated: s.estimated,
        })
        .collect();
    let answer = RecordingsAnswer {
        camera,
        from: format_rfc3339_ms(from),
        to: format_rfc3339_ms(to),
        spans,
        segments: listed,
        problems,
    };
    Ok(Response::json(200, &answer))
}

/// The spans of one segment: from the writer for the open segment, from a
/// cache for the others (they no longer change), else by reading its index.
fn summarize(
    ctx: &ApiContext,
    camera: &str,
    entry: &SegmentEntry,
) -> Result<SegmentSummary, StoreError> {
    {
        let stats = ctx.store.camera_stats(camera);
        let open = stats.open_segment();
        if open.name.as_deref() == Some(entry.name.as_str()) {
            return Ok(SegmentSummary {
                frames: open.spans.spans.iter().map(|s| s.frames as usize).sum(),
                spans: open.spans.spans.clone(),
                closed: false,
            });
        }
    }
    // A relabelling (the clock set by a phone or GPS) changes wall times
    // without changing the file.
    let generation = ctx.store.relabel_generation();
    let mut cache = ctx.summaries.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((len, made_at, s)) = cache.get(&entry.path) {
        if *len == entry.len && *made_at == generation {
            return Ok(s.clone());
        }
    }
    drop(cache);
    let reader = ctx.store.open_segment(entry)?;
    let summary = SegmentSummary {
        frames: reader.frames.len(),
        spans: query::spans_of(&reader.frames),
        closed: reader.closed,
    };
    cache = ctx.summaries.lock().unwrap_or_else(|e| e.into_inner());
    // Forget deleted segments now and then so the cache stays bounded.
    if cache.len() > 20_000 {
        cache.clear();
    }
    cache.insert(entry.path.clone(), (entry.len, generation, summary.clone()));
    Ok(summary)
}

/// Every stored segment, each with a signed download link valid for
/// [`auth::LINK_TTL_DEFAULT_S`].
pub fn videos(ctx: &ApiContext, _: &Request) -> ApiResult {
    let all = ctx.store.all_segments()?;
    let videos = all
        .iter()
        .map(|s| {
            let download = format!(
                "/api/video/download?camera={}&name={}",
                names::percent_encode(&s.camera),
                names::percent_encode(&s.name)
            );
            VideoAnswer {
                camera: s.camera.clone(),
                name: s.name.clone(),
                size: ctx.store.segment_bytes(s),
                start: query::label_start_ns(s).map(format_rfc3339),
                protected: s.protected,
                // Signed, so a player or a Dash of Pi client can open it
                // without the token in the URL.
                download: ctx
                    .auth
                    .sign_link(&download, auth::LINK_TTL_DEFAULT_S)
                    .map_or(download, |l| l.url),
            }
        })
        .collect();
    Ok(Response::json(200, &VideosAnswer { videos }))
}

/// One segment as concatenated JPEGs (`.mjpeg`), which ffplay and VLC open.
pub fn video_download(ctx: &ApiContext, req: &Request) -> ApiResult {
    let camera = ctx.camera_param(req, false)?;
    let name = req
        .param("name")
        .or_else(|| req.param("file"))
        .ok_or_else(|| ApiError::BadRequest("name: missing".into()))?;
    // Only names listed in the camera's folder are served: no path tricks.
    let segments = ctx.store.segments(&camera)?.segments;
    let entry = segments
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| {
            ApiError::NotFound(format!("name: no segment '{name}' for camera '{camera}'"))
        })?;
    let reader = ctx.store.open_segment(&entry)?;
    // Every frame is checked before the answer starts, so the length sent
    // is the length of what follows; damage is refused up front, named.
    let mut len = 0u64;
    for i in 0..reader.frames.len() {
        match reader.read_frame(i) {
            Ok(jpeg) => len += jpeg.len() as u64,
            Err(e) => {
                return Err(ApiError::Conflict(format!(
                    "segment '{name}' of camera '{camera}' is damaged ({e}); export its time range instead, which leaves out the damaged frames"
                )))
            }
        }
    }
    let file_name = format!("{camera}_{}.mjpeg", entry.start_label());
    let disposition = names::attachment(&file_name);
    Ok(Response::new(
        200,
        "video/x-motion-jpeg",
        Body::Sized {
            len,
            write: Box::new(move |out| {
                for i in 0..reader.frames.len() {
                    let jpeg = reader.read_frame(i).map_err(std::io::Error::other)?;
                    out.write_all(&jpeg)?;
                }
                Ok(())
            }),
        },
    )
    .with_header("Content-Disposition", disposition))
}
