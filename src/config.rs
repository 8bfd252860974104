//! Configuration: JSON, a superset of Dash of Pi's `config.json`.
//!
//! (Loading, validation, legacy migration and the last-good copy are filled in below.)

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_STORAGE_CAP_GB: f64 = 10.0;
pub const DEFAULT_SEGMENT_LENGTH_S: u32 = 60;
pub const DEFAULT_SYNC_INTERVAL_MS: u32 = 1000;
pub const DEFAULT_MIN_FREE_MB: u64 = 256;
pub const DEFAULT_JPEG_QUALITY: u8 = 75;
pub const DEFAULT_ENCODER_THREADS: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Synthetic,
    V4l2,
    Libcamera,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub port: u16,
    /// Address the dashboard listens on.
    pub bind: String,
    pub storage_cap_gb: f64,
    pub segment_length_s: u32,
    pub sync_interval_ms: u32,
    pub min_free_mb: u64,
    /// Where recordings live; relative paths are relative to the config file's folder.
    pub data_dir: PathBuf,
    /// Dash of Pi stored its token here; kept so its configs load. Ours lives beside the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    pub cameras: Vec<CameraConfig>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CameraConfig {
    pub id: String,
    pub name: String,
    pub source: SourceKind,
    /// `/dev/videoN` for v4l2, a libcamera camera id, ignored for synthetic.
    pub device: String,
    pub rotation: u16,
    pub res_width: u32,
    pub res_height: u32,
    pub fps: u32,
    pub jpeg_quality: u8,
    /// Dash of Pi's quality scale (2-31, lower is better); mapped to `jpeg_quality` on load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mjpeg_quality: Option<u8>,
    /// Accepted for Dash of Pi compatibility; JPEG recording has no bitrate target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u32>,
    pub embed_timestamp: bool,
    pub enabled: bool,
    pub encoder_threads: u8,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            port: DEFAULT_PORT,
            bind: "127.0.0.1".into(),
            storage_cap_gb: DEFAULT_STORAGE_CAP_GB,
            segment_length_s: DEFAULT_SEGMENT_LENGTH_S,
            sync_interval_ms: DEFAULT_SYNC_INTERVAL_MS,
            min_free_mb: DEFAULT_MIN_FREE_MB,
            data_dir: PathBuf::from("data"),
            auth_token: None,
            cameras: vec![CameraConfig::synthetic("front")],
        }
    }
}

impl CameraConfig {
    pub fn synthetic(id: &str) -> CameraConfig {
        CameraConfig {
            id: id.into(),
            name: "Test camera".into(),
            source: SourceKind::Synthetic,
            device: String::new(),
            rotation: 0,
            res_width: 1280,
            res_height: 720,
            fps: 30,
            jpeg_quality: DEFAULT_JPEG_QUALITY,
            mjpeg_quality: None,
            bitrate: None,
            embed_timestamp: true,
            enabled: true,
            encoder_threads: DEFAULT_ENCODER_THREADS,
        }
    }
}
