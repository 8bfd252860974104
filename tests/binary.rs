//! The real binary, end to end: record the synthetic camera, kill -9,
//! restart, verify; config errors never stop recording.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashvault::store::catalog::list_all;
use dashvault::store::io::RealIo;
use dashvault::store::reader::SegmentReader;

const SYNC_INTERVAL_MS: u64 = 1000;

fn write_config(dir: &Path, fps: u32) {
    let config = format!(
        r#"{{
  "segment_length_s": 10,
  "sync_interval_ms": {SYNC_INTERVAL_MS},
  "data_dir": "data",
  "cameras": [{{ "id": "front", "res_width": 320, "res_height": 240, "fps": {fps} }}]
}}"#
    );
    std::fs::write(dir.join("dashvault.json"), config).unwrap();
}

fn dashvault(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dashvault"));
    c.current_dir(dir).env("RUST_LOG", "info");
    c
}

fn spawn_run(dir: &Path) -> Child {
    dashvault(dir)
        .args(["run", "--clock-offset-only"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until at least `frames` frames have been synced (status file).
fn wait_for_frames(dir: &Path, frames: u64) {
    let start = Instant::now();
    loop {
        let stored: u64 = stored_frames(dir).len() as u64;
        if stored >= frames {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "recording did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (seq, wall_ns) of every frame stored under `dir/data`, CRC-checked.
fn stored_frames(dir: &Path) -> Vec<(u64, i64)> {
    let io = RealIo::new();
    let mut out = Vec::new();
    let Ok(segments) = list_all(&io, &dir.join("data")) else {
        return out;
    };
    for seg in segments {
        let Ok(r) = SegmentReader::open(&io, &seg.path) else {
            continue;
        };
        for (i, e) in r.frames.iter().enumerate() {
            if r.read_frame(i).is_ok() {
                out.push((e.seq, e.wall_ns));
            }
        }
    }
    out
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn verify_deep(dir: &Path) -> serde_json::Value {
    let out = dashvault(dir)
        .args(["verify", "--deep", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify --json printed no JSON ({e}): {out:?}"));
    assert_eq!(
        out.status.code(),
        Some(if report["ok"] == true { 0 } else { 1 }),
        "exit status must follow ok"
    );
    report
}

#[test]
fn kill_9_loses_at_most_one_sync_interval_and_verify_passes() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), 30);
    let mut losses_ms = Vec::new();
    for round in 0..3 {
        let mut child = spawn_run(dir.path());
        let before = stored_frames(dir.path()).len() as u64;
        wait_for_frames(dir.path(), before + 30);
        // Kill somewhere between two syncs.
        std::thread::sleep(Duration::from_millis(300 + round * 250));
        let killed_at = now_ns();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        // Restart: recovery closes the torn segment; stop it quickly.
        let out = dashvault(dir.path())
            .args(["run", "--clock-offset-only", "--duration-s", "0.5"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("recovered front/"),
            "no recovery reported: {stdout}"
        );

        let report = verify_deep(dir.path());
        assert_eq!(report["ok"], true, "verify --deep after kill: {report}");

        // Footage is complete to within one sync interval (plus the
        // capture-to-buffer latency) of the kill: from the end of the newest
        // frame stored (a 30 fps frame lasts 33 ms) to the kill.
        let frames = stored_frames(dir.path());
        let last_before_kill = frames
            .iter()
            .filter(|(_, w)| *w <= killed_at)
            .map(|(_, w)| *w)
            .max()
            .unwrap();
        let loss_ms = ((killed_at - last_before_kill) / 1_000_000 - 33).max(0) as u64;
        losses_ms.push(loss_ms);
        assert!(
            loss_ms <= SYNC_INTERVAL_MS + 150,
            "round {round}: {loss_ms} ms of footage lost"
        );
        // Numbering continues across restarts: no duplicate frame numbers.
        let mut seqs: Vec<u64> = frames.iter().map(|(s, _)| *s).collect();
        seqs.sort();
        seqs.dedup();
        assert_eq!(seqs.len(), frames.len(), "duplicate frame numbers");
    }
    println!("footage lost per kill -9 (ms): {losses_ms:?}");
}

#[test]
fn clean_stop_closes_segments_and_verify_reports_per_camera_json() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), 15);
    let out = dashvault(dir.path())
        .args(["run", "--clock-offset-only", "--duration-s", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report = verify_deep(dir.path());
    assert_eq!(report["ok"], true, "{report}");
    let cam = &report["cameras"][0];
    assert_eq!(cam["camera"], "front");
    assert_eq!(cam["segments"], 1);
    assert_eq!(cam["bad_records"], 0);
    let frames = cam["frames"].as_u64().unwrap();
    assert!(
        (20..=40).contains(&frames),
        "{frames} frames in 2 s at 15 fps"
    );
    assert!(cam["unclosed"].as_array().unwrap().is_empty(), "{cam}");
    assert!(cam["first_time"].as_str().unwrap().ends_with('Z'));

    // A corrupted byte inside a frame is found by --deep, not by the quick check.
    let seg = list_all(&RealIo::new(), &dir.path().join("data")).unwrap()[0]
        .path
        .clone();
    let mut bytes = std::fs::read(&seg).unwrap();
    let reader = SegmentReader::open(&RealIo::new(), &seg).unwrap();
    let victim = reader.frames[5].offset as usize + 48 + 100;
    bytes[victim] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let quick = dashvault(dir.path()).args(["verify"]).output().unwrap();
    assert!(quick.status.success(), "{quick:?}");
    let report = verify_deep(dir.path());
    assert_eq!(report["ok"], false);
    // Exactly the damaged frame, named by kind; the scan steps over it.
    assert_eq!(report["cameras"][0]["bad_records"], 1, "{report}");
    assert_eq!(report["cameras"][0]["problems"][0]["kind"], "bad_record");
}

#[test]
fn broken_config_records_with_last_good_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), 10);
    let first = dashvault(dir.path())
        .args(["run", "--clock-offset-only", "--duration-s", "0.5"])
        .output()
        .unwrap();
    assert!(first.status.success());
    assert!(dir.path().join("dashvault.json.last-good").exists());
    std::fs::write(
        dir.path().join("dashvault.json"),
        r#"{ "cameras": [{ "id": "front", "rotation": 45 }] }"#,
    )
    .unwrap();
    let check = dashvault(dir.path())
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&check.stderr);
    assert!(
        msg.contains("cameras[0].rotation") && msg.contains("90"),
        "{msg}"
    );

    let before = stored_frames(dir.path()).len();
    let run = dashvault(dir.path())
        .args(["run", "--clock-offset-only", "--duration-s", "1.5"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(
        log.contains("CONFIG ERROR") && log.contains("last good"),
        "{log}"
    );
    assert!(stored_frames(dir.path()).len() > before, "did not record");
    // The broken file is left for the user to fix.
    let kept = std::fs::read_to_string(dir.path().join("dashvault.json")).unwrap();
    assert!(kept.contains("45"));
}

#[test]
fn legacy_dash_of_pi_config_is_migrated_and_records() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dashvault.json"),
        r#"{ "port": 8080, "video_dir": "videos", "storage_cap_gb": 1,
             "video_res_width": 320, "video_res_height": 240, "video_fps": 10,
             "mjpeg_quality": 5, "segment_length_s": 60 }"#,
    )
    .unwrap();
    let run = dashvault(dir.path())
        .args(["run", "--clock-offset-only", "--duration-s", "1"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let migrated = std::fs::read_to_string(dir.path().join("dashvault.json")).unwrap();
    assert!(migrated.contains("\"cameras\""), "{migrated}");
    assert!(dir.path().join("videos/recordings/default").is_dir());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A service on its own port, with the given extra config fields.
fn spawn_service(dir: &Path, extra: &str) -> (Child, u16) {
    let port = free_port();
    let config = format!(
        r#"{{ "port": {port}, "segment_length_s": 10, "data_dir": "data"{extra},
  "cameras": [{{ "id": "front", "res_width": 320, "res_height": 240, "fps": 10 }}] }}"#
    );
    std::fs::write(dir.join("dashvault.json"), config).unwrap();
    let child = dashvault(dir)
        .args(["run", "--clock-offset-only", "--duration-s", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        assert!(
            Instant::now() < until,
            "the service did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

/// `dashvault status --json` once `ready` holds for it (within 15 s).
fn status_when(
    dir: &Path,
    what: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let out = dashvault(dir).args(["status", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if ready(&v) {
            return v;
        }
        assert!(Instant::now() < until, "no {what}: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop(mut child: Child) {
    // SIGTERM: a clean stop.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

#[test]
fn dashvault_lock_on_the_console_locks_the_running_services_footage() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _) = spawn_service(
        dir.path(),
        r#", "incident": {"pre_roll_s": 2, "post_roll_s": 1}"#,
    );
    std::thread::sleep(Duration::from_millis(1500));
    let out = dashvault(dir.path()).arg("lock").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("incident 000001: protecting"), "{text}");
    assert!(
        text.contains("/api/export.mp4?camera=front&from="),
        "{text}"
    );
    // The lock is on disk beside the segment being written.
    let locks = || {
        std::fs::read_dir(dir.path().join("data/recordings/front"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".dvr.lock")
            })
            .count()
    };
    assert!(locks() >= 1);
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("data/incidents/000001.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["triggers"], serde_json::json!(["console"]));
    stop(child);
    // Without a service there is nothing to ask: a clear failure.
    let out = dashvault(dir.path()).arg("lock").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was locked"));
}

#[test]
fn a_restart_with_the_clock_behind_the_saved_time_runs_from_the_saved_time() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    // A previous run saved a time a day ahead of this machine's clock.
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let saved = now_ns + 86_400_000_000_000;
    std::fs::write(dir.path().join("data/last-wall-time"), format!("{saved}\n")).unwrap();
    let (child, _) = spawn_service(dir.path(), "");
    let status = status_when(dir.path(), "a clock in status", |v| {
        v["clock"]["time"].is_string()
    });
    stop(child);
    let clock = &status["clock"];
    assert_eq!(clock["estimated"], true, "{clock}");
    assert_eq!(clock["source"], "restored_offset", "{clock}");
    let shown = dashvault::clock::parse_rfc3339(clock["time"].as_str().unwrap()).unwrap();
    assert!(shown >= saved, "{shown} < {saved}");
    // Frames were stamped from the saved time on, and flagged estimated.
    let segs = list_all(&RealIo::new(), &dir.path().join("data")).unwrap();
    let r = SegmentReader::open(&RealIo::new(), &segs[0].path).unwrap();
    assert!(r.frames[0].wall_ns >= saved);
    assert!(r.frames.iter().all(|f| f.flags & 1 == 1));
    // And the saved time moved on.
    let text = std::fs::read_to_string(dir.path().join("data/last-wall-time")).unwrap();
    let again: i64 = text.split_whitespace().next().unwrap().parse().unwrap();
    assert!(again > saved);
}

#[test]
fn trigger_devices_that_cannot_be_opened_are_reported_and_recording_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _) = spawn_service(
        dir.path(),
        r#", "triggers": {
            "gpio_button": {"chip": "/dev/gpiochip-absent", "line": 17},
            "accelerometer": {"device": "/dev/i2c-absent", "part": "adxl345"} }"#,
    );
    let status = status_when(dir.path(), "frames written", |v| {
        v["cameras"][0]["written"].as_u64().unwrap_or(0) > 0
    });
    stop(child);
    let notes: Vec<&str> = status["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].starts_with("button on /dev/gpiochip-absent line 17: cannot start"));
    assert!(notes[1].starts_with("G-sensor Adxl345 on /dev/i2c-absent: cannot start"));
    assert!(notes
        .iter()
        .all(|n| n.contains("locked from the dashboard")));
}

#[test]
fn export_of_damaged_footage_names_what_it_left_out_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), 15);
    // Two runs: a segment each.
    for _ in 0..2 {
        let out = dashvault(dir.path())
            .args(["run", "--clock-offset-only", "--duration-s", "1.5"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let io = RealIo::new();
    let segments = list_all(&io, &dir.path().join("data")).unwrap();
    assert_eq!(segments.len(), 2);
    let stored = stored_frames(dir.path()).len();
    // One segment loses a bit of its stream header (it once dropped the
    // whole segment from exports), another one frame.
    let mut head = std::fs::read(&segments[0].path).unwrap();
    head[60] ^= 0x02;
    std::fs::write(&segments[0].path, head).unwrap();
    let victim = SegmentReader::open(&io, &segments[1].path).unwrap().frames[2];
    let mut bytes = std::fs::read(&segments[1].path).unwrap();
    bytes[victim.offset as usize + 48 + 9] ^= 0x20;
    std::fs::write(&segments[1].path, bytes).unwrap();

    let out = dashvault(dir.path())
        .args(["export", "--last", "1h", "-o", "clip.mp4"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&segments[1].name) && stderr.contains(&format!("byte {}", victim.offset)),
        "the skipped frame is not named: {stderr}"
    );
    // ffprobe counts every frame but the damaged one.
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(dir.path().join("clip.mp4"))
        .output()
        .expect("ffprobe installed (make test-deps)");
    let frames: usize = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(frames, stored - 1, "{probe:?}");
    // ffmpeg decodes every picture without a word (framecrc: the null
    // muxer's coarse time base complains about capture jitter, a known
    // limit of the lossless export), and its reading of the text track
    // names the skipped frame.
    let ffmpeg = |args: &[&str]| {
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(dir.path().join("clip.mp4"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "ffmpeg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let crcs = ffmpeg(&["-map", "0:v", "-f", "framecrc", "-"]);
    assert_eq!(
        crcs.lines().filter(|l| !l.starts_with('#')).count(),
        stored - 1
    );
    let subtitles = ffmpeg(&["-map", "0:s", "-f", "srt", "-"]);
    assert!(
        subtitles.contains(&format!(
            "1 damaged frame skipped: {} at byte {}",
            segments[1].name, victim.offset
        )),
        "{subtitles}"
    );
    // verify names both, by kind.
    let report = verify_deep(dir.path());
    let problems = report["cameras"][0]["problems"].as_array().unwrap().clone();
    let named = |name: &str, kind: &str| {
        problems
            .iter()
            .any(|p| p["segment"] == name && p["kind"] == kind)
    };
    assert!(named(&segments[0].name, "stream_header"), "{report}");
    assert!(named(&segments[1].name, "bad_record"), "{report}");
    let code = dashvault(dir.path())
        .args(["verify", "--deep"])
        .status()
        .unwrap()
        .code();
    assert_eq!(code, Some(1), "verify exits 1 on damage");
}

#[test]
fn lock_and_status_reach_the_recorder_after_its_config_broke() {
    let dir = tempfile::tempdir().unwrap();
    let (child, port) = spawn_service(dir.path(), "");
    // The file now names another port and does not load: the recorder
    // runs on, and the commands must still find it where it listens.
    let other = free_port();
    std::fs::write(
        dir.path().join("dashvault.json"),
        format!(r#"{{ "port": {other}, "cameras": [ "#),
    )
    .unwrap();
    let status = status_when(dir.path(), "live status", |v| v["uptime_s"].is_number());
    assert!(status["cameras"][0]["id"] == "front", "{status}");
    let out = dashvault(dir.path()).arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("http://127.0.0.1:{port}/")),
        "{out:?}"
    );
    let out = dashvault(dir.path()).arg("lock").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    stop(child);
    // Stopped: the address is withdrawn and status says it did not answer.
    assert!(!dir.path().join("dashvault.running.json").exists());
    let out = dashvault(dir.path()).arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn verify_with_no_config_and_no_data_folder_is_an_error_naming_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dashvault(dir.path()).arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("no data folder at") && msg.contains("no config at"),
        "{msg}"
    );
}

#[test]
fn version_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dashvault(dir.path()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("dashvault {}", env!("CARGO_PKG_VERSION"))
    );
}
