//! The dashboard server end to end: the real recorder with the synthetic
//! camera, the real server on 127.0.0.1 and a random port, a real HTTP client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dashvault::clock::{format_rfc3339_ms, parse_rfc3339, Clock, SystemClock};
use dashvault::http::answers::{json, Answer, ErrorAnswer};
use dashvault::http::routes::{Access, ROUTES};
use dashvault::http::server::Limits;
use dashvault::http::HttpService;
use dashvault::recorder::Recorder;
use dashvault::store::catalog;
use dashvault::store::io::RealIo;
use dashvault::store::reader::SegmentReader;
use dashvault::store::Store;

mod common;
use common::TOKEN;
const FPS: u32 = 10;

struct Fixture {
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    recorder: Option<Recorder>,
    http: Option<HttpService>,
    base: String,
    agent: ureq::Agent,
}

impl Fixture {
    fn start(limits: Limits) -> Fixture {
        let svc = common::start_service(FPS, [7; 16], limits);
        let base = format!("http://{}", svc.http.local_addr());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        Fixture {
            _dir: svc.dir,
            data_dir: svc.data_dir,
            recorder: Some(svc.recorder),
            http: Some(svc.http),
            base,
            agent,
        }
    }

    fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    fn get(&self, path: &str) -> Reply {
        self.get_with(path, &[("Authorization", &format!("Bearer {TOKEN}"))])
    }

    fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Reply::from(req.call().unwrap())
    }

    /// Waits until the recorder has stored `frames` frames.
    fn wait_written(&self, frames: u64) {
        let status = &self.recorder.as_ref().unwrap().status;
        let until = Instant::now() + Duration::from_secs(20);
        while status.cameras()[0].storage.written.load(Ordering::Relaxed) < frames {
            assert!(
                Instant::now() < until,
                "the recorder did not write {frames} frames"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops recording (the store stops changing); the server keeps serving.
    fn stop_recording(&mut self) {
        self.recorder.take().unwrap().stop();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(h) = self.http.take() {
            h.stop();
        }
        if let Some(r) = self.recorder.take() {
            r.stop();
        }
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn from(mut r: ureq::http::Response<ureq::Body>) -> Reply {
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        Reply {
            status: r.status().as_u16(),
            headers,
            body: r
                .body_mut()
                .with_config()
                .limit(100_000_000)
                .read_to_vec()
                .unwrap(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or("").to_string()
    }
}

fn is_jpeg(b: &[u8]) -> bool {
    b.len() > 4 && b[..2] == [0xFF, 0xD8] && b[b.len() - 2..] == [0xFF, 0xD9]
}

fn decode_size(jpeg: &[u8]) -> (usize, usize) {
    let d = mozjpeg::Decompress::new_mem(jpeg).unwrap();
    let size = d.size();
    let mut img = d.rgb().unwrap();
    let pixels: Vec<[u8; 3]> = img.read_scanlines().unwrap();
    assert_eq!(pixels.len(), size.0 * size.1);
    size
}

/// Reads multipart parts from a raw socket: (headers, jpeg) pairs.
fn read_parts(stream: TcpStream, count: usize, timeout: Duration) -> Vec<(String, Vec<u8>)> {
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    // Response head.
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    let mut parts = Vec::new();
    while parts.len() < count {
        let mut head = String::new();
        let mut len = 0usize;
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap() == 0 {
                return parts;
            }
            if line == "\r\n" && len > 0 {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                len = v.trim().parse().unwrap();
            }
            head.push_str(&line);
        }
        let mut jpeg = vec![0u8; len];
        r.read_exact(&mut jpeg).unwrap();
        parts.push((head, jpeg));
    }
    parts
}

fn open_stream(addr: &str, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    )
    .unwrap();
    s
}

fn part_time(head: &str) -> i64 {
    let t = head
        .lines()
        .find_map(|l| l.strip_prefix("X-Frame-Time: "))
        .expect("each part names its capture time");
    parse_rfc3339(t).unwrap()
}

/// A concrete path for each route of the table.
fn sample_path(route: &str) -> String {
    match route {
        "/assets/*" => "/assets/app.js".into(),
        "/api/cameras/*" => "/api/cameras/front".into(),
        other => other.into(),
    }
}

#[test]
fn every_route_but_health_and_login_needs_auth() {
    let f = Fixture::start(Limits::default());
    f.wait_written(2);
    for route in ROUTES {
        let url = format!("{}{}", f.base, sample_path(route.path));
        let reply = |req: ureq::RequestBuilder<ureq::typestate::WithoutBody>| {
            Reply::from(req.call().unwrap())
        };
        let anonymous = match route.method {
            "GET" => reply(f.agent.get(&url)),
            _ => Reply::from(f.agent.post(&url).send("").unwrap()),
        };
        let verdict = (route.method, route.path, anonymous.status);
        match route.access {
            Access::Public => assert!(anonymous.status != 401, "{verdict:?}"),
            Access::Token if route.path == "/" => {
                assert_eq!(anonymous.status, 303, "{verdict:?}");
                assert_eq!(anonymous.header("location"), Some("/login"));
            }
            Access::Token | Access::Link => {
                assert_eq!(anonymous.status, 401, "{verdict:?}");
                assert!(anonymous.error().contains("log in"), "{verdict:?}");
            }
        }
        if route.access != Access::Public
            && route.method == "GET"
            && !route.path.contains("stream/mjpeg")
            && !route.path.contains("playback")
        {
            let authed = f.get(&sample_path(route.path));
            assert_ne!(authed.status, 401, "{verdict:?} with the token");
        }
    }
}

#[test]
fn cookie_login_sets_a_private_session() {
    let f = Fixture::start(Limits::default());
    let post = |body: &str| {
        Reply::from(
            f.agent
                .post(format!("{}/api/login", f.base))
                .header("Content-Type", "application/json")
                .send(body)
                .unwrap(),
        )
    };
    let wrong = post(r#"{"token": "nope"}"#);
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    let ok = post(&format!(r#"{{"token": "{TOKEN}"}}"#));
    assert_eq!(ok.status, 200);
    let cookie = ok.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(TOKEN),
        "the cookie is a session id, not the token"
    );
    let pair = cookie.split(';').next().unwrap();
    let status = f.get_with("/api/status", &[("Cookie", pair)]);
    assert_eq!(status.status, 200);
    let page = f.get_with("/", &[("Cookie", pair)]);
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("<html"));
    let session = f.get_with("/api/session", &[("Cookie", pair)]);
    assert_eq!(session.status, 200);
    let csrf: serde_json::Value = serde_json::from_slice(&session.body).unwrap();
    let logout = Reply::from(
        f.agent
            .post(format!("{}/api/logout", f.base))
            .header("Cookie", pair)
            .header("X-CSRF-Token", csrf["csrf"].as_str().unwrap())
            .send("")
            .unwrap(),
    );
    assert_eq!(logout.status, 200);
    assert_eq!(f.get_with("/api/status", &[("Cookie", pair)]).status, 401);
}

#[test]
fn wrong_tokens_are_slowed_down() {
    let f = Fixture::start(Limits::default());
    let wrong = [("Authorization", "Bearer 00000000")];
    for _ in 0..5 {
        assert_eq!(f.get_with("/api/status", &wrong).status, 401);
    }
    let slowed = f.get_with("/api/status", &wrong);
    assert_eq!(slowed.status, 429, "a sixth wrong token waits");
    assert!(slowed.header("retry-after").is_some());
    assert!(slowed.error().contains("wait"));
    assert_eq!(
        f.get("/api/status").status,
        200,
        "the right token never waits"
    );
}

#[test]
fn live_stream_delivers_whole_jpegs_at_the_camera_rate() {
    let f = Fixture::start(Limits::default());
    f.wait_written(2);
    let started = Instant::now();
    let parts = read_parts(
        open_stream(&f.addr(), "/api/stream/mjpeg?camera=front"),
        21,
        Duration::from_secs(10),
    );
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(parts.len(), 21);
    assert!(parts.iter().all(|(_, j)| is_jpeg(j)));
    // 20 frame intervals at 10 fps: about 2 s.
    let rate = 20.0 / seconds;
    assert!(
        (6.0..=14.0).contains(&rate),
        "{rate:.1} frames/s from a {FPS} fps camera"
    );
    let times: Vec<i64> = parts.iter().map(|(h, _)| part_time(h)).collect();
    assert!(
        times.windows(2).all(|w| w[1] > w[0]),
        "every part is a newer frame"
    );
    assert_eq!(decode_size(&parts[3].1), (320, 240));
}

#[test]
fn snapshot_and_dash_of_pi_frame_decode() {
    let f = Fixture::start(Limits::default());
    f.wait_written(1);
    let frame = f.get("/api/stream/frame");
    assert_eq!(frame.status, 200);
    assert_eq!(frame.header("content-type"), Some("image/jpeg"));
    assert_eq!(decode_size(&frame.body), (320, 240));
    let snap = f.get("/api/snapshot?camera=front");
    assert!(snap
        .header("content-disposition")
        .unwrap()
        .contains("front_"));
    assert_eq!(decode_size(&snap.body), (320, 240));
}

#[test]
fn timeline_playback_frames_and_downloads_match_the_store() {
    let mut f = Fixture::start(Limits::default());
    f.wait_written(45);
    f.stop_recording();
    let io = RealIo::new();
    let segments = catalog::list_segments(&io, &f.data_dir, "front")
        .unwrap()
        .segments;
    assert!(segments.len() >= 2, "2 s segments: several of them");
    let readers: Vec<SegmentReader> = segments
        .iter()
        .map(|s| SegmentReader::open(&io, &s.path).unwrap())
        .collect();
    let stored: usize = readers.iter().map(|r| r.frames.len()).sum();
    let all: Vec<_> = readers.iter().flat_map(|r| r.frames.iter()).collect();

    let t = f.get("/api/recordings?camera=front").json();
    let span_frames: u64 = t["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["frames"].as_u64().unwrap())
        .sum();
    assert_eq!(span_frames as usize, stored);
    assert_eq!(
        t["spans"].as_array().unwrap().len(),
        1,
        "no gaps while recording: {t}"
    );
    assert_eq!(t["segments"].as_array().unwrap().len(), segments.len());
    assert_eq!(
        parse_rfc3339(t["spans"][0]["start"].as_str().unwrap()).unwrap() / 1_000_000,
        all[0].wall_ns / 1_000_000
    );

    // The nearest frame, and stepping from it.
    let mid = all[stored / 2];
    let at = format_rfc3339_ms(mid.wall_ns + 1_000_000);
    let frame = f.get(&format!("/api/frame?camera=front&at={at}"));
    assert_eq!(
        frame.status,
        200,
        "{}",
        String::from_utf8_lossy(&frame.body)
    );
    assert_eq!(
        parse_rfc3339(frame.header("x-frame-time").unwrap()).unwrap() / 1_000_000,
        mid.wall_ns / 1_000_000
    );
    let next = f.get(&format!("/api/frame?camera=front&at={at}&step=1"));
    assert_eq!(
        parse_rfc3339(next.header("x-frame-time").unwrap()).unwrap() / 1_000_000,
        all[stored / 2 + 1].wall_ns / 1_000_000
    );
    assert!(is_jpeg(&next.body));
    assert_ne!(frame.body, next.body);

    // Playback starts at the requested time.
    let parts = read_parts(
        open_stream(
            &f.addr(),
            &format!("/api/playback?camera=front&from={at}&speed=4"),
        ),
        5,
        Duration::from_secs(10),
    );
    assert_eq!(parts.len(), 5);
    let first = part_time(&parts[0].0);
    assert_eq!(
        first / 1_000_000,
        all[stored / 2 + 1].wall_ns / 1_000_000,
        "first frame at or after from"
    );

    // A segment downloads as its JPEGs back to back.
    let seg = &segments[0];
    let dl = f.get(&format!(
        "/api/video/download?camera=front&name={}",
        seg.name
    ));
    assert_eq!(dl.status, 200);
    assert!(dl
        .header("content-disposition")
        .unwrap()
        .ends_with(".mjpeg\""));
    let mut expected = Vec::new();
    for i in 0..readers[0].frames.len() {
        expected.extend(readers[0].read_frame(i).unwrap());
    }
    assert_eq!(dl.body, expected);
    let videos = f.get("/api/videos").json();
    assert_eq!(videos["videos"].as_array().unwrap().len(), segments.len());
}

#[test]
fn errors_are_json_with_the_right_status() {
    let f = Fixture::start(Limits::default());
    let cases = [
        ("/api/nothing", 404, "no route"),
        ("/api/recordings?camera=side", 404, "camera"),
        ("/api/frame?camera=front&at=yesterday", 400, "at:"),
        ("/api/frame?camera=front", 400, "at: missing"),
        (
            "/api/playback?camera=front&from=2026-01-01T00:00:00Z&speed=99",
            400,
            "speed",
        ),
        (
            "/api/frame?camera=front&at=2001-01-01T00:00:00Z",
            404,
            "no frame",
        ),
        (
            "/api/video/download?camera=front&name=000000000000_x.dvr",
            404,
            "no segment",
        ),
        (
            "/api/recordings?camera=front&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            400,
            "from",
        ),
    ];
    for (path, status, says) in cases {
        let r = f.get(path);
        assert_eq!(r.status, status, "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
        assert!(r.error().contains(says), "{path}: {}", r.error());
    }
    let post = Reply::from(
        f.agent
            .post(format!("{}/api/status", f.base))
            .send("")
            .unwrap(),
    );
    assert_eq!(post.status, 405);
}

#[test]
fn traversal_attempts_are_refused_in_every_parameter() {
    let f = Fixture::start(Limits::default());
    f.wait_written(1);
    std::fs::write(f.data_dir.join("secret.txt"), "SECRET").unwrap();
    let attempts = [
        "/api/video/download?camera=front&name=../../secret.txt",
        "/api/video/download?camera=..&name=secret.txt",
        "/api/video/download?camera=front&file=..%2F..%2Fsecret.txt",
        "/api/recordings?camera=../../",
        "/api/frame?camera=..%2F..&at=2026-01-01T00:00:00Z",
        "/api/stream/frame?camera=/etc",
        "/assets/../../secret.txt",
        "/assets/..%2F..%2Fsecret.txt",
        "/api/cameras/..%2F..",
    ];
    for path in attempts {
        let r = f.get(path);
        assert!(matches!(r.status, 400 | 404), "{path} gave {}", r.status);
        assert!(
            !String::from_utf8_lossy(&r.body).contains("SECRET"),
            "{path}"
        );
    }
}

#[test]
fn a_viewer_that_never_reads_does_not_stop_recording_or_other_viewers() {
    let limits = Limits {
        write_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let f = Fixture::start(limits);
    f.wait_written(2);
    // Stalled viewer: asks for the stream and never reads a byte.
    let stalled = open_stream(&f.addr(), "/api/stream/mjpeg?camera=front");
    let status = f.recorder.as_ref().unwrap().status.clone();
    let before = status.cameras()[0].storage.written.load(Ordering::Relaxed);
    let parts = read_parts(
        open_stream(&f.addr(), "/api/stream/mjpeg?camera=front"),
        30,
        Duration::from_secs(10),
    );
    assert_eq!(parts.len(), 30, "the second viewer keeps getting frames");
    let after = status.cameras()[0].storage.written.load(Ordering::Relaxed);
    assert!(
        after >= before + 25,
        "recording went on: {before} -> {after}"
    );
    assert_eq!(
        status.cameras()[0]
            .dropped_writer_busy
            .load(Ordering::Relaxed),
        0
    );
    assert_eq!(f.get("/api/status").status, 200);
    drop(stalled);
}

#[test]
fn streams_beyond_the_cap_get_503_and_slow_clients_are_cut_off() {
    let limits = Limits {
        max_streams: 2,
        request_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let f = Fixture::start(limits);
    f.wait_written(2);
    let stats = f
        .http
        .as_ref()
        .unwrap()
        .ctx
        .server_stats
        .lock()
        .unwrap()
        .clone()
        .unwrap();
    let streams_open = |n: usize| {
        let until = Instant::now() + Duration::from_secs(5);
        while stats.streams.load(Ordering::SeqCst) != n {
            assert!(Instant::now() < until, "expected {n} streams open");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let a = read_parts(
        open_stream(&f.addr(), "/api/stream/mjpeg"),
        1,
        Duration::from_secs(5),
    );
    assert_eq!(a.len(), 1);
    // A viewer that leaves gives its slot back at the next frame.
    streams_open(0);
    let _keep_a = open_stream(&f.addr(), "/api/stream/mjpeg");
    let _keep_b = open_stream(&f.addr(), "/api/stream/mjpeg");
    streams_open(2);
    let third = f.get("/api/stream/mjpeg");
    assert_eq!(third.status, 503);
    assert!(third.error().contains("streams"), "{}", third.error());

    // Slowloris: half a request head, then silence. Others are still served,
    // and every such connection is closed: the ones past this address's
    // share of the table (or of unfinished heads) at once, the rest with
    // 408 once the request timeout passes.
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(f.addr()).unwrap();
            s.write_all(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    let t0 = Instant::now();
    assert_eq!(f.get("/health").status, 200);
    assert!(t0.elapsed() < Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(1200));
    let mut timed_out = 0;
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut answer = Vec::new();
        if let Err(e) = s.read_to_end(&mut answer) {
            assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "a slow connection was left open"
            );
        }
        timed_out += usize::from(answer.starts_with(b"HTTP/1.1 408"));
    }
    assert!(timed_out > 0, "no unfinished head was answered 408");
    slow.clear();

    // An oversized head is refused, not buffered.
    let mut big = TcpStream::connect(f.addr()).unwrap();
    let _ = write!(
        big,
        "GET /health HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let mut answer = String::new();
    let _ = big.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[test]
fn keep_alive_connections_serve_several_requests() {
    let f = Fixture::start(Limits::default());
    let mut s = TcpStream::connect(f.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    for _ in 0..3 {
        s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        let mut len = 0;
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                len = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        assert!(String::from_utf8_lossy(&body).contains("\"ok\""));
    }
}

#[test]
fn mp4_export_serves_ranges_etag_and_the_same_bytes_as_the_cli() {
    let mut f = Fixture::start(Limits::default());
    f.wait_written(35);
    f.stop_recording();
    let io = RealIo::new();
    let segments = catalog::list_segments(&io, &f.data_dir, "front")
        .unwrap()
        .segments;
    let first = SegmentReader::open(&io, &segments[0].path).unwrap().frames[0].wall_ns;
    let from = format_rfc3339_ms(first);
    let to = format_rfc3339_ms(first + 3_000_000_000);
    let path = format!("/api/export.mp4?camera=front&from={from}&to={to}");

    let full = f.get(&path);
    assert_eq!(full.status, 200, "{}", String::from_utf8_lossy(&full.body));
    assert_eq!(full.header("content-type"), Some("video/mp4"));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    let len = full.body.len();
    assert_eq!(
        full.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        len
    );
    assert!(full
        .header("content-disposition")
        .unwrap()
        .contains("front_"));
    let etag = full.header("etag").unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong ETag: {etag}"
    );
    assert_eq!(&full.body[4..8], b"ftyp");

    let head = Reply::from(
        f.agent
            .head(format!("{}{path}", f.base))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .call()
            .unwrap(),
    );
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        len
    );
    assert!(head.body.is_empty());

    // Pseudo-random ranges, without a random crate: a fixed LCG.
    let mut x: u64 = 12345;
    let auth = format!("Bearer {TOKEN}");
    for _ in 0..25 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let a = (x >> 33) as usize % len;
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let b = a + (x >> 33) as usize % (len - a);
        let r = f.get_with(
            &path,
            &[
                ("Authorization", &auth),
                ("Range", &format!("bytes={a}-{b}")),
            ],
        );
        assert_eq!(r.status, 206);
        assert_eq!(
            r.header("content-range").unwrap(),
            format!("bytes {a}-{b}/{len}")
        );
        assert_eq!(r.body, full.body[a..=b]);
    }
    let suffix = f.get_with(&path, &[("Authorization", &auth), ("Range", "bytes=-100")]);
    assert_eq!(
        (suffix.status, &suffix.body[..]),
        (206, &full.body[len - 100..])
    );
    let open_end = f.get_with(
        &path,
        &[
            ("Authorization", &auth),
            ("Range", &format!("bytes={}-", len - 7)),
        ],
    );
    assert_eq!(open_end.body, full.body[len - 7..]);
    let beyond = f.get_with(
        &path,
        &[
            ("Authorization", &auth),
            ("Range", &format!("bytes={len}-")),
        ],
    );
    assert_eq!(beyond.status, 416);
    assert_eq!(
        beyond.header("content-range").unwrap(),
        format!("bytes */{len}")
    );
    let cached = f.get_with(&path, &[("Authorization", &auth), ("If-None-Match", &etag)]);
    assert_eq!(cached.status, 304);
    let stale = f.get_with(
        &path,
        &[
            ("Authorization", &auth),
            ("Range", "bytes=0-9"),
            ("If-Range", "\"other\""),
        ],
    );
    assert_eq!(
        (stale.status, stale.body.len()),
        (200, len),
        "a changed file is sent whole"
    );

    let none =
        f.get("/api/export.mp4?camera=front&from=2001-01-01T00:00:00Z&to=2001-01-01T00:05:00Z");
    assert_eq!(none.status, 404);
    assert!(none.error().contains("front"), "{}", none.error());

    // The CLI writes the same bytes.
    let out = f.data_dir.join("cli.mp4");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_dashvault"))
        .args([
            "-c",
            "/nonexistent/dashvault.json",
            "export",
            "--camera",
            "front",
            "--from",
            &from,
            "--to",
            &to,
            "-o",
        ])
        .arg(&out)
        .arg("--data-dir")
        .arg(&f.data_dir)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(&out).unwrap(), full.body);
}

impl Fixture {
    fn post_json(&self, path: &str, body: &str, token: Option<&str>) -> Reply {
        let mut req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        Reply::from(req.send(body).unwrap())
    }

    fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path);
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        serde_json::from_slice(&r.body).unwrap()
    }
}

#[test]
fn a_time_post_without_the_token_is_refused_and_changes_nothing() {
    let f = Fixture::start(Limits::default());
    let before = f.json("/api/clock");
    let body = r#"{"unix_ms": 4102444800000}"#; // 2100-01-01
    for token in [None, Some("0000")] {
        let r = f.post_json("/api/clock", body, token);
        assert_eq!(r.status, 401, "{token:?}");
    }
    let after = f.json("/api/clock");
    let skew = after["unix_ms"].as_i64().unwrap() - before["unix_ms"].as_i64().unwrap();
    assert!(skew.abs() < 60_000, "the clock moved by {skew} ms");
    assert_eq!(after["source"], "system");
    let r = f.post_json("/api/lock", "{}", None);
    assert_eq!(r.status, 401);
}

#[test]
fn setting_the_clock_relabels_the_timeline_and_exports_and_locks_export_in_one_tap() {
    let f = Fixture::start(Limits::default());
    f.wait_written(25);
    // Lock from the dashboard: an incident covering now, with export links.
    let r = f.post_json("/api/lock", r#"{"source": "dashboard"}"#, Some(TOKEN));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let inc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(inc["triggers"], serde_json::json!(["dashboard"]));
    assert_eq!(inc["pre_roll_s"], 30);
    let from = parse_rfc3339(inc["from"].as_str().unwrap()).unwrap();
    let to = parse_rfc3339(inc["to"].as_str().unwrap()).unwrap();
    assert_eq!(to - from, 60_000_000_000);
    let list = f.json("/api/incidents");
    assert_eq!(list["incidents"][0]["id"], inc["id"]);
    assert!(list["locked_cap_bytes"].as_u64().unwrap() > 0);
    let url = inc["exports"][0]["url"].as_str().unwrap().to_string();
    let export = f.get(&url);
    assert_eq!(export.status, 200);
    assert_eq!(&export.body[4..8], b"ftyp");
    // A bad source is named.
    let r = f.post_json("/api/lock", r#"{"source": "shock"}"#, Some(TOKEN));
    assert_eq!(r.status, 400);
    assert!(r.error().contains("source"));

    // The phone is an hour ahead.
    let before = f.json("/api/recordings?camera=front");
    let first_start = parse_rfc3339(before["spans"][0]["start"].as_str().unwrap()).unwrap();
    assert_eq!(before["spans"][0]["estimated"], false);
    let hour = 3_600_000_000_000i64;
    let phone_ms = (SystemClock.wall_ns() + hour) / 1_000_000;
    let r = f.post_json(
        "/api/clock",
        &format!(r#"{{"unix_ms": {phone_ms}}}"#),
        Some(TOKEN),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let set: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(set["source"], "set_offset");
    assert!(set["relabelled_segments"].as_u64().unwrap() >= 1);
    let clock = f.json("/api/clock");
    let ahead = clock["unix_ms"].as_i64().unwrap() * 1_000_000 - SystemClock.wall_ns();
    assert!((ahead - hour).abs() < 5_000_000_000, "ahead by {ahead} ns");

    // The same footage now starts an hour later, in the timeline...
    let q = format!(
        "/api/recordings?camera=front&from={}&to={}",
        format_rfc3339_ms(first_start + hour - 5_000_000_000),
        format_rfc3339_ms(SystemClock.wall_ns() + hour + 5_000_000_000)
    );
    let after = f.json(&q);
    let moved = parse_rfc3339(after["spans"][0]["start"].as_str().unwrap()).unwrap();
    assert!(
        (moved - first_start - hour).abs() < 1_000_000_000,
        "{moved} vs {first_start}"
    );
    // ...in exports over the corrected span...
    let url = format!(
        "/api/export.mp4?camera=front&from={}&to={}",
        format_rfc3339_ms(first_start + hour),
        format_rfc3339_ms(first_start + hour + 2_000_000_000)
    );
    let export = f.get(&url);
    assert_eq!(export.status, 200, "{}", export.error());
    // ...and in the incident, which moved with it.
    let list = f.json("/api/incidents");
    let moved_from = parse_rfc3339(list["incidents"][0]["from"].as_str().unwrap()).unwrap();
    assert!((moved_from - from - hour).abs() < 1_000_000_000);
    // The old times hold nothing any more.
    let url = format!(
        "/api/export.mp4?camera=front&from={}&to={}",
        format_rfc3339_ms(first_start),
        format_rfc3339_ms(first_start + 2_000_000_000)
    );
    assert_eq!(f.get(&url).status, 404);
}

#[test]
fn frame_at_a_damaged_frames_time_serves_the_nearest_intact_frame_not_500() {
    let mut f = Fixture::start(Limits::default());
    f.wait_written(45);
    f.stop_recording();
    let store = Store::on_disk(&f.data_dir);
    let seg = store.segments("front").unwrap().segments[0].clone();
    let reader = store.open_segment(&seg).unwrap();
    let victim = reader.frames[10];
    let (before, after) = (reader.frames[9], reader.frames[11]);
    drop(reader);
    let mut bytes = std::fs::read(&seg.path).unwrap();
    bytes[victim.offset as usize + 48 + 30] ^= 0x40;
    std::fs::write(&seg.path, bytes).unwrap();

    let at = format_rfc3339_ms(victim.wall_ns);
    let r = f.get(&format!("/api/frame?camera=front&at={at}"));
    assert_eq!(r.status, 200, "{}", r.error());
    assert!(is_jpeg(&r.body));
    let served = parse_rfc3339(r.header("X-Frame-Time").unwrap()).unwrap();
    // X-Frame-Time has whole milliseconds.
    let near = |w: i64, served: i64| (w - served).abs() < 1_000_000;
    assert!(
        near(before.wall_ns, served) || near(after.wall_ns, served),
        "served {served}, not a neighbour of the damaged frame at {}",
        victim.wall_ns
    );
    // Stepping onto the damaged frame moves past it.
    let at = format_rfc3339_ms(before.wall_ns);
    let r = f.get(&format!("/api/frame?camera=front&at={at}&step=1"));
    assert_eq!(r.status, 200);
    let served = parse_rfc3339(r.header("X-Frame-Time").unwrap()).unwrap();
    assert!(
        near(after.wall_ns, served),
        "step 1 from frame 9 served {served}, not frame 11 at {}",
        after.wall_ns
    );
}

#[test]
fn download_of_a_damaged_segment_is_refused_up_front_naming_the_damage() {
    let mut f = Fixture::start(Limits::default());
    f.wait_written(45);
    f.stop_recording();
    let store = Store::on_disk(&f.data_dir);
    let segments = store.segments("front").unwrap().segments;
    let (bad, good) = (&segments[0], &segments[1]);
    let reader = store.open_segment(bad).unwrap();
    let victim = reader.frames[3];
    drop(reader);
    let mut bytes = std::fs::read(&bad.path).unwrap();
    bytes[victim.offset as usize + 48 + 7] ^= 0x01;
    std::fs::write(&bad.path, bytes).unwrap();

    let r = f.get(&format!(
        "/api/video/download?camera=front&name={}",
        bad.name
    ));
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.error().contains(&victim.offset.to_string()),
        "{}",
        r.error()
    );
    // An intact segment still downloads, its length what is sent.
    let r = f.get(&format!(
        "/api/video/download?camera=front&name={}",
        good.name
    ));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length").unwrap(),
        r.body.len().to_string()
    );
    // The export of the damaged time leaves out that frame and says so.
    let from = format_rfc3339_ms(victim.wall_ns - 1_000_000_000);
    let to = format_rfc3339_ms(victim.wall_ns + 1_000_000_000);
    let r = f.get(&format!("/api/export.mp4?camera=front&from={from}&to={to}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Skipped-Frames"), Some("1"));
    assert_eq!(
        r.header("content-length").unwrap(),
        r.body.len().to_string()
    );
}

/// The segment being written is preallocated to its expected size; the
/// timeline and the segment list showed that size as if it were footage.
#[test]
fn the_open_segment_reports_the_bytes_written_not_its_preallocation() {
    let f = Fixture::start(Limits::default());
    f.wait_written(5);
    let until = Instant::now() + Duration::from_secs(20);
    let (name, frames, bytes) = loop {
        assert!(Instant::now() < until, "no open segment with frames");
        let t = f.json("/api/recordings?camera=front");
        let open = t["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["closed"] == false && s["frames"].as_u64().unwrap_or(0) >= 5)
            .cloned();
        if let Some(s) = open {
            break (
                s["name"].as_str().unwrap().to_string(),
                s["frames"].as_u64().unwrap() as usize,
                s["bytes"].as_u64().unwrap(),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let io = RealIo::new();
    let entry = |name: &str| {
        catalog::list_segments(&io, &f.data_dir, "front")
            .unwrap()
            .segments
            .into_iter()
            .find(|s| s.name == name)
            .unwrap()
    };
    let preallocated = entry(&name).len;
    assert!(
        bytes < preallocated,
        "{name}: {bytes} bytes reported, the preallocation is {preallocated}"
    );
    // Once closed, the segment's frames say what had been written: at least
    // the first `frames` records, at most a few more (the counts were read
    // a moment apart) and the padding of a sync.
    // Until the next segment is open: between the two (one frame's close
    // and open) there is none.
    let until = Instant::now() + Duration::from_secs(20);
    while f.recorder.as_ref().unwrap().status.cameras()[0]
        .storage
        .current_segment()
        .is_none_or(|current| current == name)
    {
        assert!(Instant::now() < until, "{name} was never closed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let closed_entry = entry(&name);
    let closed = SegmentReader::open(&io, &closed_entry.path).unwrap();
    let end_of = |i: usize| closed.frames[i].offset + closed.frames[i].payload_len as u64;
    let payloads: u64 = closed.frames[..frames]
        .iter()
        .map(|x| x.payload_len as u64)
        .sum();
    assert!(
        bytes >= end_of(frames - 1) && bytes >= payloads,
        "{name}: {bytes} bytes reported for {frames} frames of {payloads} bytes ending at {}",
        end_of(frames - 1)
    );
    let upper = closed
        .frames
        .get(frames + 3)
        .map_or(closed_entry.len, |x| x.offset);
    assert!(
        bytes <= upper,
        "{name}: {bytes} bytes reported for {frames} frames ending at {}",
        end_of(frames - 1)
    );
    // The list of videos says the same of a segment being written.
    let videos = f.json("/api/videos");
    let open_now = f.recorder.as_ref().unwrap().status.cameras()[0]
        .storage
        .current_segment()
        .unwrap();
    let listed = videos["videos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == open_now.as_str())
        .map(|v| v["size"].as_u64().unwrap());
    if let Some(size) = listed {
        assert!(size < entry(&open_now).len, "{open_now}: {size} bytes");
    }
}

/// The header clock lagged the picture: the status time was cut to whole
/// seconds.
#[test]
fn status_time_has_milliseconds() {
    let f = Fixture::start(Limits::default());
    // Bracket the request rather than compare with "now": a loaded machine
    // may take seconds to answer, and the time must fall inside it.
    let before = SystemClock.wall_ns() / 1_000_000 * 1_000_000;
    let s = f.json("/api/status");
    let after = SystemClock.wall_ns();
    let time = s["time"].as_str().unwrap();
    assert_eq!(time.len(), "2026-11-20T10:00:00.250Z".len(), "{time}");
    let shown = parse_rfc3339(time).unwrap();
    assert!(
        before <= shown && shown <= after,
        "{time} outside the request"
    );
    // A camera that records needs no checks.
    assert!(s["cameras"][0].get("checks").is_none(), "{s}");
}

/// During the post-roll the incident list showed one size for the incident
/// and another for the total locked: the open segment counted its
/// preallocation in one and nothing in the other.
#[test]
fn an_incident_and_the_locked_total_agree_during_the_post_roll() {
    let f = Fixture::start(Limits::default());
    f.wait_written(25);
    let r = f.post_json("/api/lock", r#"{"source": "dashboard"}"#, Some(TOKEN));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let until = Instant::now() + Duration::from_secs(20);
    let list = loop {
        let list = f.json("/api/incidents");
        if list["incidents"][0]["segments"].as_u64().unwrap_or(0) >= 2 {
            break list;
        }
        assert!(
            Instant::now() < until,
            "the incident locked no segments: {list}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        list["incidents"][0]["complete"], false,
        "still in post-roll"
    );
    let one = list["incidents"][0]["bytes"].as_u64().unwrap();
    assert!(one > 0);
    assert_eq!(list["locked_bytes"].as_u64().unwrap(), one, "{list}");
}

/// What the server answers is exactly the type the route table names
/// (`src/http/answers.rs`), the type `docs/api.md` is checked against: no
/// field more, none less.
#[test]
fn every_json_answer_is_exactly_its_routes_type() {
    let f = Fixture::start(Limits::default());
    f.wait_written(2);
    let check = |what: &str, route: &dashvault::http::routes::Route, reply: Reply| {
        let answer = if reply.status == 200 {
            route.answer
        } else {
            json::<ErrorAnswer>()
        };
        if let Err(problems) = answer.check(&reply.json()) {
            panic!("{what} ({}): {problems:?}", reply.status);
        }
    };
    let lock = ROUTES.iter().find(|r| r.path == "/api/lock").unwrap();
    check(
        "POST /api/lock",
        lock,
        f.post_json("/api/lock", "{}", Some(TOKEN)),
    );
    for route in ROUTES {
        if !matches!(route.answer, Answer::Json(_)) {
            continue;
        }
        let path = sample_path(route.path);
        let reply = match (route.method, route.path) {
            ("GET", _) => f.get(&path),
            ("POST", "/api/links") => {
                f.post_json(&path, r#"{"url": "/api/frame?camera=front"}"#, Some(TOKEN))
            }
            ("POST", "/api/clock") => f.post_json(
                &path,
                &format!(r#"{{"unix_ms": {}}}"#, SystemClock.wall_ns() / 1_000_000),
                Some(TOKEN),
            ),
            // Locking is checked above; logging in and out and rotating
            // the token end this fixture's credentials.
            _ => continue,
        };
        check(&format!("{} {path}", route.method), route, reply);
    }
}

/// A share clip over HTTP as the dashboard makes one: sizes estimated
/// before, a job started with POST and polled, the clip served by its URL
/// and by `format=h264`, and ffprobe reading H.264 with every frame.
#[cfg(feature = "software-h264")]
#[test]
fn share_clip_job_goes_from_estimate_to_a_served_h264_file() {
    let f = Fixture::start(Limits::default());
    f.wait_written(40);
    let now = SystemClock.wall_ns();
    let (from, to) = (
        format_rfc3339_ms(now - 3_000_000_000),
        format_rfc3339_ms(now - 500_000_000),
    );
    let q = format!("camera=front&from={from}&to={to}&size=480&quality=standard");

    let status = f.json("/api/status");
    assert_eq!(status["share_encoder"], "openh264 (software)", "{status}");
    let est = f.json(&format!("/api/export/estimate?{q}"));
    // 320x240 recorded, 480 asked: never upscaled.
    assert_eq!(
        (est["share_width"].as_u64(), est["share_height"].as_u64()),
        (Some(320), Some(240))
    );
    let est_frames = est["frames"].as_u64().unwrap();
    assert!((18..=32).contains(&est_frames), "{est}");
    assert!(est["lossless_bytes"].as_u64().unwrap() > 0, "{est}");
    let r = f.get(&format!("/api/export.mp4?{q}&format=h264"));
    assert_eq!(
        r.status,
        409,
        "a clip not made yet: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(String::from_utf8_lossy(&r.body).contains("POST /api/share"));

    let body = serde_json::json!({"camera": "front", "from": from, "to": to,
                                  "size": 480, "quality": "standard"})
    .to_string();
    let r = f.post_json("/api/share", &body, Some(TOKEN));
    assert!(
        matches!(r.status, 200 | 202),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let until = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let job = f.json("/api/share");
        if job["state"] != "running" {
            break job;
        }
        assert!(Instant::now() < until, "the job did not end: {job}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(job["state"], "done", "{job}");
    let frames = job["frames_total"].as_u64().unwrap();
    assert_eq!(job["frames_done"].as_u64(), Some(frames));
    assert!(
        frames.abs_diff(est_frames) <= 2,
        "estimated {est_frames}, made {frames}"
    );
    assert_eq!(job["encoder"], "openh264");
    // 480 lines asked of a 240-line camera: the job says what it made.
    assert_eq!(
        (job["width"].as_u64(), job["height"].as_u64()),
        (Some(320), Some(240))
    );
    let url = job["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with("/api/share/clip/front_") && url.ends_with("_480p_standard.mp4"),
        "{url}"
    );

    let clip = f.get(&url);
    assert_eq!(clip.status, 200);
    assert_eq!(clip.header("content-type"), Some("video/mp4"));
    assert_eq!(Some(clip.body.len() as u64), job["bytes"].as_u64());
    let share_est = est["share_bytes"].as_u64().unwrap() as f64;
    let ratio = clip.body.len() as f64 / share_est;
    assert!(
        (0.3..3.0).contains(&ratio),
        "estimated {share_est} bytes, made {}",
        clip.body.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clip.mp4");
    std::fs::write(&file, &clip.body).unwrap();
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ])
        .args(["-of", "default=nw=1"])
        .arg(&file)
        .output()
        .unwrap();
    let probe = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.contains("codec_name=h264")
            && probe.contains("width=320")
            && probe.contains(&format!("nb_read_frames={frames}")),
        "{probe}"
    );

    // The same clip by the export's URL, in part, and asked for again.
    let again = f.get(&format!("/api/export.mp4?{q}&format=h264"));
    assert_eq!((again.status, again.body == clip.body), (200, true));
    let part = f.get_with(
        &url,
        &[
            ("Authorization", &format!("Bearer {TOKEN}")),
            ("Range", "bytes=0-99"),
        ],
    );
    assert_eq!(
        (part.status, part.body.as_slice()),
        (206, &clip.body[..100])
    );
    let r = f.post_json("/api/share", &body, Some(TOKEN));
    assert_eq!(r.status, 200, "made already: answered from the cache");
    let r: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (r["state"].as_str(), r["url"].as_str()),
        (Some("done"), Some(url.as_str()))
    );

    for bad in [
        "/api/share/clip/..%2Fx.mp4",
        "/api/share/clip/.hidden.mp4",
        "/api/share/clip/x.mp4.tmp",
    ] {
        assert_eq!(f.get(bad).status, 404, "{bad}");
    }
    assert_eq!(
        f.get(&format!("/api/export.mp4?{q}&format=webm")).status,
        400
    );
    let r = f.post_json(
        "/api/share",
        r#"{"camera": "front", "from": "x"}"#,
        Some(TOKEN),
    );
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("from: "));
    assert_eq!(
        f.post_json("/api/share/cancel", "{}", Some(TOKEN)).status,
        404
    );
}
