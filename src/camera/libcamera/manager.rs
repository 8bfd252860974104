//! The process's one libcamera camera manager, and camera listing.

use std::sync::Mutex;

use libcamera::camera_manager::CameraManager;
use libcamera::properties;
use libcamera::stream::StreamRole;

/// libcamera allows one camera manager per process (a second one aborts
/// it), so every camera and `dashvault cameras` share this one. It starts on
/// first use and is never stopped: cameras borrow it for as long as they
/// live, and its udev monitor sees cameras that appear later.
struct SharedManager(&'static CameraManager);

// SAFETY: the manager is only used through `with_manager`, under the lock;
// libcamera's CameraManager is itself thread-safe for listing and lookup.
unsafe impl Send for SharedManager {}

static MANAGER: Mutex<Option<SharedManager>> = Mutex::new(None);

/// Whether this process's camera manager has started. Without udev (the
/// appliance has none) a started manager never sees cameras that appear
/// later, so a camera found afterwards needs a fresh process.
pub fn manager_started() -> bool {
    MANAGER.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// Runs `f` with the process's camera manager, starting it if needed. A
/// manager that fails to start is tried again on the next call.
pub(super) fn with_manager<T>(f: impl FnOnce(&'static CameraManager) -> T) -> Result<T, String> {
    let mut guard = MANAGER.lock().unwrap_or_else(|e| e.into_inner());
    let manager = match guard.as_ref() {
        Some(m) => m.0,
        None => {
            let m = CameraManager::new()
                .map_err(|e| format!("the libcamera camera manager did not start: {e}"))?;
            let m: &'static CameraManager = Box::leak(Box::new(m));
            *guard = Some(SharedManager(m));
            m
        }
    };
    Ok(f(manager))
}

pub(super) fn fourcc_name(fourcc: u32) -> String {
    let bytes = fourcc.to_le_bytes();
    if bytes.iter().all(|b| b.is_ascii_graphic()) {
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        format!("{fourcc:#010x}")
    }
}

/// One camera as libcamera lists it, for `dashvault cameras` and the
/// default config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibcameraInfo {
    pub id: String,
    pub model: String,
    /// (pixel format, sizes) of its video stream.
    pub modes: Vec<(String, Vec<(u32, u32)>)>,
}

/// Lists libcamera's cameras. An error names why libcamera could not start.
pub fn list() -> Result<(String, Vec<LibcameraInfo>), String> {
    with_manager(|manager| {
        let version = manager.version().to_string();
        let cameras = manager.cameras();
        let out = cameras.iter().map(|camera| describe(&camera)).collect();
        (version, out)
    })
}

fn describe(camera: &libcamera::camera::Camera<'_>) -> LibcameraInfo {
    let model = camera
        .properties()
        .get::<properties::Model>()
        .map(|m| m.0)
        .unwrap_or_default();
    let mut modes = Vec::new();
    if let Some(config) = camera.generate_configuration(&[StreamRole::VideoRecording]) {
        if let Some(stream) = config.get(0) {
            let formats = stream.formats();
            let pixel_formats = formats.pixel_formats();
            for i in 0..pixel_formats.len() {
                let Some(pf) = pixel_formats.get(i) else {
                    continue;
                };
                let sizes = formats
                    .sizes(pf)
                    .into_iter()
                    .map(|s| (s.width, s.height))
                    .collect();
                modes.push((fourcc_name(pf.fourcc()), sizes));
            }
        }
    }
    LibcameraInfo {
        id: camera.id().to_string(),
        model,
        modes,
    }
}
