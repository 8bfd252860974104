//! Cameras driven by libcamera: the Pi's CSI camera modules (IMX219, IMX708,
//! IMX477, OV5647 ...) through the ISP, and anything else libcamera lists.
//!
//! libcamera's objects borrow from its camera manager, so each open camera
//! gets a session thread (`cam-<id>-libcamera`) that owns the manager, the
//! camera, its buffers and its requests, and drops them in that order.
//! Around it:
//!
//! - completed requests travel from libcamera's own thread to
//!   [`LibcameraCamera::next_frame`], which lends the mapped buffer to the
//!   encoder as the frame's bytes (no copy: the encoder's NV12 → planar pass
//!   is the only one);
//! - when the encoder drops the frame, the request goes back to the session
//!   thread, which queues it again at the next due time: requests are paced
//!   to the configured fps here, because libcamera's virtual camera delivers
//!   as fast as requests arrive, and a real sensor simply has its frame
//!   duration fixed to the same period (`FrameDurationLimits`);
//! - the session applies the exposure cap ([`super::exposure`]) to the next
//!   request it queues.
//!
//! Every request the session created must be back before the camera is
//! dropped, since frames point into their buffers. If an encoder still holds
//! frames [`RETURN_TIMEOUT_MS`] after a close, the close returns anyway and
//! the session thread finishes (releasing the camera) once they come back;
//! until then, reopening finds the camera busy and is retried.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use libcamera::camera::{ActiveCamera, Orientation};
use libcamera::camera_manager::CameraManager;
use libcamera::control::ControlList;
use libcamera::controls;
use libcamera::framebuffer::AsFrameBuffer;
use libcamera::framebuffer_allocator::{FrameBuffer, FrameBufferAllocator};
use libcamera::framebuffer_map::MemoryMappedFrameBuffer;
use libcamera::geometry::Size;
use libcamera::pixel_format::PixelFormat as LcPixelFormat;
use libcamera::properties;
use libcamera::request::{Request, RequestStatus, ReuseFlag};
use libcamera::stream::{Stream, StreamRole};

use super::exposure::{ExposureAction, ExposureCap};
use super::{CameraError, CameraSource, StreamFormat};
use crate::clock::{Clock, NANOS_PER_SEC};
use crate::frame::{CaptureTime, FrameBytes, PixelFormat, Plane, VideoFrame};

/// DRM fourcc codes of the layouts the encoder takes directly.
const FOURCC_NV12: u32 = u32::from_le_bytes(*b"NV12");
const FOURCC_YUV420: u32 = u32::from_le_bytes(*b"YU12");
/// Buffers to ask for at least: one being filled, one queued, the rest with
/// the encoders.
const MIN_BUFFERS: u32 = 4;
/// Waiting for the first frame covers sensor power-up and AGC start.
const FIRST_FRAME_TIMEOUT_MS: u64 = 5_000;
/// After the first frame, this many frame periods without one is a failure.
const FRAME_TIMEOUT_PERIODS: u64 = 10;
const FRAME_TIMEOUT_MIN_MS: u64 = 2_000;
/// How long closing waits for frames still held by encoders.
const RETURN_TIMEOUT_MS: u64 = 5_000;
/// While frames are still out after a stop, how often to say so.
const STILL_HELD_LOG_MS: u64 = 10_000;

/// What the session thread tells the capture side.
enum FromSession {
    Opened(Result<Opened, CameraError>),
    Completed(Request),
    Failed(CameraError),
    /// The camera is stopped: every queued request has come back before this.
    Stopped,
}

/// What the capture side tells the session thread.
enum ToSession {
    Returned(Request),
    Stop,
}

struct Opened {
    format: StreamFormat,
    stream: Stream,
    layout: PlaneLayout,
    rotated_by_camera: u16,
}

/// Where the planes of one mapped buffer are, relative to its first byte.
#[derive(Clone, Copy, Debug)]
struct PlaneLayout {
    format: PixelFormat,
    y_stride: usize,
}

pub struct LibcameraCamera {
    camera_id: String,
    settings: Settings,
    clock: Arc<dyn Clock>,
    session: Option<Session>,
}

#[derive(Clone, Debug)]
struct Settings {
    thread_name: String,
    width: u32,
    height: u32,
    fps: u32,
    rotation: u16,
    max_exposure_us: u32,
}

struct Session {
    thread: JoinHandle<()>,
    /// Closed when the session thread has released the camera.
    done: Receiver<()>,
    to_session: Sender<ToSession>,
    from_session: Receiver<FromSession>,
    stream: Stream,
    layout: PlaneLayout,
    format: StreamFormat,
    rotated_by_camera: u16,
    got_first_frame: bool,
}

impl LibcameraCamera {
    /// `camera_id` as `dashvault cameras` prints it; empty picks the first camera.
    pub fn new(cam: &crate::config::CameraConfig, clock: Arc<dyn Clock>) -> LibcameraCamera {
        LibcameraCamera {
            camera_id: cam.device.clone(),
            settings: Settings {
                thread_name: format!("cam-{}-libcamera", cam.id),
                width: cam.res_width,
                height: cam.res_height,
                fps: cam.fps.max(1),
                rotation: cam.rotation,
                max_exposure_us: cam.max_exposure_us,
            },
            clock,
            session: None,
        }
    }

    fn device_name(&self) -> String {
        if self.camera_id.is_empty() {
            "libcamera (first camera)".into()
        } else {
            format!("libcamera {}", self.camera_id)
        }
    }

    fn frame_timeout_ms(&self, first: bool) -> u64 {
        if first {
            return FIRST_FRAME_TIMEOUT_MS;
        }
        let period_ms = 1000 / u64::from(self.settings.fps);
        (period_ms * FRAME_TIMEOUT_PERIODS).max(FRAME_TIMEOUT_MIN_MS)
    }
}

impl CameraSource for LibcameraCamera {
    fn describe(&self) -> String {
        self.device_name()
    }

    fn open(&mut self) -> Result<StreamFormat, CameraError> {
        self.close();
        let (to_session, session_rx) = mpsc::channel();
        let (session_tx, from_session) = mpsc::channel();
        let (done_tx, done) = mpsc::channel::<()>();
        let (camera_id, settings) = (self.camera_id.clone(), self.settings.clone());
        let device = self.device_name();
        let thread = std::thread::Builder::new()
            .name(settings.thread_name.clone())
            .spawn(move || {
                run_session(&camera_id, &settings, session_rx, session_tx);
                drop(done_tx);
            })
            .map_err(|e| CameraError::Io {
                device: device.clone(),
                context: "starting the libcamera thread".into(),
                source: e,
            })?;
        let opened = match from_session.recv() {
            Ok(FromSession::Opened(result)) => result,
            _ => Err(CameraError::Disconnected {
                device,
                reason: "the libcamera thread ended while opening".into(),
            }),
        };
        match opened {
            Ok(o) => {
                let format = o.format.clone();
                self.session = Some(Session {
                    thread,
                    done,
                    to_session,
                    from_session,
                    stream: o.stream,
                    layout: o.layout,
                    format: o.format,
                    rotated_by_camera: o.rotated_by_camera,
                    got_first_frame: false,
                });
                Ok(format)
            }
            Err(e) => {
                let _ = thread.join();
                Err(e)
            }
        }
    }

    fn next_frame(&mut self) -> Result<VideoFrame, CameraError> {
        let device = self.device_name();
        let first = self.session.as_ref().map_or(true, |s| !s.got_first_frame);
        let timeout_ms = self.frame_timeout_ms(first);
        let Some(session) = self.session.as_mut() else {
            return Err(CameraError::Disconnected {
                device,
                reason: "not open".into(),
            });
        };
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = match session.from_session.recv_timeout(left) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(CameraError::Timeout {
                        device,
                        waited_ms: timeout_ms,
                    })
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(CameraError::Disconnected {
                        device,
                        reason: "the libcamera thread ended".into(),
                    })
                }
            };
            let request = match msg {
                FromSession::Completed(r) => r,
                FromSession::Failed(e) => return Err(e),
                FromSession::Opened(_) | FromSession::Stopped => continue,
            };
            match lend(request, session, self.clock.as_ref()) {
                Ok(frame) => {
                    session.got_first_frame = true;
                    return Ok(frame);
                }
                // A cancelled or failed buffer: give it back and wait for the next.
                Err(request) => {
                    if session
                        .to_session
                        .send(ToSession::Returned(request))
                        .is_err()
                    {
                        return Err(CameraError::Disconnected {
                            device,
                            reason: "the libcamera thread ended".into(),
                        });
                    }
                }
            }
        }
    }

    fn close(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let _ = session.to_session.send(ToSession::Stop);
        // Hand back whatever completed but was never taken, until the
        // session says the camera has stopped.
        while let Ok(msg) = session
            .from_session
            .recv_timeout(Duration::from_millis(RETURN_TIMEOUT_MS))
        {
            match msg {
                FromSession::Completed(r) => {
                    let _ = session.to_session.send(ToSession::Returned(r));
                }
                FromSession::Stopped => break,
                FromSession::Opened(_) | FromSession::Failed(_) => {}
            }
        }
        drop(session.to_session);
        // The session ends once every lent frame is back; the encoders
        // normally return them within a frame or two.
        match session
            .done
            .recv_timeout(Duration::from_millis(RETURN_TIMEOUT_MS))
        {
            Err(RecvTimeoutError::Timeout) => log::warn!(
                "{}: frames still held after {RETURN_TIMEOUT_MS} ms; the camera is released when they come back",
                self.device_name()
            ),
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if session.thread.join().is_err() {
                    log::error!("{}: the libcamera thread panicked", self.device_name());
                }
            }
        }
    }
}

impl Drop for LibcameraCamera {
    fn drop(&mut self) {
        self.close();
    }
}

/// A completed request whose mapped buffer is a frame's bytes. Dropping it
/// hands the request back to the session thread for the next capture.
struct LentBuffer {
    /// Always `Some` until dropped.
    request: Option<Request>,
    data: *const u8,
    len: usize,
    back: Sender<ToSession>,
}

// SAFETY: `data` points into the memory mapping owned by the request's
// `MemoryMappedFrameBuffer`, which lives (and stays mapped at the same
// address) as long as `request`, and is only read. `Request` itself is Send.
unsafe impl Send for LentBuffer {}

impl FrameBytes for LentBuffer {
    fn bytes(&self) -> &[u8] {
        // SAFETY: see the Send impl; the range was checked against the
        // mapping's planes when the frame was made.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl Drop for LentBuffer {
    fn drop(&mut self) {
        if let Some(r) = self.request.take() {
            // The session waits for every request before dropping the
            // camera, so it is still there to take this one.
            let _ = self.back.send(ToSession::Returned(r));
        }
    }
}

/// Turns a completed request into a frame lending its buffer, or gives the
/// request back when it holds no usable picture.
fn lend(request: Request, session: &Session, clock: &dyn Clock) -> Result<VideoFrame, Request> {
    if request.status() != RequestStatus::Complete {
        return Err(request);
    }
    let Some(mapped) = request.buffer::<MemoryMappedFrameBuffer<FrameBuffer>>(&session.stream)
    else {
        return Err(request);
    };
    let ok = mapped
        .metadata()
        .is_some_and(|m| m.status() == libcamera::framebuffer::FrameMetadataStatus::Success);
    if !ok {
        return Err(request);
    }
    let Some((data, len, planes)) = frame_span(mapped, &session.format, session.layout) else {
        return Err(request);
    };
    let captured = CaptureTime {
        mono_ns: clock.mono_ns(),
        wall_ns: clock.wall_ns(),
    };
    let StreamFormat { width, height, .. } = session.format;
    Ok(VideoFrame {
        format: session.layout.format,
        width,
        height,
        planes,
        data: Box::new(LentBuffer {
            request: Some(request),
            data,
            len,
            back: session.to_session.clone(),
        }),
        captured,
        rotated_by_camera: session.rotated_by_camera,
    })
}

/// The one byte range covering every plane of a mapped buffer, and each
/// plane's place in it. `None` when the planes are not in one mapping (then
/// they cannot be lent as one slice) or too small for the format.
fn frame_span(
    mapped: &MemoryMappedFrameBuffer<FrameBuffer>,
    format: &StreamFormat,
    layout: PlaneLayout,
) -> Option<(*const u8, usize, Vec<Plane>)> {
    let fds: Vec<i32> = mapped.planes().into_iter().map(|p| p.fd()).collect();
    if fds.windows(2).any(|w| w[0] != w[1]) {
        return None;
    }
    let slices = mapped.data();
    let base = slices.first()?.as_ptr();
    let mut end = 0usize;
    let mut offsets = Vec::with_capacity(slices.len());
    for s in &slices {
        let offset = (s.as_ptr() as usize).checked_sub(base as usize)?;
        offsets.push(offset);
        end = end.max(offset + s.len());
    }
    let (w, h) = (format.width as usize, format.height as usize);
    let ys = layout.y_stride.max(w);
    let planes = match (layout.format, offsets.as_slice()) {
        (PixelFormat::Nv12, [y, uv, ..]) => vec![
            Plane {
                offset: *y,
                stride: ys,
            },
            Plane {
                offset: *uv,
                stride: ys,
            },
        ],
        // One plane holding both: the chroma follows the luma rows.
        (PixelFormat::Nv12, [y]) => vec![
            Plane {
                offset: *y,
                stride: ys,
            },
            Plane {
                offset: y + ys * h,
                stride: ys,
            },
        ],
        (PixelFormat::I420, [y, u, v, ..]) => vec![
            Plane {
                offset: *y,
                stride: ys,
            },
            Plane {
                offset: *u,
                stride: ys / 2,
            },
            Plane {
                offset: *v,
                stride: ys / 2,
            },
        ],
        (PixelFormat::I420, [y]) => {
            let cs = ys / 2;
            vec![
                Plane {
                    offset: *y,
                    stride: ys,
                },
                Plane {
                    offset: y + ys * h,
                    stride: cs,
                },
                Plane {
                    offset: y + ys * h + cs * h.div_ceil(2),
                    stride: cs,
                },
            ]
        }
        _ => return None,
    };
    // The encoder checks each plane against the length again; this only
    // makes sure the single slice stays inside the mapping.
    Some((base, end, planes))
}

/// Runs one open camera from start to stop; see the module docs.
fn run_session(
    camera_id: &str,
    settings: &Settings,
    commands: Receiver<ToSession>,
    events: Sender<FromSession>,
) {
    let device = if camera_id.is_empty() {
        "libcamera (first camera)".to_string()
    } else {
        format!("libcamera {camera_id}")
    };
    let fail = |reason: String| CameraError::Disconnected {
        device: device.clone(),
        reason,
    };
    // Looked up and acquired under the manager's lock: libcamera's check
    // that a camera is free and its marking as taken are two steps, and two
    // of our cameras configured with the same id must not both pass it.
    let found = with_manager(|manager| {
        let cameras = manager.cameras();
        let camera = if camera_id.is_empty() {
            cameras.get(0)
        } else {
            manager.get(camera_id)
        };
        let Some(camera) = camera else {
            let ids: Vec<String> = cameras.iter().map(|c| c.id().to_string()).collect();
            return Err(if ids.is_empty() {
                "libcamera finds no camera (see `dashvault cameras` and docs/camera.md)".to_string()
            } else {
                format!("not found; libcamera has {}", ids.join(", "))
            });
        };
        let active = camera
            .acquire()
            .map_err(|e| format!("cannot acquire it (in use by another program?): {e}"))?;
        Ok((camera, active))
    });
    let (camera, active) = match found.and_then(|c| c) {
        Ok(c) => c,
        Err(reason) => {
            let _ = events.send(FromSession::Opened(Err(fail(reason))));
            return;
        }
    };
    let mut state = match start(active, settings, &device, &events) {
        Ok(s) => s,
        Err(e) => {
            let _ = events.send(FromSession::Opened(Err(e)));
            return;
        }
    };
    state.run(&commands, &events);
    state.stop(&commands, &events);
    // `state` (requests, then the active camera) drops before `camera`.
    drop(state);
    drop(camera);
}

/// libcamera allows one camera manager per process (a second one aborts
/// it), so every camera and `dashvault cameras` share this one. It starts on
/// first use and is never stopped: cameras borrow it for as long as they
/// live, and its udev monitor sees cameras that appear later.
struct SharedManager(&'static CameraManager);

// SAFETY: the manager is only used through `with_manager`, under the lock;
// libcamera's CameraManager is itself thread-safe for listing and lookup.
unsafe impl Send for SharedManager {}

static MANAGER: Mutex<Option<SharedManager>> = Mutex::new(None);

/// Runs `f` with the process's camera manager, starting it if needed. A
/// manager that fails to start is tried again on the next call.
fn with_manager<T>(f: impl FnOnce(&'static CameraManager) -> T) -> Result<T, String> {
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

/// A started camera and the requests it owns.
struct Running<'d> {
    /// Declared before `camera`: requests must be dropped first.
    free: Vec<Request>,
    camera: ActiveCamera<'d>,
    total_requests: usize,
    period_ns: u64,
    next_due: Instant,
    cap: ExposureCap,
    /// The camera takes ExposureTimeMode, ExposureTime and reports them.
    cap_supported: bool,
    pending_exposure: Option<ExposureAction>,
    device: String,
}

fn start<'d>(
    mut camera: ActiveCamera<'d>,
    settings: &Settings,
    device: &str,
    events: &Sender<FromSession>,
) -> Result<Running<'d>, CameraError> {
    let unsupported = |reason: String| CameraError::Unsupported {
        device: device.to_string(),
        reason,
    };
    let failed = |context: &str, e: std::io::Error| CameraError::Io {
        device: device.to_string(),
        context: context.to_string(),
        source: e,
    };
    let mut config = camera
        .generate_configuration(&[StreamRole::VideoRecording])
        .ok_or_else(|| unsupported("it offers no video stream".into()))?;
    let offered: Vec<u32> = {
        let stream_cfg = config
            .get(0)
            .ok_or_else(|| unsupported("it offers no video stream".into()))?;
        let formats = stream_cfg.formats();
        let pixel_formats = formats.pixel_formats();
        (0..pixel_formats.len())
            .filter_map(|i| pixel_formats.get(i))
            .map(|f| f.fourcc())
            .collect()
    };
    let fourcc = [FOURCC_NV12, FOURCC_YUV420]
        .into_iter()
        .find(|f| offered.contains(f))
        .ok_or_else(|| {
            let names: Vec<String> = offered.iter().map(|f| fourcc_name(*f)).collect();
            unsupported(format!(
                "it offers {}, and dashvault records NV12 or YUV420",
                names.join(", ")
            ))
        })?;
    {
        let mut stream_cfg = config.get_mut(0).expect("checked above");
        stream_cfg.set_pixel_format(LcPixelFormat::new(fourcc, 0));
        stream_cfg.set_size(Size {
            width: settings.width,
            height: settings.height,
        });
        let count = stream_cfg.get_buffer_count().max(MIN_BUFFERS);
        stream_cfg.set_buffer_count(count);
    }
    // 180 degrees is a flip of both axes, which the sensor does for free;
    // 90 and 270 need a transpose that only the encoder does. Only cameras
    // with an image sensor libcamera drives (they report its mounting
    // `Rotation`) are asked: the virtual pipeline keeps any orientation it
    // is given without applying it.
    let has_sensor = camera.properties().get::<properties::Rotation>().is_ok();
    if settings.rotation == 180 && has_sensor {
        config.set_orientation(Orientation::Rotate180);
    }
    // Adjusted is fine: what was kept is read back below.
    if config.validate().is_invalid() {
        return Err(unsupported(format!(
            "it rejects NV12/YUV420 at {}x{}",
            settings.width, settings.height
        )));
    }
    let rotated_by_camera =
        if settings.rotation == 180 && has_sensor && config.orientation() == Orientation::Rotate180
        {
            180
        } else {
            0
        };
    let (stride, size, got_fourcc) = {
        let s = config.get(0).expect("checked above");
        (s.get_stride(), s.get_size(), s.get_pixel_format().fourcc())
    };
    let pixel_format = match got_fourcc {
        FOURCC_NV12 => PixelFormat::Nv12,
        FOURCC_YUV420 => PixelFormat::I420,
        other => {
            return Err(unsupported(format!(
                "it would deliver {} instead of NV12/YUV420",
                fourcc_name(other)
            )))
        }
    };
    if (size.width, size.height) != (settings.width, settings.height) {
        log::warn!(
            "{device}: asked for {}x{}, the camera delivers {}x{}",
            settings.width,
            settings.height,
            size.width,
            size.height
        );
    }
    camera
        .configure(&mut config)
        .map_err(|e| failed("configuring the stream", e))?;
    let stream = config
        .get(0)
        .and_then(|s| s.stream())
        .ok_or_else(|| unsupported("the configured stream is missing".into()))?;

    let mut allocator = FrameBufferAllocator::new(&camera);
    let buffers = allocator
        .alloc(&stream)
        .map_err(|e| failed("allocating frame buffers (no dma-buf heap?)", e))?;
    let mut free = Vec::with_capacity(buffers.len());
    for (i, buffer) in buffers.into_iter().enumerate() {
        let mapped = MemoryMappedFrameBuffer::new(buffer).map_err(|e| {
            failed(
                "mapping a frame buffer",
                std::io::Error::other(e.to_string()),
            )
        })?;
        let mut request = camera
            .create_request(Some(i as u64))
            .ok_or_else(|| unsupported("it cannot create capture requests".into()))?;
        request
            .add_buffer(&stream, mapped)
            .map_err(|e| failed("attaching a buffer to a request", e))?;
        free.push(request);
    }

    let period_us = 1_000_000 / i64::from(settings.fps);
    let supported = |id: u32| camera.controls().find(id).is_ok();
    let mut start_controls = ControlList::new();
    if supported(<controls::FrameDurationLimits as libcamera::control::ControlEntry>::ID) {
        // Fixed frame duration: the sensor delivers the configured fps, and
        // no exposure can be longer than one frame.
        let _ = start_controls.set(controls::FrameDurationLimits([period_us, period_us]));
    }
    let cap_supported =
        supported(<controls::ExposureTimeMode as libcamera::control::ControlEntry>::ID)
            && supported(<controls::ExposureTime as libcamera::control::ControlEntry>::ID);
    if settings.max_exposure_us > 0 && !cap_supported {
        log::info!("{device}: no ExposureTimeMode/ExposureTime controls; exposure is not capped");
    }
    let events_cb = events.clone();
    camera.on_request_completed(move |r| {
        let _ = events_cb.send(FromSession::Completed(r));
    });
    let events_dc = events.clone();
    let device_dc = device.to_string();
    camera.on_disconnected(move || {
        let _ = events_dc.send(FromSession::Failed(CameraError::Disconnected {
            device: device_dc.clone(),
            reason: "libcamera reports the camera disconnected".into(),
        }));
    });
    camera
        .start(Some(&start_controls))
        .map_err(|e| failed("starting capture", e))?;
    // The allocator must outlive the buffers; its buffers are owned by the
    // requests, which hold their own reference to it.
    drop(allocator);

    let total_requests = free.len();
    let _ = events.send(FromSession::Opened(Ok(Opened {
        format: StreamFormat {
            format: pixel_format,
            width: size.width,
            height: size.height,
            fps_milli: settings.fps * 1000,
        },
        stream,
        layout: PlaneLayout {
            format: pixel_format,
            y_stride: stride as usize,
        },
        rotated_by_camera,
    })));
    Ok(Running {
        free,
        camera,
        total_requests,
        period_ns: NANOS_PER_SEC / u64::from(settings.fps),
        next_due: Instant::now(),
        cap: ExposureCap::new(settings.max_exposure_us),
        cap_supported: cap_supported && settings.max_exposure_us > 0,
        pending_exposure: None,
        device: device.to_string(),
    })
}

impl Running<'_> {
    /// Queues requests at the configured pace until told to stop.
    fn run(&mut self, commands: &Receiver<ToSession>, events: &Sender<FromSession>) {
        loop {
            let now = Instant::now();
            if now >= self.next_due {
                if let Some(mut request) = self.free.pop() {
                    self.apply_exposure(&mut request);
                    if let Err((request, e)) = self.camera.queue_request(request) {
                        self.free.push(request);
                        let _ = events.send(FromSession::Failed(CameraError::Io {
                            device: self.device.clone(),
                            context: "queueing a capture request".into(),
                            source: e,
                        }));
                        return;
                    }
                    let period = Duration::from_nanos(self.period_ns);
                    // Behind by more than a frame (paused, starved of
                    // buffers): start the schedule again, never burst.
                    self.next_due = if now > self.next_due + period {
                        now + period
                    } else {
                        self.next_due + period
                    };
                }
            }
            let wait = if self.free.is_empty() {
                Duration::from_millis(500)
            } else {
                self.next_due.saturating_duration_since(Instant::now())
            };
            match commands.recv_timeout(wait) {
                Ok(ToSession::Returned(request)) => self.take_back(request),
                Ok(ToSession::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn take_back(&mut self, mut request: Request) {
        if self.cap_supported && request.status() == RequestStatus::Complete {
            let metadata = request.metadata();
            let exposure = metadata.get::<controls::ExposureTime>().ok();
            let gain = metadata.get::<controls::AnalogueGain>().ok();
            if let (Some(e), Some(g)) = (exposure, gain) {
                if let Some(action) = self.cap.observe(e.0.max(0) as u32, g.0) {
                    log::info!("{}: exposure cap: {action:?}", self.device);
                    self.pending_exposure = Some(action);
                }
            }
        }
        request.reuse(ReuseFlag::REUSE_BUFFERS);
        self.free.push(request);
    }

    fn apply_exposure(&mut self, request: &mut Request) {
        let Some(action) = self.pending_exposure.take() else {
            return;
        };
        let controls = request.controls_mut();
        let result = match action {
            ExposureAction::Hold(us) => controls
                .set(controls::ExposureTimeMode::Manual)
                .and_then(|()| controls.set(controls::ExposureTime(us as i32))),
            ExposureAction::Release => controls.set(controls::ExposureTimeMode::Auto),
        };
        if let Err(e) = result {
            log::warn!("{}: cannot set exposure controls: {e}", self.device);
        }
    }

    /// Stops the camera and waits for every request to come back, however
    /// long encoders hold their frames: the buffers must outlive them.
    fn stop(&mut self, commands: &Receiver<ToSession>, events: &Sender<FromSession>) {
        if let Err(e) = self.camera.stop() {
            log::warn!("{}: stopping capture: {e}", self.device);
        }
        // Every queued request has completed (cancelled) by now.
        let _ = events.send(FromSession::Stopped);
        while self.free.len() < self.total_requests {
            match commands.recv_timeout(Duration::from_millis(STILL_HELD_LOG_MS)) {
                Ok(ToSession::Returned(r)) => self.free.push(r),
                Ok(ToSession::Stop) => {}
                Err(RecvTimeoutError::Timeout) => log::warn!(
                    "{}: {} frame buffers still held; waiting for them before releasing the camera",
                    self.device,
                    self.total_requests - self.free.len()
                ),
                // Nobody can send any more: the rest were forgotten, not
                // dropped, so nothing will touch them.
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
    }
}

fn fourcc_name(fourcc: u32) -> String {
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
