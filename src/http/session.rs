//! Login sessions that outlast a restart: what a session cookie holds, the
//! key that signs it, and the sessions that a logout ended.
//!
//! A cookie is `v1.<id>.<expiry>.<mac>`: 128 random bits of id (hex), the
//! wall-clock second it expires (Unix time), and an HMAC-SHA256 (hex) over
//! `v1.<id>.<expiry>`. The key is 32 random bytes, hex, in
//! `dashvault.session-key` beside the config (mode 0600), made once and
//! replaced only by a token rotation or a full revocation list. Cookies are
//! signed with a key derived from it and the token's SHA-256, so a session
//! made under one token never opens under another, however the token
//! changed (a rotation, an edited `auth_token`, a token file replaced by
//! hand).
//!
//! Invariants:
//! - A cookie opens only with a MAC made under the key in use (compared in
//!   constant time), before its expiry, and when its id is not revoked.
//! - The server keeps nothing of a session but what a logout records:
//!   `dashvault.sessions-revoked`, one line `<id> <expiry>` per ended
//!   session. A line drops out once its expiry has passed (the cookie no
//!   longer opens anyway). The list never holds more than [`REVOKED_MAX`]
//!   lines: a logout that would pass it makes a new key instead, which ends
//!   every session at once.
//! - Both files are replaced atomically (`config::write_atomic`: temporary
//!   file, fsync, rename, fsync of the folder), so a power cut leaves the
//!   old content or the new. A revocation list that cannot be read is
//!   replaced by a new key, so no ended session opens again.
//! - A session's CSRF token is HMAC(key, `csrf` label, id): it outlasts a
//!   restart with its session and ends with it.
//! - When the key can be neither read nor written (a read-only folder), one
//!   error is logged and a key in memory is used: sessions then end at
//!   restart. The service never stops for it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::random::{hex, random_bytes, random_hex};

/// How long a login lasts.
pub const SESSION_TTL_S: u64 = 7 * 24 * 3600;
pub const SESSION_KEY_FILE_NAME: &str = "dashvault.session-key";
pub const REVOKED_FILE_NAME: &str = "dashvault.sessions-revoked";
/// Revoked sessions kept at most; see [`Sessions::revoke`].
pub const REVOKED_MAX: usize = 256;
pub const SESSION_KEY_BYTES: usize = 32;
const SESSION_ID_BYTES: usize = 16;
const COOKIE_VERSION: &str = "v1";
/// Labels keep the MACs made from one key apart.
const LABEL_COOKIE_KEY: &[u8] = b"dashvault session cookie key\0";
const LABEL_COOKIE: &[u8] = b"cookie\0";
const LABEL_CSRF: &[u8] = b"csrf\0";

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length: this never fails.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// A session whose cookie checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    /// Unix seconds.
    pub expires_s: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Revoked {
    id: String,
    expires_s: i64,
}

struct Key {
    /// Signs cookies and CSRF tokens: derived from the key file's bytes and
    /// the token.
    cookie: [u8; 32],
}

impl Key {
    fn new(raw: [u8; SESSION_KEY_BYTES], token_digest: &[u8; 32]) -> Key {
        Key {
            cookie: mac(&raw, &[LABEL_COOKIE_KEY, token_digest]),
        }
    }
}

struct State {
    /// The folder of the key file and the revocation list; `None` when the
    /// key lives only in memory.
    dir: Option<PathBuf>,
    /// `None` only when the kernel gave no randomness: then no session is
    /// made or accepted.
    key: Option<Key>,
    token_digest: [u8; 32],
    revoked: Vec<Revoked>,
}

/// The session key and revocation list of one service.
pub struct Sessions {
    state: RwLock<State>,
}

fn new_raw_key() -> Option<[u8; SESSION_KEY_BYTES]> {
    match random_bytes(SESSION_KEY_BYTES) {
        Ok(b) => b.try_into().ok(),
        Err(e) => {
            log::error!("cannot make a session key, so no login will work: {e}");
            None
        }
    }
}

fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The key in `dir`; `Ok(None)` when there is none.
fn read_key(dir: &Path) -> io::Result<Option<[u8; SESSION_KEY_BYTES]>> {
    let path = dir.join(SESSION_KEY_FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    unhex(text.trim())
        .and_then(|b| b.try_into().ok())
        .map(Some)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not {} hex digits", SESSION_KEY_BYTES * 2),
            )
        })
}

/// One replacement at a time in this process: a rotation and a full
/// revocation list replacing the key together would share its `.tmp` file.
static REPLACING: Mutex<()> = Mutex::new(());

/// Replaces the key file in `dir` atomically, mode 0600.
pub fn write_key(dir: &Path, raw: &[u8; SESSION_KEY_BYTES]) -> io::Result<()> {
    let _one_at_a_time = REPLACING.lock().unwrap_or_else(|e| e.into_inner());
    crate::config::write_atomic(
        &dir.join(SESSION_KEY_FILE_NAME),
        format!("{}\n", hex(raw)).as_bytes(),
    )
}

/// A new session key, for a token rotation to write with [`write_key`].
pub fn new_session_key() -> io::Result<[u8; SESSION_KEY_BYTES]> {
    random_bytes(SESSION_KEY_BYTES)?
        .try_into()
        .map_err(|_| io::Error::other("the kernel gave a short key"))
}

fn read_revoked(dir: &Path) -> io::Result<Vec<Revoked>> {
    let path = dir.join(REVOKED_FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let parsed = line.split_once(' ').and_then(|(id, exp)| {
                Some(Revoked {
                    id: id.to_string(),
                    expires_s: exp.trim().parse().ok()?,
                })
            });
            parsed.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("line {} is not `<id> <expiry>`", i + 1),
                )
            })
        })
        .collect()
}

fn write_revoked(dir: &Path, list: &[Revoked]) -> io::Result<()> {
    let text: String = list
        .iter()
        .map(|r| format!("{} {}\n", r.id, r.expires_s))
        .collect();
    let _one_at_a_time = REPLACING.lock().unwrap_or_else(|e| e.into_inner());
    crate::config::write_atomic(&dir.join(REVOKED_FILE_NAME), text.as_bytes())
}

impl State {
    /// A new key, written to the key file when there is one, and an empty
    /// revocation list: every session ends. `why` names the occasion in the
    /// error logged when the key cannot be written.
    fn rekey(&mut self, why: &str) {
        self.revoked.clear();
        let Some(raw) = new_raw_key() else {
            self.key = None;
            return;
        };
        self.key = Some(Key::new(raw, &self.token_digest));
        let Some(dir) = self.dir.clone() else {
            return;
        };
        if let Err(e) = write_key(&dir, &raw) {
            log::error!(
                "cannot write {} ({why}): {e}; sessions are kept in memory and end at restart",
                dir.join(SESSION_KEY_FILE_NAME).display()
            );
            self.dir = None;
            return;
        }
        // The old lines name sessions of the old key, which no longer open:
        // a failure here costs nothing but room.
        if let Err(e) = write_revoked(&dir, &[]) {
            log::warn!(
                "cannot empty {}: {e}",
                dir.join(REVOKED_FILE_NAME).display()
            );
        }
    }
}

impl Sessions {
    /// Sessions signed with a key that lives only in memory: they end at
    /// restart.
    pub fn in_memory(token: &str) -> Sessions {
        let token_digest = token_digest(token);
        Sessions {
            state: RwLock::new(State {
                dir: None,
                key: new_raw_key().map(|raw| Key::new(raw, &token_digest)),
                token_digest,
                revoked: Vec::new(),
            }),
        }
    }

    /// Sessions signed with the key in `dir` (made there when there is none)
    /// for `token`, and the revocation list there. Never fails: a key that
    /// cannot be kept is logged once and kept in memory.
    pub fn open(dir: &Path, token: &str, now_s: i64) -> Sessions {
        let sessions = Sessions::in_memory(token);
        let mut state = sessions.write();
        state.dir = Some(dir.to_path_buf());
        match read_key(dir) {
            Ok(Some(raw)) => match read_revoked(dir) {
                Ok(mut list) => {
                    list.retain(|r| r.expires_s > now_s);
                    state.key = Some(Key::new(raw, &state.token_digest));
                    state.revoked = list;
                }
                Err(e) => {
                    // Not knowing which sessions were logged out, end them all.
                    log::error!(
                        "cannot read {}: {e}; a new session key ends every session, so none that was logged out opens again",
                        dir.join(REVOKED_FILE_NAME).display()
                    );
                    state.rekey("after an unreadable revocation list");
                }
            },
            Ok(None) => state.rekey("the first session key"),
            Err(e) => {
                log::error!(
                    "cannot read {}: {e}; a new session key replaces it and every session ends",
                    dir.join(SESSION_KEY_FILE_NAME).display()
                );
                state.rekey("replacing an unreadable key");
            }
        }
        drop(state);
        sessions
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The key file, when sessions outlast a restart.
    pub fn key_file(&self) -> Option<PathBuf> {
        self.read()
            .dir
            .as_ref()
            .map(|d| d.join(SESSION_KEY_FILE_NAME))
    }

    /// A cookie value for a new session that expires [`SESSION_TTL_S`] after
    /// `now_s`; `None` without randomness.
    pub fn new_cookie(&self, now_s: i64) -> Option<String> {
        let id = random_hex(SESSION_ID_BYTES)
            .map_err(|e| log::error!("cannot make a session id: {e}"))
            .ok()?;
        let expires_s = now_s.saturating_add(SESSION_TTL_S as i64);
        let state = self.read();
        let key = state.key.as_ref()?;
        Some(cookie_value(&key.cookie, &id, expires_s))
    }

    /// The session of a cookie value, if it opens at `now_s`.
    pub fn verify(&self, value: &str, now_s: i64) -> Option<Session> {
        let (body, presented) = value.rsplit_once('.')?;
        let mut parts = body.split('.');
        let (version, id, expires) = (parts.next()?, parts.next()?, parts.next()?);
        let id_ok = id.len() == SESSION_ID_BYTES * 2
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let expires_ok = !expires.is_empty() && expires.bytes().all(|b| b.is_ascii_digit());
        if parts.next().is_some() || version != COOKIE_VERSION || !id_ok || !expires_ok {
            return None;
        }
        let state = self.read();
        let key = state.key.as_ref()?;
        let expected = hex(&mac(&key.cookie, &[LABEL_COOKIE, body.as_bytes()]));
        if !constant_time_eq::constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
            return None;
        }
        let expires_s: i64 = expires.parse().ok()?;
        // The expiry is wall-clock time, and the board has no real-time
        // clock: at boot its wall clock is restored from a saved time, which
        // is earlier than the real one, and later it can jump (set from a
        // phone). Only `now < expiry` is checked, never "made in the
        // future", so a clock still at the saved earlier time keeps every
        // session (they last that much longer). A clock jumping far ahead
        // ends sessions early: the owner logs in again. A session made under
        // a clock set far ahead lasts until then once the clock is put
        // back; a logout or a rotation still ends it.
        if now_s >= expires_s {
            return None;
        }
        if state.revoked.iter().any(|r| r.id == id) {
            return None;
        }
        Some(Session {
            id: id.to_string(),
            expires_s,
        })
    }

    /// The CSRF token of `session`, hex; `None` without a key.
    pub fn csrf(&self, session: &Session) -> Option<String> {
        let state = self.read();
        let key = state.key.as_ref()?;
        Some(hex(&mac(&key.cookie, &[LABEL_CSRF, session.id.as_bytes()])))
    }

    /// Ends `session` for good: its id joins the revocation list on disk.
    pub fn revoke(&self, session: &Session, now_s: i64) {
        let mut state = self.write();
        state.revoked.retain(|r| r.expires_s > now_s);
        if state.revoked.iter().any(|r| r.id == session.id) {
            return;
        }
        if state.revoked.len() >= REVOKED_MAX {
            // The list stays small and bounded: rather than grow it (or
            // forget a logout), a new key ends every session at once. Only
            // more than REVOKED_MAX logouts within one session lifetime come
            // here.
            log::warn!(
                "{REVOKED_MAX} sessions were logged out within {} days: a new session key ends every session",
                SESSION_TTL_S / 86_400
            );
            state.rekey("a full revocation list");
            return;
        }
        state.revoked.push(Revoked {
            id: session.id.clone(),
            expires_s: session.expires_s,
        });
        if let Some(dir) = state.dir.clone() {
            if let Err(e) = write_revoked(&dir, &state.revoked) {
                log::error!(
                    "cannot write {}: {e}; this logout holds only until restart",
                    dir.join(REVOKED_FILE_NAME).display()
                );
            }
        }
    }

    /// Takes `raw` (already written by a rotation) as the key, for the new
    /// `token`: every session ends.
    pub fn adopt(&self, raw: [u8; SESSION_KEY_BYTES], token: &str) {
        let mut state = self.write();
        state.token_digest = token_digest(token);
        state.key = Some(Key::new(raw, &state.token_digest));
        state.revoked.clear();
        if let Some(dir) = state.dir.clone() {
            if let Err(e) = write_revoked(&dir, &[]) {
                log::warn!(
                    "cannot empty {}: {e}",
                    dir.join(REVOKED_FILE_NAME).display()
                );
            }
        }
    }

    /// How many revoked sessions are remembered (tests).
    #[doc(hidden)]
    pub fn revoked_len(&self) -> usize {
        self.read().revoked.len()
    }
}

fn cookie_value(key: &[u8; 32], id: &str, expires_s: i64) -> String {
    let body = format!("{COOKIE_VERSION}.{id}.{expires_s}");
    let m = mac(key, &[LABEL_COOKIE, body.as_bytes()]);
    format!("{body}.{}", hex(&m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const TOKEN: &str = "secret";
    const NOW_S: i64 = 1_800_000_000;

    fn opened(dir: &Path) -> Sessions {
        Sessions::open(dir, TOKEN, NOW_S)
    }

    #[test]
    fn a_cookie_is_version_id_expiry_and_mac() {
        let dir = tempfile::tempdir().unwrap();
        let s = opened(dir.path());
        let cookie = s.new_cookie(NOW_S).unwrap();
        let parts: Vec<&str> = cookie.split('.').collect();
        assert_eq!(parts.len(), 4, "{cookie}");
        assert_eq!(parts[0], "v1");
        assert_eq!(parts[1].len(), 32);
        assert!(parts[1].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(parts[2], (NOW_S + SESSION_TTL_S as i64).to_string());
        assert_eq!(parts[3].len(), 64);
        let session = s.verify(&cookie, NOW_S).unwrap();
        assert_eq!(session.id, parts[1]);
        assert_eq!(session.expires_s, NOW_S + SESSION_TTL_S as i64);
        // Only cookie-safe characters (RFC 6265 cookie-octet).
        assert!(cookie
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.'));
    }

    /// `cookie` with one character of part `part` changed.
    fn changed(cookie: &str, part: usize) -> String {
        let mut parts: Vec<String> = cookie.split('.').map(str::to_string).collect();
        let p = &mut parts[part];
        let last = p.pop().unwrap();
        p.push(if last == '1' { '2' } else { '1' });
        parts.join(".")
    }

    #[test]
    fn a_changed_id_expiry_mac_or_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = opened(dir.path());
        let cookie = s.new_cookie(NOW_S).unwrap();
        for part in 0..4 {
            let bad = changed(&cookie, part);
            assert_eq!(s.verify(&bad, NOW_S), None, "{bad}");
        }
        let (body, mac) = cookie.rsplit_once('.').unwrap();
        for bad in [
            format!("{body}.{mac}.x"),
            format!("{body}.{}", mac.to_uppercase()),
            body.to_string(),
            format!("{}{}", &cookie[..3], &cookie[4..]),
            String::new(),
            "....".into(),
        ] {
            assert_eq!(s.verify(&bad, NOW_S), None, "{bad}");
        }
    }

    #[test]
    fn a_cookie_opens_until_its_expiry_only() {
        let s = Sessions::in_memory(TOKEN);
        let cookie = s.new_cookie(NOW_S).unwrap();
        let expiry = NOW_S + SESSION_TTL_S as i64;
        assert!(s.verify(&cookie, expiry - 1).is_some());
        assert_eq!(s.verify(&cookie, expiry), None);
        assert_eq!(s.verify(&cookie, expiry + 3600), None);
    }

    #[test]
    fn a_clock_restored_to_an_earlier_saved_time_keeps_sessions() {
        // Made while the clock was right; the next boot restores a saved
        // time two days behind it.
        let dir = tempfile::tempdir().unwrap();
        let cookie = opened(dir.path()).new_cookie(NOW_S).unwrap();
        let after_boot = Sessions::open(dir.path(), TOKEN, NOW_S - 2 * 86_400);
        assert!(after_boot.verify(&cookie, NOW_S - 2 * 86_400).is_some());
    }

    #[test]
    fn the_key_is_kept_private_and_reused_and_bound_to_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let cookie = opened(dir.path()).new_cookie(NOW_S).unwrap();
        let path = dir.path().join(SESSION_KEY_FILE_NAME);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), SESSION_KEY_BYTES * 2);
        assert!(opened(dir.path()).verify(&cookie, NOW_S + 60).is_some());
        let other_token = Sessions::open(dir.path(), "another", NOW_S);
        assert_eq!(other_token.verify(&cookie, NOW_S), None);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert_eq!(Sessions::in_memory(TOKEN).verify(&cookie, NOW_S), None);
    }

    #[test]
    fn a_damaged_key_file_is_replaced_and_ends_every_session() {
        let dir = tempfile::tempdir().unwrap();
        let cookie = opened(dir.path()).new_cookie(NOW_S).unwrap();
        let path = dir.path().join(SESSION_KEY_FILE_NAME);
        std::fs::write(&path, "not hex\n").unwrap();
        let s = opened(dir.path());
        assert_eq!(s.verify(&cookie, NOW_S), None);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), SESSION_KEY_BYTES * 2);
    }

    #[test]
    fn a_logout_holds_after_reopening_and_drops_out_after_the_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let s = opened(dir.path());
        let (a, b) = (
            s.new_cookie(NOW_S).unwrap(),
            s.new_cookie(NOW_S + 10).unwrap(),
        );
        let session = s.verify(&a, NOW_S).unwrap();
        s.revoke(&session, NOW_S);
        s.revoke(&session, NOW_S);
        assert_eq!(s.revoked_len(), 1);
        assert_eq!(s.verify(&a, NOW_S), None);
        let again = opened(dir.path());
        assert_eq!(again.verify(&a, NOW_S), None, "still ended after a restart");
        assert!(again.verify(&b, NOW_S).is_some(), "others go on");
        let list = std::fs::read_to_string(dir.path().join(REVOKED_FILE_NAME)).unwrap();
        assert_eq!(list, format!("{} {}\n", session.id, session.expires_s));
        let mode = std::fs::metadata(dir.path().join(REVOKED_FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let later = Sessions::open(dir.path(), TOKEN, session.expires_s);
        assert_eq!(later.revoked_len(), 0, "expired lines drop out");
    }

    #[test]
    fn the_revocation_list_stays_bounded_by_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = opened(dir.path());
        let kept = s.new_cookie(NOW_S).unwrap();
        for _ in 0..REVOKED_MAX {
            let c = s.new_cookie(NOW_S).unwrap();
            s.revoke(&s.verify(&c, NOW_S).unwrap(), NOW_S);
        }
        assert_eq!(s.revoked_len(), REVOKED_MAX);
        assert!(s.verify(&kept, NOW_S).is_some());
        let key_path = dir.path().join(SESSION_KEY_FILE_NAME);
        let old_key = std::fs::read_to_string(&key_path).unwrap();
        let one_more = s.new_cookie(NOW_S).unwrap();
        s.revoke(&s.verify(&one_more, NOW_S).unwrap(), NOW_S);
        assert_eq!(s.revoked_len(), 0);
        assert_eq!(s.verify(&kept, NOW_S), None, "every session ended");
        assert_eq!(s.verify(&one_more, NOW_S), None);
        assert_ne!(std::fs::read_to_string(&key_path).unwrap(), old_key);
        let list = std::fs::read_to_string(dir.path().join(REVOKED_FILE_NAME)).unwrap();
        assert_eq!(list, "");
        let again = opened(dir.path());
        assert_eq!(again.verify(&kept, NOW_S), None, "and after a restart");
        assert!(again
            .verify(&again.new_cookie(NOW_S).unwrap(), NOW_S)
            .is_some());
    }

    #[test]
    fn an_unreadable_revocation_list_ends_every_session() {
        let dir = tempfile::tempdir().unwrap();
        let cookie = opened(dir.path()).new_cookie(NOW_S).unwrap();
        std::fs::write(dir.path().join(REVOKED_FILE_NAME), "garbage\n").unwrap();
        let s = opened(dir.path());
        assert_eq!(s.verify(&cookie, NOW_S), None);
        assert!(s.key_file().is_some());
    }

    #[test]
    fn the_csrf_token_belongs_to_one_session_and_outlasts_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let s = opened(dir.path());
        let a = s.verify(&s.new_cookie(NOW_S).unwrap(), NOW_S).unwrap();
        let b = s.verify(&s.new_cookie(NOW_S).unwrap(), NOW_S).unwrap();
        let csrf = s.csrf(&a).unwrap();
        assert_eq!(csrf.len(), 64);
        assert_ne!(Some(&csrf), s.csrf(&b).as_ref());
        assert_eq!(Some(csrf), opened(dir.path()).csrf(&a));
    }

    #[test]
    fn a_folder_that_cannot_be_written_keeps_the_key_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        // A folder in place of the temporary file makes every write fail,
        // even for root, who ignores folder modes.
        let blocked = dir.path().join(format!("{SESSION_KEY_FILE_NAME}.tmp"));
        std::fs::create_dir(&blocked).unwrap();
        let s = opened(dir.path());
        assert_eq!(s.key_file(), None);
        let cookie = s.new_cookie(NOW_S).unwrap();
        assert!(s.verify(&cookie, NOW_S).is_some());
        assert!(!dir.path().join(SESSION_KEY_FILE_NAME).exists());
    }
}
