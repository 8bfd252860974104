//! Cameras found while recording: which of the cameras a search turns up
//! are new, what they are called, and what to check when there are none.
//!
//! The recorder looks again whenever the set of video devices changes (a
//! cheap listing of /dev every second), because camera drivers load late on
//! a Pi and webcams are plugged in on the road. The search itself lives in
//! [`crate::camera::discover_cameras`]; this module only decides.

use crate::config::{CameraConfig, SourceKind};

/// What to check when no camera is found (docs/camera.md, "No camera found").
pub const NO_CAMERA_CHECKS: [&str; 4] = [
    "the ribbon cable: contacts toward the board on the Pi, seated straight, latch closed",
    "config.txt on the boot partition: camera_auto_detect=1, or dtoverlay= naming the sensor",
    "a USB webcam: plugged into the data port (the inner one on a Zero 2W), through an OTG adapter",
    "`dashvault cameras` on the console lists what the system sees",
];

pub const NO_CAMERA_MESSAGE: &str = "no camera found";

/// The cameras among `found` that nobody records yet, with ids of their
/// own. `known` is every camera in the config (enabled or not: a camera the
/// user turned off stays off) and every camera found earlier. A camera is
/// the same camera when source and device match; a libcamera camera without
/// a device in the config stands for the first libcamera camera found.
pub fn new_cameras(found: Vec<CameraConfig>, known: &[CameraConfig]) -> Vec<CameraConfig> {
    let mut any_libcamera_taken = false;
    let mut used_ids: Vec<String> = known.iter().map(|c| c.id.clone()).collect();
    let mut out = Vec::new();
    for mut cam in found {
        if cam.source == SourceKind::Synthetic {
            continue;
        }
        let same = known
            .iter()
            .any(|k| k.source == cam.source && k.device == cam.device);
        let stands_for_it = cam.source == SourceKind::Libcamera
            && !any_libcamera_taken
            && known
                .iter()
                .any(|k| k.source == SourceKind::Libcamera && k.device.is_empty());
        if cam.source == SourceKind::Libcamera {
            any_libcamera_taken = true;
        }
        if same || stands_for_it || out.iter().any(|o: &CameraConfig| o.device == cam.device) {
            continue;
        }
        cam.id = free_id(&used_ids);
        used_ids.push(cam.id.clone());
        out.push(cam);
    }
    out
}

/// `front` for the first camera, then `cam1`, `cam2`, ...
fn free_id(used: &[String]) -> String {
    std::iter::once("front".to_string())
        .chain((1..).map(|i| format!("cam{i}")))
        .find(|id| !used.contains(id))
        .expect("an unbounded sequence has a free id")
}

/// A fingerprint of the video and media device nodes present: when it
/// changes, a camera may have come or gone. Listing /dev costs far less
/// than opening every device, and nothing at all when nothing changed.
pub fn device_fingerprint() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut names: Vec<String> = std::fs::read_dir("/dev")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with("video") || n.starts_with("media"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    names.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4l2(id: &str, device: &str) -> CameraConfig {
        CameraConfig {
            source: SourceKind::V4l2,
            device: device.into(),
            ..CameraConfig::synthetic(id)
        }
    }

    fn libcamera(id: &str, device: &str) -> CameraConfig {
        CameraConfig {
            source: SourceKind::Libcamera,
            device: device.into(),
            ..CameraConfig::synthetic(id)
        }
    }

    #[test]
    fn a_camera_already_recorded_or_configured_is_not_new() {
        let known = [v4l2("front", "/dev/video0")];
        let found = vec![v4l2("front", "/dev/video0"), v4l2("cam1", "/dev/video2")];
        let new = new_cameras(found, &known);
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].device, "/dev/video2");
        assert_eq!(new[0].id, "cam1", "front is taken by the configured camera");
    }

    #[test]
    fn a_disabled_camera_in_the_config_stays_off_when_found() {
        let mut off = v4l2("rear", "/dev/video0");
        off.enabled = false;
        assert!(new_cameras(vec![v4l2("front", "/dev/video0")], &[off]).is_empty());
    }

    #[test]
    fn the_first_camera_found_is_front_and_ids_never_collide() {
        let found = vec![
            libcamera("x", "/base/soc/i2c0mux/i2c@1/imx219@10"),
            v4l2("y", "/dev/video4"),
        ];
        let new = new_cameras(found, &[CameraConfig::synthetic("cam1")]);
        let ids: Vec<&str> = new.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["front", "cam2"]);
    }

    #[test]
    fn a_libcamera_camera_without_a_device_stands_for_the_first_one_found() {
        let known = [libcamera("front", "")];
        let found = vec![libcamera("a", "/base/soc/i2c0mux/i2c@1/imx219@10")];
        assert!(new_cameras(found, &known).is_empty());
    }

    #[test]
    fn the_test_pattern_is_never_found() {
        assert!(new_cameras(vec![CameraConfig::synthetic("front")], &[]).is_empty());
    }
}
