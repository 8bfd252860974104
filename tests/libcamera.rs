//! The libcamera source against a real libcamera: its `virtual` pipeline
//! camera (`Virtual0`, 100% colour bars in NV12; see ci/libcamera/). Run by
//! `make test` once `make libcamera` has built that libcamera.
//!
//! The virtual camera completes requests as fast as they are queued, so the
//! frame rate checked here is the one dashvault's pacing produces.
#![cfg(feature = "libcamera")]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use dashvault::camera::libcamera::LibcameraCamera;
use dashvault::camera::{CameraError, CameraSource};
use dashvault::clock::SystemClock;
use dashvault::config::{CameraConfig, SourceKind};
use dashvault::frame::PixelFormat;
use dashvault::store::catalog::list_all;
use dashvault::store::io::RealIo;
use dashvault::store::reader::SegmentReader;
use mozjpeg::{ColorSpace, Decompress};

const CAMERA_ID: &str = "Virtual0";
/// The environment variable that lets the patched libcamera hand out memfd
/// buffers on kernels without a dma-buf heap (ci/libcamera/README.md).
const MEMFD_FALLBACK: &str = "LIBCAMERA_DMABUF_MEMFD_FALLBACK";

/// Y, Cb, Cr (BT.601 limited range) of the virtual camera's bars, left to
/// right: white, yellow, cyan, green, magenta, red, blue, black.
const BARS_YCBCR: [[u8; 3]; 8] = [
    [235, 128, 128],
    [210, 16, 146],
    [170, 166, 16],
    [145, 54, 34],
    [106, 202, 222],
    [81, 90, 240],
    [41, 240, 110],
    [16, 128, 128],
];
/// JPEG at quality 85 plus the camera's RGB → YUV rounding.
const COLOUR_TOLERANCE: i32 = 12;

/// In-process tests share the one virtual camera, which only one of them
/// can acquire at a time.
static VIRTUAL_CAMERA: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn allow_memfd_buffers() {
    // Set before any libcamera call in this process; every test does it
    // first and sets the same value, so the order between tests is moot.
    std::env::set_var(MEMFD_FALLBACK, "1");
}

fn dashvault(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dashvault"));
    c.current_dir(dir)
        .env("RUST_LOG", "info")
        .env(MEMFD_FALLBACK, "1")
        .env("LIBCAMERA_LOG_LEVELS", "*:ERROR");
    c
}

fn write_config(dir: &Path, fps: u32, rotation: u16) {
    let config = format!(
        r#"{{
  "segment_length_s": 10,
  "data_dir": "data",
  "cameras": [{{ "id": "front", "source": "libcamera", "device": "{CAMERA_ID}",
                 "res_width": 640, "res_height": 480, "fps": {fps},
                 "rotation": {rotation}, "jpeg_quality": 85 }}]
}}"#
    );
    std::fs::write(dir.join("dashvault.json"), config).unwrap();
}

fn run_for(dir: &Path, seconds: &str) -> Output {
    let out = dashvault(dir)
        .args(["run", "--duration-s", seconds])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    out
}

/// (monotonic capture time in ns, JPEG)
type StoredFrame = (u64, Vec<u8>);

/// Every stored frame, plus the stream's size.
fn stored(dir: &Path) -> ((u32, u32), Vec<StoredFrame>) {
    let io = RealIo::new();
    let mut size = (0, 0);
    let mut frames = Vec::new();
    for seg in list_all(&io, &dir.join("data")).unwrap() {
        let r = SegmentReader::open(&io, &seg.path).unwrap();
        size = (r.stream.width, r.stream.height);
        for (i, e) in r.frames.iter().enumerate() {
            frames.push((e.mono_ns, r.read_frame(i).unwrap()));
        }
    }
    (size, frames)
}

/// The YCbCr colour at the middle of each of the 8 bars, in the order of
/// `expected`, on a row in the lower half (the timestamp is burned in at the
/// top), and where the first bar starts. The virtual camera scrolls its
/// pattern left by one column per frame, so the bars are found by the one
/// edge where luma rises through mid-grey from `expected[7]` to
/// `expected[0]` (black to white, or white to black when turned around).
fn bar_colours(jpeg: &[u8], expected: &[[u8; 3]; 8]) -> (Vec<[u8; 3]>, usize) {
    let d = Decompress::new_mem(jpeg).unwrap();
    let mut started = d.to_colorspace(ColorSpace::JCS_YCbCr).unwrap();
    let (w, h) = (started.width(), started.height());
    let pixels: Vec<[u8; 3]> = started.read_scanlines().unwrap();
    let row = &pixels[h * 3 / 4 * w..(h * 3 / 4 + 1) * w];
    let rising = expected[0][0] > expected[7][0];
    let bright = |x: usize| row[x % w][0] > 125;
    let start = (0..w)
        .find(|&x| bright(x + w - 1) != rising && bright(x) == rising)
        .expect("no edge between the last and the first bar");
    let bar_w = w / 8;
    let colours = (0..8)
        .map(|i| row[(start + i * bar_w + bar_w / 2) % w])
        .collect();
    (colours, start)
}

/// Checks the bars' colours; returns where the first bar starts.
fn assert_bars(jpeg: &[u8], expected: &[[u8; 3]; 8]) -> usize {
    let (got, start) = bar_colours(jpeg, expected);
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        let off = (0..3)
            .map(|c| (g[c] as i32 - e[c] as i32).abs())
            .max()
            .unwrap();
        assert!(
            off <= COLOUR_TOLERANCE,
            "bar {i}: YCbCr {g:?}, expected {e:?} (within {COLOUR_TOLERANCE}); all bars {got:?}"
        );
    }
    start
}

#[test]
fn records_colour_bars_at_the_configured_rate_and_verify_deep_passes() {
    let dir = tempfile::tempdir().unwrap();
    let fps = 10;
    write_config(dir.path(), fps, 0);
    run_for(dir.path(), "4");

    let verify = dashvault(dir.path())
        .args(["verify", "--deep", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert!(verify.status.success(), "{verify:?}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["cameras"][0]["bad_records"], 0, "{report}");

    let (size, frames) = stored(dir.path());
    assert_eq!(size, (640, 480));
    // About 4 s at 10 fps after start-up; the virtual camera alone would
    // deliver hundreds per second.
    let n = frames.len();
    assert!((25..=50).contains(&n), "{n} frames in 4 s at {fps} fps");
    let span_s = (frames[n - 1].0 - frames[0].0) as f64 / 1e9;
    let rate = (n - 1) as f64 / span_s;
    assert!(
        (fps as f64 * 0.9..=fps as f64 * 1.1).contains(&rate),
        "measured {rate:.2} fps over {span_s:.2} s, configured {fps}"
    );
    println!("{n} frames, {rate:.2} fps measured for {fps} configured");

    let starts: Vec<usize> = [&frames[0], &frames[n / 2], &frames[n - 1]]
        .iter()
        .map(|(_, jpeg)| assert_bars(jpeg, &BARS_YCBCR))
        .collect();
    // One column further left per generated frame: each stored frame is a
    // new picture, none repeated, and few or none were generated unused.
    let moved = (starts[0] + 640 - starts[2]) % 640;
    assert!(
        (n - 1..n + 20).contains(&moved),
        "pattern moved {moved} columns over {n} frames ({starts:?})"
    );
    println!("the pattern moved {moved} columns over {n} stored frames");
}

#[test]
fn rotation_180_turns_the_bars_around() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), 15, 180);
    run_for(dir.path(), "1.5");
    let (size, frames) = stored(dir.path());
    assert_eq!(size, (640, 480));
    assert!(frames.len() >= 5, "{} frames", frames.len());
    let mut reversed = BARS_YCBCR;
    reversed.reverse();
    assert_bars(&frames.last().unwrap().1, &reversed);
}

fn virtual_camera(fps: u32) -> LibcameraCamera {
    let mut cam = CameraConfig::synthetic("front");
    cam.source = SourceKind::Libcamera;
    cam.device = CAMERA_ID.into();
    cam.res_width = 640;
    cam.res_height = 480;
    cam.fps = fps;
    LibcameraCamera::new(&cam, Arc::new(SystemClock))
}

#[test]
fn frames_lend_the_mapped_nv12_buffer_and_the_camera_reopens() {
    allow_memfd_buffers();
    let _camera = VIRTUAL_CAMERA.lock().unwrap_or_else(|e| e.into_inner());
    let mut cam = virtual_camera(30);
    for round in 0..2 {
        let format = cam.open().unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(
            (format.format, format.width, format.height),
            (PixelFormat::Nv12, 640, 480)
        );
        // Hold several frames at once, as the encoder queue does.
        let held: Vec<_> = (0..3).map(|_| cam.next_frame().unwrap()).collect();
        for f in &held {
            assert_eq!(f.planes.len(), 2);
            assert!(f.planes[0].stride >= 640);
            // The first row of luma is the bars' Y, left to right.
            let y = &f.bytes()[f.planes[0].offset..];
            assert!(y[40] > 225 && y[600] < 26, "Y row {:?}", &y[..640]);
        }
        drop(held);
        cam.close();
    }
}

#[test]
fn an_unknown_camera_id_names_the_cameras_libcamera_has() {
    allow_memfd_buffers();
    let mut c = CameraConfig::synthetic("front");
    c.device = "/base/soc/i2c0mux/i2c@1/imx219@10".into();
    let mut cam = LibcameraCamera::new(&c, Arc::new(SystemClock));
    let e = cam.open().unwrap_err();
    assert!(matches!(e, CameraError::Disconnected { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("imx219@10") && msg.contains(CAMERA_ID),
        "{msg}"
    );
}

#[test]
fn cameras_command_lists_the_virtual_camera_with_its_modes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dashvault(dir.path()).arg("cameras").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("Virtual0 (dashvault virtual camera)"),
        "{text}"
    );
    assert!(
        text.contains(r#""source": "libcamera", "device": "Virtual0""#),
        "{text}"
    );
    assert!(
        text.contains("NV12: ") && text.contains("640x480"),
        "{text}"
    );
}

#[test]
fn a_camera_that_cannot_open_is_retried_and_counted_while_the_others_record() {
    let dir = tempfile::tempdir().unwrap();
    // "rear" asks for the same camera as "front": libcamera gives it to one
    // of them, the other cannot acquire it. "test" is the synthetic camera.
    let config = format!(
        r#"{{
  "data_dir": "data",
  "cameras": [
    {{ "id": "front", "source": "libcamera", "device": "{CAMERA_ID}", "res_width": 640, "res_height": 480, "fps": 10 }},
    {{ "id": "rear", "source": "libcamera", "device": "{CAMERA_ID}", "res_width": 640, "res_height": 480, "fps": 10 }},
    {{ "id": "test", "source": "synthetic", "res_width": 320, "res_height": 240, "fps": 10 }}
  ]
}}"#
    );
    std::fs::write(dir.path().join("dashvault.json"), config).unwrap();
    run_for(dir.path(), "3");
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("data/status.json")).unwrap())
            .unwrap();
    let cams = status["cameras"].as_array().unwrap();
    let written = |c: &serde_json::Value| c["written"].as_u64().unwrap();
    let errors = |c: &serde_json::Value| c["camera_errors"].as_u64().unwrap();
    let (recording, refused): (Vec<_>, Vec<_>) = cams[..2].iter().partition(|c| written(c) > 0);
    assert_eq!((recording.len(), refused.len()), (1, 1), "{status}");
    let refused = refused[0];
    // Opened at 0, 0.5, 1.5 s (backoff doubling) within the 3 s run.
    assert!(errors(refused) >= 2, "{refused}");
    assert!(
        refused["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot acquire")),
        "{refused}"
    );
    assert!(written(recording[0]) >= 20, "{}", recording[0]);
    assert!(written(&cams[2]) >= 20, "{}", cams[2]);
}

#[test]
fn frames_held_past_close_stay_valid_and_the_camera_is_released_when_they_return() {
    allow_memfd_buffers();
    let _camera = VIRTUAL_CAMERA.lock().unwrap_or_else(|e| e.into_inner());
    let mut cam = virtual_camera(30);
    cam.open().unwrap();
    // Keep every frame, as a stuck encoder would: the camera runs out of
    // buffers and reports that no frame comes.
    let mut held = Vec::new();
    let error = loop {
        match cam.next_frame() {
            Ok(f) => held.push(f),
            Err(e) => break e,
        }
        assert!(held.len() <= 32, "frames keep coming with none returned");
    };
    assert!(matches!(error, CameraError::Timeout { .. }), "{error:?}");
    assert!(held.len() >= 3, "{} buffers", held.len());

    let t = std::time::Instant::now();
    cam.close();
    assert!(t.elapsed().as_secs() < 10, "close waited {:?}", t.elapsed());
    // The buffers stay mapped while their frames live.
    for f in &held {
        let y = &f.bytes()[f.planes[0].offset..];
        assert!(y.iter().take(640).any(|&v| v > 225), "white bar gone");
    }
    // Still held: the old session keeps the camera.
    let busy = cam.open().unwrap_err().to_string();
    assert!(busy.contains("cannot acquire"), "{busy}");
    drop(held);
    let mut reopened = None;
    for _ in 0..50 {
        match cam.open() {
            Ok(f) => {
                reopened = Some(f);
                break;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
    assert!(reopened.is_some(), "the camera was never released");
    cam.next_frame().unwrap();
    cam.close();
}

#[test]
fn first_start_without_a_config_records_the_libcamera_camera() {
    let dir = tempfile::tempdir().unwrap();
    run_for(dir.path(), "2");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("dashvault.json")).unwrap()).unwrap();
    let front = &written["cameras"][0];
    assert_eq!(front["id"], "front", "{written}");
    assert_eq!(front["source"], "libcamera", "{written}");
    assert_eq!(front["device"], CAMERA_ID, "{written}");
    assert_eq!(front["name"], "dashvault virtual camera", "{written}");
    assert_eq!(front["max_exposure_us"], 10_000, "{written}");
    let (_, frames) = stored(dir.path());
    assert!(frames.len() >= 10, "{} frames", frames.len());
}
