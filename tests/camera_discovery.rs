//! A recorder started with no camera, as the appliance starts before the
//! camera driver has loaded: it reports "no camera found", blinks its LED,
//! and records the camera as soon as one appears, without a restart.
//!
//! The search and the LED are stand-ins: a list the test fills in place of
//! /dev and libcamera, and a plain folder in place of /sys/class/leds/ACT.
//! The image test (tests/image/run.py) repeats this with the kernel's vivid
//! driver and LED class.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashvault::camera::synthetic::SyntheticCamera;
use dashvault::clock::{Clock, SystemClock};
use dashvault::config::{CameraConfig, Config, SourceKind};
use dashvault::led::StatusLed;
use dashvault::recorder::{Discovery, Recorder, RecorderParts};
use dashvault::store::Store;

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file)).unwrap_or_default()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A USB camera as the search reports it.
fn usb_camera(device: &str) -> CameraConfig {
    let mut cam = CameraConfig::synthetic("found");
    cam.source = SourceKind::V4l2;
    cam.device = device.into();
    cam.name = "USB camera".into();
    (cam.res_width, cam.res_height, cam.fps) = (160, 120, 10);
    cam
}

#[test]
fn a_camera_that_appears_after_start_is_recorded_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let led_dir = dir.path().join("led");
    fs::create_dir(&led_dir).unwrap();
    fs::write(led_dir.join("max_brightness"), "255").unwrap();
    let data_dir = dir.path().join("data");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    let devices = Arc::new(AtomicU64::new(1));
    let attached: Arc<Mutex<Vec<CameraConfig>>> = Arc::default();
    let kept: Arc<Mutex<Vec<CameraConfig>>> = Arc::default();
    let discovery = Discovery {
        fingerprint: Box::new({
            let devices = devices.clone();
            move || devices.load(Ordering::SeqCst)
        }),
        search: Box::new({
            let attached = attached.clone();
            move || attached.lock().unwrap().clone()
        }),
        source_for: Box::new({
            let clock = clock.clone();
            move |cam| {
                Box::new(SyntheticCamera::new(
                    cam.res_width,
                    cam.res_height,
                    cam.fps,
                    clock.clone(),
                ))
            }
        }),
        on_found: Box::new({
            let kept = kept.clone();
            move |cam| kept.lock().unwrap().push(cam.clone())
        }),
    };
    let config = Config {
        cameras: vec![],
        discover_cameras: true,
        segment_length_s: 2,
        sync_interval_ms: 200,
        ..Config::default()
    };
    let recorder = Recorder::start(
        &config,
        RecorderParts {
            store: Store::on_disk(&data_dir),
            clock: clock.clone(),
            sources: vec![],
            want_direct: false,
            boot_id: [7; 16],
            timekeeper: None,
            discovery: Some(discovery),
            status_led: Some(StatusLed::at(led_dir.clone())),
        },
    )
    .unwrap();
    let status = recorder.status.clone();

    // Nothing attached: the recorder runs, says so, and blinks slowly.
    wait_for("the no-camera report", || {
        status.snapshot(clock.mono_ns(), 0).no_camera.is_some()
    });
    let snap = serde_json::to_value(status.snapshot(clock.mono_ns(), 0)).unwrap();
    assert_eq!(snap["no_camera"]["message"], "no camera found");
    assert!(!snap["no_camera"]["checks"].as_array().unwrap().is_empty());
    wait_for("the slow blink", || {
        read(&led_dir, "trigger") == "timer"
            && read(&led_dir, "delay_on") == "1000"
            && read(&led_dir, "delay_off") == "1000"
    });

    // The driver loads: a device node appears and the search finds it.
    attached.lock().unwrap().push(usb_camera("/dev/video0"));
    devices.store(2, Ordering::SeqCst);

    wait_for("frames from the found camera", || {
        status
            .camera("front")
            .is_some_and(|c| c.storage.written.load(Ordering::Relaxed) > 5)
    });
    assert!(status.snapshot(clock.mono_ns(), 0).no_camera.is_none());
    // The LED folder here is regular files, not sysfs attributes: a read can
    // fall between the trigger and the brightness write, or inside one
    // write (an empty file). So wait for the whole final state.
    wait_for("the solid LED", || {
        read(&led_dir, "trigger") == "none" && read(&led_dir, "brightness") == "255"
    });
    {
        let found = status.found_cameras.read().unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].id, "front",
            "the first camera found is the front one"
        );
        assert_eq!(found[0].device, "/dev/video0");
    }
    assert_eq!(kept.lock().unwrap().len(), 1, "told once, to keep it");

    // A second device change with the same camera attached starts nothing new.
    devices.store(3, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(2_000));
    assert_eq!(status.cameras().len(), 1);
    assert_eq!(kept.lock().unwrap().len(), 1);

    recorder.stop();
    assert_eq!(
        read(&led_dir, "brightness"),
        "0",
        "off once the recorder stops"
    );
    let segments = Store::on_disk(&data_dir).segments("front").unwrap();
    assert!(!segments.segments.is_empty(), "its footage is in the store");
}
