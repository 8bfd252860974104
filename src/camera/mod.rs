//! Camera sources behind one trait.
//!
//! A [`CameraSource`] opens a device, negotiates a format, and then hands out
//! frames one at a time, blocking until the next one is due. Sources do not
//! retry: when a source fails, the recorder's capture loop closes it, waits
//! with backoff and opens it again, so every source gets the same reconnect
//! behaviour and one camera's trouble never touches another's.
//!
//! A source backed by a camera library (libcamera) delivers NV12 or I420
//! planes through [`crate::frame::FrameBytes`], which lets it lend its mapped
//! buffer to the encoder and take it back when the frame is dropped.

pub mod synthetic;
pub mod v4l2;

use std::fmt;

use crate::frame::{PixelFormat, VideoFrame};

/// What an opened camera will deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamFormat {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    /// Nominal frames per second times 1000 (29.97 fps = 29970).
    pub fps_milli: u32,
}

/// Why a camera did not give a frame.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    /// The device is gone (unplugged, removed); reopen later.
    #[error("camera {device} disconnected: {reason}")]
    Disconnected { device: String, reason: String },
    /// No frame arrived in time; the device may recover by itself.
    #[error("camera {device} timed out after {waited_ms} ms without a frame")]
    Timeout { device: String, waited_ms: u64 },
    /// The device cannot do what the config asks.
    #[error("camera {device} cannot be used: {reason}")]
    Unsupported { device: String, reason: String },
    #[error("camera {device}: {context}: {source}")]
    Io {
        device: String,
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub trait CameraSource: Send {
    /// A human-readable name for logs, e.g. `synthetic` or `/dev/video0`.
    fn describe(&self) -> String;
    /// Opens the device and negotiates a format. Called again after a failure.
    fn open(&mut self) -> Result<StreamFormat, CameraError>;
    /// Blocks until the next frame is ready. Only called after a successful `open`.
    fn next_frame(&mut self) -> Result<VideoFrame, CameraError>;
    /// Releases the device; `open` may be called again afterwards.
    fn close(&mut self);
}

impl fmt::Debug for dyn CameraSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CameraSource({})", self.describe())
    }
}

/// Builds the source a camera's config asks for.
pub fn source_for(
    cam: &crate::config::CameraConfig,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
) -> Box<dyn CameraSource> {
    use crate::config::SourceKind;
    match cam.source {
        SourceKind::Synthetic => Box::new(synthetic::SyntheticCamera::new(
            cam.res_width,
            cam.res_height,
            cam.fps,
            clock,
        )),
        SourceKind::V4l2 => Box::new(v4l2::V4l2Camera::new(
            cam.device.clone(),
            cam.res_width,
            cam.res_height,
            cam.fps,
            clock,
        )),
        SourceKind::Libcamera => Box::new(Unavailable {
            device: cam.device.clone(),
            reason: "this build has no libcamera support".into(),
        }),
    }
}

/// A camera this build cannot drive: every open fails with the reason, so
/// the recorder retries with backoff and status shows why.
struct Unavailable {
    device: String,
    reason: String,
}

impl CameraSource for Unavailable {
    fn describe(&self) -> String {
        format!("libcamera {}", self.device)
    }

    fn open(&mut self) -> Result<StreamFormat, CameraError> {
        Err(CameraError::Unsupported {
            device: self.device.clone(),
            reason: self.reason.clone(),
        })
    }

    fn next_frame(&mut self) -> Result<VideoFrame, CameraError> {
        Err(CameraError::Unsupported {
            device: self.device.clone(),
            reason: self.reason.clone(),
        })
    }

    fn close(&mut self) {}
}

/// Config entries for the cameras attached to this machine (V4L2 for now),
/// used to write a default config. Webcams that deliver MJPEG are stored as
/// is, so their burned-in timestamp is off by default (it would cost a
/// decode and re-encode of every frame).
pub fn discover_cameras() -> Vec<crate::config::CameraConfig> {
    v4l2::discover()
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let mut cam = crate::config::CameraConfig::synthetic(if i == 0 { "front" } else { "" });
            if i > 0 {
                cam.id = format!("cam{i}");
            }
            cam.name = d.card.clone();
            cam.source = crate::config::SourceKind::V4l2;
            cam.device = d.device.clone();
            let mjpeg = d
                .formats
                .first()
                .is_some_and(|(f, _)| *f == PixelFormat::Jpeg);
            cam.embed_timestamp = !mjpeg;
            cam
        })
        .collect()
}
