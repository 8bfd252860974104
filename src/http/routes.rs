//! The routes: one table says which handler answers each route and whether
//! it needs authentication, and [`Handler::handle`] applies the gates every
//! request passes before a handler sees it (host, body type, credentials,
//! CSRF). The router sits on top of the handler modules: it imports them,
//! they never import it.

use super::answers::Answer::{self, NotJson};
use super::answers::{
    json, CameraAnswer, ClockAnswer, ClockSetAnswer, ConfigAnswer, ExportEstimateAnswer,
    HealthAnswer, IncidentsAnswer, LinkAnswer, LockAnswer, OkAnswer, RecordingsAnswer,
    RotateAnswer, SessionAnswer, ShareJobAnswer, StatusAnswer, TrackAnswer, VideosAnswer,
};
use super::auth::Verdict;
use super::context::{ApiContext, ApiError, ApiResult};
use super::server::{Body, Handler, Request, Response};
use super::{account, assets, clock, export, incidents, recordings, share, stream, system, track};

use Access::{Link, Public, Token};

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
    /// What it answers when it succeeds.
    pub answer: Answer,
    pub handler: fn(&ApiContext, &Request) -> ApiResult,
}

/// Every route the service answers, with the type of its JSON answer.
/// `GET` routes also answer `HEAD`; every route may fail with
/// [`ErrorAnswer`](super::answers::ErrorAnswer).
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    route("GET",  "/health",             Public, json::<HealthAnswer>(),      system::health),
    route("GET",  "/login",              Public, NotJson,                     assets::login_page),
    route("POST", "/api/login",          Public, json::<OkAnswer>(),          account::login),
    route("POST", "/api/logout",         Token,  json::<OkAnswer>(),          account::logout),
    route("GET",  "/api/session",        Token,  json::<SessionAnswer>(),     account::session),
    route("GET",  "/",                   Token,  NotJson,                     assets::dashboard),
    route("GET",  "/assets/*",           Token,  NotJson,                     assets::asset),
    route("GET",  "/api/status",         Token,  json::<StatusAnswer>(),      system::status),
    route("GET",  "/api/cameras",        Token,  json::<Vec<CameraAnswer>>(), system::cameras),
    route("GET",  "/api/cameras/*",      Token,  json::<CameraAnswer>(),      system::camera),
    route("GET",  "/api/recordings",     Token,  json::<RecordingsAnswer>(),  recordings::recordings),
    route("GET",  "/api/videos",         Token,  json::<VideosAnswer>(),      recordings::videos),
    route("GET",  "/api/video/download", Link,   NotJson,                     recordings::video_download),
    route("GET",  "/api/stream/frame",   Link,   NotJson,                     stream::live_frame),
    route("GET",  "/api/snapshot",       Link,   NotJson,                     stream::snapshot),
    route("GET",  "/api/stream/mjpeg",   Link,   NotJson,                     stream::live_mjpeg),
    route("GET",  "/api/frame",          Link,   NotJson,                     stream::recorded_frame),
    route("GET",  "/api/playback",       Link,   NotJson,                     stream::playback),
    route("GET",  "/api/track",          Token,  json::<TrackAnswer>(),       track::track),
    route("GET",  "/api/export.mp4",     Link,   NotJson,                     export_mp4),
    route("GET",  "/api/export.gpx",     Link,   NotJson,                     track::export_gpx),
    route("GET",  "/api/export/estimate", Token, json::<ExportEstimateAnswer>(), share::estimate),
    route("POST", "/api/share",          Token,  json::<ShareJobAnswer>(),    share::start),
    route("GET",  "/api/share",          Token,  json::<ShareJobAnswer>(),    share::progress),
    route("POST", "/api/share/cancel",   Token,  json::<ShareJobAnswer>(),    share::cancel),
    route("GET",  "/api/share/clip/*",   Link,   NotJson,                     share::clip),
    route("GET",  "/api/clock",          Token,  json::<ClockAnswer>(),       clock::get_clock),
    route("POST", "/api/clock",          Token,  json::<ClockSetAnswer>(),    clock::set_clock),
    route("POST", "/api/lock",           Token,  json::<LockAnswer>(),        incidents::lock),
    route("GET",  "/api/incidents",      Token,  json::<IncidentsAnswer>(),   incidents::list),
    route("GET",  "/api/config",         Token,  json::<ConfigAnswer>(),      system::config),
    route("POST", "/api/auth/rotate",    Token,  json::<RotateAnswer>(),      account::rotate_token),
    route("POST", "/api/links",          Token,  json::<LinkAnswer>(),        sign_link),
];

const fn route(
    method: &'static str,
    path: &'static str,
    access: Access,
    answer: Answer,
    handler: fn(&ApiContext, &Request) -> ApiResult,
) -> Route {
    Route {
        method,
        path,
        access,
        answer,
        handler,
    }
}

impl Route {
    pub fn matches_path(&self, path: &str) -> bool {
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

/// `/api/export.mp4`: the lossless export, or with `format=h264` the
/// share clip of the range once made.
fn export_mp4(ctx: &ApiContext, req: &Request) -> ApiResult {
    match req.param("format") {
        None | Some("" | "mjpeg" | "lossless") => export::export_mp4(ctx, req),
        Some("h264") => share::export_h264(ctx, req),
        Some(other) => Err(ApiError::BadRequest(format!(
            "format: '{other}' is not an export format; use lossless (the default) or h264"
        ))),
    }
}

fn redirect(to: &str) -> Response {
    Response::new(303, "text/plain", Body::Empty).with_header("Location", to)
}

/// `POST /api/links`: the handler learns from the table which routes a
/// link may open.
fn sign_link(ctx: &ApiContext, req: &Request) -> ApiResult {
    let linkable: Vec<&Route> = ROUTES.iter().filter(|r| r.access == Access::Link).collect();
    let paths: Vec<&str> = linkable.iter().map(|r| r.path).collect();
    account::sign_link(ctx, req, &paths, |path| {
        linkable.iter().any(|r| r.matches_path(path))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_routes_need_something_after_the_prefix() {
        let r = route("GET", "/assets/*", Token, NotJson, assets::asset);
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
                "/api/export.mp4",
                "/api/export.gpx",
                "/api/share/clip/*"
            ]
        );
        assert!(ROUTES
            .iter()
            .filter(|r| r.access == Access::Link)
            .all(|r| r.method == "GET"));
    }
}
