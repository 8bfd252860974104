//! Hostile clients against the real server on 127.0.0.1 while the real
//! recorder records the synthetic camera. Every attack is bounded in count
//! and time; the recording rate is measured before and during each one and
//! printed, and must not fall.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dashvault::clock::{format_rfc3339_ms, Clock, SystemClock};
use dashvault::http::routes::ROUTES;
use dashvault::http::server::Limits;
use dashvault::http::HttpService;
use dashvault::recorder::Recorder;

mod common;
use common::TOKEN;
const FPS: u32 = 15;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

struct Fixture {
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    recorder: Option<Recorder>,
    http: Option<HttpService>,
    addr: SocketAddr,
}

impl Fixture {
    fn start() -> Fixture {
        Fixture::start_with(Limits {
            request_timeout: REQUEST_TIMEOUT,
            ..Limits::default()
        })
    }

    fn start_with(limits: Limits) -> Fixture {
        let svc = common::start_service(FPS, [9; 16], limits);
        let addr = svc.http.local_addr();
        Fixture {
            _dir: svc.dir,
            data_dir: svc.data_dir,
            recorder: Some(svc.recorder),
            http: Some(svc.http),
            addr,
        }
    }

    fn written(&self) -> u64 {
        self.recorder.as_ref().unwrap().status.cameras()[0]
            .storage
            .written
            .load(Ordering::Relaxed)
    }

    /// Frames written per second over `window`.
    fn fps_over(&self, window: Duration) -> f64 {
        let (t0, n0) = (Instant::now(), self.written());
        std::thread::sleep(window);
        (self.written() - n0) as f64 / t0.elapsed().as_secs_f64()
    }

    /// Runs `attack` on its own thread and prints the recording rate before
    /// and during it; the rate during must stay near the rate before.
    fn under_attack<T: Send + 'static>(
        &self,
        name: &str,
        attack: impl FnOnce(SocketAddr) -> T + Send + 'static,
    ) -> T {
        let before = self.fps_over(Duration::from_millis(1500));
        let addr = self.addr;
        let started = Instant::now();
        let handle = std::thread::spawn(move || attack(addr));
        let (t0, n0) = (Instant::now(), self.written());
        while !handle.is_finished() || t0.elapsed() < Duration::from_millis(1000) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let during = (self.written() - n0) as f64 / t0.elapsed().as_secs_f64();
        let out = handle.join().unwrap();
        println!(
            "{name}: recording {before:.1} fps before, {during:.1} fps during ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        assert!(
            during >= before * 0.7,
            "{name}: recording fell from {before:.1} to {during:.1} fps"
        );
        out
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

/// Sends raw bytes, returns (status, head, body) of the answer (status 0
/// when the server closed without one).
fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head, answer[split..].to_vec())
}

fn get(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    get_with(addr, path, "")
}

fn get_with(addr: SocketAddr, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    raw(
        addr,
        format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n{extra}Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn hostile_clients_never_slow_recording_or_reach_past_their_limits() {
    let f = Fixture::start();
    let until = Instant::now() + Duration::from_secs(20);
    while f.written() < 2 * FPS as u64 {
        assert!(Instant::now() < until, "recording did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(f.data_dir.join("secret.txt"), "SECRET-CONTENT").unwrap();

    // Header and body limits: refused from the head, never buffered.
    let answers = f.under_attack("oversized heads and bodies (200 requests)", |addr| {
        let mut statuses = Vec::new();
        for i in 0..200 {
            let req: Vec<u8> = match i % 4 {
                0 => format!(
                    "GET /health HTTP/1.1\r\nX-Big: {}\r\n\r\n",
                    "a".repeat(20_000)
                )
                .into_bytes(),
                1 => b"POST /api/login HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n".to_vec(),
                2 => {
                    let many: String = (0..60).map(|h| format!("X-H{h}: v\r\n")).collect();
                    format!("GET /health HTTP/1.1\r\n{many}\r\n").into_bytes()
                }
                _ => b"POST /api/login HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            };
            statuses.push((i % 4, raw(addr, &req).0));
        }
        statuses
    });
    for (kind, status) in answers {
        let want = [431, 413, 431, 411][kind];
        assert_eq!(status, want, "request kind {kind}");
    }

    // Slowloris: more connections than the server allows, each trickling a
    // byte at a time. They are cut at the request timeout; an honest client
    // gets through.
    let (cut, honest_wait) = f.under_attack("slowloris (200 trickling connections)", |addr| {
        let mut slow: Vec<TcpStream> = (0..200)
            .filter_map(|_| TcpStream::connect(addr).ok())
            .collect();
        let t0 = Instant::now();
        let mut honest_wait = None;
        let mut cut = 0;
        while t0.elapsed() < REQUEST_TIMEOUT + Duration::from_secs(2) {
            slow.retain_mut(|s| {
                if s.write_all(b"X").is_err() {
                    cut += 1;
                    return false;
                }
                true
            });
            if honest_wait.is_none() && get(addr, "/health").0 == 200 {
                honest_wait = Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // Whatever still looks open must be closed by the server by now.
        for s in &mut slow {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut b = [0u8; 256];
            let mut n = s.read(&mut b).unwrap_or(0);
            while n > 0 {
                n = s.read(&mut b).unwrap_or(0);
            }
            cut += 1;
        }
        (cut, honest_wait)
    });
    assert_eq!(cut, 200);
    let honest_wait = honest_wait.expect("an honest client was never served");
    println!(
        "slowloris: honest /health answered after {} ms",
        honest_wait.as_millis()
    );
    assert!(honest_wait < REQUEST_TIMEOUT + Duration::from_secs(1));

    // Malformed and overlapping byte ranges on an export.
    let to = SystemClock.wall_ns();
    let export = format!(
        "/api/export.mp4?camera=front&from={}&to={}",
        format_rfc3339_ms(to - 10_000_000_000),
        format_rfc3339_ms(to)
    );
    let ranges = f.under_attack(
        "malformed and overlapping Range (48 requests)",
        move |addr| {
            let specs = [
                "bytes=5-1",
                "bytes=0-10,5-20",
                "bytes=0-0,0-0,0-0",
                "bytes=abc",
                "bytes=-0",
                "bytes=-",
                "bytes=--5",
                "bytes=1-2-3",
                "bytes=99999999999999-",
                "bytes=0-18446744073709551615",
                "bytes=18446744073709551615-18446744073709551615",
                "bytes=-18446744073709551616",
                "bytes= 0 - 9 ",
                "items=0-9",
                "bytes=0-9,",
                "bytes=\u{0}0-9",
            ];
            let mut out = Vec::new();
            for spec in specs {
                for _ in 0..3 {
                    let (status, head, body) =
                        get_with(addr, &export, &format!("Range: {spec}\r\n"));
                    out.push((spec, status, head, body.len()));
                }
            }
            out
        },
    );
    for (spec, status, head, body_len) in ranges {
        // A control character makes the whole head malformed (400).
        let malformed_head = spec.contains('\0') && status == 400;
        assert!(
            matches!(status, 200 | 206 | 416) || malformed_head,
            "Range {spec:?}: {status}\n{head}"
        );
        if status == 206 {
            let cr = header(&head, "content-range").expect("206 has Content-Range");
            let (a, rest) = cr.trim_start_matches("bytes ").split_once('-').unwrap();
            let (b, len) = rest.split_once('/').unwrap();
            let (a, b, len): (u64, u64, u64) =
                (a.parse().unwrap(), b.parse().unwrap(), len.parse().unwrap());
            assert!(a <= b && b < len, "Range {spec:?}: {cr}");
            assert_eq!(body_len as u64, b - a + 1, "Range {spec:?}: {cr}");
        }
    }

    // Path traversal in every parameter of every route, and in paths.
    let traversal = f.under_attack("path traversal in every parameter", |addr| {
        let payloads = [
            "../../secret.txt",
            "..%2F..%2Fsecret.txt",
            "..%252F..%252Fsecret.txt",
            "....//....//secret.txt",
            "/etc/passwd",
            "..\\..\\secret.txt",
            "front/../../secret.txt",
            "front%00.dvr",
            "%2e%2e%2f%2e%2e%2fsecret.txt",
        ];
        let params = [
            "camera",
            "file",
            "name",
            "at",
            "from",
            "to",
            "speed",
            "step",
            "time_track",
        ];
        let mut results = Vec::new();
        for route in ROUTES.iter().filter(|r| r.method == "GET") {
            let base = route.path.replace('*', "front");
            if base.contains("mjpeg") || base.contains("playback") {
                continue; // endless streams; their parameters are checked by /api/frame
            }
            for p in params {
                for v in payloads {
                    let path = format!("{base}?camera=front&{p}={v}");
                    results.push((path.clone(), get(addr, &path)));
                }
            }
        }
        for v in payloads {
            for base in ["/assets/", "/api/cameras/"] {
                let path = format!("{base}{v}");
                results.push((path.clone(), get(addr, &path)));
            }
        }
        results
    });
    let tried = traversal.len();
    for (path, (status, _, body)) in traversal {
        assert!(status != 0 && status < 500, "{path}: {status}");
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("SECRET-CONTENT") && !text.contains("root:x:"),
            "{path} leaked a file"
        );
    }
    println!("path traversal: {tried} requests, none leaked a file or failed with 5xx");

    // A flood of live streams past the cap: 503 beyond it.
    let (ok, busy) = f.under_attack("live-stream flood (40 viewers, cap 8)", |addr| {
        let mut held = Vec::new();
        let (mut ok, mut busy) = (0, 0);
        for _ in 0..40 {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            write!(
                s,
                "GET /api/stream/mjpeg?camera=front HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
            )
            .unwrap();
            let mut head = [0u8; 12];
            if s.read_exact(&mut head).is_ok() {
                match &head[9..12] {
                    b"200" => ok += 1,
                    b"503" => busy += 1,
                    other => panic!("stream answered {}", String::from_utf8_lossy(other)),
                }
            }
            held.push(s);
        }
        std::thread::sleep(Duration::from_millis(1500));
        (ok, busy)
    });
    println!("live-stream flood: {ok} served, {busy} answered 503");
    assert_eq!(ok, Limits::default().max_streams);
    assert_eq!(busy, 40 - ok);

    // 1,000 wrong tokens: slowed down after a few, recording unaffected.
    let (wrong, slowed, elapsed) = f.under_attack("1,000 wrong tokens", |addr| {
        let t0 = Instant::now();
        let (mut wrong, mut slowed) = (0, 0);
        for i in 0..1000 {
            let (status, head, _) = raw(
                addr,
                format!(
                    "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer wrong{i}\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            );
            match status {
                401 => wrong += 1,
                429 => {
                    assert!(header(&head, "retry-after").is_some());
                    slowed += 1
                }
                other => panic!("wrong token answered {other}"),
            }
        }
        (wrong, slowed, t0.elapsed())
    });
    println!(
        "wrong tokens: {wrong} answered 401, {slowed} slowed down with 429, in {} ms",
        elapsed.as_millis()
    );
    assert!(wrong <= 10, "{wrong} guesses were checked");
    assert_eq!(
        get(f.addr, "/health").0,
        200,
        "the public route still works"
    );
}

/// Reads answers until `count` whole ones (head and Content-Length body)
/// have arrived or `within` passes; returns their heads.
fn read_answers(s: &mut TcpStream, count: usize, within: Duration) -> Vec<String> {
    let until = Instant::now() + within;
    let mut data = Vec::new();
    let mut heads = Vec::new();
    let mut at = 0;
    while heads.len() < count && Instant::now() < until {
        let Some(end) = data[at..].windows(4).position(|w| w == b"\r\n\r\n") else {
            s.set_read_timeout(Some(
                until
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ))
            .unwrap();
            let mut chunk = [0u8; 16384];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => data.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&data[at..at + end + 4]).into_owned();
        let body: usize = header(&head, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if data.len() < at + end + 4 + body {
            let mut chunk = [0u8; 16384];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => data.extend_from_slice(&chunk[..n]),
            }
            continue;
        }
        at += end + 4 + body;
        heads.push(head);
    }
    heads
}

#[test]
fn a_request_followed_by_a_half_close_is_answered() {
    let f = Fixture::start();
    let mut answered = 0;
    for _ in 0..40 {
        let mut s = TcpStream::connect(f.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        if answer.starts_with("HTTP/1.1 200") {
            answered += 1;
        }
    }
    println!("half-close: {answered} of 40 requests answered");
    assert_eq!(answered, 40);
}

#[test]
fn pipelined_requests_already_received_are_answered_without_more_bytes() {
    let f = Fixture::start();
    let mut s = TcpStream::connect(f.addr).unwrap();
    s.write_all(
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    )
    .unwrap();
    // The client sends nothing more and keeps the connection open.
    let heads = read_answers(&mut s, 3, Duration::from_secs(3));
    let statuses: Vec<&str> = heads
        .iter()
        .map(|h| h.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(statuses, ["200", "200", "404"], "{heads:?}");
}

#[test]
fn a_signed_or_duplicate_content_length_is_refused_on_the_wire() {
    let f = Fixture::start();
    for length in [
        "Content-Length: +7",
        "Content-Length: -1",
        "Content-Length: 7\r\nContent-Length: 7",
    ] {
        let (status, head, _) = raw(
            f.addr,
            format!("POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\n{length}\r\n\r\ntoken=a")
                .as_bytes(),
        );
        assert_eq!(status, 400, "{length}: {head}");
    }
}

#[test]
fn a_request_head_that_times_out_gets_408() {
    let f = Fixture::start();
    let mut s = TcpStream::connect(f.addr).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    s.set_read_timeout(Some(REQUEST_TIMEOUT * 3)).unwrap();
    let t0 = Instant::now();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    println!("408 after {} ms", t0.elapsed().as_millis());
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(t0.elapsed() < REQUEST_TIMEOUT + Duration::from_secs(1));
}

#[test]
fn every_answer_says_nosniff_no_store_and_no_referrer() {
    let f = Fixture::start();
    let until = Instant::now() + Duration::from_secs(20);
    while f.written() < 2 * FPS as u64 {
        assert!(Instant::now() < until, "recording did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let to = SystemClock.wall_ns();
    let (from, at) = (
        format_rfc3339_ms(to - 1_000_000_000),
        format_rfc3339_ms(to - 500_000_000),
    );
    let mut answers = vec![
        ("/health", get(f.addr, "/health")),
        ("/api/status", get(f.addr, "/api/status")),
        ("no route", get(f.addr, "/nowhere")),
        ("asset", get(f.addr, "/assets/app.js")),
        ("dashboard", get(f.addr, "/")),
        ("live frame", get(f.addr, "/api/stream/frame?camera=front")),
        (
            "recorded frame",
            get(f.addr, &format!("/api/frame?camera=front&at={at}")),
        ),
        (
            "export",
            get(
                f.addr,
                &format!(
                    "/api/export.mp4?camera=front&from={from}&to={}",
                    format_rfc3339_ms(to)
                ),
            ),
        ),
        (
            "no token",
            raw(
                f.addr,
                b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            ),
        ),
        (
            "oversized head",
            raw(
                f.addr,
                format!(
                    "GET /health HTTP/1.1\r\nX-Big: {}\r\n\r\n",
                    "a".repeat(20_000)
                )
                .as_bytes(),
            ),
        ),
    ];
    // A live stream: its head is enough.
    let mut s = TcpStream::connect(f.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /api/stream/mjpeg?camera=front HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read_exact(&mut byte).is_ok() {
        head.push(byte[0]);
    }
    answers.push((
        "live stream",
        (200, String::from_utf8_lossy(&head).into_owned(), Vec::new()),
    ));
    for (what, (status, head, _)) in &answers {
        assert!(*status != 0, "{what}: no answer");
        assert_eq!(
            header(head, "x-content-type-options"),
            Some("nosniff"),
            "{what}: {head}"
        );
        assert_eq!(
            header(head, "referrer-policy"),
            Some("no-referrer"),
            "{what}: {head}"
        );
        let cache = header(head, "cache-control").unwrap_or("");
        assert!(
            cache.split(',').any(|d| d.trim() == "no-store"),
            "{what}: {head}"
        );
        assert_eq!(
            head.lines()
                .filter(|l| l.to_ascii_lowercase().starts_with("cache-control:"))
                .count(),
            1,
            "{what}: one Cache-Control\n{head}"
        );
    }
    let statuses: Vec<(&str, u16)> = answers.iter().map(|(w, (s, _, _))| (*w, *s)).collect();
    println!("headers checked on {statuses:?}");
}
/// Connects from `local` (another loopback address, so the server sees a
/// second client), the way std cannot: bind before connect.
fn connect_from(local: std::net::Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    connect_with(local, addr, None)
}

/// Connects from `local`, with a receive buffer of `rcvbuf` bytes when
/// given (set before connecting, so the advertised window stays small).
fn connect_with(
    local: std::net::Ipv4Addr,
    addr: SocketAddr,
    rcvbuf: Option<libc::c_int>,
) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(to) = addr else {
        panic!("the server listens on IPv4 loopback")
    };
    let sockaddr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor owned by the TcpStream
    // made from it (or closed here on failure); the addresses live across
    // the calls that read them.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        if let Some(bytes) = rcvbuf {
            let set = libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&bytes as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            if set != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        let from = sockaddr(local, 0);
        if libc::bind(fd, (&from as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let to = sockaddr(*to.ip(), to.port());
        if libc::connect(fd, (&to as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// Frames the recorder dropped for any reason, summed.
fn frames_dropped(f: &Fixture) -> u64 {
    let cam = f.recorder.as_ref().unwrap().status.cameras()[0].clone();
    [
        &cam.dropped_encoder_busy,
        &cam.dropped_writer_busy,
        &cam.dropped_encode_error,
        &cam.dropped_storage_error,
    ]
    .iter()
    .map(|c| c.load(Ordering::Relaxed))
    .sum()
}

/// Opens and holds one address's share of the table in the three ways that
/// used to lock others out, topping it up until `stop`: keep-alives idle
/// after one `/health`, request heads left half sent, and clients that
/// pipeline 2,000 requests and never read the answers.
fn hold_connections(
    from: std::net::Ipv4Addr,
    addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> usize {
    use std::collections::VecDeque;
    let limits = Limits::default();
    let per_kind = limits.per_address_connections;
    let (mut idle, mut heads, mut deaf) = (VecDeque::new(), VecDeque::new(), VecDeque::new());
    let pipelined = "GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(2000);
    let mut opened = 0;
    let open = |opened: &mut usize| {
        let s = connect_from(from, addr).ok()?;
        s.set_write_timeout(Some(Duration::from_millis(500))).ok()?;
        *opened += 1;
        Some(s)
    };
    for _ in 0..4 {
        if let Some(mut s) = open(&mut opened) {
            let _ = s.write_all(pipelined.as_bytes());
            deaf.push_back(s);
        }
    }
    let t0 = Instant::now();
    while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(60) {
        for _ in 0..3 {
            if let Some(mut s) = open(&mut opened) {
                let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
                let _ = read_answers(&mut s, 1, Duration::from_millis(500));
                idle.push_back(s);
            }
            if let Some(mut s) = open(&mut opened) {
                let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
                heads.push_back(s);
            }
        }
        for held in [&mut idle, &mut heads, &mut deaf] {
            while held.len() > per_kind {
                held.pop_front();
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    opened
}

#[test]
fn an_attacker_holding_its_connections_cannot_slow_the_owner() {
    use std::net::Ipv4Addr;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let f = Fixture::start();
    let until = Instant::now() + Duration::from_secs(20);
    while f.written() < 2 * FPS as u64 {
        assert!(Instant::now() < until, "recording did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
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
    let dropped_before = frames_dropped(&f);
    // The owner's dashboard keeps a connection open between requests: an
    // authenticated idle connection outlives the unauthenticated ones.
    let owner = Ipv4Addr::new(127, 0, 0, 2);
    let status_request = format!(
        "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    );
    let mut dashboard = connect_from(owner, f.addr).unwrap();
    dashboard.write_all(status_request.as_bytes()).unwrap();
    assert_eq!(
        read_answers(&mut dashboard, 1, Duration::from_secs(5)).len(),
        1
    );
    let stop = Arc::new(AtomicBool::new(false));
    // 127.0.0.1 and four more addresses: together more than the table holds.
    let attackers: Vec<_> = [1, 3, 4, 5, 6]
        .into_iter()
        .map(|last| {
            let (addr, stop) = (f.addr, stop.clone());
            std::thread::spawn(move || hold_connections(Ipv4Addr::new(127, 0, 0, last), addr, stop))
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(10);
    while stats.connections.load(Ordering::Relaxed) < Limits::default().max_connections {
        assert!(Instant::now() < until, "the attack never filled the table");
        std::thread::sleep(Duration::from_millis(50));
    }
    let evicted_before = stats.evicted.load(Ordering::Relaxed);

    let mut latencies = Vec::new();
    for _ in 0..100 {
        let t0 = Instant::now();
        let mut s = connect_from(owner, f.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        write!(
            s,
            "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        latencies.push(t0.elapsed());
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "the owner got {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    let connections_under_attack = stats.connections.load(Ordering::Relaxed);
    dashboard.write_all(status_request.as_bytes()).unwrap();
    let kept = read_answers(&mut dashboard, 1, Duration::from_secs(5));
    assert!(
        kept.first().is_some_and(|h| h.starts_with("HTTP/1.1 200")),
        "the owner's idle keep-alive was evicted: {kept:?}"
    );
    let evicted = stats.evicted.load(Ordering::Relaxed) - evicted_before;
    stop.store(true, Ordering::Relaxed);
    let opened: usize = attackers.into_iter().map(|a| a.join().unwrap()).sum();
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    // Nearest rank: the 99th of 100.
    let p99 = latencies[latencies.len() * 99 / 100 - 1];
    println!(
        "owner under attack: /api/status p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} requests; \
         attacker opened {opened} connections from 5 addresses, {connections_under_attack} open, \
         {evicted} evicted while the owner asked",
        ms(latencies[latencies.len() / 2]),
        ms(p99),
        ms(latencies[latencies.len() - 1]),
        latencies.len()
    );
    let dropped = frames_dropped(&f) - dropped_before;
    println!("recording dropped {dropped} frames during the attack");
    assert_eq!(dropped, 0, "recording dropped frames");
    assert!(ms(p99) < 100.0, "owner p99 {:.1} ms", ms(p99));
    assert!(
        evicted > 0,
        "the table never had to make room: no real pressure"
    );
}

#[test]
fn a_frame_step_of_i64_min_is_refused_naming_step() {
    let f = Fixture::start();
    let at = format_rfc3339_ms(SystemClock.wall_ns());
    for step in [
        "-9223372036854775808",
        "9223372036854775807",
        "-9223372036854775809",
        "-10001",
    ] {
        let (status, head, body) = get(
            f.addr,
            &format!("/api/frame?camera=front&at={at}&step={step}"),
        );
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "step={step}: {head}{text}");
        assert!(text.contains("step"), "step={step}: {text}");
    }
    // Times at the edge of what a nanosecond count holds, with the largest
    // step: no overflow anywhere, just no frame there.
    for at in ["2262-04-11T23:47:16Z", "1970-01-01T00:00:00Z"] {
        for step in ["10000", "-10000", "0"] {
            let (status, head, body) = get(
                f.addr,
                &format!("/api/frame?camera=front&at={at}&step={step}"),
            );
            assert_eq!(
                status,
                404,
                "at={at} step={step}: {head}{}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    for (from, to) in [("2262-04-11T23:47:16Z", ""), ("", "1970-01-01T00:00:00Z")] {
        let (status, head, _) = get(
            f.addr,
            &format!("/api/recordings?camera=front&from={from}&to={to}"),
        );
        assert!(
            status == 200 || status == 400,
            "from={from} to={to}: {head}"
        );
    }
}

/// A client that sends a request every millisecond and never reads an
/// answer, with a 4 kB receive buffer; it stops after 3,000 requests (13 MB
/// of answers, more than loopback buffers hold) or when the server stops
/// taking them, and hands back its socket, still open.
fn deaf_client(addr: SocketAddr) -> std::thread::JoinHandle<(TcpStream, usize)> {
    std::thread::spawn(move || {
        let mut s = connect_with(std::net::Ipv4Addr::LOCALHOST, addr, Some(4096)).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut sent = 0;
        while sent < 3000
            && s.write_all(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .is_ok()
        {
            sent += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        (s, sent)
    })
}

#[test]
fn clients_that_never_read_their_answers_do_not_hold_the_workers() {
    let f = Fixture::start();
    // One more than there are workers; each asks for far more login pages
    // than socket buffers hold.
    let deaf: Vec<_> = (0..Limits::default().workers + 1)
        .map(|_| deaf_client(f.addr))
        .collect();
    let held: Vec<(TcpStream, usize)> = deaf.into_iter().map(|d| d.join().unwrap()).collect();
    let owner = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t0 = Instant::now();
        let mut s = connect_from(owner, f.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        write!(
            s,
            "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        assert!(answer.starts_with(b"HTTP/1.1 200"));
        slowest = slowest.max(t0.elapsed());
    }
    let sent: Vec<usize> = held.iter().map(|(_, n)| *n).collect();
    println!(
        "{} non-reading clients (requests sent: {sent:?}): the owner's slowest /api/status took {} ms",
        held.len(),
        slowest.as_millis()
    );
    assert!(slowest < Duration::from_millis(100));
}

/// The owner's `/api/status` from 127.0.0.2 on a new connection: its status
/// and how long it took.
fn owner_status(addr: SocketAddr) -> (u16, Duration) {
    let t0 = Instant::now();
    let mut s = connect_from(std::net::Ipv4Addr::new(127, 0, 0, 2), addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        s,
        "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let status = String::from_utf8_lossy(&answer[..answer.len().min(12)])
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, t0.elapsed())
}

#[test]
fn idle_keep_alives_and_half_sent_heads_from_one_address_leave_room_for_the_owner() {
    let f = Fixture::start();
    let max = Limits::default().max_connections;
    // As many idle keep-alives as the table holds, each after one /health.
    let mut idle = Vec::new();
    for _ in 0..max {
        let mut s = TcpStream::connect(f.addr).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let _ = read_answers(&mut s, 1, Duration::from_secs(2));
        idle.push(s);
    }
    let (status, took) = owner_status(f.addr);
    println!(
        "{max} idle keep-alives: owner answered {status} in {} ms",
        took.as_millis()
    );
    assert_eq!(status, 200);
    assert!(took < Duration::from_millis(100));
    // More half-sent heads than the table holds.
    let heads: Vec<TcpStream> = (0..max + 6)
        .filter_map(|_| {
            let mut s = TcpStream::connect(f.addr).ok()?;
            s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .ok()?;
            Some(s)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let (status, took) = owner_status(f.addr);
    println!(
        "{} half-sent heads: owner answered {status} in {} ms",
        heads.len(),
        took.as_millis()
    );
    assert_eq!(status, 200);
    assert!(took < Duration::from_millis(100));
    drop((idle, heads));
}

#[test]
fn an_answer_nobody_reads_is_dropped_at_the_write_timeout() {
    let write_timeout = Duration::from_secs(1);
    let f = Fixture::start_with(Limits {
        request_timeout: REQUEST_TIMEOUT,
        write_timeout,
        ..Limits::default()
    });
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
    let timed_out_before = stats.timed_out.load(Ordering::Relaxed);
    let started = Instant::now();
    // It stops sending when the server stops taking its requests.
    let (deaf, sent) = deaf_client(f.addr).join().unwrap();
    let stopped_sending = Instant::now();
    // The server holds the unread answer in the poller, then gives up.
    while stats.connections.load(Ordering::Relaxed) > 0 {
        assert!(
            stopped_sending.elapsed() < write_timeout * 4,
            "a connection whose answers nobody reads is still open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "a client that sent {sent} requests in {} ms and read nothing was dropped {} ms after it stopped",
        (stopped_sending - started).as_millis(),
        stopped_sending.elapsed().as_millis()
    );
    assert!(stats.timed_out.load(Ordering::Relaxed) > timed_out_before);
    assert_eq!(owner_status(f.addr).0, 200);
    drop(deaf);
}

/// One request with `Connection: close`, naming `host`; `extra` are whole
/// header lines.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    extra: &[&str],
    body: &str,
) -> (u16, String, Vec<u8>) {
    let lines: String = extra.iter().map(|h| format!("{h}\r\n")).collect();
    raw(
        addr,
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{lines}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

fn bearer() -> String {
    format!("Authorization: Bearer {TOKEN}")
}

#[test]
fn a_rebinding_page_gets_421_and_no_data_even_with_a_valid_token() {
    // A page at http://evil.example/ whose name now resolves to the Pi: the
    // browser sends its requests with Host: evil.example, cookies and all.
    let f = Fixture::start();
    let auth = bearer();
    let port = f.addr.port();
    for host in [
        "evil.example",
        &format!("evil.example:{port}"),
        "192.168.4.1.nip.io",
    ] {
        for path in [
            "/",
            "/login",
            "/health",
            "/api/status",
            "/api/videos",
            "/nowhere",
        ] {
            let (status, head, body) = send(f.addr, "GET", path, host, &[&auth], "");
            let text = String::from_utf8_lossy(&body);
            assert_eq!(status, 421, "{host} {path}: {head}");
            assert!(header(&head, "set-cookie").is_none());
            assert!(
                !text.contains("cameras") && !text.contains("<html") && !text.contains("version"),
                "{host} {path} leaked: {text}"
            );
            assert!(text.contains("open http://"), "{text}");
        }
        let (status, _, _) = send(
            f.addr,
            "POST",
            "/api/login",
            host,
            &["Content-Type: application/json"],
            &format!(r#"{{"token": "{TOKEN}"}}"#),
        );
        assert_eq!(status, 421, "{host}: login");
    }
    // The recorder's own addresses and names are answered.
    for host in [
        "127.0.0.1".to_string(),
        format!("127.0.0.1:{port}"),
        "192.168.4.1".into(),
        "[::1]".into(),
        format!("localhost:{port}"),
    ] {
        let (status, _, body) = send(f.addr, "GET", "/api/status", &host, &[&auth], "");
        assert_eq!(status, 200, "{host}");
        assert!(String::from_utf8_lossy(&body).contains("cameras"));
    }
    // HTTP/1.1 must name a host; HTTP/1.0 need not.
    let (status, _, _) = raw(
        f.addr,
        format!("GET /api/status HTTP/1.1\r\n{auth}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(status, 400);
    let (status, _, _) = raw(
        f.addr,
        format!("GET /api/status HTTP/1.0\r\n{auth}\r\n\r\n").as_bytes(),
    );
    assert_eq!(status, 200);
}

fn incidents(addr: SocketAddr) -> usize {
    let (status, _, body) = send(addr, "GET", "/api/incidents", "127.0.0.1", &[&bearer()], "");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["incidents"].as_array().unwrap().len()
}

#[test]
fn cross_site_form_and_text_posts_are_415_and_change_nothing() {
    let f = Fixture::start();
    let addr = f.addr;
    let (status, head, _) = send(
        addr,
        "POST",
        "/api/login",
        "127.0.0.1",
        &["Content-Type: application/json"],
        &format!(r#"{{"token": "{TOKEN}"}}"#),
    );
    assert_eq!(status, 200);
    let cookie = header(&head, "set-cookie")
        .and_then(|c| c.split(';').next())
        .map(|c| format!("Cookie: {c}"))
        .expect("a session");
    // What another site's page can send without a preflight: forms, text,
    // and a body with no type at all (fetch of a bare Blob).
    let kinds = [
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=b"),
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        None,
    ];
    let mut refused = 0;
    for kind in kinds {
        let content_type = kind.map(|t| format!("Content-Type: {t}"));
        let mut lines = vec![cookie.as_str()];
        lines.extend(content_type.as_deref());
        for (path, body) in [
            ("/api/login", format!(r#"{{"token": "{TOKEN}"}}"#)),
            ("/api/login", format!("token={TOKEN}")),
            ("/api/lock", r#"{"source": "dashboard"}"#.to_string()),
            ("/api/lock", "source=dashboard".to_string()),
            ("/api/lock", String::new()),
            ("/api/clock", r#"{"unix_ms": 1900000000000}"#.to_string()),
            ("/api/auth/rotate", format!(r#"{{"token": "{TOKEN}"}}"#)),
            ("/api/logout", "x".to_string()),
        ] {
            if kind.is_none() && body.is_empty() {
                continue; // no type and no body: nothing to refuse
            }
            let (status, head, answer) = send(addr, "POST", path, "127.0.0.1", &lines, &body);
            assert_eq!(status, 415, "{kind:?} {path} {body:?}: {head}");
            assert!(header(&head, "set-cookie").is_none(), "{path}: {head}");
            assert!(
                String::from_utf8_lossy(&answer).contains("application/json"),
                "the answer names the type to send"
            );
            refused += 1;
        }
    }
    println!("cross-site bodies: {refused} form, text and untyped POSTs refused with 415");
    assert_eq!(incidents(addr), 0, "no footage was locked");
    let (status, _, _) = send(addr, "GET", "/api/status", "127.0.0.1", &[&cookie], "");
    assert_eq!(status, 200, "the session survived: no logout or rotation");
    // The dashboard's own JSON lock still works (same origin).
    let (status, _, _) = send(
        addr,
        "POST",
        "/api/lock",
        "127.0.0.1",
        &[
            &cookie,
            "Content-Type: application/json",
            "Origin: http://127.0.0.1",
        ],
        r#"{"source": "dashboard"}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(incidents(addr), 1);
}

#[test]
fn no_route_grants_cross_origin_access() {
    let f = Fixture::start();
    let auth = bearer();
    let preflight = [
        "Origin: http://evil.example",
        "Access-Control-Request-Method: POST",
        "Access-Control-Request-Headers: content-type, authorization",
    ];
    for route in ROUTES {
        let path = route.path.replace('*', "front");
        let (status, head, _) = send(f.addr, "OPTIONS", &path, "127.0.0.1", &preflight, "");
        assert!(matches!(status, 404 | 405), "OPTIONS {path}: {status}");
        assert!(
            !head.to_ascii_lowercase().contains("access-control-"),
            "OPTIONS {path}: {head}"
        );
        if route.method == "GET" && !path.contains("mjpeg") && !path.contains("playback") {
            let (_, head, _) = send(
                f.addr,
                "GET",
                &format!("{path}?camera=front"),
                "127.0.0.1",
                &[&auth, "Origin: http://evil.example"],
                "",
            );
            assert!(
                !head.to_ascii_lowercase().contains("access-control-"),
                "GET {path}: {head}"
            );
        }
    }
}

/// True when a `Content-Disposition` value holds only a safe ASCII file
/// name, and the original, if any, only percent-encoded.
fn safe_disposition(value: &str) -> bool {
    let safe_name = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    let Some(rest) = value.strip_prefix("attachment; filename=\"") else {
        return false;
    };
    let Some((name, rest)) = rest.split_once('"') else {
        return false;
    };
    safe_name(name)
        && (rest.is_empty()
            || rest.strip_prefix("; filename*=UTF-8''").is_some_and(|o| {
                o.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b))
            }))
}

#[test]
fn hostile_camera_and_segment_names_download_with_safe_headers() {
    let f = Fixture::start();
    let front = f.data_dir.join("recordings/front");
    // A closed segment of the real camera, copied under hostile names: the
    // id with the most hostile characters a config allows, and folder and
    // file names only a card edited elsewhere would hold.
    let until = Instant::now() + Duration::from_secs(20);
    let segment = loop {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&front)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "dvr"));
        names.sort();
        if names.len() >= 2 {
            break names[0].clone();
        }
        assert!(Instant::now() < until, "no closed segment");
        std::thread::sleep(Duration::from_millis(100));
    };
    let hostile = [
        ("-_-", "000000000001_20261121T100000Z.dvr"),
        (
            "--_0-_",
            "000000000002_x \"y\"\r\nSet-Cookie: stolen=1; a=b&c#d?e%f+g.dvr",
        ),
        (
            "Caméra \"2\"\r\nX-Evil: 1&x=#",
            "000000000003_ünï \"q\".dvr",
        ),
    ];
    for (camera, name) in hostile {
        let dir = f.data_dir.join("recordings").join(camera);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&segment, dir.join(name)).unwrap();
    }
    let (status, _, body) = get(f.addr, "/api/videos");
    assert_eq!(status, 200);
    let videos: serde_json::Value = serde_json::from_slice(&body).unwrap();
    for (camera, name) in hostile {
        let video = videos["videos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["camera"] == camera && v["name"] == name)
            .unwrap_or_else(|| panic!("{camera:?} {name:?} not listed"));
        // The signed link as listed, and the same URL with the token.
        let link = video["download"].as_str().unwrap();
        assert!(
            link.bytes().all(|b| b.is_ascii_graphic()) && !link.contains('#'),
            "{link}"
        );
        for (path, extra) in [
            (link.to_string(), String::new()),
            (link.split("&exp=").next().unwrap().to_string(), bearer()),
        ] {
            let lines: Vec<&str> = [extra.as_str()]
                .into_iter()
                .filter(|l| !l.is_empty())
                .collect();
            let (status, head, body) = send(f.addr, "GET", &path, "127.0.0.1", &lines, "");
            assert_eq!(status, 200, "{path}: {head}");
            assert!(body.starts_with(&[0xff, 0xd8]), "{path}: not a JPEG stream");
            let disposition = header(&head, "content-disposition").unwrap();
            assert!(safe_disposition(disposition), "{disposition}");
            assert!(
                header(&head, "set-cookie").is_none() && header(&head, "x-evil").is_none(),
                "{head}"
            );
        }
    }
    println!(
        "hostile names: {} cameras and segments listed and downloaded with safe headers",
        hostile.len()
    );
}
