//! Who may use the API: the device token, login sessions, and a slowdown for
//! clients that keep guessing.
//!
//! The token (256 random bits, hex) lives in `dashvault.token` beside the
//! config, mode 0600, unless the config sets `auth_token`. Sessions are
//! random ids held in memory, so a restart asks for the token again.
//! Comparisons are constant-time.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::clock::Clock;

use super::server::Request;

pub const TOKEN_FILE_NAME: &str = "dashvault.token";
pub const SESSION_COOKIE: &str = "dashvault_session";
const TOKEN_BYTES: usize = 32;
const SESSIONS_MAX: usize = 64;
pub const SESSION_TTL_S: u64 = 7 * 24 * 3600;
/// Wrong attempts allowed from one address before it must wait.
const FREE_ATTEMPTS: u32 = 5;
const SLOWDOWN_MAX_S: u64 = 60;
/// Addresses remembered for the slowdown; the oldest is forgotten first.
const FAILURE_ADDRESSES_MAX: usize = 1024;
const NS_PER_S: u64 = 1_000_000_000;

/// `bytes` random bytes from the kernel, as lower-case hex.
pub fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buf = vec![0u8; bytes];
    let mut filled = 0;
    while filled < bytes {
        // SAFETY: the pointer and length describe the unfilled part of `buf`.
        let n = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), bytes - filled, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            continue;
        }
        filled += n as usize;
    }
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
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

/// The result of checking a request's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// No credentials (or an unknown session): ask for a login.
    Missing,
    /// A wrong token was presented.
    Wrong,
    /// Too many wrong tokens from this address: wait this many seconds.
    SlowDown(u64),
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    blocked_until_ns: u64,
    last_ns: u64,
}

pub struct Auth {
    token: String,
    clock: Arc<dyn Clock>,
    /// Session id → expiry (monotonic ns).
    sessions: Mutex<HashMap<String, u64>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl Auth {
    pub fn new(token: String, clock: Arc<dyn Clock>) -> Auth {
        Auth {
            token,
            clock,
            sessions: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Checks `Authorization: Bearer`, then the session cookie, then the
    /// Dash of Pi style `?token=` parameter.
    pub fn check(&self, req: &Request) -> Verdict {
        if let Some(wait) = self.blocked(req.peer) {
            return Verdict::SlowDown(wait);
        }
        if let Some(value) = req.header("authorization") {
            let presented = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .unwrap_or("");
            return self.judge(req.peer, presented);
        }
        if let Some(id) = session_cookie(req) {
            if self.session_valid(id) {
                return Verdict::Allowed;
            }
        }
        if let Some(presented) = req.param("token") {
            return self.judge(req.peer, presented);
        }
        Verdict::Missing
    }

    /// Checks a token typed into the login form; on success returns a new
    /// session id for the cookie.
    pub fn login(&self, peer: IpAddr, presented: &str) -> Result<String, Verdict> {
        if let Some(wait) = self.blocked(peer) {
            return Err(Verdict::SlowDown(wait));
        }
        match self.judge(peer, presented.trim()) {
            Verdict::Allowed => {}
            other => return Err(other),
        }
        let id = random_hex(TOKEN_BYTES).map_err(|e| {
            log::error!("cannot make a session id: {e}");
            Verdict::Missing
        })?;
        let now = self.clock.mono_ns();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, expiry| *expiry > now);
        if sessions.len() >= SESSIONS_MAX {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, e)| **e)
                .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.clone(), now + SESSION_TTL_S * NS_PER_S);
        Ok(id)
    }

    pub fn logout(&self, req: &Request) {
        if let Some(id) = session_cookie(req) {
            self.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
        }
    }

    fn session_valid(&self, id: &str) -> bool {
        let now = self.clock.mono_ns();
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        // Looking up by hash is not constant-time, but ids are 256 random
        // bits: there is nothing to learn from timing a guess.
        sessions.get(id).is_some_and(|expiry| *expiry > now)
    }

    fn judge(&self, peer: IpAddr, presented: &str) -> Verdict {
        if constant_time_eq::constant_time_eq(presented.as_bytes(), self.token.as_bytes()) {
            self.failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&peer);
            return Verdict::Allowed;
        }
        let now = self.clock.mono_ns();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= FAILURE_ADDRESSES_MAX && !failures.contains_key(&peer) {
            if let Some(oldest) = failures
                .iter()
                .min_by_key(|(_, f)| f.last_ns)
                .map(|(k, _)| *k)
            {
                failures.remove(&oldest);
            }
        }
        let f = failures.entry(peer).or_insert(Failures {
            count: 0,
            blocked_until_ns: 0,
            last_ns: now,
        });
        f.count += 1;
        f.last_ns = now;
        if f.count >= FREE_ATTEMPTS {
            let wait_s = (1u64 << (f.count - FREE_ATTEMPTS).min(6)).min(SLOWDOWN_MAX_S);
            f.blocked_until_ns = now + wait_s * NS_PER_S;
        }
        log::warn!("wrong token from {peer} (attempt {})", f.count);
        Verdict::Wrong
    }

    /// Seconds `peer` must still wait, if it is being slowed down.
    fn blocked(&self, peer: IpAddr) -> Option<u64> {
        let now = self.clock.mono_ns();
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let f = failures.get(&peer)?;
        (f.blocked_until_ns > now).then(|| (f.blocked_until_ns - now).div_ceil(NS_PER_S))
    }
}

/// The session id from the `Cookie` header.
fn session_cookie(req: &Request) -> Option<&str> {
    req.header("cookie")?.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == SESSION_COOKIE).then_some(v)
    })
}

/// The `Set-Cookie` value for a new session.
pub fn session_cookie_header(id: &str) -> String {
    format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_TTL_S}")
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

    fn auth() -> (Auth, Arc<SimulatedClock>) {
        let clock = Arc::new(SimulatedClock::new(1_000_000_000, 0));
        (Auth::new("secret".into(), clock.clone()), clock)
    }

    #[test]
    fn bearer_cookie_and_query_token_are_accepted() {
        let (a, _) = auth();
        let bearer = request("10.0.0.1", &[("authorization", "Bearer secret")], &[]);
        assert_eq!(a.check(&bearer), Verdict::Allowed);
        let query = request("10.0.0.1", &[], &[("token", "secret")]);
        assert_eq!(a.check(&query), Verdict::Allowed);
        let id = a.login("10.0.0.1".parse().unwrap(), "secret").unwrap();
        let cookie = format!("theme=dark; {SESSION_COOKIE}={id}");
        let with_cookie = request("10.0.0.2", &[("cookie", &cookie)], &[]);
        assert_eq!(a.check(&with_cookie), Verdict::Allowed);
        a.logout(&with_cookie);
        assert_eq!(a.check(&with_cookie), Verdict::Missing);
        assert_eq!(a.check(&request("10.0.0.1", &[], &[])), Verdict::Missing);
    }

    #[test]
    fn sessions_expire() {
        let (a, clock) = auth();
        let id = a.login("10.0.0.1".parse().unwrap(), "secret").unwrap();
        let cookie = format!("{SESSION_COOKIE}={id}");
        let req = request("10.0.0.1", &[("cookie", &cookie)], &[]);
        clock.advance(Duration::from_secs(SESSION_TTL_S + 1));
        assert_eq!(a.check(&req), Verdict::Missing);
    }

    #[test]
    fn repeated_wrong_tokens_slow_down_that_address_only() {
        let (a, clock) = auth();
        let wrong = request("10.0.0.9", &[("authorization", "Bearer nope")], &[]);
        for _ in 0..FREE_ATTEMPTS {
            assert_eq!(a.check(&wrong), Verdict::Wrong);
        }
        // Even the right token waits now, from that address.
        let right = request("10.0.0.9", &[("authorization", "Bearer secret")], &[]);
        assert_eq!(a.check(&right), Verdict::SlowDown(1));
        let other = request("10.0.0.10", &[("authorization", "Bearer secret")], &[]);
        assert_eq!(a.check(&other), Verdict::Allowed);
        clock.advance(Duration::from_millis(1100));
        assert_eq!(a.check(&wrong), Verdict::Wrong);
        assert_eq!(a.check(&right), Verdict::SlowDown(2), "the wait doubles");
        clock.advance(Duration::from_secs(3));
        assert_eq!(a.check(&right), Verdict::Allowed);
        assert_eq!(
            a.check(&right),
            Verdict::Allowed,
            "success forgets failures"
        );
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
