//! Share clips end to end: footage recorded with the real segment writer,
//! turned into an H.264 `.mp4`, and judged by ffprobe and ffmpeg: codec,
//! profile, pixel format, size (never upscaled), frame count, duration,
//! clean decoding, the time text track, and `moov` before `mdat`.
#![cfg(feature = "software-h264")]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use dashvault::camera::synthetic::SyntheticCamera;
use dashvault::camera::CameraSource;
use dashvault::clock::SystemClock;
use dashvault::encode::{EncoderSettings, JpegEncoder};
use dashvault::frame::CaptureTime;
use dashvault::share::cache::ShareCache;
use dashvault::share::clip::{
    software_encoder, write_clip, Quality, ShareError, ShareOptions, ShareReport,
};
use dashvault::share::encoder::{AccessUnit, EncodeError, H264Encoder, Picture};
use dashvault::share::jobs::{JobSnapshot, JobState, ShareJobs, ShareRequest, StartError};
use dashvault::share::picture::ShareSize;
use dashvault::store::io::{RealIo, StorageIo};
use dashvault::store::writer::{EncodedFrame, SegmentWriter, WriterSettings};
use dashvault::store::Store;

const INTERVAL_NS: u64 = 33_333_333;
/// 2026-11-20T10:00:00Z
const START_WALL_NS: i64 = 1_795_168_800_000_000_000;

/// `count` frames of `width`x`height` at 30 fps in segments of 2 s; the
/// wall range that holds them.
fn record(dir: &Path, count: usize, width: u32, height: u32) -> (i64, i64) {
    record_with(dir, count, width, height, None)
}

/// As [`record`], with frame `not_jpeg` stored as bytes that are no JPEG
/// (its record's CRCs check: the camera delivered it so).
fn record_with(
    dir: &Path,
    count: usize,
    width: u32,
    height: u32,
    not_jpeg: Option<usize>,
) -> (i64, i64) {
    let mut cam = SyntheticCamera::new(width, height, 1_000_000, Arc::new(SystemClock));
    cam.open().unwrap();
    let mut enc = JpegEncoder::new(EncoderSettings {
        quality: 80,
        rotation: 0,
        embed_timestamp: true,
    });
    let io: Arc<dyn StorageIo> = Arc::new(RealIo::new());
    let mut w = SegmentWriter::new(
        io,
        WriterSettings {
            camera_id: "front".into(),
            camera_dir: dir.join("recordings/front"),
            fps_milli: 30_000,
            segment_length_ns: 2_000_000_000,
            first_segment_length_ns: 2_000_000_000,
            sync_interval_ns: 200_000_000,
            want_direct: true,
            boot_id: [1; 16],
        },
        Default::default(),
        Default::default(),
    )
    .unwrap();
    let mono0 = 5_000_000_000u64;
    for n in 0..count {
        let mut jpeg = enc.encode(&cam.next_frame().unwrap()).unwrap().jpeg;
        if not_jpeg == Some(n) {
            jpeg = b"\xff\xd8 not a picture".to_vec();
        }
        let t = n as u64 * INTERVAL_NS;
        w.append(
            &EncodedFrame {
                jpeg: jpeg.into(),
                width,
                height,
                captured: CaptureTime {
                    mono_ns: mono0 + t,
                    wall_ns: START_WALL_NS + t as i64,
                },
                flags: 0,
            },
            mono0 + t,
        )
        .unwrap();
    }
    w.close().unwrap();
    (
        START_WALL_NS,
        START_WALL_NS + (count as u64 * INTERVAL_NS) as i64,
    )
}

fn run(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().expect("ffmpeg and ffprobe are installed");
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn clip(dir: &Path, range: (i64, i64), size: ShareSize, name: &str) -> (ShareReport, f64) {
    let store = Store::on_disk(dir);
    let path = dir.join(name);
    let started = Instant::now();
    let report = write_clip(
        &store,
        "front",
        range.0,
        range.1,
        ShareOptions {
            size,
            quality: Quality::Standard,
            ..ShareOptions::default()
        },
        &path,
        &software_encoder,
        &mut |_| true,
    )
    .expect("share clip");
    (report, started.elapsed().as_secs_f64())
}

fn probe(path: &Path, stream: &str, entries: &str) -> String {
    run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream, "-count_frames"])
        .args(["-show_entries", entries, "-of", "default=nw=1"])
        .arg(path))
    .0
}

#[test]
fn share_clip_is_h264_that_ffmpeg_decodes_cleanly_with_its_time_track() {
    let dir = tempfile::tempdir().unwrap();
    let frames = 150;
    let range = record(dir.path(), frames, 1280, 720);
    let (report, secs) = clip(dir.path(), range, ShareSize::P480, "clip.mp4");
    eprintln!(
        "share clip 720p -> 480p: {frames} frames in {secs:.2} s, {:.0} frames/s, {} bytes",
        frames as f64 / secs,
        report.bytes
    );
    assert_eq!(report.encoder, "openh264");
    assert_eq!((report.width, report.height), (854, 480));
    assert_eq!(report.frames, frames);
    let path = dir.path().join("clip.mp4");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), report.bytes);

    let v = probe(
        &path,
        "v:0",
        "stream=codec_name,profile,pix_fmt,width,height,nb_read_frames,duration",
    );
    assert!(v.contains("codec_name=h264"), "{v}");
    assert!(v.contains("profile=Constrained Baseline"), "{v}");
    assert!(v.contains("pix_fmt=yuv420p\n"), "{v}");
    assert!(v.contains("width=854\nheight=480"), "{v}");
    assert!(v.contains(&format!("nb_read_frames={frames}")), "{v}");
    assert!(v.contains("duration=5.000000"), "{v}");

    let (out, err) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"]));
    assert_eq!(out + &err, "", "ffmpeg complains");

    // The time track: a second stream whose first cue is the start time.
    let t = probe(&path, "s:0", "stream=codec_name");
    assert!(t.contains("codec_name=mov_text"), "{t}");
    let (srt, _) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-map", "0:s:0", "-f", "srt", "-"]));
    assert!(srt.contains("2026-11-20 10:00:00 UTC"), "{srt}");
    assert!(srt.contains("2026-11-20 10:00:04 UTC"), "{srt}");

    // moov first, so a phone can start playing before the end arrives.
    let bytes = std::fs::read(&path).unwrap();
    let moov = bytes.windows(4).position(|w| w == b"moov").unwrap();
    let mdat = bytes.windows(4).position(|w| w == b"mdat").unwrap();
    assert!(moov < mdat);
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn share_clip_is_never_upscaled() {
    let dir = tempfile::tempdir().unwrap();
    let range = record(dir.path(), 20, 640, 360);
    let (report, _) = clip(dir.path(), range, ShareSize::P1080, "big.mp4");
    assert_eq!((report.width, report.height), (640, 360));
    let v = probe(&dir.path().join("big.mp4"), "v:0", "stream=width,height");
    assert!(v.contains("width=640\nheight=360"), "{v}");
}

#[test]
fn share_clip_cancels_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let range = record(dir.path(), 30, 320, 240);
    let store = Store::on_disk(dir.path());
    let path = dir.path().join("cancelled.mp4");
    let err = write_clip(
        &store,
        "front",
        range.0,
        range.1,
        ShareOptions::default(),
        &path,
        &software_encoder,
        &mut |p| p.encoded < 10,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ShareError::Cancelled {
                done: 10,
                total: 30
            }
        ),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "recordings")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Progress covers the check that reads every frame before the first is
/// encoded (before, a job showed 0 frames done and could not be cancelled
/// while it read the whole range), and a cancel during it stops the job.
#[test]
fn share_clip_progress_and_cancel_cover_the_check_before_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let range = record(dir.path(), 30, 320, 240);
    let store = Store::on_disk(dir.path());
    let path = dir.path().join("clip.mp4");
    let mut seen = Vec::new();
    write_clip(
        &store,
        "front",
        range.0,
        range.1,
        ShareOptions::default(),
        &path,
        &software_encoder,
        &mut |p| {
            seen.push(p);
            true
        },
    )
    .unwrap();
    let first_encoded = seen.iter().position(|p| p.encoded > 0).unwrap();
    assert!(first_encoded > 0, "no check reported: {:?}", &seen[..2]);
    let checked = &seen[..first_encoded];
    assert!(checked.iter().all(|p| p.encoded == 0 && p.total == 30));
    assert_eq!(checked.last().unwrap().checked, 30, "every frame checked");
    assert!(checked.windows(2).all(|w| w[0].checked <= w[1].checked));
    assert!(seen[first_encoded..].iter().all(|p| p.checked == 30));
    assert_eq!(seen.last().unwrap().encoded, 30);

    let path = dir.path().join("cancelled.mp4");
    let err = write_clip(
        &store,
        "front",
        range.0,
        range.1,
        ShareOptions::default(),
        &path,
        &software_encoder,
        &mut |p| p.checked == 0 && p.encoded == 0,
    )
    .unwrap_err();
    assert!(
        matches!(err, ShareError::Cancelled { done: 0, .. }),
        "{err}"
    );
    assert!(!path.exists());
}

#[test]
fn share_cli_names_the_accepted_values() {
    let dir = tempfile::tempdir().unwrap();
    record(dir.path(), 10, 320, 240);
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_dashvault"))
            .env("DASHVAULT_CONFIG", dir.path().join("none.json"))
            .args(["export", "--share", "--data-dir"])
            .arg(dir.path())
            .args([
                "--from",
                "2026-11-20T10:00:00Z",
                "--to",
                "2026-11-20T10:00:01Z",
            ])
            .args(args)
            .output()
            .unwrap()
    };
    let bad = cli(&["--size", "360"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("480, 720 or 1080"), "{err}");
    let bad = cli(&["--quality", "best"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("small, standard or high"), "{err}");

    let out = dir.path().join("cli.mp4");
    let ok = cli(&["--size", "480", "-o", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&ok.stderr);
    assert_eq!(ok.status.code(), Some(0), "{err}");
    assert!(err.contains("openh264"), "{err}");
    let v = probe(&out, "v:0", "stream=codec_name,nb_read_frames");
    assert!(v.contains("codec_name=h264\nnb_read_frames=10"), "{v}");
}

/// The page the browser check loads: plays the video named after `#`, and
/// writes what happened into the page once it knows.
const PLAYER_PAGE: &str = r#"<!doctype html><html><body>
<video id="v" muted playsinline></video><pre id="out">pending</pre>
<script>
const v = document.getElementById('v'), out = document.getElementById('out');
const r = {};
const done = () => { out.textContent = 'RESULT ' + JSON.stringify(r); };
v.addEventListener('loadedmetadata', () => { r.width = v.videoWidth; r.height = v.videoHeight; });
v.addEventListener('error', () => { r.error = v.error ? v.error.code + ' ' + v.error.message : 'error'; done(); });
v.addEventListener('timeupdate', () => { if (v.currentTime > 0.5 && !r.played) { r.played = v.currentTime; done(); } });
v.src = location.hash.slice(1);
v.play().catch(e => { r.error = 'play: ' + e; done(); });
</script></body></html>"#;

#[test]
fn share_clip_plays_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let range = record(dir.path(), 60, 640, 360);
    clip(dir.path(), range, ShareSize::P480, "clip.mp4");
    let page = dir.path().join("player.html");
    std::fs::write(&page, PLAYER_PAGE).unwrap();
    // Debian's chromium (make test-deps); virtual time lets the 2 s clip
    // play without waiting for it, and --dump-dom prints the page after.
    let out = Command::new("timeout")
        .args([
            "120",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .args(["--autoplay-policy=no-user-gesture-required"])
        .args([
            "--allow-file-access-from-files",
            "--virtual-time-budget=5000",
        ])
        .arg("--dump-dom")
        .arg(format!("file://{}#clip.mp4", page.display()))
        .output()
        .expect("chromium is installed (make test-deps)");
    let dom = String::from_utf8_lossy(&out.stdout);
    let result = dom
        .lines()
        .find_map(|l| l.split("RESULT {").nth(1))
        .unwrap_or_else(|| panic!("no result from the page: {dom}"));
    assert!(!result.contains("error"), "{result}");
    assert!(result.contains(r#""width":640,"height":360"#), "{result}");
    assert!(result.contains(r#""played":"#), "{result}");
}

#[test]
fn share_clip_holds_the_previous_picture_over_a_frame_that_does_not_decode() {
    let dir = tempfile::tempdir().unwrap();
    let range = record_with(dir.path(), 30, 320, 240, Some(12));
    let (report, _) = clip(dir.path(), range, ShareSize::P480, "held.mp4");
    assert_eq!(report.frames, 30);
    assert_eq!(report.undecodable.len(), 1, "{:?}", report.undecodable);
    assert!(
        report.undecodable[0].contains("at byte"),
        "{:?}",
        report.undecodable
    );
    let path = dir.path().join("held.mp4");
    let v = probe(&path, "v:0", "stream=nb_read_frames");
    assert!(v.contains("nb_read_frames=30"), "{v}");
    let (out, err) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"]));
    assert_eq!(out + &err, "", "ffmpeg complains");
}

/// The software encoder, slowed down so a job is still running when the
/// test looks.
struct SlowEncoder(Box<dyn H264Encoder>);

impl H264Encoder for SlowEncoder {
    fn name(&self) -> String {
        self.0.name()
    }
    fn encode(&mut self, picture: &Picture<'_>) -> Result<Vec<AccessUnit>, EncodeError> {
        std::thread::sleep(std::time::Duration::from_millis(40));
        self.0.encode(picture)
    }
    fn finish(&mut self) -> Result<Vec<AccessUnit>, EncodeError> {
        self.0.finish()
    }
}

fn slow_jobs(data: &Path, cap_bytes: u64, min_free_bytes: u64) -> ShareJobs {
    let cache = ShareCache::open(&data.join("share-cache"), cap_bytes).unwrap();
    ShareJobs::new(
        Store::on_disk(data),
        Arc::new(cache),
        Arc::new(|s| Ok(Box::new(SlowEncoder(software_encoder(s)?)) as Box<dyn H264Encoder>)),
        Arc::new(|| "slow software".to_string()),
        min_free_bytes,
    )
}

fn request(range: (i64, i64)) -> ShareRequest {
    ShareRequest {
        camera: "front".into(),
        from_ns: range.0,
        to_ns: range.1,
        options: ShareOptions::default(),
    }
}

fn wait_ended(jobs: &ShareJobs) -> JobSnapshot {
    let until = Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let s = jobs.snapshot().unwrap();
        if s.state != JobState::Running {
            return s;
        }
        assert!(Instant::now() < until, "the job did not end");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn cache_entries(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join("share-cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn share_job_runs_one_at_a_time_with_progress_and_answers_again_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let range = record(dir.path(), 60, 320, 240);
    let jobs = slow_jobs(dir.path(), 100_000_000, 0);
    let first = jobs.start(request(range)).unwrap();
    assert_eq!((first.state, first.frames_total), (JobState::Running, 60));
    let mut other = request(range);
    other.options.size = ShareSize::P480;
    match jobs.start(other.clone()) {
        Err(e @ StartError::Busy { .. }) => {
            assert!(e.to_string().contains("one is made at a time"), "{e}")
        }
        r => panic!("a second job while one runs: {r:?}"),
    }
    // Progress moves, with an estimate of the time left once under way.
    let until = Instant::now() + std::time::Duration::from_secs(30);
    let mid = loop {
        let s = jobs.snapshot().unwrap();
        if s.frames_done >= 20 {
            break s;
        }
        assert!(Instant::now() < until, "no progress: {s:?}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(mid.eta.is_some_and(|t| t.as_secs_f64() > 0.1), "{mid:?}");
    assert_eq!(mid.encoder.as_deref(), Some("openh264"));
    // While it runs, nothing in the cache is a clip that could be served.
    let name = request(range).clip_name();
    assert!(jobs.cache().finished(&name).is_none());

    let done = wait_ended(&jobs);
    assert_eq!(done.state, JobState::Done, "{:?}", done.error);
    assert_eq!(done.frames_done, 60);
    let (clip_name, bytes) = done.clip.clone().unwrap();
    assert_eq!(clip_name, name);
    assert_eq!(cache_entries(dir.path()), std::slice::from_ref(&name));
    let frames = probe(&jobs.cache().path(&name), "v:0", "stream=nb_read_frames");
    assert!(frames.contains("nb_read_frames=60"), "{frames}");

    let again = jobs.start(request(range)).unwrap();
    assert_eq!(
        (again.state, again.clip),
        (JobState::Done, Some((name, bytes)))
    );
    // Now the other size may start.
    assert_eq!(jobs.start(other).unwrap().state, JobState::Running);
    wait_ended(&jobs);
}

#[test]
fn share_job_cancelled_or_cut_by_a_restart_leaves_no_clip_to_serve() {
    let dir = tempfile::tempdir().unwrap();
    let range = record(dir.path(), 90, 320, 240);
    let jobs = slow_jobs(dir.path(), 100_000_000, 0);
    jobs.start(request(range)).unwrap();
    while jobs.snapshot().unwrap().frames_done < 10 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // A restart now: the cache opened again finds only what a stopped job
    // leaves, and removes it.
    let reopened = ShareCache::open(&dir.path().join("share-cache"), 100_000_000).unwrap();
    assert!(reopened.clips().is_empty());
    let cancelled = jobs.cancel().unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(cancelled.error.unwrap().starts_with("cancelled after"));
    assert!(cancelled.frames_done < 90);
    assert_eq!(cache_entries(dir.path()), Vec::<String>::new());
    assert!(jobs.cancel().is_none(), "nothing runs any more");
}

#[test]
fn share_job_never_takes_the_space_recording_keeps_or_more_than_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let range = record(dir.path(), 30, 320, 240);
    let jobs = slow_jobs(dir.path(), 100_000_000, u64::MAX / 2);
    match jobs.start(request(range)) {
        Err(StartError::NoRoom(m)) => assert!(m.contains("min_free_mb"), "{m}"),
        r => panic!("{r:?}"),
    }
    let jobs = slow_jobs(dir.path(), 1000, 0);
    match jobs.start(request(range)) {
        Err(StartError::NoRoom(m)) => assert!(m.contains("share_cache_mb"), "{m}"),
        r => panic!("{r:?}"),
    }
    assert!(jobs.snapshot().is_none(), "no job was started");
}
