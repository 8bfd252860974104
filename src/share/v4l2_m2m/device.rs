//! [`RealM2mDevice`]: the [`M2mDevice`] trait over ioctls and mmap.

use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::ptr::NonNull;

use libc::c_int;
use nix::errno::Errno;
use nix::sys::mman::{MapFlags, ProtFlags};

use super::ioctl::*;
use super::{DequeuedBuffer, M2mDevice, Queue, QueueFormat};
use crate::camera::v4l2::device::{open_node, query_capabilities, retry};
use crate::camera::v4l2::{DeviceCaps, DeviceError, FourCc};

/// One driver buffer mapped into our address space.
struct MappedBuffer {
    ptr: NonNull<libc::c_void>,
    len: usize,
}

// SAFETY: the mapping is owned by exactly one MappedBuffer; moving it to
// another thread is as safe as moving a Vec.
unsafe impl Send for MappedBuffer {}

impl Drop for MappedBuffer {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from a successful mmap and are unmapped once.
        if let Err(e) = unsafe { nix::sys::mman::munmap(self.ptr, self.len) } {
            log::debug!("munmap of a V4L2 buffer failed: {e}");
        }
    }
}

/// A memory-to-memory node driven with ioctls and single-plane mmap buffers.
#[derive(Default)]
pub struct RealM2mDevice {
    fd: Option<OwnedFd>,
    output: Vec<MappedBuffer>,
    capture: Vec<MappedBuffer>,
}

/// A `v4l2_buffer` for one MMAP buffer of `queue` with a one-plane array.
/// The struct points into `plane`, so both must stay where they are
/// while the ioctl runs.
fn mplane_buffer(queue: Queue, index: u32, plane: &mut V4l2Plane) -> V4l2Buffer {
    V4l2Buffer {
        index,
        type_: queue.buf_type(),
        bytesused: 0,
        flags: 0,
        field: V4L2_FIELD_NONE,
        timestamp: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        timecode: V4l2Timecode::default(),
        sequence: 0,
        memory: V4L2_MEMORY_MMAP,
        m: V4l2BufferM {
            userptr: plane as *mut V4l2Plane as libc::c_ulong,
        },
        // For multi-planar buffers: the number of entries in the plane array.
        length: 1,
        reserved2: 0,
        request_fd: 0,
    }
}

impl RealM2mDevice {
    pub fn new() -> RealM2mDevice {
        RealM2mDevice::default()
    }

    fn fd(&self, op: &'static str) -> Result<c_int, DeviceError> {
        match &self.fd {
            Some(fd) => Ok(fd.as_raw_fd()),
            None => Err(DeviceError::new(op, Errno::EBADF)),
        }
    }

    fn buffers(&mut self, queue: Queue) -> &mut Vec<MappedBuffer> {
        match queue {
            Queue::Output => &mut self.output,
            Queue::Capture => &mut self.capture,
        }
    }
}

impl M2mDevice for RealM2mDevice {
    fn open(&mut self, path: &Path) -> Result<(), DeviceError> {
        self.close();
        self.fd = Some(open_node(path)?);
        Ok(())
    }

    fn capabilities(&mut self) -> Result<DeviceCaps, DeviceError> {
        query_capabilities(self.fd("VIDIOC_QUERYCAP")?)
    }

    fn set_format(&mut self, queue: Queue, want: QueueFormat) -> Result<QueueFormat, DeviceError> {
        let fd = self.fd("VIDIOC_S_FMT")?;
        let mut pix = V4l2PixFormatMplane {
            width: want.width,
            height: want.height,
            pixelformat: want.fourcc.0,
            field: V4L2_FIELD_NONE,
            num_planes: 1,
            ..Default::default()
        };
        pix.plane_fmt[0].bytesperline = want.bytes_per_line;
        pix.plane_fmt[0].sizeimage = want.size_image;
        let mut f = V4l2FormatMplane::new(queue.buf_type(), pix);
        // SAFETY: `f` is a valid, correctly sized v4l2_format.
        retry(|| unsafe { vidioc_s_fmt_mplane(fd, &mut f) })
            .map_err(|e| DeviceError::new("VIDIOC_S_FMT", e))?;
        let got = f.pix_mp();
        if got.num_planes != 1 {
            // A separate buffer per plane is not what we map and fill.
            return Err(DeviceError::new("VIDIOC_S_FMT", Errno::EINVAL));
        }
        Ok(QueueFormat {
            fourcc: FourCc(got.pixelformat),
            width: got.width,
            height: got.height,
            bytes_per_line: got.plane_fmt[0].bytesperline,
            size_image: got.plane_fmt[0].sizeimage,
        })
    }

    fn set_crop(&mut self, width: u32, height: u32) -> Result<(), DeviceError> {
        let fd = self.fd("VIDIOC_S_SELECTION")?;
        let mut s = V4l2Selection {
            // The single-planar type: accepted by every kernel for
            // multi-planar devices too.
            type_: V4L2_BUF_TYPE_VIDEO_OUTPUT,
            target: V4L2_SEL_TGT_CROP,
            r: V4l2Rect {
                left: 0,
                top: 0,
                width,
                height,
            },
            ..Default::default()
        };
        // SAFETY: `s` is a valid, correctly sized v4l2_selection.
        retry(|| unsafe { vidioc_s_selection(fd, &mut s) })
            .map_err(|e| DeviceError::new("VIDIOC_S_SELECTION", e))?;
        if (s.r.width, s.r.height) != (width, height) {
            return Err(DeviceError::new("VIDIOC_S_SELECTION", Errno::ERANGE));
        }
        Ok(())
    }

    fn set_frame_rate(&mut self, fps: u32) -> Result<(), DeviceError> {
        let fd = self.fd("VIDIOC_S_PARM")?;
        let mut p = V4l2Streamparm::capture();
        p.type_ = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE;
        // `struct v4l2_outputparm` has the same layout as the capture one:
        // capability, mode, timeperframe.
        let mut parm = p.capture_parm();
        parm.timeperframe = V4l2Fract {
            numerator: 1,
            denominator: fps.max(1),
        };
        p.parm.capture = parm;
        // SAFETY: `p` is a valid, correctly sized v4l2_streamparm.
        retry(|| unsafe { vidioc_s_parm(fd, &mut p) })
            .map(drop)
            .map_err(|e| DeviceError::new("VIDIOC_S_PARM", e))
    }

    fn set_control(&mut self, id: u32, value: i32) -> Result<(), DeviceError> {
        let fd = self.fd("VIDIOC_S_CTRL")?;
        let mut c = V4l2Control { id, value };
        // SAFETY: `c` is a valid, correctly sized v4l2_control.
        retry(|| unsafe { vidioc_s_ctrl(fd, &mut c) })
            .map(drop)
            .map_err(|e| DeviceError::new("VIDIOC_S_CTRL", e))
    }

    fn request_buffers(&mut self, queue: Queue, count: u32) -> Result<u32, DeviceError> {
        let fd = self.fd("VIDIOC_REQBUFS")?;
        self.buffers(queue).clear();
        let mut req = V4l2RequestBuffers {
            count,
            type_: queue.buf_type(),
            memory: V4L2_MEMORY_MMAP,
            ..Default::default()
        };
        // SAFETY: `req` is a valid, correctly sized v4l2_requestbuffers.
        retry(|| unsafe { vidioc_reqbufs(fd, &mut req) })
            .map_err(|e| DeviceError::new("VIDIOC_REQBUFS", e))?;
        let mut mapped = Vec::new();
        for index in 0..req.count {
            let mut plane = V4l2Plane::default();
            let mut b = mplane_buffer(queue, index, &mut plane);
            // SAFETY: `b` is a valid v4l2_buffer pointing at `plane`, which lives until after the call.
            retry(|| unsafe { vidioc_querybuf(fd, &mut b) })
                .map_err(|e| DeviceError::new("VIDIOC_QUERYBUF", e))?;
            let len = NonZeroUsize::new(plane.length as usize)
                .ok_or(DeviceError::new("VIDIOC_QUERYBUF", Errno::EINVAL))?;
            // SAFETY: for MMAP buffers the driver fills `mem_offset`.
            let offset = unsafe { plane.m.offset };
            let owned = self
                .fd
                .as_ref()
                .ok_or(DeviceError::new("mmap", Errno::EBADF))?;
            // SAFETY: maps a driver buffer of `len` bytes at the offset the
            // driver gave; the mapping is owned by the MappedBuffer below.
            let ptr = unsafe {
                nix::sys::mman::mmap(
                    None,
                    len,
                    ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                    MapFlags::MAP_SHARED,
                    owned.as_fd(),
                    offset as libc::off_t,
                )
            }
            .map_err(|e| DeviceError::new("mmap", e))?;
            mapped.push(MappedBuffer {
                ptr,
                len: len.get(),
            });
        }
        *self.buffers(queue) = mapped;
        Ok(req.count)
    }

    fn buffer(&mut self, queue: Queue, index: u32) -> Result<&mut [u8], DeviceError> {
        let b = self
            .buffers(queue)
            .get_mut(index as usize)
            .ok_or(DeviceError::new("mmap", Errno::EINVAL))?;
        // SAFETY: `ptr` maps `len` bytes for as long as `b` lives, and the
        // `&mut self` borrow keeps anyone else from touching them meanwhile.
        Ok(unsafe { std::slice::from_raw_parts_mut(b.ptr.as_ptr().cast::<u8>(), b.len) })
    }

    fn queue_buffer(
        &mut self,
        queue: Queue,
        index: u32,
        bytes_used: u32,
        timestamp_us: u64,
    ) -> Result<(), DeviceError> {
        let fd = self.fd("VIDIOC_QBUF")?;
        let mut plane = V4l2Plane {
            bytesused: bytes_used,
            ..Default::default()
        };
        if let Some(b) = self.buffers(queue).get(index as usize) {
            plane.length = b.len as u32;
        }
        let mut b = mplane_buffer(queue, index, &mut plane);
        b.timestamp = libc::timeval {
            tv_sec: (timestamp_us / 1_000_000) as libc::time_t,
            tv_usec: (timestamp_us % 1_000_000) as libc::suseconds_t,
        };
        // SAFETY: `b` is a valid v4l2_buffer pointing at `plane`, which lives until after the call.
        retry(|| unsafe { vidioc_qbuf(fd, &mut b) })
            .map(drop)
            .map_err(|e| DeviceError::new("VIDIOC_QBUF", e))
    }

    fn dequeue_buffer(&mut self, queue: Queue) -> Result<Option<DequeuedBuffer>, DeviceError> {
        let fd = self.fd("VIDIOC_DQBUF")?;
        let mut plane = V4l2Plane::default();
        let mut b = mplane_buffer(queue, 0, &mut plane);
        // SAFETY: `b` is a valid v4l2_buffer pointing at `plane`, which lives until after the call.
        match retry(|| unsafe { vidioc_dqbuf(fd, &mut b) }) {
            Ok(_) => {}
            Err(Errno::EAGAIN) => return Ok(None),
            Err(e) => return Err(DeviceError::new("VIDIOC_DQBUF", e)),
        }
        let timestamp_us =
            b.timestamp.tv_sec.max(0) as u64 * 1_000_000 + b.timestamp.tv_usec.max(0) as u64;
        Ok(Some(DequeuedBuffer {
            index: b.index,
            data_offset: plane.data_offset,
            bytes_used: plane.bytesused,
            flags: b.flags,
            timestamp_us,
        }))
    }

    fn stream_on(&mut self, queue: Queue) -> Result<(), DeviceError> {
        let fd = self.fd("VIDIOC_STREAMON")?;
        let kind = queue.buf_type() as c_int;
        // SAFETY: STREAMON takes a pointer to the buffer type.
        retry(|| unsafe { vidioc_streamon(fd, &kind) })
            .map(drop)
            .map_err(|e| DeviceError::new("VIDIOC_STREAMON", e))
    }

    fn stream_off(&mut self, queue: Queue) -> Result<(), DeviceError> {
        let fd = self.fd("VIDIOC_STREAMOFF")?;
        let kind = queue.buf_type() as c_int;
        // SAFETY: STREAMOFF takes a pointer to the buffer type.
        retry(|| unsafe { vidioc_streamoff(fd, &kind) })
            .map(drop)
            .map_err(|e| DeviceError::new("VIDIOC_STREAMOFF", e))
    }

    fn wait(&mut self, timeout_ms: u32) -> Result<bool, DeviceError> {
        let fd = self.fd("poll")?;
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_millis(u64::from(timeout_ms));
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let mut pfd = libc::pollfd {
                fd,
                // POLLIN: an encoded buffer; POLLOUT: a picture buffer is free.
                events: libc::POLLIN | libc::POLLOUT,
                revents: 0,
            };
            let timeout = left.as_millis().min(i32::MAX as u128) as c_int;
            // SAFETY: one valid pollfd, count 1.
            match Errno::result(unsafe { libc::poll(&mut pfd, 1, timeout) }) {
                Ok(0) => return Ok(false),
                // POLLERR included: the DQBUF that follows says what is wrong.
                Ok(_) => return Ok(true),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(DeviceError::new("poll", e)),
            }
        }
    }

    fn encoder_stop(&mut self) -> Result<(), DeviceError> {
        let fd = self.fd("VIDIOC_ENCODER_CMD")?;
        let mut cmd = V4l2EncoderCmd {
            cmd: V4L2_ENC_CMD_STOP,
            ..Default::default()
        };
        // SAFETY: `cmd` is a valid, correctly sized v4l2_encoder_cmd.
        retry(|| unsafe { vidioc_encoder_cmd(fd, &mut cmd) })
            .map(drop)
            .map_err(|e| DeviceError::new("VIDIOC_ENCODER_CMD", e))
    }

    fn close(&mut self) {
        // Unmapped before the fd closes; the driver frees them on last close.
        self.output.clear();
        self.capture.clear();
        self.fd = None;
    }
}

impl Drop for RealM2mDevice {
    fn drop(&mut self) {
        self.close();
    }
}
