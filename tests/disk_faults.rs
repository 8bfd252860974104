//! The whole recorder (synthetic camera, encoder pool, writer thread,
//! retention) on a full or failing disk: recording must go on, every error
//! must be counted and shown in status, and retries must back off.
//! Faults are injected through the simulated I/O, except the data folder
//! vanishing, which is done to the real binary on the real filesystem.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashvault::camera::source_for;
use dashvault::clock::{Clock, SystemClock};
use dashvault::config::{CameraConfig, Config};
use dashvault::recorder::{Recorder, RecorderParts};
use dashvault::status::CameraStatus;
use dashvault::store::catalog::list_all;
use dashvault::store::io::{RealIo, StorageIo};
use dashvault::store::reader::SegmentReader;
use dashvault::store::sim::SimIo;
use dashvault::store::verify::verify;
use dashvault::store::Store;

fn data_dir() -> PathBuf {
    PathBuf::from("/data")
}

fn start(sim: &SimIo, res: (u32, u32), fps: u32, min_free_mb: u64) -> Recorder {
    let mut cam = CameraConfig::synthetic("front");
    (cam.res_width, cam.res_height, cam.fps) = (res.0, res.1, fps);
    let config = Config {
        cameras: vec![cam.clone()],
        segment_length_s: 1,
        sync_interval_ms: 200,
        storage_cap_gb: 1000.0,
        min_free_mb,
        ..Config::default()
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Recorder::start(
        &config,
        RecorderParts {
            store: Store::new(Arc::new(sim.clone()), data_dir()),
            clock: clock.clone(),
            sources: vec![(cam.clone(), source_for(&cam, clock))],
            want_direct: true,
            boot_id: [3; 16],
            timekeeper: None,
            discovery: None,
            status_led: None,
        },
    )
    .unwrap()
}

fn cam(r: &Recorder) -> Arc<CameraStatus> {
    r.status.cameras()[0].clone()
}

fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn last_error(r: &Recorder) -> String {
    cam(r).detail().last_error.clone().unwrap_or_default()
}

/// Newest frame stored, by sequence number.
fn newest_stored_seq(io: &dyn StorageIo, data: &Path) -> Option<u64> {
    list_all(io, data)
        .unwrap()
        .iter()
        .filter_map(|s| SegmentReader::open(io, &s.path).ok())
        .filter_map(|r| r.frames.last().map(|f| f.seq))
        .max()
}

#[test]
fn a_full_disk_with_no_free_space_floor_deletes_the_oldest_and_keeps_recording() {
    // 3 MB disk, `min_free_mb: 0`, a cap far above the disk: only running
    // out of space can make room.
    let sim = SimIo::new(3_000_000);
    let r = start(&sim, (320, 240), 30, 0);
    wait_for("the disk to fill and retention to delete", 40, || {
        r.status
            .store
            .retention_deleted_segments
            .load(Ordering::Relaxed)
            >= 3
    });
    let errors = cam(&r).storage_errors.load(Ordering::Relaxed);
    assert!(errors > 0, "the disk never filled");
    assert!(
        last_error(&r).contains("No space"),
        "status shows: {}",
        last_error(&r)
    );
    // Recording goes on after the disk filled: frames keep being stored.
    let before = cam(&r).storage.written.load(Ordering::Relaxed);
    wait_for("recording to continue", 20, || {
        cam(&r).storage.written.load(Ordering::Relaxed) >= before + 30
    });
    r.stop();
    // The disk is still full when recording stops, so a segment whose
    // index did not fit may stay unclosed until there is room; nothing
    // stored may be damaged, and every segment stays readable.
    let report = verify(&sim, &data_dir(), true).unwrap();
    let cam_report = &report.cameras[0];
    assert_eq!(cam_report.bad_records, 0, "{report:?}");
    assert!(
        cam_report
            .problems
            .iter()
            .all(|p| p.problem.starts_with("not closed")),
        "{report:?}"
    );
    for s in list_all(&sim, &data_dir()).unwrap() {
        SegmentReader::open(&sim, &s.path).unwrap();
    }
    println!("3 MB disk, no free-space floor: {errors} ENOSPC errors, recording continued");
}

/// Writes or syncs fail for a while; the segment is closed at its last
/// good record, a new one opened, errors counted with back-off.
fn failing_io_closes_the_segment_and_recording_resumes(fail: impl Fn(&SimIo, bool)) -> String {
    let sim = SimIo::default();
    let r = start(&sim, (160, 120), 10, 0);
    wait_for("frames", 20, || {
        cam(&r).storage.written.load(Ordering::Relaxed) >= 15
    });
    let segments_before = list_all(&sim, &data_dir()).unwrap().len();
    fail(&sim, true);
    std::thread::sleep(Duration::from_millis(2000));
    let errors = cam(&r).storage_errors.load(Ordering::Relaxed);
    let shown = last_error(&r);
    fail(&sim, false);
    // 2 s of failures with back-off from 500 ms: a handful of attempts, not
    // one per frame (20 frames) and not a busy loop.
    assert!((1..=5).contains(&errors), "{errors} storage errors in 2 s");
    let written = cam(&r).storage.written.load(Ordering::Relaxed);
    wait_for("recording to resume", 20, || {
        cam(&r).storage.written.load(Ordering::Relaxed) >= written + 15
    });
    r.stop();
    let segs = list_all(&sim, &data_dir()).unwrap();
    assert!(
        segs.len() > segments_before,
        "no new segment after the error"
    );
    for s in &segs {
        let reader = SegmentReader::open(&sim, &s.path).unwrap();
        assert!(reader.closed, "{} left without an index", s.name);
    }
    let report = verify(&sim, &data_dir(), true).unwrap();
    assert!(report.ok, "{report:?}");
    shown
}

#[test]
fn a_failing_fsync_closes_the_segment_at_its_last_good_record_and_recording_resumes() {
    let shown = failing_io_closes_the_segment_and_recording_resumes(|sim, on| {
        sim.fail_syncs_with(on.then_some(ErrorKind::Other))
    });
    assert!(
        shown.contains("fdatasync") || shown.contains("fsync"),
        "{shown}"
    );
}

#[test]
fn failing_writes_close_the_segment_at_its_last_good_record_and_recording_resumes() {
    let shown = failing_io_closes_the_segment_and_recording_resumes(|sim, on| {
        sim.fail_writes_with(on.then_some(ErrorKind::Other))
    });
    assert!(
        shown.contains("writing records") || shown.contains("creating segment"),
        "{shown}"
    );
}

#[test]
fn a_read_only_data_folder_is_shown_retried_with_backoff_and_recording_resumes() {
    let sim = SimIo::default();
    let r = start(&sim, (160, 120), 10, 0);
    wait_for("frames", 20, || {
        cam(&r).storage.written.load(Ordering::Relaxed) >= 5
    });
    sim.fail_writes_with(Some(ErrorKind::PermissionDenied));
    sim.fail_syncs_with(Some(ErrorKind::PermissionDenied));
    std::thread::sleep(Duration::from_millis(4000));
    // Back-off 0.5, 1, 2 s: at most about four attempts in 4 s.
    let errors = cam(&r).storage_errors.load(Ordering::Relaxed);
    assert!((1..=5).contains(&errors), "{errors} storage errors in 4 s");
    assert!(
        last_error(&r).contains("injected fault"),
        "status shows: {}",
        last_error(&r)
    );
    // Viewers still get frames while the disk refuses them.
    let captured = cam(&r).captured.load(Ordering::Relaxed);
    wait_for("capture to go on", 10, || {
        cam(&r).captured.load(Ordering::Relaxed) > captured + 5
    });
    sim.fail_writes_with(None);
    sim.fail_syncs_with(None);
    let newest = newest_stored_seq(&sim, &data_dir()).unwrap_or(0);
    wait_for("recording to resume", 20, || {
        newest_stored_seq(&sim, &data_dir()).is_some_and(|n| n > newest + 5)
    });
    r.stop();
}

#[test]
fn a_data_folder_that_cannot_be_made_at_start_does_not_stop_the_recorder() {
    // A card mounted read-only: neither the folders nor any file can be
    // made when the recorder starts.
    let sim = SimIo::default();
    sim.fail_folders_with(Some(ErrorKind::ReadOnlyFilesystem));
    sim.fail_writes_with(Some(ErrorKind::ReadOnlyFilesystem));
    let r = start(&sim, (160, 120), 10, 0);
    wait_for("the failure in status", 20, || {
        last_error(&r).contains("injected fault")
    });
    assert_eq!(cam(&r).storage.written.load(Ordering::Relaxed), 0);
    // Remounted writable: recording starts by itself.
    sim.fail_folders_with(None);
    sim.fail_writes_with(None);
    wait_for("recording to start", 20, || {
        cam(&r).storage.written.load(Ordering::Relaxed) >= 5
    });
    r.stop();
}

fn spawn_binary(dir: &Path) -> std::process::Child {
    std::fs::write(
        dir.join("dashvault.json"),
        format!(
            r#"{{ "segment_length_s": 10, "sync_interval_ms": 200, "data_dir": "data",
  "bind": "127.0.0.1", "port": {},
  "cameras": [{{ "id": "front", "res_width": 160, "res_height": 120, "fps": 10 }}] }}"#,
            21000 + std::process::id() % 20000
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_dashvault"))
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// CPU time (user + system) of a process so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after_name.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn data_folder_deleted_while_recording_is_recreated_and_recording_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = spawn_binary(dir.path());
    let io = RealIo::new();
    wait_for("recording", 30, || newest_stored_seq(&io, &data).is_some());
    std::fs::remove_dir_all(&data).unwrap();
    let cpu_before = cpu_ticks(child.id());
    std::thread::sleep(Duration::from_secs(3));
    assert!(child.try_wait().unwrap().is_none(), "the service exited");
    // No busy loop while the folder is gone: well under half a core.
    let cpu = cpu_ticks(child.id()) - cpu_before;
    // Recording resumes into a new folder without a restart.
    wait_for("recording into a recreated folder", 40, || {
        newest_stored_seq(&io, &data).is_some()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    println!("data folder deleted: {cpu} CPU ticks in 3 s, recording resumed");
    assert!(cpu < 150, "{cpu} CPU ticks in 3 s");
}
