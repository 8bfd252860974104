//! Picture types shared by cameras, the encoder and the store.
//!
//! A [`VideoFrame`] is what a camera delivers: either raw YUV planes or an
//! already-compressed JPEG. Its bytes live behind [`FrameBytes`] so a camera
//! library can hand out a mapped buffer and get it back (for example by
//! re-queueing a request) when the frame is dropped, without an extra copy.

use std::fmt;

/// Pixel layouts a camera may deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Planar YUV 4:2:0: Y plane, then Cb, then Cr (also called YU12).
    I420,
    /// Semi-planar YUV 4:2:0: Y plane, then interleaved CbCr.
    Nv12,
    /// Packed YUV 4:2:2: Y0 Cb Y1 Cr.
    Yuyv,
    /// A complete baseline JPEG (JFIF) image, stored as is.
    Jpeg,
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelFormat::I420 => "I420",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Jpeg => "MJPEG",
        })
    }
}

/// Bytes of a frame, owned by whoever produced them.
pub trait FrameBytes: Send {
    fn bytes(&self) -> &[u8];
}

impl FrameBytes for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// Where one plane starts inside [`VideoFrame::data`] and how far apart its rows are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plane {
    pub offset: usize,
    pub stride: usize,
}

/// Both clocks at the moment a frame was captured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureTime {
    /// CLOCK_MONOTONIC in nanoseconds: exact ordering and durations within one boot.
    pub mono_ns: u64,
    /// Wall clock in nanoseconds since the Unix epoch (UTC), as known then.
    pub wall_ns: i64,
}

/// One picture from a camera.
pub struct VideoFrame {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    /// Plane layout for raw formats (1 for YUYV, 2 for NV12, 3 for I420); empty for JPEG.
    pub planes: Vec<Plane>,
    pub data: Box<dyn FrameBytes>,
    pub captured: CaptureTime,
    /// Clockwise rotation in degrees the camera already applied (libcamera
    /// turns the picture 180 degrees in the ISP for free); the encoder only
    /// rotates by what is left of the configured rotation.
    pub rotated_by_camera: u16,
}

impl VideoFrame {
    /// A tightly packed frame in a plain `Vec`, with planes laid out for `format`.
    pub fn packed(
        format: PixelFormat,
        width: u32,
        height: u32,
        data: Vec<u8>,
        captured: CaptureTime,
    ) -> VideoFrame {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let planes = match format {
            PixelFormat::I420 => vec![
                Plane {
                    offset: 0,
                    stride: w,
                },
                Plane {
                    offset: w * h,
                    stride: cw,
                },
                Plane {
                    offset: w * h + cw * ch,
                    stride: cw,
                },
            ],
            PixelFormat::Nv12 => vec![
                Plane {
                    offset: 0,
                    stride: w,
                },
                Plane {
                    offset: w * h,
                    stride: cw * 2,
                },
            ],
            PixelFormat::Yuyv => vec![Plane {
                offset: 0,
                stride: w * 2,
            }],
            PixelFormat::Jpeg => Vec::new(),
        };
        VideoFrame {
            format,
            width,
            height,
            planes,
            data: Box::new(data),
            captured,
            rotated_by_camera: 0,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        self.data.bytes()
    }
}

impl fmt::Debug for VideoFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VideoFrame")
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("planes", &self.planes)
            .field("len", &self.bytes().len())
            .field("captured", &self.captured)
            .finish()
    }
}

/// Size of the buffer a tightly packed frame of this format needs (JPEG: unknown, 0).
pub fn packed_len(format: PixelFormat, width: u32, height: u32) -> usize {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    match format {
        PixelFormat::I420 | PixelFormat::Nv12 => w * h + 2 * cw * ch,
        PixelFormat::Yuyv => w * h * 2,
        PixelFormat::Jpeg => 0,
    }
}
