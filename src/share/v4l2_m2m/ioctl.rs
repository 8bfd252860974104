//! The multi-planar and codec parts of `linux/videodev2.h` that a
//! memory-to-memory encoder needs, on top of the single-planar structs in
//! [`crate::camera::v4l2::ioctl`].
//!
//! Sizes and request codes are pinned by assertions, checked against a C
//! program including the kernel headers on x86_64.

use std::mem::size_of;

use libc::c_ulong;

pub use crate::camera::v4l2::ioctl::{
    vidioc_dqbuf, vidioc_qbuf, vidioc_querybuf, vidioc_querycap, vidioc_reqbufs, vidioc_s_parm,
    vidioc_streamoff, vidioc_streamon, V4l2Buffer, V4l2BufferM, V4l2Capability, V4l2Fract,
    V4l2RequestBuffers, V4l2Streamparm, V4l2Timecode, V4L2_CAP_DEVICE_CAPS, V4L2_CAP_STREAMING,
    V4L2_MEMORY_MMAP,
};

pub const V4L2_BUF_TYPE_VIDEO_OUTPUT: u32 = 2;
pub const V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE: u32 = 9;
pub const V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE: u32 = 10;
pub const V4L2_CAP_VIDEO_M2M_MPLANE: u32 = 0x0000_4000;
pub const V4L2_FIELD_NONE: u32 = 1;

pub const V4L2_BUF_FLAG_KEYFRAME: u32 = 0x0000_0008;
pub const V4L2_BUF_FLAG_ERROR: u32 = 0x0000_0040;
/// The last buffer of a stream after `V4L2_ENC_CMD_STOP`; DQBUF answers
/// EPIPE from then on.
pub const V4L2_BUF_FLAG_LAST: u32 = 0x0010_0000;

pub const V4L2_ENC_CMD_STOP: u32 = 1;
pub const V4L2_SEL_TGT_CROP: u32 = 0;

pub const V4L2_CID_MPEG_VIDEO_BITRATE_MODE: u32 = 0x0099_09ce;
pub const V4L2_CID_MPEG_VIDEO_BITRATE: u32 = 0x0099_09cf;
pub const V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER: u32 = 0x0099_09e2;
pub const V4L2_CID_MPEG_VIDEO_H264_I_PERIOD: u32 = 0x0099_0a66;
pub const V4L2_CID_MPEG_VIDEO_H264_LEVEL: u32 = 0x0099_0a67;
pub const V4L2_CID_MPEG_VIDEO_H264_PROFILE: u32 = 0x0099_0a6b;
pub const V4L2_MPEG_VIDEO_BITRATE_MODE_CBR: i32 = 1;
pub const V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE: i32 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct V4l2PlanePixFormat {
    pub sizeimage: u32,
    pub bytesperline: u32,
    pub reserved: [u16; 6],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct V4l2PixFormatMplane {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub colorspace: u32,
    pub plane_fmt: [V4l2PlanePixFormat; 8],
    pub num_planes: u8,
    pub flags: u8,
    pub ycbcr_enc: u8,
    pub quantization: u8,
    pub xfer_func: u8,
    pub reserved: [u8; 7],
}

/// `struct v4l2_format` with the `pix_mp` member; the union is 200 bytes
/// with pointer alignment, as in the single-planar version.
#[repr(C)]
#[derive(Clone, Copy)]
pub union V4l2FormatMplaneUnion {
    pub pix_mp: V4l2PixFormatMplane,
    pub raw_data: [u8; 200],
    _align: [c_ulong; 0],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct V4l2FormatMplane {
    pub type_: u32,
    pub fmt: V4l2FormatMplaneUnion,
}

impl V4l2FormatMplane {
    pub fn new(type_: u32, pix_mp: V4l2PixFormatMplane) -> V4l2FormatMplane {
        let mut f = V4l2FormatMplane {
            type_,
            fmt: V4l2FormatMplaneUnion { raw_data: [0; 200] },
        };
        f.fmt.pix_mp = pix_mp;
        f
    }

    pub fn pix_mp(&self) -> V4l2PixFormatMplane {
        // SAFETY: plain integers, every bit pattern is valid.
        unsafe { self.fmt.pix_mp }
    }
}

/// `struct v4l2_plane`; the `m` union holds an `unsigned long`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct V4l2Plane {
    pub bytesused: u32,
    pub length: u32,
    pub m: V4l2BufferM,
    pub data_offset: u32,
    pub reserved: [u32; 11],
}

impl Default for V4l2Plane {
    fn default() -> V4l2Plane {
        V4l2Plane {
            bytesused: 0,
            length: 0,
            m: V4l2BufferM { userptr: 0 },
            data_offset: 0,
            reserved: [0; 11],
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct V4l2Control {
    pub id: u32,
    pub value: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct V4l2EncoderCmd {
    pub cmd: u32,
    pub flags: u32,
    pub data: [u32; 8],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct V4l2Rect {
    pub left: i32,
    pub top: i32,
    pub width: u32,
    pub height: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct V4l2Selection {
    pub type_: u32,
    pub target: u32,
    pub flags: u32,
    pub r: V4l2Rect,
    pub reserved: [u32; 9],
}

nix::ioctl_readwrite!(vidioc_s_fmt_mplane, b'V', 5, V4l2FormatMplane);
nix::ioctl_readwrite!(vidioc_s_ctrl, b'V', 28, V4l2Control);
nix::ioctl_readwrite!(vidioc_encoder_cmd, b'V', 77, V4l2EncoderCmd);
nix::ioctl_readwrite!(vidioc_s_selection, b'V', 95, V4l2Selection);

const _: () = assert!(size_of::<V4l2PlanePixFormat>() == 20);
const _: () = assert!(size_of::<V4l2PixFormatMplane>() == 192);
const _: () = assert!(size_of::<V4l2Control>() == 8);
const _: () = assert!(size_of::<V4l2EncoderCmd>() == 40);
const _: () = assert!(size_of::<V4l2Selection>() == 64);

#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(size_of::<V4l2FormatMplane>() == 208);
    assert!(size_of::<V4l2Plane>() == 64);
};

#[cfg(target_pointer_width = "32")]
const _: () = {
    assert!(size_of::<V4l2FormatMplane>() == 204);
    assert!(size_of::<V4l2Plane>() == 60);
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The request codes must equal the kernel's, as printed by a C program
    /// including `linux/videodev2.h` on x86_64.
    #[cfg(target_pointer_width = "64")]
    #[test]
    #[allow(clippy::unnecessary_cast)]
    fn ioctl_numbers_match_videodev2_h_on_64_bit() {
        let rw = |nr, sz| nix::request_code_readwrite!(b'V', nr, sz) as u64;
        assert_eq!(rw(5, size_of::<V4l2FormatMplane>()), 0xc0d0_5605);
        assert_eq!(rw(28, size_of::<V4l2Control>()), 0xc008_561c);
        assert_eq!(rw(77, size_of::<V4l2EncoderCmd>()), 0xc028_564d);
        assert_eq!(rw(95, size_of::<V4l2Selection>()), 0xc040_565f);
    }

    #[test]
    fn field_offsets_match_videodev2_h() {
        let f = V4l2PixFormatMplane::default();
        let base = &f as *const _ as usize;
        assert_eq!(&f.num_planes as *const _ as usize - base, 180);
        let p = V4l2Plane::default();
        let base = &p as *const _ as usize;
        let ptr = size_of::<c_ulong>();
        assert_eq!(&p.m as *const _ as usize - base, 8);
        assert_eq!(&p.data_offset as *const _ as usize - base, 8 + ptr);
    }
}
