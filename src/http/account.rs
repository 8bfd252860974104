//! Who is asking: `POST /api/login` and `/api/logout`, `GET /api/session`
//! (the CSRF token), `POST /api/auth/rotate` (a new token) and
//! `POST /api/links` (signed links for players).

use serde_json::Value;

use crate::clock::format_rfc3339;

use super::answers::{LinkAnswer, OkAnswer, RotateAnswer, SessionAnswer};
use super::auth::{self, Verdict};
use super::context::{ApiContext, ApiError, ApiResult};
use super::server::{Request, Response};

/// A session for the token in a JSON body (`{"token": "..."}`), which the
/// login page sends with `fetch`: a form from another site cannot send
/// JSON (`body_type`), so it cannot even spend the owner's wrong guesses.
pub fn login(ctx: &ApiContext, req: &Request) -> ApiResult {
    let presented = token_in_body(req)
        .ok_or_else(|| ApiError::BadRequest("token: missing; send {\"token\": \"...\"}".into()))?;
    match ctx.auth.login(req.peer, &presented) {
        Ok(id) => Ok(Response::json(200, &OkAnswer { ok: true })
            .with_header("Set-Cookie", auth::session_cookie_header(&id))),
        Err(v) => Err(ApiError::from_verdict(v)),
    }
}

pub fn logout(ctx: &ApiContext, req: &Request) -> ApiResult {
    ctx.auth.logout(req);
    Ok(Response::json(200, &OkAnswer { ok: true })
        .with_header("Set-Cookie", auth::expired_cookie_header()))
}

/// The session of the request's cookie. A page on another site cannot read
/// this answer (no CORS header is ever sent), so the token it holds proves
/// that a request came from the dashboard.
pub fn session(ctx: &ApiContext, req: &Request) -> ApiResult {
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
pub fn rotate_token(ctx: &ApiContext, req: &Request) -> ApiResult {
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
    let answer = RotateAnswer {
        fingerprint: auth::fingerprint(&token),
        token,
    };
    Ok(Response::json(200, &answer)
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

/// A signed link to a route that players open on their own. The router
/// says which those are: `linkable` names them, `is_linkable` matches a
/// path against them.
pub fn sign_link(
    ctx: &ApiContext,
    req: &Request,
    linkable: &[&str],
    is_linkable: impl Fn(&str) -> bool,
) -> ApiResult {
    let asked: LinkRequest = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::BadRequest(format!("body: {e}; send {{\"url\": \"/api/...\"}}")))?;
    let path = asked.url.split('?').next().unwrap_or_default();
    if !is_linkable(path) {
        return Err(ApiError::BadRequest(format!(
            "url: {path:?} cannot be opened by a link; links open {}",
            linkable.join(", ")
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
    let answer = LinkAnswer {
        url: link.url,
        expires: format_rfc3339(link.expires_wall_ns),
        ttl_s,
    };
    Ok(Response::json(200, &answer).with_header("Cache-Control", "no-store"))
}
