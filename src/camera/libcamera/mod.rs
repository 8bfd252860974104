//! Cameras driven by libcamera: the Pi's CSI camera modules (IMX219, IMX708,
//! IMX477, OV5647 ...) through the ISP, and anything else libcamera lists.
//!
//! libcamera's objects borrow from its camera manager, of which a process
//! may have only one ([`manager`]). Each open camera gets a session thread
//! (`cam-<id>-libcamera`, [`session`]) that owns the camera, its buffers and
//! its requests, and drops them in that order. Around it:
//!
//! - completed requests travel from libcamera's own thread to
//!   [`LibcameraCamera::next_frame`], which lends the mapped buffer to the
//!   encoder as the frame's bytes ([`lent`]; no copy: the encoder's NV12 →
//!   planar pass is the only one);
//! - when the encoder drops the frame, the request goes back to the session
//!   thread, which queues it again at the next due time: requests are paced
//!   to the configured fps there, because libcamera's virtual camera delivers
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

mod lent;
mod manager;
mod session;

pub use manager::{list, manager_started, LibcameraInfo};

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use libcamera::request::Request;
use libcamera::stream::Stream;

use crate::camera::{CameraError, CameraSource, StreamFormat};
use crate::clock::Clock;
use crate::frame::VideoFrame;
use lent::{lend, PlaneLayout};
use session::run_session;

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
        let first = self.session.as_ref().is_none_or(|s| !s.got_first_frame);
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
