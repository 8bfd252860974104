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

pub mod exposure;
#[cfg(feature = "libcamera")]
pub mod libcamera;
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
        #[cfg(feature = "libcamera")]
        SourceKind::Libcamera => Box::new(libcamera::LibcameraCamera::new(cam, clock)),
        #[cfg(not(feature = "libcamera"))]
        SourceKind::Libcamera => Box::new(Unavailable {
            device: cam.device.clone(),
            reason: NO_LIBCAMERA.into(),
        }),
    }
}

/// Why a build cannot use libcamera cameras.
pub const NO_LIBCAMERA: &str =
    "this build has no libcamera support (build with `--features libcamera`)";

/// A camera this build cannot drive: every open fails with the reason, so
/// the recorder retries with backoff and status shows why.
#[cfg_attr(feature = "libcamera", allow(dead_code))]
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

/// Config entries for the cameras attached to this machine, used to write a
/// default config: libcamera's cameras first (on a Pi, the camera module is
/// the one that matters), then V4L2 devices. Webcams that deliver MJPEG are
/// stored as is, so their burned-in timestamp is off by default (it would
/// cost a decode and re-encode of every frame).
pub fn discover_cameras() -> Vec<crate::config::CameraConfig> {
    let mut found: Vec<crate::config::CameraConfig> = Vec::new();
    #[cfg(feature = "libcamera")]
    match libcamera::list() {
        Ok((_, cameras)) => {
            for c in cameras {
                let mut cam = crate::config::CameraConfig::synthetic("");
                cam.name = if c.model.is_empty() {
                    c.id.clone()
                } else {
                    c.model.clone()
                };
                cam.source = crate::config::SourceKind::Libcamera;
                cam.device = c.id;
                found.push(cam);
            }
        }
        Err(e) => log::info!("{e}"),
    }
    // libcamera's UVC pipeline lists USB webcams too: record those through
    // V4L2, which can store their MJPEG as is.
    found.retain(|c| !is_uvc_camera_id(&c.device));
    let libcamera_count = found.len();
    found.extend(v4l2::discover().into_iter().map(|d| {
        let mut cam = crate::config::CameraConfig::synthetic("");
        cam.name = d.card.clone();
        cam.source = crate::config::SourceKind::V4l2;
        cam.device = d.device.clone();
        let mjpeg = d
            .formats
            .first()
            .is_some_and(|(f, _)| *f == PixelFormat::Jpeg);
        cam.embed_timestamp = !mjpeg;
        cam
    }));
    for (i, cam) in found.iter_mut().enumerate() {
        cam.id = if i == 0 {
            "front".into()
        } else {
            format!("cam{i}")
        };
    }
    log::debug!(
        "found {libcamera_count} libcamera and {} V4L2 cameras",
        found.len() - libcamera_count
    );
    found
}

/// Every camera attached now, for the recorder's search while running.
/// With libcamera they are listed by a fresh process (`dashvault cameras
/// --json`): libcamera allows one camera manager per process, and one that
/// has started never sees a camera that appears later unless udev tells it
/// (the appliance has no udev).
pub fn search() -> Vec<crate::config::CameraConfig> {
    #[cfg(feature = "libcamera")]
    {
        match search_in_child() {
            Ok(found) => found,
            Err(e) => {
                log::warn!("camera search: {e}");
                Vec::new()
            }
        }
    }
    #[cfg(not(feature = "libcamera"))]
    {
        discover_cameras()
    }
}

/// How long a search in a child process may take before it is given up.
#[cfg(feature = "libcamera")]
const SEARCH_TIMEOUT_MS: u64 = 15_000;

#[cfg(feature = "libcamera")]
fn search_in_child() -> Result<Vec<crate::config::CameraConfig>, String> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut child = Command::new(&exe)
        .args(["cameras", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {} cameras: {e}", exe.display()))?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    let mut waited_ms = 0;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if waited_ms < SEARCH_TIMEOUT_MS => {
                std::thread::sleep(std::time::Duration::from_millis(50));
                waited_ms += 50;
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {SEARCH_TIMEOUT_MS} ms"));
            }
            Err(e) => return Err(format!("waiting for the search: {e}")),
        }
    };
    let out = reader
        .join()
        .map_err(|_| "reading the search's output failed".to_string())?
        .map_err(|e| format!("reading the search's output: {e}"))?;
    if !status.success() {
        return Err(format!("the search exited with {status}"));
    }
    serde_json::from_slice(&out).map_err(|e| format!("the search's output: {e}"))
}

/// libcamera names a UVC webcam `<controller>-<usb path>-<vid>:<pid>`
/// (`/base/soc/usb@7e980000-1.2:1.0-046d:0825`); CSI sensors are named by
/// their firmware node (`/base/soc/i2c0mux/i2c@1/imx219@10`).
pub fn is_uvc_camera_id(id: &str) -> bool {
    let hex4 = |s: &str| s.len() == 4 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let Some((rest, pid)) = id.rsplit_once(':') else {
        return false;
    };
    let Some((_, vid)) = rest.rsplit_once('-') else {
        return false;
    };
    hex4(vid) && hex4(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvc_ids_are_told_apart_from_csi_sensors() {
        assert!(is_uvc_camera_id("/base/soc/usb@7e980000-1.2:1.0-046d:0825"));
        assert!(is_uvc_camera_id(
            r"\_SB_.PCI0.XHC_.RHUB.HS08-8:1.0-5986:2115"
        ));
        assert!(!is_uvc_camera_id("/base/soc/i2c0mux/i2c@1/imx219@10"));
        assert!(!is_uvc_camera_id(
            "/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a"
        ));
        assert!(!is_uvc_camera_id("Virtual0"));
    }
}
