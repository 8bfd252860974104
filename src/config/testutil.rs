//! Examples and helpers shared by the config tests.

use std::path::Path;

use super::{parse, Config, ConfigError, FieldError, LoadedConfig};

/// The multi-camera example from Dash of Pi's README.
pub(super) const DASH_OF_PI_EXAMPLE: &str = r#"{
  "port": 8080,
  "storage_cap_gb": 20,
  "segment_length_s": 60,
  "cameras": [
    {
      "id": "front",
      "name": "Front Camera",
      "device": "/dev/video0",
      "rotation": 0,
      "res_width": 1920,
      "res_height": 1080,
      "bitrate": 2048,
      "fps": 30,
      "mjpeg_quality": 5,
      "embed_timestamp": true,
      "enabled": true
    },
    {
      "id": "rear",
      "name": "Rear Camera",
      "device": "/dev/video1",
      "rotation": 180,
      "res_width": 1280,
      "res_height": 720,
      "bitrate": 1024,
      "fps": 24,
      "mjpeg_quality": 8,
      "embed_timestamp": true,
      "enabled": true
    }
  ]
}"#;

pub(super) const LEGACY_EXAMPLE: &str = r#"{
  "port": 8081,
  "video_dir": "/home/pi/.local/state/dash-of-pi/videos",
  "storage_cap_gb": 5,
  "auth_token": "1f0e9a8b7c6d5e4f3a2b1c0d9e8f7a6b",
  "segment_length_s": 120,
  "video_res_width": 1640,
  "video_res_height": 1232,
  "video_fps": 15,
  "video_bitrate": 4096,
  "camera_device": "/dev/video0",
  "mjpeg_quality": 2,
  "enable_timestamp": false
}"#;

pub(super) fn p() -> &'static Path {
    Path::new("/etc/dashvault/config.json")
}

pub(super) fn parse_str(json: &str) -> Result<LoadedConfig, ConfigError> {
    parse(p(), json.as_bytes())
}

pub(super) fn problems(json: &str) -> Vec<FieldError> {
    let err = parse_str(json).expect_err("config should be rejected");
    assert_eq!(err.path, p());
    err.problems
}

/// The single problem reported for `json`, as "field: message".
pub(super) fn only_problem(json: &str) -> String {
    let ps = problems(json);
    assert_eq!(ps.len(), 1, "expected one problem, got {ps:#?}");
    ps[0].to_string()
}

pub(super) fn one_camera(fields: &str) -> String {
    format!(r#"{{"cameras": [{{"id": "front"{fields}}}]}}"#)
}

/// The config `json` makes, or its problems as "field: message".
pub(super) fn config_or_messages(json: &str) -> Result<Config, Vec<String>> {
    parse(Path::new("dashvault.json"), json.as_bytes())
        .map(|l| l.config)
        .map_err(|e| e.problems.iter().map(|p| p.to_string()).collect())
}
