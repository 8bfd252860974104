//! Frames that lend libcamera's mapped buffers to the encoder.

use std::sync::mpsc::Sender;

use libcamera::framebuffer::{AsFrameBuffer, FrameMetadataStatus};
use libcamera::framebuffer_allocator::FrameBuffer;
use libcamera::framebuffer_map::MemoryMappedFrameBuffer;
use libcamera::request::{Request, RequestStatus};

use super::{Session, ToSession};
use crate::camera::StreamFormat;
use crate::clock::Clock;
use crate::frame::{CaptureTime, FrameBytes, PixelFormat, Plane, VideoFrame};

/// Where the planes of one mapped buffer are, relative to its first byte.
#[derive(Clone, Copy, Debug)]
pub(super) struct PlaneLayout {
    pub format: PixelFormat,
    pub y_stride: usize,
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
pub(super) fn lend(
    request: Request,
    session: &Session,
    clock: &dyn Clock,
) -> Result<VideoFrame, Request> {
    if request.status() != RequestStatus::Complete {
        return Err(request);
    }
    let Some(mapped) = request.buffer::<MemoryMappedFrameBuffer<FrameBuffer>>(&session.stream)
    else {
        return Err(request);
    };
    let ok = mapped
        .metadata()
        .is_some_and(|m| m.status() == FrameMetadataStatus::Success);
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
