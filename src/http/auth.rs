//! Who may use the API: the device token, login sessions, signed links, and
//! a slowdown for wrong tokens.
//!
//! The token (256 random bits, hex) lives in `dashvault.token` beside the
//! config, mode 0600, unless the config sets `auth_token`. A session is a
//! signed cookie (`session`): it outlasts a restart or a power cycle, for 7
//! days, until a logout or a rotation. Comparisons are constant-time.
//!
//! Invariants:
//! - Valid credentials always pass the slowdown: it is consulted only after a
//!   token has been found wrong, so no amount of wrong attempts, from any
//!   address, can refuse the owner's session cookie or the right token.
//! - A request that changes something (any method but GET and HEAD) and is
//!   let in by its session cookie must also prove it comes from the
//!   dashboard: an `X-CSRF-Token` header equal to its session's CSRF token,
//!   or an `Origin` equal to `http://` and its own `Host`. A cookie is sent
//!   along with a form that another site posts here; neither of those is.
//!   `Authorization: Bearer` needs no such proof: another site's page cannot
//!   send that header without a CORS preflight, which is never granted.
//! - The token is accepted only from `Authorization: Bearer` and the login
//!   form, never from a URL (URLs end up in histories, logs and `Referer`).
//!   A URL that a player must open on its own carries a signed link instead:
//!   an HMAC-SHA256, under a key that lives in memory, over the path, the
//!   query and an expiry. A link opens only that URL, only until it expires,
//!   and not after a restart or a token rotation. (Its expiry is read on the
//!   monotonic clock, which starts again at every boot, so its key is not
//!   kept on disk like the session key.)
//! - Wrong tokens are counted per address (a backoff) and all together (a
//!   cap per minute), so addresses that rotate gain nothing.
//! - Rotating the token ends every session and every signed link: a new
//!   session key is written before the new token, so a cut between the two
//!   ends the sessions and keeps the old token, never the other way round.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::clock::Clock;

use super::random::{hex, random_bytes, random_hex};
use super::server::Request;
use super::session::{self, Session, Sessions, SESSION_TTL_S};

pub const TOKEN_FILE_NAME: &str = "dashvault.token";
pub const SESSION_COOKIE: &str = "dashvault_session";
/// The header that carries a session's CSRF token (lower case, as the
/// server stores header names).
pub const CSRF_HEADER: &str = "x-csrf-token";
const TOKEN_BYTES: usize = 32;
/// Wrong tokens allowed from one address before its wrong tokens are
/// answered 429.
const FREE_ATTEMPTS: u32 = 5;
const BACKOFF_MAX_S: u64 = 60;
/// Wrong tokens allowed from all addresses together in one minute; past it,
/// every wrong token is answered 429 until the minute is over.
pub const FAILURES_PER_MINUTE_MAX: u32 = 30;
const MINUTE_NS: u64 = 60 * NS_PER_S;
/// Addresses remembered for the backoff; the oldest is forgotten first (the
/// cap per minute still counts them).
const FAILURE_ADDRESSES_MAX: usize = 1024;
const NS_PER_S: u64 = 1_000_000_000;
/// Query parameters of a signed link.
pub const LINK_EXPIRY_PARAM: &str = "exp";
pub const LINK_SIGNATURE_PARAM: &str = "sig";
pub const LINK_TTL_DEFAULT_S: u64 = 3600;
pub const LINK_TTL_MAX_S: u64 = 24 * 3600;

type HmacSha256 = Hmac<Sha256>;

/// What may be shown of a token: the first 8 hex digits of its SHA-256.
/// It tells two tokens apart without helping anyone guess either.
pub fn fingerprint(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes())[..4])
}

/// Where the token in use came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    Config,
    File(PathBuf),
    Created(PathBuf),
    /// The file could not be written (read-only folder): valid until restart.
    Ephemeral(String),
}

/// The token from the config, else from the token file, else a new one
/// written to the token file with mode 0600.
pub fn load_or_create_token(
    config_dir: &Path,
    configured: Option<&str>,
) -> io::Result<(String, TokenSource)> {
    if let Some(t) = configured.filter(|t| !t.trim().is_empty()) {
        return Ok((t.trim().to_string(), TokenSource::Config));
    }
    let path = config_dir.join(TOKEN_FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => {
            return Ok((s.trim().to_string(), TokenSource::File(path)))
        }
        Ok(_) => {
            return Err(io::Error::other(format!(
                "{} is empty; delete it to get a new token",
                path.display()
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = random_hex(TOKEN_BYTES)?;
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| {
            f.write_all(format!("{token}\n").as_bytes())?;
            f.sync_all()
        });
    match written {
        Ok(()) => Ok((token, TokenSource::Created(path))),
        Err(e) => Ok((
            token,
            TokenSource::Ephemeral(format!("cannot write {}: {e}", path.display())),
        )),
    }
}

/// Where a rotated token is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenHome {
    /// The token file: rotation replaces it atomically (0600).
    File(PathBuf),
    /// The config's `auth_token` sets the token: rotation is refused, since
    /// the next start would read the old one again.
    Config(PathBuf),
    /// Nowhere (tests, a token that could not be saved): rotation is refused.
    Memory,
}

impl TokenHome {
    /// Where the token of `source` lives; `config_path` names the config.
    pub fn of(source: &TokenSource, config_path: &Path) -> TokenHome {
        match source {
            TokenSource::Config => TokenHome::Config(config_path.to_path_buf()),
            TokenSource::File(p) | TokenSource::Created(p) => TokenHome::File(p.clone()),
            TokenSource::Ephemeral(_) => TokenHome::Memory,
        }
    }
}

/// Why a rotation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("the token is set by auth_token in {0}; rotate it there (put a new random value of 32 or more hex digits, then restart)")]
    SetByConfig(PathBuf),
    #[error("this token is not kept in a file, so a new one would be lost at restart; nothing was changed")]
    NotKept,
    #[error("cannot write {path}: {source}; the old token stays valid")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot make a new token: {0}")]
    Random(io::Error),
}

/// Makes a new token and writes it to the token file atomically, mode 0600,
/// after a new session key beside it (so every session ends). Returns the
/// new token. Does not touch a running service (see [`Auth::rotate`]).
pub fn rotate_token_file(home: &TokenHome) -> Result<String, RotateError> {
    rotate_files(home).map(|(token, _)| token)
}

/// [`rotate_token_file`], also returning the new session key.
fn rotate_files(
    home: &TokenHome,
) -> Result<(String, [u8; session::SESSION_KEY_BYTES]), RotateError> {
    let path = match home {
        TokenHome::File(p) => p,
        TokenHome::Config(c) => return Err(RotateError::SetByConfig(c.clone())),
        TokenHome::Memory => return Err(RotateError::NotKept),
    };
    let token = random_hex(TOKEN_BYTES).map_err(RotateError::Random)?;
    let key = session::new_session_key().map_err(RotateError::Random)?;
    // The key first: a cut before the token is written leaves the old token
    // with every session ended, which is safe; the other order could leave
    // a new token with the old sessions still open.
    let dir = folder_of(path);
    session::write_key(dir, &key).map_err(|source| RotateError::Write {
        path: dir.join(session::SESSION_KEY_FILE_NAME),
        source,
    })?;
    crate::config::write_atomic(path, format!("{token}\n").as_bytes()).map_err(|source| {
        RotateError::Write {
            path: path.clone(),
            source,
        }
    })?;
    Ok((token, key))
}

/// The folder a file is in (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The result of checking a request's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// No credentials (or an unknown session): ask for a login.
    Missing,
    /// A wrong token was presented.
    Wrong,
    /// A wrong token, and too many of them lately (from this address or from
    /// everyone): wait this many seconds before trying again.
    SlowDown(u64),
    /// `?token=` in the URL: never accepted, whatever it holds.
    TokenInUrl,
    /// A signed link whose signature does not match, or that has expired.
    BadLink(&'static str),
    /// A session cookie on a request that changes something, without proof
    /// that the dashboard sent it (no right `X-CSRF-Token`, no own `Origin`):
    /// what a form posted from another site looks like.
    CrossSite,
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    blocked_until_ns: u64,
    last_ns: u64,
}

/// Wrong tokens: per address for the backoff, and all together per minute.
#[derive(Default)]
struct Throttle {
    per_address: HashMap<IpAddr, Failures>,
    minute_start_ns: u64,
    minute_failures: u32,
}

impl Throttle {
    /// Counts a wrong token from `peer` at `now`; returns the seconds to wait
    /// when `peer` or everyone together is over the limit.
    fn fail(&mut self, peer: IpAddr, now: u64) -> (u32, Option<u64>) {
        if now.saturating_sub(self.minute_start_ns) >= MINUTE_NS || self.minute_start_ns == 0 {
            if self.minute_failures > FAILURES_PER_MINUTE_MAX {
                log::warn!(
                    "{} wrong tokens in the last minute (the first {FAILURES_PER_MINUTE_MAX} were logged one by one)",
                    self.minute_failures
                );
            }
            self.minute_start_ns = now;
            self.minute_failures = 0;
        }
        self.minute_failures = self.minute_failures.saturating_add(1);
        if self.per_address.len() >= FAILURE_ADDRESSES_MAX && !self.per_address.contains_key(&peer)
        {
            if let Some(oldest) = self
                .per_address
                .iter()
                .min_by_key(|(_, f)| f.last_ns)
                .map(|(k, _)| *k)
            {
                self.per_address.remove(&oldest);
            }
        }
        let f = self.per_address.entry(peer).or_insert(Failures {
            count: 0,
            blocked_until_ns: 0,
            last_ns: now,
        });
        let address_wait =
            (f.blocked_until_ns > now).then(|| (f.blocked_until_ns - now).div_ceil(NS_PER_S));
        f.count = f.count.saturating_add(1);
        f.last_ns = now;
        if f.count >= FREE_ATTEMPTS {
            let wait_s = (1u64 << (f.count - FREE_ATTEMPTS).min(6)).min(BACKOFF_MAX_S);
            f.blocked_until_ns = f.blocked_until_ns.max(now + wait_s * NS_PER_S);
        }
        let global_wait = (self.minute_failures > FAILURES_PER_MINUTE_MAX)
            .then(|| (self.minute_start_ns + MINUTE_NS - now).div_ceil(NS_PER_S));
        let wait = match (address_wait, global_wait) {
            (Some(a), Some(g)) => Some(a.max(g)),
            (a, g) => a.or(g),
        };
        (f.count, wait)
    }

    fn succeed(&mut self, peer: IpAddr) {
        self.per_address.remove(&peer);
    }
}

pub struct Auth {
    token: RwLock<String>,
    home: TokenHome,
    /// Signs links; new at start and at every rotation. `None` when the
    /// kernel gave no randomness: then no link is made or accepted.
    link_key: RwLock<Option<[u8; 32]>>,
    clock: Arc<dyn Clock>,
    sessions: Sessions,
    throttle: Mutex<Throttle>,
}

fn new_link_key() -> Option<[u8; 32]> {
    match random_bytes(32) {
        Ok(b) => b.try_into().ok(),
        Err(e) => {
            log::error!("cannot make a key for signed links, so none will open: {e}");
            None
        }
    }
}

impl Auth {
    /// A token that stays as it is: rotation is refused, and sessions end
    /// at restart.
    pub fn new(token: String, clock: Arc<dyn Clock>) -> Auth {
        Auth::kept_in(token, TokenHome::Memory, clock)
    }

    /// A token kept in `home`, where a rotation writes the new one. Sessions
    /// are signed with the key in the same folder (the config's), so they
    /// outlast a restart; in memory for [`TokenHome::Memory`].
    pub fn kept_in(token: String, home: TokenHome, clock: Arc<dyn Clock>) -> Auth {
        let sessions = match &home {
            TokenHome::File(p) | TokenHome::Config(p) => {
                Sessions::open(folder_of(p), &token, wall_s(clock.as_ref()))
            }
            TokenHome::Memory => Sessions::in_memory(&token),
        };
        Auth {
            token: RwLock::new(token),
            home,
            link_key: RwLock::new(new_link_key()),
            clock,
            sessions,
            throttle: Mutex::default(),
        }
    }

    /// The session key file, when sessions outlast a restart.
    pub fn session_key_file(&self) -> Option<PathBuf> {
        self.sessions.key_file()
    }

    fn now_s(&self) -> i64 {
        wall_s(self.clock.as_ref())
    }

    /// The fingerprint of the token in use (never the token).
    pub fn token_fingerprint(&self) -> String {
        fingerprint(&self.token.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Checks, in this order, the session cookie (with its CSRF proof when
    /// the request changes something), `Authorization: Bearer`, and refuses
    /// `?token=`. Signed links are checked by [`Auth::check_link`].
    pub fn check(&self, req: &Request) -> Verdict {
        if let Some(session) = self.session(req) {
            if !changes_state(req) || self.sent_by_dashboard(req, &session) {
                return Verdict::Allowed;
            }
            if req.header("authorization").is_none() {
                return Verdict::CrossSite;
            }
        }
        if let Some(value) = req.header("authorization") {
            let presented = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .unwrap_or("");
            return self.judge(req.peer, presented.trim());
        }
        if req.param("token").is_some() {
            return Verdict::TokenInUrl;
        }
        Verdict::Missing
    }

    /// Checks a token typed into the login form; on success returns the
    /// value of a new session cookie.
    pub fn login(&self, peer: IpAddr, presented: &str) -> Result<String, Verdict> {
        match self.judge(peer, presented.trim()) {
            Verdict::Allowed => {}
            other => return Err(other),
        }
        self.sessions
            .new_cookie(self.now_s())
            .ok_or(Verdict::Missing)
    }

    /// Ends the request's session for good (it stays ended after a restart).
    pub fn logout(&self, req: &Request) {
        if let Some(session) = self.session(req) {
            self.sessions.revoke(&session, self.now_s());
        }
    }

    /// The CSRF token and expiry (Unix seconds) of the request's session;
    /// `None` when no valid session cookie came with it.
    pub fn session_of(&self, req: &Request) -> Option<(String, i64)> {
        let session = self.session(req)?;
        Some((self.sessions.csrf(&session)?, session.expires_s))
    }

    fn session(&self, req: &Request) -> Option<Session> {
        self.sessions.verify(session_cookie(req)?, self.now_s())
    }

    /// Whether a request with a valid session cookie proves that the
    /// dashboard sent it: its session's CSRF token in `X-CSRF-Token`, or an
    /// `Origin` that is this server (`http://` and the `Host` it was sent to).
    fn sent_by_dashboard(&self, req: &Request, session: &Session) -> bool {
        if let (Some(sent), Some(expected)) = (req.header(CSRF_HEADER), self.sessions.csrf(session))
        {
            if constant_time_eq::constant_time_eq(sent.trim().as_bytes(), expected.as_bytes()) {
                return true;
            }
        }
        match (req.header("origin"), req.header("host")) {
            (Some(origin), Some(host)) if !host.is_empty() => origin
                .strip_prefix("http://")
                .is_some_and(|o| o.eq_ignore_ascii_case(host.trim())),
            _ => false,
        }
    }

    /// Checks a token presented again to confirm a sensitive action (a
    /// rotation); wrong ones count like any other.
    pub fn confirm(&self, peer: IpAddr, presented: &str) -> Verdict {
        self.judge(peer, presented.trim())
    }

    /// A new token, kept where the old one was; every session and signed
    /// link ends. Returns the new token.
    pub fn rotate(&self) -> Result<String, RotateError> {
        let mut token = self.token.write().unwrap_or_else(|e| e.into_inner());
        let (new, key) = rotate_files(&self.home)?;
        self.sessions.adopt(key, &new);
        *token = new;
        *self.link_key.write().unwrap_or_else(|e| e.into_inner()) = new_link_key();
        log::warn!(
            "token rotated (now {}): every session and signed link has ended",
            fingerprint(&token)
        );
        Ok(token.clone())
    }

    /// Whether `presented` is the token. The slowdown is consulted only for
    /// a wrong token, so the right one always passes.
    fn judge(&self, peer: IpAddr, presented: &str) -> Verdict {
        let right = {
            let token = self.token.read().unwrap_or_else(|e| e.into_inner());
            constant_time_eq::constant_time_eq(presented.as_bytes(), token.as_bytes())
        };
        let mut throttle = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        if right {
            throttle.succeed(peer);
            return Verdict::Allowed;
        }
        let (count, wait) = throttle.fail(peer, self.clock.mono_ns());
        if throttle.minute_failures <= FAILURES_PER_MINUTE_MAX {
            log::warn!("wrong token from {peer} (attempt {count})");
        }
        match wait {
            Some(s) => Verdict::SlowDown(s),
            None => Verdict::Wrong,
        }
    }

    /// A signed link to `path_and_query` (a path, `?`, and the query as the
    /// client would send it), valid for `ttl_s` seconds from now.
    /// `None` when there is no key to sign with.
    pub fn sign_link(&self, path_and_query: &str, ttl_s: u64) -> Option<SignedLink> {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let expires_mono_s = self.clock.mono_ns() / NS_PER_S + ttl_s;
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k != LINK_EXPIRY_PARAM && k != LINK_SIGNATURE_PARAM && k != "token")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        pairs.push((LINK_EXPIRY_PARAM.into(), expires_mono_s.to_string()));
        let signed = signed_text(path, &pairs);
        let sig = self.signature(&signed)?;
        Some(SignedLink {
            url: format!("{signed}&{LINK_SIGNATURE_PARAM}={sig}"),
            expires_wall_ns: self.clock.wall_ns() + (ttl_s * NS_PER_S) as i64,
        })
    }

    /// `Some(Allowed)` for a request that carries a valid signed link,
    /// `Some(BadLink)` for one whose link is wrong or expired, `None` when it
    /// carries no link.
    pub fn check_link(&self, req: &Request) -> Option<Verdict> {
        let sig = req.param(LINK_SIGNATURE_PARAM)?;
        let pairs: Vec<(String, String)> = req
            .query
            .iter()
            .filter(|(k, _)| k != LINK_SIGNATURE_PARAM)
            .cloned()
            .collect();
        let Some(expected) = self.signature(&signed_text(&req.path, &pairs)) else {
            return Some(Verdict::BadLink(
                "signed links are off: the recorder has no key",
            ));
        };
        if !constant_time_eq::constant_time_eq(sig.as_bytes(), expected.as_bytes()) {
            return Some(Verdict::BadLink("this link's signature does not match: it was changed, or made before a restart or a token rotation"));
        }
        let expires_s = req
            .param(LINK_EXPIRY_PARAM)
            .and_then(|e| e.parse::<u64>().ok())
            .unwrap_or(0);
        if self.clock.mono_ns() / NS_PER_S >= expires_s {
            return Some(Verdict::BadLink("this link has expired; make a new one"));
        }
        Some(Verdict::Allowed)
    }

    fn signature(&self, text: &str) -> Option<String> {
        let key = (*self.link_key.read().unwrap_or_else(|e| e.into_inner()))?;
        // HMAC takes keys of any length: this never fails.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&key).ok()?;
        mac.update(text.as_bytes());
        Some(hex(&mac.finalize().into_bytes()))
    }
}

/// A URL that opens one route without the token, until it expires.
#[derive(Clone, Debug)]
pub struct SignedLink {
    /// Path and query, with `exp` and `sig` last.
    pub url: String,
    pub expires_wall_ns: i64,
}

/// What a link's signature covers: the path as sent, then the query
/// parameters (without `sig`) in their order, percent-encoded the one way
/// `form_urlencoded` does, so a link still matches after a client re-encodes
/// it (`%20` for `+`).
fn signed_text(path: &str, pairs: &[(String, String)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{path}?{query}")
}

/// Wall-clock Unix seconds, as the recorder believes them.
fn wall_s(clock: &dyn Clock) -> i64 {
    clock.wall_ns().div_euclid(NS_PER_S as i64)
}

/// Whether the request may change something: any method but GET and HEAD.
fn changes_state(req: &Request) -> bool {
    !matches!(req.method.as_str(), "GET" | "HEAD")
}

/// The session cookie's value from the `Cookie` header.
fn session_cookie(req: &Request) -> Option<&str> {
    req.header("cookie")?.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == SESSION_COOKIE).then_some(v)
    })
}

/// The `Set-Cookie` value for a new session.
pub fn session_cookie_header(value: &str) -> String {
    format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_TTL_S}")
}

/// The `Set-Cookie` value that ends a session.
pub fn expired_cookie_header() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimulatedClock;
    use std::time::Duration;

    const TOKEN: &str = "secret";

    fn request(peer: &str, headers: &[(&str, &str)], query: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: "/api/status".into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
            peer: peer.parse().unwrap(),
            http10: false,
        }
    }

    /// A request for `url` (path and query as a client sends it).
    fn get(url: &str) -> Request {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let mut r = request("10.0.0.1", &[], &[]);
        r.path = path.into();
        r.query = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        r
    }

    fn auth() -> (Auth, Arc<SimulatedClock>) {
        let clock = Arc::new(SimulatedClock::new(1_000_000_000, 0));
        (Auth::new(TOKEN.into(), clock.clone()), clock)
    }

    fn bearer(peer: &str, token: &str) -> Request {
        request(peer, &[("authorization", &format!("Bearer {token}"))], &[])
    }

    #[test]
    fn bearer_and_cookie_are_accepted() {
        let (a, _) = auth();
        assert_eq!(a.check(&bearer("10.0.0.1", TOKEN)), Verdict::Allowed);
        let id = a.login("10.0.0.1".parse().unwrap(), TOKEN).unwrap();
        let cookie = format!("theme=dark; {SESSION_COOKIE}={id}");
        let with_cookie = request("10.0.0.2", &[("cookie", &cookie)], &[]);
        assert_eq!(a.check(&with_cookie), Verdict::Allowed);
        a.logout(&with_cookie);
        assert_eq!(a.check(&with_cookie), Verdict::Missing);
        assert_eq!(a.check(&request("10.0.0.1", &[], &[])), Verdict::Missing);
    }

    /// A POST to /api/lock from `peer` with `headers`.
    fn post(headers: &[(&str, &str)]) -> Request {
        let mut r = request("10.0.0.1", headers, &[]);
        r.method = "POST".into();
        r.path = "/api/lock".into();
        r
    }

    #[test]
    fn a_session_changes_something_only_with_proof_that_the_dashboard_sent_it() {
        let (a, _) = auth();
        let value = a.login("10.0.0.1".parse().unwrap(), TOKEN).unwrap();
        let cookie = format!("{SESSION_COOKIE}={value}");
        let get = request("10.0.0.1", &[("cookie", &cookie)], &[]);
        assert_eq!(a.check(&get), Verdict::Allowed, "reading needs no proof");
        let (csrf, _) = a.session_of(&get).unwrap();
        let with = |extra: &[(&str, &str)]| {
            let mut headers = vec![("cookie", cookie.as_str()), ("host", "192.168.4.1")];
            headers.extend_from_slice(extra);
            a.check(&post(&headers))
        };
        assert_eq!(with(&[]), Verdict::CrossSite);
        assert_eq!(
            with(&[("origin", "http://evil.example")]),
            Verdict::CrossSite
        );
        assert_eq!(with(&[("origin", "null")]), Verdict::CrossSite);
        assert_eq!(
            with(&[("origin", "https://192.168.4.1")]),
            Verdict::CrossSite
        );
        assert_eq!(with(&[(CSRF_HEADER, "0123")]), Verdict::CrossSite);
        assert_eq!(with(&[(CSRF_HEADER, &csrf)]), Verdict::Allowed);
        assert_eq!(with(&[("origin", "http://192.168.4.1")]), Verdict::Allowed);
        assert_eq!(
            with(&[("authorization", &format!("Bearer {TOKEN}"))]),
            Verdict::Allowed,
            "the token needs no proof"
        );
        assert_eq!(
            with(&[("authorization", "Bearer nope")]),
            Verdict::Wrong,
            "a wrong token is judged as one"
        );
        assert_eq!(
            a.check(&post(&[("authorization", &format!("Bearer {TOKEN}"))])),
            Verdict::Allowed
        );
        // Another session's token is no proof.
        let other = a.login("10.0.0.2".parse().unwrap(), TOKEN).unwrap();
        let other_get = request(
            "10.0.0.2",
            &[("cookie", &format!("{SESSION_COOKIE}={other}"))],
            &[],
        );
        let (other_csrf, _) = a.session_of(&other_get).unwrap();
        assert_eq!(with(&[(CSRF_HEADER, &other_csrf)]), Verdict::CrossSite);
    }

    #[test]
    fn a_logout_needs_the_session_and_ends_only_it() {
        let (a, _) = auth();
        let one = format!(
            "{SESSION_COOKIE}={}",
            a.login("10.0.0.1".parse().unwrap(), TOKEN).unwrap()
        );
        let two = format!(
            "{SESSION_COOKIE}={}",
            a.login("10.0.0.1".parse().unwrap(), TOKEN).unwrap()
        );
        a.logout(&request("10.0.0.1", &[("cookie", &one)], &[]));
        assert_eq!(
            a.check(&request("10.0.0.1", &[("cookie", &one)], &[])),
            Verdict::Missing
        );
        assert_eq!(
            a.check(&request("10.0.0.1", &[("cookie", &two)], &[])),
            Verdict::Allowed
        );
    }

    #[test]
    fn a_token_in_the_url_is_refused() {
        let (a, _) = auth();
        let query = request("10.0.0.1", &[], &[("token", TOKEN)]);
        assert_eq!(a.check(&query), Verdict::TokenInUrl);
    }

    #[test]
    fn sessions_expire() {
        let (a, clock) = auth();
        let id = a.login("10.0.0.1".parse().unwrap(), TOKEN).unwrap();
        let cookie = format!("{SESSION_COOKIE}={id}");
        let req = request("10.0.0.1", &[("cookie", &cookie)], &[]);
        clock.advance(Duration::from_secs(SESSION_TTL_S + 1));
        assert_eq!(a.check(&req), Verdict::Missing);
    }

    #[test]
    fn repeated_wrong_tokens_slow_down_that_address_only() {
        let (a, clock) = auth();
        let wrong = bearer("10.0.0.9", "nope");
        for _ in 0..FREE_ATTEMPTS {
            assert_eq!(a.check(&wrong), Verdict::Wrong);
        }
        assert_eq!(a.check(&wrong), Verdict::SlowDown(1));
        assert_eq!(a.check(&bearer("10.0.0.10", "nope")), Verdict::Wrong);
        clock.advance(Duration::from_secs(5));
        assert_eq!(a.check(&wrong), Verdict::Wrong, "the wait is over");
        assert_eq!(a.check(&wrong), Verdict::SlowDown(4), "the wait doubles");
    }

    #[test]
    fn the_right_token_passes_from_an_address_that_is_slowed_down() {
        let (a, _) = auth();
        let wrong = bearer("10.0.0.9", "nope");
        for _ in 0..FREE_ATTEMPTS + 3 {
            a.check(&wrong);
        }
        assert!(matches!(a.check(&wrong), Verdict::SlowDown(_)));
        assert_eq!(a.check(&bearer("10.0.0.9", TOKEN)), Verdict::Allowed);
        assert!(a.login("10.0.0.9".parse().unwrap(), TOKEN).is_ok());
        assert_eq!(
            a.check(&wrong),
            Verdict::Wrong,
            "success forgets that address's failures"
        );
    }

    #[test]
    fn a_valid_cookie_passes_after_wrong_tokens_from_the_same_address() {
        let (a, _) = auth();
        let id = a.login("10.0.0.9".parse().unwrap(), TOKEN).unwrap();
        for _ in 0..FREE_ATTEMPTS + 3 {
            a.check(&bearer("10.0.0.9", "nope"));
        }
        let cookie = format!("{SESSION_COOKIE}={id}");
        let req = request("10.0.0.9", &[("cookie", &cookie)], &[]);
        assert_eq!(a.check(&req), Verdict::Allowed);
    }

    #[test]
    fn rotating_addresses_meet_the_cap_per_minute() {
        let (a, clock) = auth();
        let mut verdicts = Vec::new();
        for i in 0..FAILURES_PER_MINUTE_MAX + 5 {
            let peer = format!("fd00::{:x}", i + 1);
            verdicts.push(a.check(&bearer(&peer, "nope")));
        }
        let wrong = verdicts.iter().filter(|v| **v == Verdict::Wrong).count();
        assert_eq!(wrong, FAILURES_PER_MINUTE_MAX as usize);
        assert_eq!(verdicts.last(), Some(&Verdict::SlowDown(60)));
        // Still, the right token passes from a new address.
        assert_eq!(a.check(&bearer("fd00::ffff", TOKEN)), Verdict::Allowed);
        clock.advance(Duration::from_secs(61));
        assert_eq!(a.check(&bearer("fd00::fffe", "nope")), Verdict::Wrong);
    }

    #[test]
    fn a_signed_link_opens_only_its_url_until_it_expires() {
        let (a, clock) = auth();
        let link = a
            .sign_link("/api/export.mp4?camera=front&from=2026-01-01T00:00:00Z", 60)
            .unwrap();
        assert!(link
            .url
            .starts_with("/api/export.mp4?camera=front&from=2026-01-01T00%3A00%3A00Z&exp="));
        assert_eq!(a.check_link(&get(&link.url)), Some(Verdict::Allowed));
        let other = link.url.replace("camera=front", "camera=rear");
        assert!(matches!(
            a.check_link(&get(&other)),
            Some(Verdict::BadLink(_))
        ));
        let other_route = link.url.replace("/api/export.mp4", "/api/video/download");
        assert!(matches!(
            a.check_link(&get(&other_route)),
            Some(Verdict::BadLink(_))
        ));
        assert_eq!(a.check_link(&get("/api/export.mp4?camera=front")), None);
        clock.advance(Duration::from_secs(61));
        assert!(matches!(
            a.check_link(&get(&link.url)),
            Some(Verdict::BadLink(_))
        ));
    }

    #[test]
    fn rotation_ends_sessions_and_links_and_keeps_the_new_token() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (old, src) = load_or_create_token(dir.path(), None).unwrap();
        let clock = Arc::new(SimulatedClock::new(1_000_000_000, 0));
        let a = Auth::kept_in(old.clone(), TokenHome::of(&src, Path::new("c.json")), clock);
        let id = a.login("10.0.0.1".parse().unwrap(), &old).unwrap();
        let link = a.sign_link("/api/snapshot?camera=front", 60).unwrap();
        let key_file = dir.path().join(session::SESSION_KEY_FILE_NAME);
        assert_eq!(a.session_key_file(), Some(key_file.clone()));
        let old_key = std::fs::read_to_string(&key_file).unwrap();
        let returned = a.rotate().unwrap();
        assert_ne!(std::fs::read_to_string(&key_file).unwrap(), old_key);
        let path = dir.path().join(TOKEN_FILE_NAME);
        let new = std::fs::read_to_string(&path).unwrap().trim().to_string();
        assert_ne!(new, old);
        assert_eq!(returned, new);
        assert_eq!(a.token_fingerprint(), fingerprint(&new));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let cookie = format!("{SESSION_COOKIE}={id}");
        assert_eq!(
            a.check(&request("10.0.0.1", &[("cookie", &cookie)], &[])),
            Verdict::Missing
        );
        assert!(matches!(
            a.check_link(&get(&link.url)),
            Some(Verdict::BadLink(_))
        ));
        assert_eq!(a.check(&bearer("10.0.0.1", &old)), Verdict::Wrong);
        assert_eq!(a.check(&bearer("10.0.0.1", &new)), Verdict::Allowed);
    }

    #[test]
    fn rotation_is_refused_when_the_config_sets_the_token() {
        let clock = Arc::new(SimulatedClock::new(1_000_000_000, 0));
        let a = Auth::kept_in(
            TOKEN.into(),
            TokenHome::Config("/etc/dashvault.json".into()),
            clock,
        );
        let e = a.rotate().unwrap_err().to_string();
        assert!(
            e.contains("auth_token") && e.contains("/etc/dashvault.json"),
            "{e}"
        );
        assert_eq!(a.check(&bearer("10.0.0.1", TOKEN)), Verdict::Allowed);
    }

    #[test]
    fn a_fingerprint_is_8_hex_digits_of_the_sha256() {
        // SHA-256("abc") = ba7816bf...
        assert_eq!(fingerprint("abc"), "ba7816bf");
    }

    #[test]
    fn token_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (t1, src) = load_or_create_token(dir.path(), None).unwrap();
        assert_eq!(t1.len(), TOKEN_BYTES * 2);
        assert!(matches!(src, TokenSource::Created(_)));
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (t2, src) = load_or_create_token(dir.path(), None).unwrap();
        assert_eq!(t1, t2);
        assert!(matches!(src, TokenSource::File(_)));
        let (t3, src) = load_or_create_token(dir.path(), Some("fromconfig")).unwrap();
        assert_eq!((t3.as_str(), src), ("fromconfig", TokenSource::Config));
        assert_ne!(random_hex(32).unwrap(), random_hex(32).unwrap());
    }
}
