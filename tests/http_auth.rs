//! Who gets in, end to end on a real server on loopback: valid credentials
//! always pass whatever wrong ones came before, the token is never taken
//! from a URL, signed links open one URL until they expire, secrets stay out
//! of `/api/config`, and a rotation ends every session. Clients speak from
//! several loopback addresses (127.0.0.2, 127.0.0.3, ...) to stand for
//! different devices on the hotspot.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{start_service, start_service_with, RunningService, TOKEN};
use dashvault::config::WifiConfig;
use dashvault::http::auth::{
    load_or_create_token, Auth, TokenHome, FAILURES_PER_MINUTE_MAX, TOKEN_FILE_NAME,
};
use dashvault::http::server::Limits;
use serde_json::Value;

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

/// A service whose token lives in `dashvault.token` in its folder.
fn service_with_token_file() -> (RunningService, String) {
    let mut token = String::new();
    let service = start_service_with(5, BOOT, Limits::default(), |_, dir, clock| {
        let (t, source) = load_or_create_token(dir, None).unwrap();
        token = t.clone();
        Auth::kept_in(
            t,
            TokenHome::of(&source, &dir.join("dashvault.json")),
            clock,
        )
    });
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
    let session = [("Cookie", cookie.as_str())];
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
