//! Who gets in, end to end on a real server on loopback: valid credentials
//! always pass whatever wrong ones came before, the token is never taken
//! from a URL, signed links open one URL until they expire, secrets stay out
//! of `/api/config`, and a rotation ends every session. Sessions outlast a
//! restart and a power cycle, but not a logout or a rotation; a session's
//! POST needs proof that the dashboard sent it. Clients speak from
//! several loopback addresses (127.0.0.2, 127.0.0.3, ...) to stand for
//! different devices on the hotspot.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{restart_service, start_service, start_service_with, RunningService, TOKEN};
use dashvault::clock::Clock;
use dashvault::config::{Config, WifiConfig};
use dashvault::http::auth::{
    load_or_create_token, Auth, TokenHome, FAILURES_PER_MINUTE_MAX, TOKEN_FILE_NAME,
};
use dashvault::http::server::Limits;
use dashvault::http::session::{REVOKED_FILE_NAME, SESSION_KEY_FILE_NAME};
use serde_json::Value;
use std::sync::Arc;

const BOOT: [u8; 16] = [7; 16];

/// A TCP connection to `to` from the local address `from` (any 127.x.y.z).
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let SocketAddr::V4(to) = to else {
        panic!("the test server listens on IPv4")
    };
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns; the
    // addresses outlive the calls.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let local = sockaddr(from, 0);
        let r = libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len);
        assert_eq!(r, 0, "bind {from}: {}", std::io::Error::last_os_error());
        let remote = sockaddr(*to.ip(), to.port());
        let r = libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len);
        assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
        stream
    }
}

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or("").to_string()
    }
}

/// One request from `from`, `Connection: close`; the whole answer.
fn request(
    service: &RunningService,
    from: Ipv4Addr,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut s = connect_from(from, service.http.local_addr());
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    Reply {
        status,
        head,
        body: raw[split + 4..].to_vec(),
    }
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

fn get(service: &RunningService, from: Ipv4Addr, url: &str, headers: &[(&str, &str)]) -> Reply {
    request(service, from, "GET", url, headers, "")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A login from `from`, as the login page sends it; the session cookie
/// (`name=value`) on success.
fn login(service: &RunningService, from: Ipv4Addr, token: &str) -> (Reply, Option<String>) {
    let r = request(
        service,
        from,
        "POST",
        "/api/login",
        &[("Content-Type", "application/json")],
        &format!(r#"{{"token": "{token}"}}"#),
    );
    let cookie = r
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .map(str::to_string);
    (r, cookie)
}

#[test]
fn a_valid_cookie_passes_after_wrong_tokens_from_the_same_address() {
    let service = start_service(5, BOOT, Limits::default());
    let owner = ip(2);
    let (_, cookie) = login(&service, owner, TOKEN);
    let cookie = cookie.expect("a session");
    let mut slowed = 0;
    for _ in 0..10 {
        let r = get(
            &service,
            owner,
            "/api/status",
            &[("Authorization", &bearer("nope"))],
        );
        assert!(matches!(r.status, 401 | 429), "{}", r.status);
        slowed += usize::from(r.status == 429);
    }
    assert!(slowed > 0, "wrong tokens are slowed down");
    let r = get(&service, owner, "/api/status", &[("Cookie", &cookie)]);
    assert_eq!(r.status, 200, "{}", r.error());
}

#[test]
fn the_right_token_passes_after_wrong_tokens_from_the_same_address() {
    let service = start_service(5, BOOT, Limits::default());
    let owner = ip(2);
    for _ in 0..10 {
        get(
            &service,
            owner,
            "/api/status",
            &[("Authorization", &bearer("nope"))],
        );
    }
    let r = get(
        &service,
        owner,
        "/api/status",
        &[("Authorization", &bearer(TOKEN))],
    );
    assert_eq!(r.status, 200, "{}", r.error());
    let (r, cookie) = login(&service, owner, TOKEN);
    assert_eq!(r.status, 200);
    assert!(cookie.is_some(), "the login page works too");
}

#[test]
fn cross_site_wrong_logins_cannot_lock_the_owner_out() {
    // What a page on another site can make the owner's phone send: form
    // POSTs to /api/login and <img src="/api/status?token=x">. The forms
    // are refused unread (415).
    let service = start_service(5, BOOT, Limits::default());
    let phone = ip(2);
    for _ in 0..20 {
        let r = request(
            &service,
            phone,
            "POST",
            "/api/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "token=x",
        );
        assert_eq!(r.status, 415);
        assert!(r.header("set-cookie").is_none());
        get(&service, phone, "/api/stream/frame?token=x", &[]);
    }
    let (r, cookie) = login(&service, phone, TOKEN);
    assert_eq!(r.status, 200);
    let r = get(
        &service,
        phone,
        "/api/status",
        &[("Cookie", &cookie.unwrap())],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn rotating_addresses_meet_one_cap_and_the_owner_still_gets_in() {
    let service = start_service(5, BOOT, Limits::default());
    let tries = FAILURES_PER_MINUTE_MAX as u8 + 10;
    let mut checked = 0;
    for i in 0..tries {
        // A new address for every guess, as rotating IPv6 addresses would be.
        let r = get(
            &service,
            ip(10 + i),
            "/api/status",
            &[("Authorization", &bearer("nope"))],
        );
        match r.status {
            401 => checked += 1,
            429 => assert!(r.header("retry-after").is_some()),
            other => panic!("a wrong token answered {other}"),
        }
    }
    assert_eq!(
        checked, FAILURES_PER_MINUTE_MAX,
        "answered 401 before the cap"
    );
    let r = get(
        &service,
        ip(250),
        "/api/status",
        &[("Authorization", &bearer(TOKEN))],
    );
    assert_eq!(r.status, 200, "{}", r.error());
}

#[test]
fn a_token_in_the_url_is_refused() {
    let service = start_service(5, BOOT, Limits::default());
    let r = get(&service, ip(2), &format!("/api/status?token={TOKEN}"), &[]);
    assert_eq!(r.status, 401);
    assert!(r.error().contains("URL"), "{}", r.error());
    let r = get(
        &service,
        ip(2),
        &format!("/api/stream/frame?camera=front&token={TOKEN}"),
        &[],
    );
    assert_eq!(r.status, 401);
}

#[test]
fn the_token_reveal_route_is_gone() {
    let service = start_service(5, BOOT, Limits::default());
    let r = get(
        &service,
        ip(2),
        "/api/auth/token",
        &[("Authorization", &bearer(TOKEN))],
    );
    assert_eq!(r.status, 404);
    assert!(!String::from_utf8_lossy(&r.body).contains(TOKEN));
}

/// A signed link to `url`, asked for with the token.
fn link(service: &RunningService, url: &str, ttl_s: Option<u64>) -> Reply {
    let body = match ttl_s {
        Some(t) => serde_json::json!({ "url": url, "ttl_s": t }),
        None => serde_json::json!({ "url": url }),
    };
    request(
        service,
        ip(2),
        "POST",
        "/api/links",
        &[
            ("Authorization", &bearer(TOKEN)),
            ("Content-Type", "application/json"),
        ],
        &body.to_string(),
    )
}

/// Waits (bounded) until the camera has a live frame.
fn wait_live(service: &RunningService) {
    for _ in 0..100 {
        let r = get(
            service,
            ip(2),
            "/api/stream/frame?camera=front",
            &[("Authorization", &bearer(TOKEN))],
        );
        if r.status == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no live frame in 10 s");
}

#[test]
fn a_signed_link_opens_its_url_only_until_it_expires() {
    let service = start_service(5, BOOT, Limits::default());
    wait_live(&service);
    let r = link(&service, "/api/stream/frame?camera=front", Some(2));
    assert_eq!(r.status, 200, "{}", r.error());
    let url = r.json()["url"].as_str().unwrap().to_string();
    assert!(!url.contains(TOKEN));
    let player = ip(3);
    let opened = get(&service, player, &url, &[]);
    assert_eq!(opened.status, 200, "{}", opened.error());
    assert_eq!(&opened.body[..2], b"\xff\xd8", "a JPEG");
    let other_camera = url.replace("camera=front", "camera=rear");
    assert_eq!(get(&service, player, &other_camera, &[]).status, 401);
    let other_route = url.replace("/api/stream/frame", "/api/snapshot");
    assert_eq!(get(&service, player, &other_route, &[]).status, 401);
    // The link's query does not open routes that take no links.
    let status = url.replace("/api/stream/frame", "/api/status");
    assert_eq!(get(&service, player, &status, &[]).status, 401);
    std::thread::sleep(Duration::from_millis(3100));
    let late = get(&service, player, &url, &[]);
    assert_eq!(late.status, 401);
    assert!(late.error().contains("expired"), "{}", late.error());
}

#[test]
fn links_are_made_only_for_media_routes_and_only_with_credentials() {
    let service = start_service(5, BOOT, Limits::default());
    let r = link(&service, "/api/status", None);
    assert_eq!(r.status, 400);
    assert!(r.error().starts_with("url:"), "{}", r.error());
    let r = link(
        &service,
        "/api/export.mp4?camera=front",
        Some(10 * 24 * 3600),
    );
    assert_eq!(r.status, 400);
    assert!(r.error().starts_with("ttl_s:"), "{}", r.error());
    let anonymous = request(
        &service,
        ip(3),
        "POST",
        "/api/links",
        &[("Content-Type", "application/json")],
        r#"{"url": "/api/stream/mjpeg?camera=front"}"#,
    );
    assert_eq!(anonymous.status, 401);
}

/// The token from `dashvault.token` in `dir` (made there the first time),
/// as `dashvault run` does.
fn token_file_auth(_: &mut Config, dir: &Path, clock: Arc<dyn Clock>) -> Auth {
    let (t, source) = load_or_create_token(dir, None).unwrap();
    Auth::kept_in(
        t,
        TokenHome::of(&source, &dir.join("dashvault.json")),
        clock,
    )
}

/// A service whose token lives in `dashvault.token` in its folder.
fn service_with_token_file() -> (RunningService, String) {
    let service = start_service_with(5, BOOT, Limits::default(), token_file_auth);
    let token = std::fs::read_to_string(service.dir.path().join(TOKEN_FILE_NAME))
        .unwrap()
        .trim()
        .to_string();
    (service, token)
}

fn rotate(service: &RunningService, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut headers = headers.to_vec();
    headers.push(("Content-Type", "application/json"));
    request(service, ip(2), "POST", "/api/auth/rotate", &headers, body)
}

#[test]
fn rotation_needs_the_token_again_ends_sessions_and_keeps_the_new_token() {
    use std::os::unix::fs::PermissionsExt;
    let (service, old) = service_with_token_file();
    let (_, cookie) = login(&service, ip(2), &old);
    let cookie = cookie.unwrap();
    let csrf = csrf_of(&service, &cookie);
    let session = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    // A session alone cannot rotate: a phone left logged in must not be
    // able to lock its owner out.
    assert_eq!(rotate(&service, &session, "{}").status, 400);
    assert_eq!(
        rotate(&service, &session, r#"{"token": "nope"}"#).status,
        401
    );
    let file = service.dir.path().join(TOKEN_FILE_NAME);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), old);
    let r = rotate(&service, &session, &format!(r#"{{"token": "{old}"}}"#));
    assert_eq!(r.status, 200, "{}", r.error());
    let new = r.json()["token"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), new);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        get(&service, ip(2), "/api/status", &session).status,
        401,
        "sessions end"
    );
    let with = |t: &str| {
        get(
            &service,
            ip(3),
            "/api/status",
            &[("Authorization", &bearer(t))],
        )
        .status
    };
    assert_eq!(with(&old), 401);
    assert_eq!(with(&new), 200);
}

#[test]
fn rotation_is_refused_when_the_config_sets_the_token() {
    let service = start_service_with(5, BOOT, Limits::default(), |config, dir, clock| {
        config.auth_token = Some(TOKEN.into());
        Auth::kept_in(
            TOKEN.into(),
            TokenHome::Config(dir.join("dashvault.json")),
            clock,
        )
    });
    let r = rotate(
        &service,
        &[("Authorization", &bearer(TOKEN))],
        &format!(r#"{{"token": "{TOKEN}"}}"#),
    );
    assert_eq!(r.status, 409);
    assert!(r.error().contains("auth_token"), "{}", r.error());
    assert!(!service.dir.path().join(TOKEN_FILE_NAME).exists());
    assert_eq!(
        get(
            &service,
            ip(2),
            "/api/status",
            &[("Authorization", &bearer(TOKEN))]
        )
        .status,
        200
    );
}

#[test]
fn api_config_hides_the_token_and_the_wifi_password() {
    let service = start_service_with(5, BOOT, Limits::default(), |config, _, clock| {
        config.auth_token = Some(TOKEN.into());
        config.wifi = Some(WifiConfig {
            ssid: Some("dashvault-car".into()),
            password: Some("hotspot-secret-42".into()),
            ..WifiConfig::default()
        });
        Auth::new(TOKEN.into(), clock)
    });
    let r = get(
        &service,
        ip(2),
        "/api/config",
        &[("Authorization", &bearer(TOKEN))],
    );
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&r.body);
    assert!(!text.contains(TOKEN), "{text}");
    assert!(!text.contains("hotspot-secret-42"), "{text}");
    let v = r.json();
    assert_eq!(v["auth_token"], "(set)");
    assert_eq!(v["wifi"]["password"], "(set)");
    assert_eq!(v["wifi"]["ssid"], "dashvault-car");
}

fn dashvault(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dashvault"))
        .arg("-c")
        .arg(config)
        .args(args)
        .env_remove("DASHVAULT_CONFIG")
        .output()
        .expect("dashvault runs");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A port nothing listens on (taken, then let go).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn token_rotate_replaces_the_token_file_when_no_recorder_runs() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dashvault.json");
    std::fs::write(&config, format!(r#"{{"port": {}}}"#, closed_port())).unwrap();
    let (old, _) = load_or_create_token(dir.path(), None).unwrap();
    let (code, out, err) = dashvault(&config, &["token", "rotate"]);
    assert_eq!(code, 0, "{out}{err}");
    let file = dir.path().join(TOKEN_FILE_NAME);
    let new = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_ne!(new, old);
    assert!(out.contains(&new), "the console shows the new token: {out}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // A new session key too, so the sessions of the old token end.
    let key = dir.path().join(SESSION_KEY_FILE_NAME);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn token_show_prints_the_token_in_use_on_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dashvault.json");
    std::fs::write(&config, format!(r#"{{"port": {}}}"#, closed_port())).unwrap();
    let (code, _, err) = dashvault(&config, &["token", "show"]);
    assert_eq!(code, 1, "no token before the first start: {err}");
    let (token, _) = load_or_create_token(dir.path(), None).unwrap();
    let (code, out, err) = dashvault(&config, &["token", "show"]);
    assert_eq!((code, out.trim()), (0, token.as_str()), "{err}");
    // A token set in the config is the one in use.
    std::fs::write(
        &config,
        format!(r#"{{"port": {}, "auth_token": "{TOKEN}"}}"#, closed_port()),
    )
    .unwrap();
    let (code, out, _) = dashvault(&config, &["token", "show"]);
    assert_eq!((code, out.trim()), (0, TOKEN));
}

#[test]
fn token_rotate_refuses_a_token_set_in_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dashvault.json");
    std::fs::write(
        &config,
        format!(r#"{{"port": {}, "auth_token": "{TOKEN}"}}"#, closed_port()),
    )
    .unwrap();
    let (code, out, err) = dashvault(&config, &["token", "rotate"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("auth_token"), "{err}");
    assert!(!dir.path().join(TOKEN_FILE_NAME).exists());
}

#[test]
fn recordings_are_private_to_the_owner_and_its_group() {
    use std::os::unix::fs::PermissionsExt;
    let service = start_service(10, BOOT, Limits::default());
    let camera_dir = service.data_dir.join("recordings").join("front");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mut segments = Vec::new();
    for _ in 0..100 {
        segments = std::fs::read_dir(&camera_dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        if !segments.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!segments.is_empty(), "no segment in 10 s");
    service.recorder.stop();
    for dir in [
        &service.data_dir,
        &service.data_dir.join("recordings"),
        &camera_dir,
    ] {
        assert_eq!(mode(dir), 0o750, "{}", dir.display());
    }
    for f in &segments {
        assert_eq!(mode(f), 0o640, "{}", f.display());
    }
}

#[test]
fn the_videos_list_gives_download_links_that_open_without_the_token() {
    let service = start_service(10, BOOT, Limits::default());
    let auth = [("Authorization", bearer(TOKEN))];
    let auth = [(auth[0].0, auth[0].1.as_str())];
    let mut download = None;
    for _ in 0..100 {
        // The oldest of two is closed: its frames are all on disk.
        let v = get(&service, ip(2), "/api/videos", &auth).json();
        let listed = v["videos"].as_array().map_or(0, Vec::len);
        if let Some(d) = v["videos"][0]["download"].as_str().filter(|_| listed >= 2) {
            download = Some(d.to_string());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let download = download.expect("two segments listed in 10 s");
    assert!(download.contains("&sig="), "{download}");
    let r = get(&service, ip(3), &download, &[]);
    assert_eq!(r.status, 200, "{}", r.error());
    assert_eq!(&r.body[..2], b"\xff\xd8", "JPEG frames");
    let unsigned = download.split("&exp=").next().unwrap();
    assert_eq!(get(&service, ip(3), unsigned, &[]).status, 401);
}

/// `dashvault run` on a free port in `dir`, its output (not a terminal)
/// going to `dir/out.txt`, and the port once it listens.
fn spawn_recorder(dir: &Path) -> (std::process::Child, u16) {
    let port = closed_port();
    let config = format!(
        r#"{{ "port": {port}, "data_dir": "data",
  "cameras": [{{ "id": "front", "res_width": 320, "res_height": 240, "fps": 5 }}] }}"#
    );
    std::fs::write(dir.join("dashvault.json"), config).unwrap();
    let out = std::fs::File::create(dir.join("out.txt")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dashvault"))
        .arg("-c")
        .arg(dir.join("dashvault.json"))
        .args(["run", "--clock-offset-only", "--duration-s", "30"])
        .env_remove("DASHVAULT_CONFIG")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    for _ in 0..300 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (child, port);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the recorder did not listen on {port} in 15 s");
}

fn stop_recorder(mut child: std::process::Child) {
    // SAFETY: signals a child this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let _ = child.wait();
}

/// The status of `GET /api/status` on `port` with `token`.
fn status_with(port: u16, token: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    raw.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_token_stays_out_of_logs_and_rotates_through_the_running_recorder() {
    let dir = tempfile::tempdir().unwrap();
    let (child, port) = spawn_recorder(dir.path());
    let file = dir.path().join(TOKEN_FILE_NAME);
    let old = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_eq!(status_with(port, &old), 200);
    let (code, out, err) = dashvault(&dir.path().join("dashvault.json"), &["token", "rotate"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("by the recorder"), "{out}");
    let new = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_ne!(new, old);
    assert!(out.contains(&new), "the console shows the new token: {out}");
    assert_eq!(status_with(port, &old), 401, "the old token is over");
    assert_eq!(status_with(port, &new), 200);
    stop_recorder(child);
    // Its output went to a file, as the appliance's goes to its log: the
    // token it created is named only by its fingerprint.
    let logged = std::fs::read_to_string(dir.path().join("out.txt")).unwrap();
    let fingerprint = dashvault::http::auth::fingerprint(&old);
    assert!(!logged.contains(&old), "{logged}");
    assert!(!logged.contains(&new), "{logged}");
    assert!(
        logged.contains(&format!("token:  {fingerprint}")),
        "{logged}"
    );
}

/// The token set by the config, sessions signed with the key beside the
/// config in `dir`, as `dashvault run` does with `auth_token`.
fn config_token_auth(config: &mut Config, dir: &Path, clock: Arc<dyn Clock>) -> Auth {
    config.auth_token = Some(TOKEN.into());
    Auth::kept_in(
        TOKEN.into(),
        TokenHome::Config(dir.join("dashvault.json")),
        clock,
    )
}

const OTHER_BOOT: [u8; 16] = [8; 16];

/// A login with the right token; the cookie (`name=value`).
fn logged_in(service: &RunningService, from: Ipv4Addr) -> String {
    let (r, cookie) = login(service, from, TOKEN);
    assert_eq!(r.status, 200);
    cookie.expect("a session cookie")
}

/// The status of `GET /api/status` with `cookie`.
fn status_with_cookie(service: &RunningService, cookie: &str) -> u16 {
    get(service, ip(2), "/api/status", &[("Cookie", cookie)]).status
}

/// The CSRF token of the session `cookie`, from `GET /api/session`.
fn csrf_of(service: &RunningService, cookie: &str) -> String {
    let r = get(service, ip(2), "/api/session", &[("Cookie", cookie)]);
    assert_eq!(r.status, 200, "{}", r.error());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r.json()["expires"]
        .as_str()
        .is_some_and(|e| e.ends_with('Z')));
    r.json()["csrf"].as_str().expect("a csrf token").to_string()
}

/// A POST of `body` (`content_type`) with `headers`.
fn post(
    service: &RunningService,
    path: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: &str,
) -> Reply {
    let mut all = vec![("Content-Type", content_type)];
    all.extend_from_slice(headers);
    request(service, ip(2), "POST", path, &all, body)
}

fn incidents(service: &RunningService) -> usize {
    let r = get(
        service,
        ip(2),
        "/api/incidents",
        &[("Authorization", &bearer(TOKEN))],
    );
    r.json()["incidents"].as_array().map_or(0, Vec::len)
}

fn clock_unix_ms(service: &RunningService) -> i64 {
    let r = get(
        service,
        ip(2),
        "/api/clock",
        &[("Authorization", &bearer(TOKEN))],
    );
    r.json()["unix_ms"].as_i64().expect("unix_ms")
}

#[test]
fn a_session_outlasts_a_power_cycle_with_its_csrf_token() {
    use std::os::unix::fs::PermissionsExt;
    let service = start_service_with(5, BOOT, Limits::default(), config_token_auth);
    let cookie = logged_in(&service, ip(2));
    let csrf = csrf_of(&service, &cookie);
    let key = service.dir.path().join(SESSION_KEY_FILE_NAME);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the session key is private");
    let service = restart_service(service, 5, OTHER_BOOT, Limits::default(), config_token_auth);
    assert_eq!(status_with_cookie(&service, &cookie), 200);
    assert_eq!(csrf_of(&service, &cookie), csrf);
    let r = post(
        &service,
        "/api/lock",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        "application/json",
        r#"{"source": "dashboard"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.error());
}

#[test]
fn a_logged_out_session_stays_ended_after_a_restart() {
    let service = start_service_with(5, BOOT, Limits::default(), config_token_auth);
    let (phone, tablet) = (logged_in(&service, ip(2)), logged_in(&service, ip(3)));
    let csrf = csrf_of(&service, &phone);
    let r = post(
        &service,
        "/api/logout",
        &[("Cookie", &phone), ("X-CSRF-Token", &csrf)],
        "application/json",
        "",
    );
    assert_eq!(r.status, 200, "{}", r.error());
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(status_with_cookie(&service, &phone), 401);
    assert_eq!(status_with_cookie(&service, &tablet), 200);
    let service = restart_service(service, 5, BOOT, Limits::default(), config_token_auth);
    assert_eq!(status_with_cookie(&service, &phone), 401, "still ended");
    assert_eq!(status_with_cookie(&service, &tablet), 200);
    let revoked = std::fs::read_to_string(service.dir.path().join(REVOKED_FILE_NAME)).unwrap();
    assert_eq!(revoked.lines().count(), 1, "{revoked}");
}

#[test]
fn a_rotation_ends_sessions_and_they_stay_ended_after_a_restart() {
    let (service, old) = service_with_token_file();
    let (_, cookie) = login(&service, ip(2), &old);
    let cookie = cookie.unwrap();
    let key = service.dir.path().join(SESSION_KEY_FILE_NAME);
    let old_key = std::fs::read_to_string(&key).unwrap();
    let r = rotate(
        &service,
        &[("Authorization", &bearer(&old))],
        &format!(r#"{{"token": "{old}"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.error());
    assert_ne!(std::fs::read_to_string(&key).unwrap(), old_key);
    assert_eq!(status_with_cookie(&service, &cookie), 401);
    let service = restart_service(service, 5, OTHER_BOOT, Limits::default(), token_file_auth);
    assert_eq!(status_with_cookie(&service, &cookie), 401, "still ended");
    let new = r.json()["token"].as_str().unwrap().to_string();
    let (_, fresh) = login(&service, ip(2), &new);
    assert_eq!(status_with_cookie(&service, &fresh.unwrap()), 200);
}

#[test]
fn a_changed_session_cookie_is_refused() {
    let service = start_service_with(5, BOOT, Limits::default(), config_token_auth);
    let cookie = logged_in(&service, ip(2));
    let (name, value) = cookie.split_once('=').unwrap();
    let parts: Vec<&str> = value.split('.').collect();
    assert_eq!(parts.len(), 4, "{value}");
    // One character of the id, of the expiry, of the MAC; a later expiry.
    let flip = |s: &str| {
        let (head, last) = s.split_at(s.len() - 1);
        format!("{head}{}", if last == "1" { "2" } else { "1" })
    };
    let later = (parts[2].parse::<i64>().unwrap() + 30 * 86_400).to_string();
    let changed = [
        [parts[0], &flip(parts[1]), parts[2], parts[3]].join("."),
        [parts[0], parts[1], &flip(parts[2]), parts[3]].join("."),
        [parts[0], parts[1], parts[2], &flip(parts[3])].join("."),
        [parts[0], parts[1], &later, parts[3]].join("."),
    ];
    for c in changed {
        assert_eq!(
            status_with_cookie(&service, &format!("{name}={c}")),
            401,
            "{c}"
        );
    }
    assert_eq!(status_with_cookie(&service, &cookie), 200);
}

#[test]
fn a_session_ends_when_the_clock_passes_its_expiry_but_not_when_it_goes_back() {
    let service = start_service_with(5, BOOT, Limits::default(), config_token_auth);
    let cookie = logged_in(&service, ip(2));
    let set = |unix_ms: i64| {
        let r = post(
            &service,
            "/api/clock",
            &[("Authorization", &bearer(TOKEN))],
            "application/json",
            &format!(r#"{{"unix_ms": {unix_ms}}}"#),
        );
        assert_eq!(r.status, 200, "{}", r.error());
    };
    let now = clock_unix_ms(&service);
    // As after a boot that restored a saved time two days old.
    set(now - 2 * 86_400_000);
    assert_eq!(status_with_cookie(&service, &cookie), 200);
    set(now + 8 * 86_400_000);
    assert_eq!(status_with_cookie(&service, &cookie), 401);
}

#[test]
fn a_read_only_config_folder_still_lets_the_owner_log_in() {
    use std::os::unix::fs::PermissionsExt;
    let service = start_service_with(5, BOOT, Limits::default(), |config, dir, clock| {
        std::fs::create_dir(dir.join("data")).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o500)).unwrap();
        // Root ignores folder modes: for root, a folder where the key's
        // temporary file would go makes the write fail the same way.
        if std::fs::write(dir.join("probe"), "").is_ok() {
            std::fs::remove_file(dir.join("probe")).unwrap();
            std::fs::create_dir(dir.join(format!("{SESSION_KEY_FILE_NAME}.tmp"))).unwrap();
        }
        config_token_auth(config, dir, clock)
    });
    let cookie = logged_in(&service, ip(2));
    assert_eq!(status_with_cookie(&service, &cookie), 200);
    let csrf = csrf_of(&service, &cookie);
    let r = post(
        &service,
        "/api/lock",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        "application/json",
        "{}",
    );
    assert_eq!(r.status, 200, "{}", r.error());
    assert_eq!(service.http.ctx.auth.session_key_file(), None);
    assert!(!service.dir.path().join(SESSION_KEY_FILE_NAME).exists());
    std::fs::set_permissions(service.dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn a_cross_site_post_with_the_session_cookie_is_refused_and_changes_nothing() {
    let service = start_service(5, BOOT, Limits::default());
    let cookie = logged_in(&service, ip(2));
    // What a page on another site can make the owner's phone send: a form
    // (url-encoded, or text/plain that reads as JSON) or a simple fetch,
    // with the cookie, without our header, from its own origin or none.
    let year_2031 = r#"{"time": "2031-01-01T00:00:00Z"}"#;
    let forged = [
        (
            "/api/lock",
            "application/x-www-form-urlencoded",
            "source=dashboard",
        ),
        ("/api/lock", "text/plain", r#"{"source": "dashboard"}"#),
        ("/api/lock", "application/json", "{}"),
        ("/api/clock", "text/plain", year_2031),
        ("/api/clock", "application/json", year_2031),
        ("/api/logout", "text/plain", ""),
        (
            "/api/links",
            "text/plain",
            r#"{"url": "/api/stream/frame?camera=front"}"#,
        ),
    ];
    for (path, content_type, body) in forged {
        for origin in [Some("http://evil.example"), Some("null"), None] {
            let mut headers = vec![("Cookie", cookie.as_str())];
            headers.extend(origin.map(|o| ("Origin", o)));
            let r = post(&service, path, &headers, content_type, body);
            if content_type != "application/json" {
                // Refused for its body before anyone looks at the cookie.
                assert_eq!(r.status, 415, "{path} {content_type} {origin:?}");
                continue;
            }
            assert_eq!(r.status, 403, "{path} {content_type} {origin:?}");
            assert!(
                r.error().contains("X-CSRF-Token") && r.error().contains("Origin"),
                "{}",
                r.error()
            );
        }
    }
    let wrong = post(
        &service,
        "/api/lock",
        &[("Cookie", &cookie), ("X-CSRF-Token", "0000")],
        "application/json",
        "{}",
    );
    assert_eq!(wrong.status, 403);
    assert_eq!(incidents(&service), 0, "nothing was locked");
    assert!(
        clock_unix_ms(&service) < 1_900_000_000_000,
        "the clock was not moved to 2031"
    );
    assert_eq!(
        status_with_cookie(&service, &cookie),
        200,
        "still logged in"
    );
}

#[test]
fn a_session_post_with_its_csrf_token_or_from_this_server_works() {
    let service = start_service(5, BOOT, Limits::default());
    let cookie = logged_in(&service, ip(2));
    let csrf = csrf_of(&service, &cookie);
    let r = post(
        &service,
        "/api/lock",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        "application/json",
        r#"{"source": "dashboard"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.error());
    assert_eq!(incidents(&service), 1);
    // The test client sends `Host: 127.0.0.1`.
    let r = post(
        &service,
        "/api/clock",
        &[("Cookie", &cookie), ("Origin", "http://127.0.0.1")],
        "application/json",
        &format!(r#"{{"unix_ms": {}}}"#, clock_unix_ms(&service)),
    );
    assert_eq!(r.status, 200, "{}", r.error());
}

#[test]
fn a_bearer_post_needs_no_csrf_token_or_origin() {
    let service = start_service(5, BOOT, Limits::default());
    let auth = bearer(TOKEN);
    let r = post(
        &service,
        "/api/lock",
        &[("Authorization", &auth)],
        "application/json",
        "{}",
    );
    assert_eq!(r.status, 200, "{}", r.error());
    let r = post(
        &service,
        "/api/clock",
        &[("Authorization", &auth), ("Origin", "http://evil.example")],
        "application/json",
        &format!(r#"{{"unix_ms": {}}}"#, clock_unix_ms(&service)),
    );
    assert_eq!(r.status, 200, "{}", r.error());
    let r = get(&service, ip(2), "/api/session", &[("Authorization", &auth)]);
    assert_eq!(r.status, 400, "no session, no CSRF token");
}
