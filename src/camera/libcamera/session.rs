//! The thread that owns one started camera: configures it, paces its
//! requests, applies the exposure cap and stops it.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use libcamera::camera::{ActiveCamera, Orientation};
use libcamera::control::{ControlEntry, ControlList};
use libcamera::controls;
use libcamera::framebuffer_allocator::FrameBufferAllocator;
use libcamera::framebuffer_map::MemoryMappedFrameBuffer;
use libcamera::geometry::Size;
use libcamera::pixel_format::PixelFormat as LcPixelFormat;
use libcamera::properties;
use libcamera::request::{Request, RequestStatus, ReuseFlag};
use libcamera::stream::StreamRole;

use super::lent::PlaneLayout;
use super::manager::{fourcc_name, with_manager};
use super::{
    FromSession, Opened, Settings, ToSession, FOURCC_NV12, FOURCC_YUV420, MIN_BUFFERS,
    STILL_HELD_LOG_MS,
};
use crate::camera::exposure::{ExposureAction, ExposureCap};
use crate::camera::{CameraError, StreamFormat};
use crate::clock::NANOS_PER_SEC;
use crate::frame::PixelFormat;

/// Runs one open camera from start to stop; see the module docs.
pub(super) fn run_session(
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
    if supported(controls::FrameDurationLimits::ID) {
        // Fixed frame duration: the sensor delivers the configured fps, and
        // no exposure can be longer than one frame.
        let _ = start_controls.set(controls::FrameDurationLimits([period_us, period_us]));
    }
    let cap_supported =
        supported(controls::ExposureTimeMode::ID) && supported(controls::ExposureTime::ID);
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
