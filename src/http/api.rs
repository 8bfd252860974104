//! The routes: one table says which handler answers, and whether it needs
//! authentication. Handlers live in their own modules and share `context`.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use crate::clock::{format_rfc3339, format_rfc3339_ms};
use crate::store::catalog::SegmentEntry;
use crate::store::query::{self, Span, SpanBuilder};
use crate::store::StoreError;

use super::assets;
use super::auth::{self, Verdict};
use super::context::SegmentSummary;
pub use super::context::{time_param, ApiContext, ApiError, ApiResult};
use super::names;
use super::server::{Body, Handler, Request, Response};
use super::stream;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Public,
    /// Needs the token or a session.
    Token,
    /// Needs the token or a session, or a signed link to this very URL
    /// (`POST /api/links`): what a player or a download opens on its own.
    Link,
}

pub struct Route {
    pub method: &'static str,
    /// Exact path, or a prefix when it ends with `/*`.
    pub path: &'static str,
    pub access: Access,
    pub handler: fn(&ApiContext, &Request) -> ApiResult,
}

/// Every route the service answers. `GET` routes also answer `HEAD`.
pub const ROUTES: &[Route] = &[
    route("GET", "/health", Access::Public, health),
    route("GET", "/login", Access::Public, login_page),
    route("POST", "/api/login", Access::Public, login),
    route("POST", "/api/logout", Access::Token, logout),
    route("GET", "/api/session", Access::Token, session),
    route("GET", "/", Access::Token, dashboard),
    route("GET", "/assets/*", Access::Token, asset),
    route("GET", "/api/status", Access::Token, status),
    route("GET", "/api/cameras", Access::Token, cameras),
    route("GET", "/api/cameras/*", Access::Token, camera),
    route("GET", "/api/recordings", Access::Token, recordings),
    route("GET", "/api/videos", Access::Token, videos),
    route("GET", "/api/video/download", Access::Link, video_download),
    route("GET", "/api/stream/frame", Access::Link, stream::live_frame),
    route("GET", "/api/snapshot", Access::Link, stream::snapshot),
    route("GET", "/api/stream/mjpeg", Access::Link, stream::live_mjpeg),
    route("GET", "/api/frame", Access::Link, stream::recorded_frame),
    route("GET", "/api/playback", Access::Link, stream::playback),
    route(
        "GET",
        "/api/export.mp4",
        Access::Link,
        super::export::export_mp4,
    ),
    route("GET", "/api/clock", Access::Token, super::clock::get_clock),
    route("POST", "/api/clock", Access::Token, super::clock::set_clock),
    route("POST", "/api/lock", Access::Token, super::incidents::lock),
    route(
        "GET",
        "/api/incidents",
        Access::Token,
        super::incidents::list,
    ),
    route("GET", "/api/config", Access::Token, config),
    route("POST", "/api/auth/rotate", Access::Token, rotate_token),
    route("POST", "/api/links", Access::Token, sign_link),
];

const fn route(
    method: &'static str,
    path: &'static str,
    access: Access,
    handler: fn(&ApiContext, &Request) -> ApiResult,
) -> Route {
    Route {
        method,
        path,
        access,
        handler,
    }
}

impl Route {
    fn matches_path(&self, path: &str) -> bool {
        match self.path.strip_suffix('*') {
            Some(prefix) => path.len() > prefix.len() && path.starts_with(prefix),
            None => self.path == path,
        }
    }
}

impl Handler for ApiContext {
    fn handle(&self, req: &Request) -> Response {
        if let Err(e) = super::host::check(req, &self.config) {
            return e.response();
        }
        let method = if req.method == "HEAD" {
            "GET"
        } else {
            req.method.as_str()
        };
        let on_path: Vec<&Route> = ROUTES
            .iter()
            .filter(|r| r.matches_path(&req.path))
            .collect();
        let Some(route) = on_path.iter().find(|r| r.method == method) else {
            let error = if on_path.is_empty() {
                ApiError::NotFound(format!("no route {}", req.path))
            } else {
                ApiError::MethodNotAllowed(format!("{} is not allowed on {}", req.method, req.path))
            };
            return error.response();
        };
        if let Err(e) = super::body_type::check(req) {
            return e.response();
        }
        if route.access != Access::Public {
            let mut verdict = self.auth.check(req);
            if verdict != Verdict::Allowed && route.access == Access::Link {
                verdict = self.auth.check_link(req).unwrap_or(verdict);
            }
            let denied = match verdict {
                Verdict::Allowed => None,
                other => Some(ApiError::from_verdict(other)),
            };
            if let Some(e) = denied {
                // People opening the dashboard are sent to the login page.
                if req.path == "/" && matches!(e, ApiError::Unauthorized(_)) {
                    return redirect("/login");
                }
                return e.response();
            }
        }
        let answer = (route.handler)(self, req).unwrap_or_else(|e| e.response());
        // The server keeps room for connections that proved who they are.
        if route.access == Access::Token {
            answer.authenticated()
        } else {
            answer
        }
    }
}

fn redirect(to: &str) -> Response {
    Response::new(303, "text/plain", Body::Empty).with_header("Location", to)
}

fn health(ctx: &ApiContext, _: &Request) -> ApiResult {
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

fn login_page(_: &ApiContext, _: &Request) -> ApiResult {
    assets::page("login.html")
}

fn dashboard(_: &ApiContext, _: &Request) -> ApiResult {
    assets::page("index.html")
}

fn asset(_: &ApiContext, req: &Request) -> ApiResult {
    assets::file(req.path.trim_start_matches("/assets/"))
}

/// A session for the token in a JSON body (`{"token": "..."}`), which the
/// login page sends with `fetch`: a form from another site cannot send
/// JSON (`body_type`), so it cannot even spend the owner's wrong guesses.
fn login(ctx: &ApiContext, req: &Request) -> ApiResult {
    let presented = token_in_body(req)
        .ok_or_else(|| ApiError::BadRequest("token: missing; send {\"token\": \"...\"}".into()))?;
    match ctx.auth.login(req.peer, &presented) {
        Ok(id) => Ok(Response::json(200, &json!({"ok": true}))
            .with_header("Set-Cookie", auth::session_cookie_header(&id))),
        Err(v) => Err(ApiError::from_verdict(v)),
    }
}

fn logout(ctx: &ApiContext, req: &Request) -> ApiResult {
    ctx.auth.logout(req);
    Ok(Response::json(200, &json!({"ok": true}))
        .with_header("Set-Cookie", auth::expired_cookie_header()))
}

/// What `GET /api/session` answers: the CSRF token to send as
/// `X-CSRF-Token` with every POST, and when the session ends.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SessionAnswer {
    pub csrf: String,
    /// RFC 3339.
    pub expires: String,
}

/// The session of the request's cookie. A page on another site cannot read
/// this answer (no CORS header is ever sent), so the token it holds proves
/// that a request came from the dashboard.
fn session(ctx: &ApiContext, req: &Request) -> ApiResult {
    let (csrf, expires_s) = ctx.auth.session_of(req).ok_or_else(|| {
        ApiError::BadRequest(
            "no session: this request came with Authorization: Bearer, which needs no CSRF token"
                .into(),
        )
    })?;
    let answer = SessionAnswer {
        csrf,
        expires: format_rfc3339(expires_s.saturating_mul(1_000_000_000)),
    };
    Ok(Response::json(200, &answer).with_header("Cache-Control", "no-store"))
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

fn status(ctx: &ApiContext, _: &Request) -> ApiResult {
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

fn cameras(ctx: &ApiContext, _: &Request) -> ApiResult {
    Ok(Response::json(200, &camera_values(ctx)))
}

fn camera(ctx: &ApiContext, req: &Request) -> ApiResult {
    let id = req.path.trim_start_matches("/api/cameras/");
    camera_values(ctx)
        .into_iter()
        .find(|c| c["id"] == json!(id))
        .map(|c| Response::json(200, &c))
        .ok_or_else(|| ApiError::NotFound(format!("no camera '{id}'")))
}

const DAY_NS: i64 = 24 * 3600 * 1_000_000_000;

fn recordings(ctx: &ApiContext, req: &Request) -> ApiResult {
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
        listed.push(json!({
            "name": entry.name,
            "start": format_rfc3339_ms(summary.spans.first().map_or(0, |s| s.start_ns)),
            "end": format_rfc3339_ms(summary.spans.last().map_or(0, |s| s.end_ns)),
            "frames": summary.frames,
            "bytes": ctx.store.segment_bytes(entry),
            "closed": summary.closed,
            "protected": entry.protected,
        }));
    }
    let spans: Vec<Value> = spans
        .spans
        .iter()
        .map(|s| json!({"start": format_rfc3339_ms(s.start_ns), "end": format_rfc3339_ms(s.end_ns), "frames": s.frames, "estimated": s.estimated}))
        .collect();
    Ok(Response::json(
        200,
        &json!({
            "camera": camera,
            "from": format_rfc3339_ms(from),
            "to": format_rfc3339_ms(to),
            "spans": spans,
            "segments": listed,
            "problems": problems,
        }),
    ))
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
    let mut cache = ctx.summaries.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((len, s)) = cache.get(&entry.path) {
        if *len == entry.len {
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
    cache.insert(entry.path.clone(), (entry.len, summary.clone()));
    Ok(summary)
}

/// Every stored segment, each with a signed download link valid for
/// [`auth::LINK_TTL_DEFAULT_S`].
fn videos(ctx: &ApiContext, _: &Request) -> ApiResult {
    let all = ctx.store.all_segments()?;
    let list: Vec<Value> = all
        .iter()
        .map(|s| {
            let download = format!(
                "/api/video/download?camera={}&name={}",
                names::percent_encode(&s.camera),
                names::percent_encode(&s.name)
            );
            json!({
                "camera": s.camera,
                "name": s.name,
                "size": ctx.store.segment_bytes(s),
                "start": query::label_start_ns(s).map(format_rfc3339),
                "protected": s.protected,
                // Signed, so a player or a Dash of Pi client can open it
                // without the token in the URL.
                "download": ctx.auth.sign_link(&download, auth::LINK_TTL_DEFAULT_S)
                    .map_or(download, |l| l.url),
            })
        })
        .collect();
    Ok(Response::json(200, &json!({ "videos": list })))
}

/// One segment as concatenated JPEGs (`.mjpeg`), which ffplay and VLC open.
fn video_download(ctx: &ApiContext, req: &Request) -> ApiResult {
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

/// What `/api/config` shows for a secret that is set.
pub const REDACTED: &str = "(set)";

/// The running config without its secrets: the token and the Wi-Fi
/// password read `(set)` when they are set.
fn config(ctx: &ApiContext, _: &Request) -> ApiResult {
    let mut c = ctx.config.clone();
    if c.auth_token.is_some() {
        c.auth_token = Some(REDACTED.into());
    }
    if let Some(pw) = c.wifi.as_mut().and_then(|w| w.password.as_mut()) {
        *pw = REDACTED.into();
    }
    Ok(Response::json(200, &c))
}

/// The token from a JSON body `{"token": "..."}`.
fn token_in_body(req: &Request) -> Option<String> {
    serde_json::from_slice::<Value>(&req.body)
        .ok()
        .and_then(|v| v.get("token")?.as_str().map(str::to_string))
}

/// A new token; needs the current one in the body (`{"token": "..."}`), so
/// a session left open on a phone cannot lock its owner out. Every session
/// and signed link ends, this one's too. The answer holds the new token,
/// once.
fn rotate_token(ctx: &ApiContext, req: &Request) -> ApiResult {
    let presented = token_in_body(req).ok_or_else(|| {
        ApiError::BadRequest("token: missing; send the current token to confirm".into())
    })?;
    match ctx.auth.confirm(req.peer, &presented) {
        Verdict::Allowed => {}
        other => return Err(ApiError::from_verdict(other)),
    }
    let token = ctx
        .auth
        .rotate()
        .map_err(|e| ApiError::Conflict(e.to_string()))?;
    Ok(Response::json(
        200,
        &json!({"token": token, "fingerprint": auth::fingerprint(&token)}),
    )
    .with_header("Cache-Control", "no-store")
    .with_header("Set-Cookie", auth::expired_cookie_header()))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    /// The path and query to open, e.g. `/api/export.mp4?camera=front&...`.
    url: String,
    ttl_s: Option<u64>,
}

/// A signed link to a route that players open on their own (`Access::Link`).
fn sign_link(ctx: &ApiContext, req: &Request) -> ApiResult {
    let asked: LinkRequest = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::BadRequest(format!("body: {e}; send {{\"url\": \"/api/...\"}}")))?;
    let path = asked.url.split('?').next().unwrap_or_default();
    let linkable = ROUTES
        .iter()
        .any(|r| r.access == Access::Link && r.matches_path(path));
    if !linkable {
        return Err(ApiError::BadRequest(format!(
            "url: {path:?} cannot be opened by a link; links open {}",
            ROUTES
                .iter()
                .filter(|r| r.access == Access::Link)
                .map(|r| r.path)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let ttl_s = asked.ttl_s.unwrap_or(auth::LINK_TTL_DEFAULT_S);
    if !(1..=auth::LINK_TTL_MAX_S).contains(&ttl_s) {
        return Err(ApiError::BadRequest(format!(
            "ttl_s: {ttl_s} is not allowed; use 1 to {}",
            auth::LINK_TTL_MAX_S
        )));
    }
    let link = ctx.auth.sign_link(&asked.url, ttl_s).ok_or_else(|| {
        ApiError::Unavailable("signed links are off: the recorder has no key".into())
    })?;
    Ok(Response::json(
        200,
        &json!({"url": link.url, "expires": format_rfc3339(link.expires_wall_ns), "ttl_s": ttl_s}),
    )
    .with_header("Cache-Control", "no-store"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_routes_need_something_after_the_prefix() {
        let r = route("GET", "/assets/*", Access::Token, asset);
        assert!(r.matches_path("/assets/app.js"));
        assert!(!r.matches_path("/assets/"));
        assert!(!r.matches_path("/assetsx"));
    }

    #[test]
    fn only_health_and_login_are_public() {
        let public: Vec<&str> = ROUTES
            .iter()
            .filter(|r| r.access == Access::Public)
            .map(|r| r.path)
            .collect();
        assert_eq!(public, ["/health", "/login", "/api/login"]);
    }

    #[test]
    fn every_route_that_changes_something_needs_credentials_but_login() {
        // Auth::check asks a session for its CSRF proof on every method but
        // GET and HEAD: no such route may be public, /api/login aside.
        let public_changes: Vec<&str> = ROUTES
            .iter()
            .filter(|r| r.method != "GET" && r.access == Access::Public)
            .map(|r| r.path)
            .collect();
        assert_eq!(public_changes, ["/api/login"]);
    }

    #[test]
    fn links_open_only_what_players_and_downloads_fetch() {
        let linkable: Vec<&str> = ROUTES
            .iter()
            .filter(|r| r.access == Access::Link)
            .map(|r| r.path)
            .collect();
        assert_eq!(
            linkable,
            [
                "/api/video/download",
                "/api/stream/frame",
                "/api/snapshot",
                "/api/stream/mjpeg",
                "/api/frame",
                "/api/playback",
                "/api/export.mp4"
            ]
        );
        assert!(ROUTES
            .iter()
            .filter(|r| r.access == Access::Link)
            .all(|r| r.method == "GET"));
    }
}
