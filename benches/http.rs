//! Dashboard load figures, measured on the real binary recording a 720p30
//! synthetic camera:
//! - CPU of the whole process with 1 and with 8 live viewers (target: 8
//!   viewers cost at most 1.2x the CPU of 1, since viewers share the encoded
//!   frame), against the process with no viewer;
//! - `/api/status` latency with no viewer and under the 8-viewer load;
//! - time to first byte of `/api/export.mp4` over everything recorded in
//!   the run (target < 50 ms), against `/health`.
//!
//! Every phase is bounded in time and the service is stopped at the end.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// A configured token must pass the 128-bit rule (docs/api.md).
const TOKEN: &str = "be9c4a1f07d2e853b6a0c1d4e7f29b3865a1c0d7e2f4b9a3c6d8e0f1a2b3c4d5";
const WINDOW: Duration = Duration::from_secs(8);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// User + system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn request(port: u16, path: &str) -> (Duration, Duration, Vec<u8>) {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut first = [0u8; 1];
    s.read_exact(&mut first).unwrap();
    let ttfb = t0.elapsed();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    (ttfb, t0.elapsed(), rest)
}

/// A viewer reading the live stream and throwing it away, counting frames.
fn viewer(port: u16, stop: Arc<AtomicBool>, frames: Arc<AtomicU64>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET /api/stream/mjpeg?camera=front HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        )
        .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        while !stop.load(Ordering::Relaxed) {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                let n: usize = v.trim().parse().unwrap();
                // The blank line, then the JPEG.
                r.read_line(&mut line).unwrap();
                r.read_line(&mut String::new()).ok();
                let mut jpeg = vec![0u8; n];
                r.read_exact(&mut jpeg).unwrap();
                frames.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
}

struct Service {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Service {
    fn start() -> Service {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = serde_json::json!({
            "port": port,
            "bind": "127.0.0.1",
            "auth_token": TOKEN,
            "data_dir": dir.path().join("data"),
            "cameras": [{"id": "front", "source": "synthetic", "res_width": 1280, "res_height": 720, "fps": 30}],
        });
        let path = dir.path().join("dashvault.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_dashvault"))
            .arg("-c")
            .arg(&path)
            .args(["run", "--duration-s", "120"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "the service did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Service {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// CPU share of one core over the window, and frames the viewers received.
fn measure(svc: &Service, viewers: usize) -> (f64, u64, Vec<Duration>) {
    let stop = Arc::new(AtomicBool::new(false));
    let frames = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..viewers)
        .map(|_| viewer(svc.port, stop.clone(), frames.clone()))
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let pid = svc.child.id();
    let (c0, t0) = (cpu_seconds(pid), Instant::now());
    let f0 = frames.load(Ordering::Relaxed);
    let mut latencies = Vec::new();
    while t0.elapsed() < WINDOW {
        latencies.push(request(svc.port, "/api/status").1);
        std::thread::sleep(Duration::from_millis(100));
    }
    let cpu = (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64();
    let got = frames.load(Ordering::Relaxed) - f0;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    latencies.sort();
    (cpu, got, latencies)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0
}

fn main() {
    let svc = Service::start();
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "dashvault run, synthetic 1280x720 @ 30 fps, {} s windows",
        WINDOW.as_secs()
    );
    let (cpu0, _, lat0) = measure(&svc, 0);
    let (cpu1, f1, _) = measure(&svc, 1);
    let (cpu8, f8, lat8) = measure(&svc, 8);
    let secs = WINDOW.as_secs_f64();
    println!("  CPU, no viewer:  {:.1}% of a core", cpu0 * 100.0);
    println!(
        "  CPU, 1 viewer:   {:.1}% of a core ({:.1} frames/s delivered)",
        cpu1 * 100.0,
        f1 as f64 / secs
    );
    println!(
        "  CPU, 8 viewers:  {:.1}% of a core ({:.1} frames/s per viewer)",
        cpu8 * 100.0,
        f8 as f64 / secs / 8.0
    );
    println!(
        "  8 viewers / 1 viewer CPU: {:.2}x (target <= 1.2x); 1 viewer / none: {:.2}x",
        cpu8 / cpu1,
        cpu1 / cpu0
    );
    println!(
        "  /api/status latency p50/p99: idle {:.2}/{:.2} ms, 8 viewers {:.2}/{:.2} ms ({:.2}x at p50)",
        pct(&lat0, 0.5),
        pct(&lat0, 0.99),
        pct(&lat8, 0.5),
        pct(&lat8, 0.99),
        pct(&lat8, 0.5) / pct(&lat0, 0.5)
    );

    // Export time to first byte over what was recorded so far.
    let now = dashvault::clock::SystemClock;
    use dashvault::clock::Clock;
    let to = dashvault::clock::format_rfc3339(now.wall_ns());
    let from = dashvault::clock::format_rfc3339(now.wall_ns() - 300_000_000_000);
    let path = format!("/api/export.mp4?camera=front&from={from}&to={to}");
    let mut export_ttfb = Vec::new();
    let mut health_ttfb = Vec::new();
    let mut bytes = 0;
    for _ in 0..10 {
        let (t, _, body) = request(svc.port, &path);
        export_ttfb.push(t);
        bytes = body.len();
        health_ttfb.push(request(svc.port, "/health").0);
    }
    export_ttfb.sort();
    health_ttfb.sort();
    println!(
        "  export.mp4 time to first byte ({} MB, {} s recorded): median {:.2} ms, worst {:.2} ms (target < 50 ms); /health {:.2} ms; ratio {:.1}x",
        bytes / 1_000_000,
        (WINDOW.as_secs() * 3) + 6,
        pct(&export_ttfb, 0.5),
        pct(&export_ttfb, 1.0),
        pct(&health_ttfb, 0.5),
        pct(&export_ttfb, 0.5) / pct(&health_ttfb, 0.5)
    );
}
