//! The kernel's V4L2 structures and ioctl numbers, written out by hand.
//!
//! Only the handful of calls a single-planar mmap capture loop needs are
//! here. Every struct is `#[repr(C)]` and mirrors `linux/videodev2.h`; the
//! size assertions at the bottom pin the layouts for 64-bit (x86_64, aarch64)
//! and 32-bit (armv7, i686) targets, so a mistake fails the build instead of
//! corrupting memory in the driver. The ioctl numbers are derived from the
//! struct sizes by `nix`, exactly as the C `_IOWR` macros do.

use std::mem::size_of;

use libc::{c_int, c_ulong};

pub const V4L2_BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
pub const V4L2_MEMORY_MMAP: u32 = 1;
pub const V4L2_FIELD_ANY: u32 = 0;

pub const V4L2_CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
pub const V4L2_CAP_STREAMING: u32 = 0x0400_0000;
/// `device_caps` is filled in and describes this node (not the whole device).
pub const V4L2_CAP_DEVICE_CAPS: u32 = 0x8000_0000;
/// The driver accepts a frame interval through `VIDIOC_S_PARM`.
pub const V4L2_CAP_TIMEPERFRAME: u32 = 0x1000;

pub const V4L2_FRMSIZE_TYPE_DISCRETE: u32 = 1;
pub const V4L2_FRMSIZE_TYPE_CONTINUOUS: u32 = 2;
pub const V4L2_FRMSIZE_TYPE_STEPWISE: u32 = 3;
pub const V4L2_FRMIVAL_TYPE_DISCRETE: u32 = 1;
pub const V4L2_FRMIVAL_TYPE_CONTINUOUS: u32 = 2;
pub const V4L2_FRMIVAL_TYPE_STEPWISE: u32 = 3;

/// The driver dequeued the buffer but its contents may be corrupt.
pub const V4L2_BUF_FLAG_ERROR: u32 = 0x0000_0040;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct V4l2Capability {
    pub driver: [u8; 16],
    pub card: [u8; 32],
    pub bus_info: [u8; 32],
    pub version: u32,
    pub capabilities: u32,
    pub device_caps: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct V4l2Fmtdesc {
    pub index: u32,
    pub type_: u32,
    pub flags: u32,
    pub description: [u8; 32],
    pub pixelformat: u32,
    pub mbus_code: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct V4l2PixFormat {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub bytesperline: u32,
    pub sizeimage: u32,
    pub colorspace: u32,
    pub priv_: u32,
    pub flags: u32,
    /// Shares its slot with `hsv_enc` in the C union.
    pub ycbcr_enc: u32,
    pub quantization: u32,
    pub xfer_func: u32,
}

/// The `fmt` union of `struct v4l2_format`: 200 bytes. Its other members
/// (`struct v4l2_window`) hold pointers, which gives the union, and so the
/// whole struct, pointer alignment; `_align` reproduces that without a
/// pointer field.
#[repr(C)]
#[derive(Clone, Copy)]
pub union V4l2FormatUnion {
    pub pix: V4l2PixFormat,
    pub raw_data: [u8; 200],
    _align: [c_ulong; 0],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct V4l2Format {
    pub type_: u32,
    pub fmt: V4l2FormatUnion,
}

impl V4l2Format {
    pub fn capture() -> V4l2Format {
        V4l2Format {
            type_: V4L2_BUF_TYPE_VIDEO_CAPTURE,
            fmt: V4l2FormatUnion { raw_data: [0; 200] },
        }
    }

    pub fn pix(&self) -> V4l2PixFormat {
        // SAFETY: every bit pattern is a valid V4l2PixFormat (plain u32s), and
        // for a VIDEO_CAPTURE buffer type the driver fills in `pix`.
        unsafe { self.fmt.pix }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct V4l2RequestBuffers {
    pub count: u32,
    pub type_: u32,
    pub memory: u32,
    pub capabilities: u32,
    pub flags: u8,
    pub reserved: [u8; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct V4l2Timecode {
    pub type_: u32,
    pub flags: u32,
    pub frames: u8,
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub userbits: [u8; 4],
}

/// The `m` union of `struct v4l2_buffer`; `userptr` (an `unsigned long`)
/// makes it 8 bytes on 64-bit and 4 on 32-bit targets.
#[repr(C)]
#[derive(Clone, Copy)]
pub union V4l2BufferM {
    pub offset: u32,
    pub userptr: c_ulong,
    pub fd: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct V4l2Buffer {
    pub index: u32,
    pub type_: u32,
    pub bytesused: u32,
    pub flags: u32,
    pub field: u32,
    pub timestamp: libc::timeval,
    pub timecode: V4l2Timecode,
    pub sequence: u32,
    pub memory: u32,
    pub m: V4l2BufferM,
    pub length: u32,
    pub reserved2: u32,
    /// `request_fd` or `reserved` in the C union; both are 32 bits.
    pub request_fd: i32,
}

impl V4l2Buffer {
    pub fn mmap_capture(index: u32) -> V4l2Buffer {
        V4l2Buffer {
            index,
            type_: V4L2_BUF_TYPE_VIDEO_CAPTURE,
            bytesused: 0,
            flags: 0,
            field: 0,
            timestamp: libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            timecode: V4l2Timecode::default(),
            sequence: 0,
            memory: V4L2_MEMORY_MMAP,
            m: V4l2BufferM { userptr: 0 },
            length: 0,
            reserved2: 0,
            request_fd: 0,
        }
    }

    pub fn offset(&self) -> u32 {
        // SAFETY: for V4L2_MEMORY_MMAP the driver stores the map offset in
        // `offset`; any bit pattern is a valid u32.
        unsafe { self.m.offset }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V4l2Fract {
    pub numerator: u32,
    pub denominator: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct V4l2Captureparm {
    pub capability: u32,
    pub capturemode: u32,
    pub timeperframe: V4l2Fract,
    pub extendedmode: u32,
    pub readbuffers: u32,
    pub reserved: [u32; 4],
}

/// The `parm` union of `struct v4l2_streamparm` (capture or output, 200 bytes, no pointers).
#[repr(C)]
#[derive(Clone, Copy)]
pub union V4l2StreamparmUnion {
    pub capture: V4l2Captureparm,
    pub raw_data: [u8; 200],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct V4l2Streamparm {
    pub type_: u32,
    pub parm: V4l2StreamparmUnion,
}

impl V4l2Streamparm {
    pub fn capture() -> V4l2Streamparm {
        V4l2Streamparm {
            type_: V4L2_BUF_TYPE_VIDEO_CAPTURE,
            parm: V4l2StreamparmUnion { raw_data: [0; 200] },
        }
    }

    pub fn capture_parm(&self) -> V4l2Captureparm {
        // SAFETY: plain integers, every bit pattern is valid.
        unsafe { self.parm.capture }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct V4l2FrmsizeDiscrete {
    pub width: u32,
    pub height: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct V4l2FrmsizeStepwise {
    pub min_width: u32,
    pub max_width: u32,
    pub step_width: u32,
    pub min_height: u32,
    pub max_height: u32,
    pub step_height: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union V4l2FrmsizeUnion {
    pub discrete: V4l2FrmsizeDiscrete,
    pub stepwise: V4l2FrmsizeStepwise,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct V4l2Frmsizeenum {
    pub index: u32,
    pub pixel_format: u32,
    pub type_: u32,
    pub size: V4l2FrmsizeUnion,
    pub reserved: [u32; 2],
}

impl V4l2Frmsizeenum {
    pub fn new(index: u32, pixel_format: u32) -> V4l2Frmsizeenum {
        V4l2Frmsizeenum {
            index,
            pixel_format,
            type_: 0,
            size: V4l2FrmsizeUnion {
                stepwise: V4l2FrmsizeStepwise::default(),
            },
            reserved: [0; 2],
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct V4l2FrmivalStepwise {
    pub min: V4l2Fract,
    pub max: V4l2Fract,
    pub step: V4l2Fract,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union V4l2FrmivalUnion {
    pub discrete: V4l2Fract,
    pub stepwise: V4l2FrmivalStepwise,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct V4l2Frmivalenum {
    pub index: u32,
    pub pixel_format: u32,
    pub width: u32,
    pub height: u32,
    pub type_: u32,
    pub interval: V4l2FrmivalUnion,
    pub reserved: [u32; 2],
}

impl V4l2Frmivalenum {
    pub fn new(index: u32, pixel_format: u32, width: u32, height: u32) -> V4l2Frmivalenum {
        V4l2Frmivalenum {
            index,
            pixel_format,
            width,
            height,
            type_: 0,
            interval: V4l2FrmivalUnion {
                stepwise: V4l2FrmivalStepwise::default(),
            },
            reserved: [0; 2],
        }
    }
}

nix::ioctl_read!(vidioc_querycap, b'V', 0, V4l2Capability);
nix::ioctl_readwrite!(vidioc_enum_fmt, b'V', 2, V4l2Fmtdesc);
nix::ioctl_readwrite!(vidioc_g_fmt, b'V', 4, V4l2Format);
nix::ioctl_readwrite!(vidioc_s_fmt, b'V', 5, V4l2Format);
nix::ioctl_readwrite!(vidioc_reqbufs, b'V', 8, V4l2RequestBuffers);
nix::ioctl_readwrite!(vidioc_querybuf, b'V', 9, V4l2Buffer);
nix::ioctl_readwrite!(vidioc_qbuf, b'V', 15, V4l2Buffer);
nix::ioctl_readwrite!(vidioc_dqbuf, b'V', 17, V4l2Buffer);
nix::ioctl_write_ptr!(vidioc_streamon, b'V', 18, c_int);
nix::ioctl_write_ptr!(vidioc_streamoff, b'V', 19, c_int);
nix::ioctl_readwrite!(vidioc_g_parm, b'V', 21, V4l2Streamparm);
nix::ioctl_readwrite!(vidioc_s_parm, b'V', 22, V4l2Streamparm);
nix::ioctl_readwrite!(vidioc_enum_framesizes, b'V', 74, V4l2Frmsizeenum);
nix::ioctl_readwrite!(vidioc_enum_frameintervals, b'V', 75, V4l2Frmivalenum);

// Sizes every target shares (no pointers, no time_t inside).
const _: () = assert!(size_of::<V4l2Capability>() == 104);
const _: () = assert!(size_of::<V4l2Fmtdesc>() == 64);
const _: () = assert!(size_of::<V4l2PixFormat>() == 48);
const _: () = assert!(size_of::<V4l2RequestBuffers>() == 20);
const _: () = assert!(size_of::<V4l2Timecode>() == 16);
const _: () = assert!(size_of::<V4l2Fract>() == 8);
const _: () = assert!(size_of::<V4l2Captureparm>() == 40);
const _: () = assert!(size_of::<V4l2Streamparm>() == 204);
const _: () = assert!(size_of::<V4l2Frmsizeenum>() == 44);
const _: () = assert!(size_of::<V4l2Frmivalenum>() == 52);

// 64-bit: `struct v4l2_format` is 8-aligned (its union holds pointers) and
// `struct v4l2_buffer` has a 16-byte timeval and an 8-byte `m` union.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(size_of::<V4l2FormatUnion>() == 200);
    assert!(size_of::<V4l2Format>() == 208);
    assert!(std::mem::align_of::<V4l2Format>() == 8);
    assert!(size_of::<V4l2Buffer>() == 88);
    assert!(std::mem::align_of::<V4l2Buffer>() == 8);
};

// 32-bit (armv7 Raspberry Pi OS, i686) with the libc crate's default 32-bit
// time_t: 8-byte timeval, 4-byte `m` union. A build with 64-bit time_t would
// change `struct v4l2_buffer` (and its ioctl numbers) and trip this on purpose.
#[cfg(target_pointer_width = "32")]
const _: () = {
    assert!(size_of::<V4l2Format>() == 204);
    assert!(size_of::<V4l2Buffer>() == 68);
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The request codes `nix` derives must equal the kernel's, as printed by
    /// a C program including `linux/videodev2.h` on x86_64.
    #[cfg(target_pointer_width = "64")]
    #[test]
    // The request type is `c_ulong` on glibc but `c_int` on musl.
    #[allow(clippy::unnecessary_cast)]
    fn ioctl_numbers_match_videodev2_h_on_64_bit() {
        let rw = |nr, sz| nix::request_code_readwrite!(b'V', nr, sz) as u64;
        assert_eq!(
            nix::request_code_read!(b'V', 0, size_of::<V4l2Capability>()) as u64,
            0x8068_5600
        );
        assert_eq!(rw(2, size_of::<V4l2Fmtdesc>()), 0xc040_5602);
        assert_eq!(rw(4, size_of::<V4l2Format>()), 0xc0d0_5604);
        assert_eq!(rw(5, size_of::<V4l2Format>()), 0xc0d0_5605);
        assert_eq!(rw(8, size_of::<V4l2RequestBuffers>()), 0xc014_5608);
        assert_eq!(rw(9, size_of::<V4l2Buffer>()), 0xc058_5609);
        assert_eq!(rw(15, size_of::<V4l2Buffer>()), 0xc058_560f);
        assert_eq!(rw(17, size_of::<V4l2Buffer>()), 0xc058_5611);
        assert_eq!(
            nix::request_code_write!(b'V', 18, size_of::<c_int>()) as u64,
            0x4004_5612
        );
        assert_eq!(
            nix::request_code_write!(b'V', 19, size_of::<c_int>()) as u64,
            0x4004_5613
        );
        assert_eq!(rw(21, size_of::<V4l2Streamparm>()), 0xc0cc_5615);
        assert_eq!(rw(22, size_of::<V4l2Streamparm>()), 0xc0cc_5616);
        assert_eq!(rw(74, size_of::<V4l2Frmsizeenum>()), 0xc02c_564a);
        assert_eq!(rw(75, size_of::<V4l2Frmivalenum>()), 0xc034_564b);
    }

    /// `offset_of!` needs Rust 1.77; the crate supports 1.75.
    macro_rules! offset {
        ($t:ty, $f:ident) => {{
            let u = std::mem::MaybeUninit::<$t>::uninit();
            let base = u.as_ptr();
            // SAFETY: only takes the address of a field inside `u`, never reads it.
            let field = unsafe { std::ptr::addr_of!((*base).$f) };
            field as usize - base as usize
        }};
    }

    #[test]
    fn field_offsets_match_videodev2_h() {
        assert_eq!(offset!(V4l2Fmtdesc, pixelformat), 44);
        assert_eq!(offset!(V4l2Fmtdesc, mbus_code), 48);
        assert_eq!(offset!(V4l2RequestBuffers, capabilities), 12);
        assert_eq!(offset!(V4l2RequestBuffers, flags), 16);
        assert_eq!(offset!(V4l2Streamparm, parm), 4);
        assert_eq!(offset!(V4l2Frmsizeenum, size), 12);
        assert_eq!(offset!(V4l2Frmsizeenum, reserved), 36);
        assert_eq!(offset!(V4l2Frmivalenum, interval), 20);
        assert_eq!(offset!(V4l2Frmivalenum, reserved), 44);
        let p = std::mem::size_of::<c_ulong>();
        // 64-bit: fmt @8, timestamp @24, sequence @56, m @64, length @72, request_fd @80.
        // 32-bit: fmt @4, timestamp @20, sequence @44, m @52, length @56, request_fd @64.
        assert_eq!(offset!(V4l2Format, fmt), p);
        let (ts, seq, m, len, rfd) = if p == 8 {
            (24, 56, 64, 72, 80)
        } else {
            (20, 44, 52, 56, 64)
        };
        assert_eq!(offset!(V4l2Buffer, timestamp), ts);
        assert_eq!(offset!(V4l2Buffer, sequence), seq);
        assert_eq!(offset!(V4l2Buffer, m), m);
        assert_eq!(offset!(V4l2Buffer, length), len);
        assert_eq!(offset!(V4l2Buffer, request_fd), rfd);
    }
}
