//! [`RealV4l2Device`]: the [`V4l2Device`] trait over ioctls and mmap.

use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::ptr::NonNull;

use libc::c_int;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::mman::{MapFlags, ProtFlags};
use nix::sys::stat::Mode;

use super::ioctl::*;
use super::{
    ActiveFormat, DeviceCaps, DeviceError, FilledBuffer, FormatDesc, FourCc, FrameInterval,
    FrameSize, V4l2Device,
};

/// Sizes tried inside a stepwise or continuous size range, besides its ends.
const COMMON_SIZES: [(u32, u32); 9] = [
    (320, 240),
    (640, 360),
    (640, 480),
    (800, 600),
    (1024, 768),
    (1280, 720),
    (1280, 960),
    (1600, 1200),
    (1920, 1080),
];
/// Rates tried inside a stepwise or continuous interval range, besides its ends.
const COMMON_FPS: [u32; 7] = [5, 10, 15, 20, 25, 30, 60];
/// Upper bound on enumeration loops, in case a driver never returns EINVAL.
const ENUM_LIMIT: u32 = 256;

/// One driver buffer mapped into our address space.
struct MappedBuffer {
    ptr: NonNull<libc::c_void>,
    len: usize,
}

// SAFETY: the mapping is owned by exactly one MappedBuffer and only read
// through `&self`; moving it to another thread is as safe as moving a Vec.
unsafe impl Send for MappedBuffer {}

impl MappedBuffer {
    fn bytes(&self, used: usize) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<u8>(), used.min(self.len)) }
    }
}

impl Drop for MappedBuffer {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from a successful mmap and are unmapped once.
        if let Err(e) = unsafe { nix::sys::mman::munmap(self.ptr, self.len) } {
            log::debug!("munmap of a V4L2 buffer failed: {e}");
        }
    }
}

/// A `/dev/videoN` node driven with ioctls and mmap'ed buffers.
#[derive(Default)]
pub struct RealV4l2Device {
    fd: Option<OwnedFd>,
    buffers: Vec<MappedBuffer>,
    streaming: bool,
}

impl RealV4l2Device {
    pub fn new() -> RealV4l2Device {
        RealV4l2Device::default()
    }

    fn fd(&self, op: &'static str) -> Result<c_int, DeviceError> {
        match &self.fd {
            Some(fd) => Ok(fd.as_raw_fd()),
            None => Err(DeviceError::new(op, Errno::EBADF)),
        }
    }

    fn frame_sizes(&self, fd: c_int, fourcc: FourCc) -> Vec<FrameSize> {
        let mut sizes: Vec<(u32, u32)> = Vec::new();
        for index in 0..ENUM_LIMIT {
            let mut e = V4l2Frmsizeenum::new(index, fourcc.0);
            // SAFETY: `e` is a valid, correctly sized v4l2_frmsizeenum.
            if retry(|| unsafe { vidioc_enum_framesizes(fd, &mut e) }).is_err() {
                break;
            }
            if e.type_ == V4L2_FRMSIZE_TYPE_DISCRETE {
                // SAFETY: the driver said the union holds `discrete`.
                let d = unsafe { e.size.discrete };
                sizes.push((d.width, d.height));
                continue;
            }
            // SAFETY: stepwise and continuous both fill `stepwise`.
            let s = unsafe { e.size.stepwise };
            let (sw, sh) = if e.type_ == V4L2_FRMSIZE_TYPE_CONTINUOUS {
                (1, 1)
            } else {
                (s.step_width.max(1), s.step_height.max(1))
            };
            let fits = |w: u32, h: u32| {
                (s.min_width..=s.max_width).contains(&w)
                    && (s.min_height..=s.max_height).contains(&h)
                    && (w - s.min_width) % sw == 0
                    && (h - s.min_height) % sh == 0
            };
            sizes.push((s.min_width, s.min_height));
            sizes.extend(COMMON_SIZES.iter().copied().filter(|&(w, h)| fits(w, h)));
            sizes.push((s.max_width, s.max_height));
            break;
        }
        sizes.dedup();
        sizes
            .into_iter()
            .map(|(width, height)| FrameSize {
                width,
                height,
                intervals: self.frame_intervals(fd, fourcc, width, height),
            })
            .collect()
    }

    fn frame_intervals(
        &self,
        fd: c_int,
        fourcc: FourCc,
        width: u32,
        height: u32,
    ) -> Vec<FrameInterval> {
        let mut out = Vec::new();
        for index in 0..ENUM_LIMIT {
            let mut e = V4l2Frmivalenum::new(index, fourcc.0, width, height);
            // SAFETY: `e` is a valid, correctly sized v4l2_frmivalenum.
            if retry(|| unsafe { vidioc_enum_frameintervals(fd, &mut e) }).is_err() {
                break;
            }
            if e.type_ == V4L2_FRMIVAL_TYPE_DISCRETE {
                // SAFETY: the driver said the union holds `discrete`.
                let d = unsafe { e.interval.discrete };
                out.push(FrameInterval {
                    numerator: d.numerator,
                    denominator: d.denominator,
                });
                continue;
            }
            // SAFETY: stepwise and continuous both fill `stepwise`.
            let s = unsafe { e.interval.stepwise };
            let as_interval = |f: V4l2Fract| FrameInterval {
                numerator: f.numerator,
                denominator: f.denominator,
            };
            let (fast, slow) = (as_interval(s.min), as_interval(s.max));
            out.push(fast);
            let (lo, hi) = (slow.fps_milli(), fast.fps_milli());
            out.extend(
                COMMON_FPS
                    .iter()
                    .filter(|&&fps| (lo..=hi).contains(&(fps * 1000)))
                    .map(|&fps| FrameInterval::from_fps(fps)),
            );
            out.push(slow);
            break;
        }
        out
    }

    fn free_buffers(&mut self) {
        self.buffers.clear();
        if let Some(fd) = &self.fd {
            let mut req = V4l2RequestBuffers {
                count: 0,
                type_: V4L2_BUF_TYPE_VIDEO_CAPTURE,
                memory: V4L2_MEMORY_MMAP,
                ..Default::default()
            };
            // SAFETY: valid v4l2_requestbuffers; count 0 releases the driver's buffers.
            let _ = retry(|| unsafe { vidioc_reqbufs(fd.as_raw_fd(), &mut req) });
        }
    }
}

/// Opens a V4L2 node, non-blocking so DQBUF never hangs (readiness comes
/// from poll()). Shared with the encoder's memory-to-memory device.
pub(crate) fn open_node(path: &Path) -> Result<OwnedFd, DeviceError> {
    nix::fcntl::open(
        path,
        OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| DeviceError::new("open", e))
}

/// `VIDIOC_QUERYCAP`: the node's driver, card, bus and capabilities (its
/// own, where the driver says them apart from the whole device's).
pub(crate) fn query_capabilities(fd: c_int) -> Result<DeviceCaps, DeviceError> {
    let mut cap = V4l2Capability::default();
    // SAFETY: `cap` is a valid, correctly sized v4l2_capability.
    retry(|| unsafe { vidioc_querycap(fd, &mut cap) })
        .map_err(|e| DeviceError::new("VIDIOC_QUERYCAP", e))?;
    let caps = if cap.capabilities & V4L2_CAP_DEVICE_CAPS != 0 {
        cap.device_caps
    } else {
        cap.capabilities
    };
    Ok(DeviceCaps {
        driver: c_string(&cap.driver),
        card: c_string(&cap.card),
        bus_info: c_string(&cap.bus_info),
        caps,
    })
}

/// Runs an ioctl again when a signal interrupted it.
pub(crate) fn retry(mut f: impl FnMut() -> nix::Result<c_int>) -> nix::Result<c_int> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// A NUL-terminated byte field from the kernel as a Rust string.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

impl V4l2Device for RealV4l2Device {
    fn open(&mut self, path: &str) -> Result<(), DeviceError> {
        self.close();
        self.fd = Some(open_node(Path::new(path))?);
        Ok(())
    }

    fn capabilities(&mut self) -> Result<DeviceCaps, DeviceError> {
        query_capabilities(self.fd("VIDIOC_QUERYCAP")?)
    }

    fn formats(&mut self) -> Result<Vec<FormatDesc>, DeviceError> {
        let fd = self.fd("VIDIOC_ENUM_FMT")?;
        let mut out = Vec::new();
        for index in 0..ENUM_LIMIT {
            let mut d = V4l2Fmtdesc {
                index,
                type_: V4L2_BUF_TYPE_VIDEO_CAPTURE,
                ..Default::default()
            };
            // SAFETY: `d` is a valid, correctly sized v4l2_fmtdesc.
            match retry(|| unsafe { vidioc_enum_fmt(fd, &mut d) }) {
                Ok(_) => {}
                // EINVAL marks the end of the list.
                Err(Errno::EINVAL) => break,
                Err(e) => return Err(DeviceError::new("VIDIOC_ENUM_FMT", e)),
            }
            let fourcc = FourCc(d.pixelformat);
            out.push(FormatDesc {
                fourcc,
                description: c_string(&d.description),
                sizes: self.frame_sizes(fd, fourcc),
            });
        }
        Ok(out)
    }

    fn set_format(
        &mut self,
        fourcc: FourCc,
        width: u32,
        height: u32,
    ) -> Result<ActiveFormat, DeviceError> {
        let fd = self.fd("VIDIOC_S_FMT")?;
        let mut f = V4l2Format::capture();
        f.fmt.pix = V4l2PixFormat {
            width,
            height,
            pixelformat: fourcc.0,
            field: V4L2_FIELD_ANY,
            ..Default::default()
        };
        // SAFETY: `f` is a valid, correctly sized v4l2_format.
        retry(|| unsafe { vidioc_s_fmt(fd, &mut f) })
            .map_err(|e| DeviceError::new("VIDIOC_S_FMT", e))?;
        let pix = f.pix();
        Ok(ActiveFormat {
            fourcc: FourCc(pix.pixelformat),
            width: pix.width,
            height: pix.height,
            bytes_per_line: pix.bytesperline,
            size_image: pix.sizeimage,
        })
    }

    fn set_frame_interval(
        &mut self,
        interval: FrameInterval,
    ) -> Result<Option<FrameInterval>, DeviceError> {
        let fd = self.fd("VIDIOC_G_PARM")?;
        let mut p = V4l2Streamparm::capture();
        // SAFETY: `p` is a valid, correctly sized v4l2_streamparm.
        retry(|| unsafe { vidioc_g_parm(fd, &mut p) })
            .map_err(|e| DeviceError::new("VIDIOC_G_PARM", e))?;
        if p.capture_parm().capability & V4L2_CAP_TIMEPERFRAME == 0 {
            return Ok(None);
        }
        let mut parm = p.capture_parm();
        parm.timeperframe = V4l2Fract {
            numerator: interval.numerator,
            denominator: interval.denominator,
        };
        p.parm.capture = parm;
        // SAFETY: as above.
        retry(|| unsafe { vidioc_s_parm(fd, &mut p) })
            .map_err(|e| DeviceError::new("VIDIOC_S_PARM", e))?;
        let got = p.capture_parm().timeperframe;
        Ok(Some(FrameInterval {
            numerator: got.numerator,
            denominator: got.denominator,
        }))
    }

    fn start(&mut self, buffers: u32) -> Result<u32, DeviceError> {
        let fd = self.fd("VIDIOC_REQBUFS")?;
        if self.streaming || !self.buffers.is_empty() {
            self.stop()?;
        }
        let mut req = V4l2RequestBuffers {
            count: buffers,
            type_: V4L2_BUF_TYPE_VIDEO_CAPTURE,
            memory: V4L2_MEMORY_MMAP,
            ..Default::default()
        };
        // SAFETY: `req` is a valid, correctly sized v4l2_requestbuffers.
        retry(|| unsafe { vidioc_reqbufs(fd, &mut req) })
            .map_err(|e| DeviceError::new("VIDIOC_REQBUFS", e))?;
        if req.count < 2 {
            self.free_buffers();
            return Err(DeviceError::new("VIDIOC_REQBUFS", Errno::ENOMEM));
        }
        let result = (|| {
            for index in 0..req.count {
                let mut b = V4l2Buffer::mmap_capture(index);
                // SAFETY: `b` is a valid, correctly sized v4l2_buffer.
                retry(|| unsafe { vidioc_querybuf(fd, &mut b) })
                    .map_err(|e| DeviceError::new("VIDIOC_QUERYBUF", e))?;
                let len = NonZeroUsize::new(b.length as usize)
                    .ok_or(DeviceError::new("VIDIOC_QUERYBUF", Errno::EINVAL))?;
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
                        b.offset() as libc::off_t,
                    )
                }
                .map_err(|e| DeviceError::new("mmap", e))?;
                self.buffers.push(MappedBuffer {
                    ptr,
                    len: len.get(),
                });
            }
            for index in 0..req.count {
                self.requeue(index)?;
            }
            let kind: c_int = V4L2_BUF_TYPE_VIDEO_CAPTURE as c_int;
            // SAFETY: STREAMON takes a pointer to the buffer type.
            retry(|| unsafe { vidioc_streamon(fd, &kind) })
                .map_err(|e| DeviceError::new("VIDIOC_STREAMON", e))?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.streaming = true;
                Ok(req.count)
            }
            Err(e) => {
                self.free_buffers();
                Err(e)
            }
        }
    }

    fn dequeue(&mut self, timeout_ms: u32) -> Result<Option<FilledBuffer<'_>>, DeviceError> {
        let fd = self.fd("VIDIOC_DQBUF")?;
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_millis(u64::from(timeout_ms));
        loop {
            let left_ms = deadline
                .saturating_duration_since(std::time::Instant::now())
                .as_millis();
            // libc's poll: nix's `poll` feature is not enabled in this crate.
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let timeout = left_ms.min(i32::MAX as u128) as c_int;
            // SAFETY: one valid pollfd, count 1.
            let ready = match Errno::result(unsafe { libc::poll(&mut pfd, 1, timeout) }) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(DeviceError::new("poll", e)),
            };
            if ready == 0 {
                return Ok(None);
            }
            let broken = pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0;
            let mut b = V4l2Buffer::mmap_capture(0);
            // SAFETY: `b` is a valid, correctly sized v4l2_buffer.
            match retry(|| unsafe { vidioc_dqbuf(fd, &mut b) }) {
                Ok(_) => {
                    let Some(mapped) = self.buffers.get(b.index as usize) else {
                        return Err(DeviceError::new("VIDIOC_DQBUF", Errno::EINVAL));
                    };
                    return Ok(Some(FilledBuffer {
                        index: b.index,
                        data: mapped.bytes(b.bytesused as usize),
                        flags: b.flags,
                        sequence: b.sequence,
                    }));
                }
                Err(Errno::EAGAIN) if !broken => {
                    if std::time::Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
                // POLLERR with nothing to dequeue while streaming: the device went away.
                Err(Errno::EAGAIN) => return Err(DeviceError::new("poll", Errno::EIO)),
                Err(e) => return Err(DeviceError::new("VIDIOC_DQBUF", e)),
            }
        }
    }

    fn requeue(&mut self, index: u32) -> Result<(), DeviceError> {
        let fd = self.fd("VIDIOC_QBUF")?;
        let mut b = V4l2Buffer::mmap_capture(index);
        // SAFETY: `b` is a valid, correctly sized v4l2_buffer.
        retry(|| unsafe { vidioc_qbuf(fd, &mut b) })
            .map_err(|e| DeviceError::new("VIDIOC_QBUF", e))?;
        Ok(())
    }

    fn stop(&mut self) -> Result<(), DeviceError> {
        let mut result = Ok(());
        if self.streaming {
            self.streaming = false;
            if let Some(fd) = &self.fd {
                let kind: c_int = V4L2_BUF_TYPE_VIDEO_CAPTURE as c_int;
                // SAFETY: STREAMOFF takes a pointer to the buffer type.
                result = retry(|| unsafe { vidioc_streamoff(fd.as_raw_fd(), &kind) })
                    .map(drop)
                    .map_err(|e| DeviceError::new("VIDIOC_STREAMOFF", e));
            }
        }
        self.free_buffers();
        result
    }

    fn close(&mut self) {
        if self.streaming || !self.buffers.is_empty() {
            let _ = self.stop();
        }
        // Buffers are unmapped before the fd closes; the driver frees them on last close.
        self.fd = None;
    }
}

impl Drop for RealV4l2Device {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::camera::v4l2::V4l2Camera;
    use crate::camera::{CameraError, CameraSource};
    use crate::clock::SystemClock;

    #[test]
    fn missing_node_opens_as_disconnected() {
        let mut cam = V4l2Camera::new(
            "/dev/video-not-here".into(),
            640,
            480,
            30,
            Arc::new(SystemClock),
        );
        match cam.open() {
            Err(CameraError::Disconnected { device, reason }) => {
                assert_eq!(device, "/dev/video-not-here");
                assert!(reason.contains("ENOENT"), "{reason}");
            }
            other => panic!("expected Disconnected, got {other:?}"),
        }
    }

    #[test]
    fn non_v4l2_node_fails_querycap_cleanly() {
        // /dev/null opens but knows no V4L2 ioctl: exercises the real ioctl path.
        let mut dev = RealV4l2Device::new();
        dev.open("/dev/null").unwrap();
        let err = dev.capabilities().unwrap_err();
        assert_eq!(err, DeviceError::new("VIDIOC_QUERYCAP", Errno::ENOTTY));
        assert!(dev.start(4).is_err());
        assert_eq!(dev.dequeue(0).unwrap_err().op, "VIDIOC_DQBUF");
        dev.close();
        assert_eq!(dev.capabilities().unwrap_err().errno, Errno::EBADF);

        let mut cam = V4l2Camera::new("/dev/null".into(), 640, 480, 30, Arc::new(SystemClock));
        match cam.open() {
            Err(CameraError::Io { context, .. }) => assert_eq!(context, "VIDIOC_QUERYCAP"),
            other => panic!("expected Io, got {other:?}"),
        }
        // Reopening after a failure starts from scratch.
        assert!(cam.open().is_err());
        cam.close();
    }
}
