//! Turns camera frames into baseline JPEG images.
//!
//! [`JpegEncoder`] owns reusable scratch planes. For raw input (I420, NV12,
//! YUYV) each frame is copied exactly once, into those planes, with format
//! conversion, rotation and block padding done in the same pass
//! ([`yuv`]); the timestamp is then drawn onto the rotated planes
//! ([`overlay`]) and mozjpeg compresses them as raw 4:2:0 data, skipping its
//! own colour conversion and downsampling.
//!
//! JPEG input (MJPEG webcams) is stored untouched when neither rotation nor
//! a timestamp is wanted; otherwise it is decoded to raw planes and
//! re-encoded, since the user asked for a changed picture.
//!
//! mozjpeg reports libjpeg errors by unwinding; every call into it runs
//! under `catch_unwind` and comes back as an [`EncodeError`], so a bad frame
//! never takes the recording thread down.

pub mod caption;
mod overlay;
mod yuv;

use std::any::Any;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mozjpeg::{ColorSpace, CompInfoExt, Compress, Decompress};

use crate::clock::format_overlay;
use crate::config::CameraConfig;
use crate::frame::{PixelFormat, VideoFrame};
use yuv::{Layout, PaddedI420, PlaneView, Rotation, Source};

/// Largest picture side a JPEG can describe.
pub const JPEG_MAX_DIMENSION_PX: u32 = 65_500;

/// How frames of one camera are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderSettings {
    /// libjpeg quality, 1-100 (values outside are clamped).
    pub quality: u8,
    /// Clockwise rotation in degrees: 0, 90, 180 or 270.
    pub rotation: u16,
    /// Burn the capture time (UTC) into the top-left corner.
    pub embed_timestamp: bool,
}

impl EncoderSettings {
    /// Settings for a configured camera. The config loader has already
    /// turned a legacy `mjpeg_quality` into `jpeg_quality`.
    pub fn from_camera(cam: &CameraConfig) -> EncoderSettings {
        EncoderSettings {
            quality: cam.jpeg_quality,
            rotation: cam.rotation,
            embed_timestamp: cam.embed_timestamp,
        }
    }
}

/// Maps Dash of Pi's `mjpeg_quality` (ffmpeg's `-q:v` scale, 2-31, lower is
/// better) to a libjpeg quality (1-100, higher is better).
///
/// The mapping is linear from 2 -> 95 to 31 -> 20, rounded to the nearest
/// integer; values outside 2-31 are clamped first:
///
/// | mjpeg_quality | 2  | 3  | 5  | 8  | 10 | 15 | 20 | 25 | 31 |
/// |---------------|----|----|----|----|----|----|----|----|----|
/// | quality       | 95 | 92 | 87 | 79 | 74 | 61 | 48 | 36 | 20 |
///
/// Each step of the ffmpeg scale lowers the quality by about 2.6, so the
/// mapping is strictly decreasing and keeps every distinct setting distinct.
pub fn quality_from_mjpeg_scale(q: u8) -> u8 {
    // One mapping for the whole program: the config loader owns it.
    crate::config::jpeg_quality_from_mjpeg(q)
}

/// Size of the encoded picture for a `width` x `height` frame under
/// `rotation` (90 and 270 swap the sides).
pub fn output_size(width: u32, height: u32, rotation: u16) -> (u32, u32) {
    match rotation {
        90 | 270 => (height, width),
        _ => (width, height),
    }
}

/// Why a frame could not be encoded. Messages name the frame's format and
/// size and the numbers that did not fit.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("frame buffer too small: {format} {width}x{height} needs {needed} bytes, got {got}")]
    FrameTooSmall {
        format: PixelFormat,
        width: u32,
        height: u32,
        needed: usize,
        got: usize,
    },
    #[error("{format} {width}x{height} frame describes {got} planes, the format needs {expected}")]
    PlaneCount {
        format: PixelFormat,
        width: u32,
        height: u32,
        expected: usize,
        got: usize,
    },
    #[error(
        "{format} {width}x{height} frame: {plane} plane stride {stride} is shorter than its row of {row_bytes} bytes"
    )]
    StrideTooSmall {
        format: PixelFormat,
        width: u32,
        height: u32,
        plane: &'static str,
        stride: usize,
        row_bytes: usize,
    },
    #[error("{format} frame size {width}x{height} cannot be encoded: each side must be 1 to {max} pixels", max = JPEG_MAX_DIMENSION_PX)]
    BadSize {
        format: PixelFormat,
        width: u32,
        height: u32,
    },
    #[error("rotation {0} is not one of 0, 90, 180, 270")]
    BadRotation(u16),
    #[error("MJPEG frame of {len} bytes is not a complete JPEG: {problem}")]
    NotJpeg { len: usize, problem: String },
    #[error("MJPEG frame of {len} bytes could not be decoded: {message}")]
    Decode { len: usize, message: String },
    #[error("MJPEG frame of {len} bytes uses {what}, which cannot be rotated or stamped")]
    UnsupportedJpeg { len: usize, what: String },
    #[error("compressing a {width}x{height} JPEG failed: {message}")]
    Compress {
        width: usize,
        height: usize,
        message: String,
    },
}

/// One encoded picture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedImage {
    pub jpeg: Vec<u8>,
    /// Size after rotation.
    pub width: u32,
    pub height: u32,
    /// The camera's own JPEG, stored byte for byte.
    pub passthrough: bool,
}

/// Encodes frames of one camera. Keep one per encoding thread: it reuses its
/// scratch planes from frame to frame.
#[derive(Debug)]
pub struct JpegEncoder {
    settings: EncoderSettings,
    /// Shown after the time (GPS speed), when there is one.
    caption: Option<std::sync::Arc<caption::Caption>>,
    planes: PaddedI420,
    /// Raw planes of a decoded MJPEG frame (Y, Cb, Cr).
    decoded: [Vec<u8>; 3],
    /// Size of the previous output, to size the next output buffer once.
    last_jpeg_len: usize,
}

impl JpegEncoder {
    pub fn new(settings: EncoderSettings) -> JpegEncoder {
        JpegEncoder {
            settings: EncoderSettings {
                quality: settings.quality.clamp(1, 100),
                ..settings
            },
            caption: None,
            planes: PaddedI420::default(),
            decoded: Default::default(),
            last_jpeg_len: 0,
        }
    }

    pub fn settings(&self) -> EncoderSettings {
        self.settings
    }

    /// Burns `caption`'s text (at each frame's capture time) after the
    /// time; only with `embed_timestamp`.
    pub fn with_caption(mut self, caption: std::sync::Arc<caption::Caption>) -> JpegEncoder {
        self.caption = Some(caption);
        self
    }

    /// Encodes one frame. The overlay shows the frame's capture wall-clock
    /// time (`frame.captured.wall_ns`).
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<EncodedImage, EncodeError> {
        let rot = Rotation::from_degrees(self.settings.rotation)
            .ok_or(EncodeError::BadRotation(self.settings.rotation))?;
        // A camera that rotated in hardware leaves only the rest to us.
        let left = (self.settings.rotation + 360 - frame.rotated_by_camera % 360) % 360;
        let rot = Rotation::from_degrees(left).unwrap_or(rot);
        let bytes = frame.bytes();

        let source = if frame.format == PixelFormat::Jpeg {
            check_jpeg(bytes)?;
            if rot == Rotation::R0 && !self.settings.embed_timestamp {
                return Ok(EncodedImage {
                    jpeg: bytes.to_vec(),
                    width: frame.width,
                    height: frame.height,
                    passthrough: true,
                });
            }
            let d = decode_jpeg(bytes, &mut self.decoded)?;
            d.source(&self.decoded)
        } else {
            raw_source(frame)?
        };

        self.planes.fill(&source, rot);
        if self.settings.embed_timestamp {
            let mut text = format_overlay(frame.captured.wall_ns);
            if let Some(extra) = self
                .caption
                .as_ref()
                .and_then(|c| c.text_at(frame.captured.mono_ns))
            {
                text.push(' ');
                text.push_str(&extra);
            }
            overlay::draw_text(&mut self.planes, &text);
        }
        let hint = self.last_jpeg_len + self.last_jpeg_len / 4;
        let jpeg = compress(&self.planes, self.settings.quality, hint)?;
        self.last_jpeg_len = jpeg.len();
        Ok(EncodedImage {
            jpeg,
            width: self.planes.width as u32,
            height: self.planes.height as u32,
            passthrough: false,
        })
    }
}

/// Checks the plane descriptions of a raw frame against its buffer and
/// returns views that cover exactly the bytes the conversion will read.
fn raw_source(frame: &VideoFrame) -> Result<Source<'_>, EncodeError> {
    let (format, width, height) = (frame.format, frame.width, frame.height);
    check_size(format, width, height)?;
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    // (name, rows, bytes per row) of each plane the format needs.
    let specs: &[(&'static str, usize, usize)] = match format {
        PixelFormat::I420 => &[("Y", h, w), ("Cb", ch, cw), ("Cr", ch, cw)],
        PixelFormat::Nv12 => &[("Y", h, w), ("CbCr", ch, 2 * cw)],
        PixelFormat::Yuyv => &[("YUYV", h, 2 * w)],
        PixelFormat::Jpeg => &[],
    };
    if frame.planes.len() < specs.len() {
        return Err(EncodeError::PlaneCount {
            format,
            width,
            height,
            expected: specs.len(),
            got: frame.planes.len(),
        });
    }
    let bytes = frame.bytes();
    let mut extents = [(0usize, 0usize, 0usize); 3];
    let mut needed = 0usize;
    for (i, (&(plane, rows, row_bytes), p)) in specs.iter().zip(&frame.planes).enumerate() {
        if p.stride < row_bytes {
            return Err(EncodeError::StrideTooSmall {
                format,
                width,
                height,
                plane,
                stride: p.stride,
                row_bytes,
            });
        }
        let extent = p.stride.saturating_mul(rows - 1).saturating_add(row_bytes);
        needed = needed.max(p.offset.saturating_add(extent));
        extents[i] = (p.offset, extent, p.stride);
    }
    if needed > bytes.len() {
        return Err(EncodeError::FrameTooSmall {
            format,
            width,
            height,
            needed,
            got: bytes.len(),
        });
    }
    let view = |i: usize| {
        let (offset, extent, stride) = extents[i];
        PlaneView {
            data: &bytes[offset..offset + extent],
            stride,
        }
    };
    let layout = match format {
        PixelFormat::I420 => Layout::Planar {
            y: view(0),
            cb: view(1),
            cr: view(2),
            sub_x: 2,
            sub_y: 2,
        },
        PixelFormat::Nv12 => Layout::Nv12 {
            y: view(0),
            uv: view(1),
        },
        PixelFormat::Yuyv | PixelFormat::Jpeg => Layout::Yuyv { packed: view(0) },
    };
    Ok(Source {
        width: w,
        height: h,
        layout,
    })
}

fn check_size(format: PixelFormat, width: u32, height: u32) -> Result<(), EncodeError> {
    let ok = |side: u32| (1..=JPEG_MAX_DIMENSION_PX).contains(&side);
    if ok(width) && ok(height) {
        Ok(())
    } else {
        Err(EncodeError::BadSize {
            format,
            width,
            height,
        })
    }
}

/// The cheap test a frame must pass to be stored as a JPEG: it starts with
/// SOI (FF D8) and ends with EOI (FF D9), optionally followed by the zero
/// padding some UVC cameras leave at the end of the buffer.
fn check_jpeg(bytes: &[u8]) -> Result<(), EncodeError> {
    let not_jpeg = |problem: String| EncodeError::NotJpeg {
        len: bytes.len(),
        problem,
    };
    if bytes.len() < 4 {
        return Err(not_jpeg(
            "shorter than the 4 bytes of SOI and EOI markers".into(),
        ));
    }
    if bytes[..2] != [0xFF, 0xD8] {
        return Err(not_jpeg(format!(
            "does not start with FF D8 (starts with {:02X} {:02X})",
            bytes[0], bytes[1]
        )));
    }
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if end < 4 || bytes[end - 2..end] != [0xFF, 0xD9] {
        let tail = &bytes[end.saturating_sub(2)..end];
        let tail: Vec<String> = tail.iter().map(|b| format!("{b:02X}")).collect();
        return Err(not_jpeg(format!(
            "does not end with FF D9 (last non-zero bytes at offset {}: {}); truncated?",
            end.saturating_sub(2),
            tail.join(" ")
        )));
    }
    Ok(())
}

/// Layout of a JPEG decoded into `JpegEncoder::decoded`.
struct DecodedJpeg {
    width: usize,
    height: usize,
    y_stride: usize,
    c_stride: usize,
    sub_x: usize,
    sub_y: usize,
    gray: bool,
}

impl DecodedJpeg {
    fn source<'a>(&self, planes: &'a [Vec<u8>; 3]) -> Source<'a> {
        let y = PlaneView {
            data: &planes[0],
            stride: self.y_stride,
        };
        let layout = if self.gray {
            Layout::Gray { y }
        } else {
            Layout::Planar {
                y,
                cb: PlaneView {
                    data: &planes[1],
                    stride: self.c_stride,
                },
                cr: PlaneView {
                    data: &planes[2],
                    stride: self.c_stride,
                },
                sub_x: self.sub_x,
                sub_y: self.sub_y,
            }
        };
        Source {
            width: self.width,
            height: self.height,
            layout,
        }
    }
}

/// Decodes `bytes` into raw planes at the JPEG's own subsampling (no colour
/// conversion or upsampling), reusing `planes`' buffers.
fn decode_jpeg(bytes: &[u8], planes: &mut [Vec<u8>; 3]) -> Result<DecodedJpeg, EncodeError> {
    let len = bytes.len();
    let unsupported = |what: String| EncodeError::UnsupportedJpeg { len, what };
    let run = || -> Result<DecodedJpeg, EncodeError> {
        let io_err = |e: io::Error| EncodeError::Decode {
            len,
            message: e.to_string(),
        };
        let d = Decompress::new_mem(bytes).map_err(io_err)?;
        let (width, height) = d.size();
        let comps = d.components();
        let gray = match (d.color_space(), comps.len()) {
            (ColorSpace::JCS_YCbCr, 3) => false,
            (ColorSpace::JCS_GRAYSCALE, 1) => true,
            (cs, n) => {
                return Err(unsupported(format!(
                    "colour space {cs:?} with {n} components"
                )))
            }
        };
        let (luma_h, luma_v) = (comps[0].h_samp_factor, comps[0].v_samp_factor);
        let (mut sub_x, mut sub_y) = (1, 1);
        if !gray {
            let (ch, cv) = (comps[1].h_samp_factor, comps[1].v_samp_factor);
            let same = comps[2].h_samp_factor == ch && comps[2].v_samp_factor == cv;
            let ratio_ok = |l: i32, c: i32| c > 0 && l % c == 0 && matches!(l / c, 1 | 2);
            if !same || !ratio_ok(luma_h, ch) || !ratio_ok(luma_v, cv) {
                return Err(unsupported(format!(
                    "sampling factors Y {luma_h}x{luma_v}, Cb {ch}x{cv}, Cr {}x{}",
                    comps[2].h_samp_factor, comps[2].v_samp_factor
                )));
            }
            sub_x = (luma_h / ch) as usize;
            sub_y = (luma_v / cv) as usize;
        }
        check_size(
            PixelFormat::Jpeg,
            width.try_into().unwrap_or(u32::MAX),
            height.try_into().unwrap_or(u32::MAX),
        )?;

        let mut started = d.raw().map_err(io_err)?;
        for p in planes.iter_mut() {
            p.clear();
        }
        let [y, cb, cr] = planes;
        if gray {
            started.read_raw_data(&mut [y]);
        } else {
            started.read_raw_data(&mut [y, cb, cr]);
        }
        let strides: Vec<usize> = started
            .components()
            .iter()
            .map(|c| c.row_stride())
            .collect();
        started.finish().map_err(io_err)?;

        let decoded = DecodedJpeg {
            width,
            height,
            y_stride: strides[0],
            c_stride: strides.get(1).copied().unwrap_or(0),
            sub_x,
            sub_y,
            gray,
        };
        // The conversion indexes these planes directly: make sure the
        // decoder really produced every row and column it will read.
        let fits = |plane: &Vec<u8>, stride: usize, w: usize, h: usize| {
            stride >= w && plane.len() >= stride * h
        };
        let (cw, ch) = (width.div_ceil(sub_x), height.div_ceil(sub_y));
        let luma_ok = fits(&planes[0], decoded.y_stride, width, height);
        let chroma_ok = gray
            || (fits(&planes[1], decoded.c_stride, cw, ch)
                && fits(&planes[2], decoded.c_stride, cw, ch));
        if !(luma_ok && chroma_ok) {
            return Err(EncodeError::Decode {
                len,
                message: format!("decoder returned short planes for {width}x{height}"),
            });
        }
        Ok(decoded)
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(result) => result,
        Err(panic) => Err(EncodeError::Decode {
            len,
            message: panic_message(panic),
        }),
    }
}

/// Compresses the scratch planes as a baseline 4:2:0 JPEG.
fn compress(p: &PaddedI420, quality: u8, capacity_hint: usize) -> Result<Vec<u8>, EncodeError> {
    let run = || -> io::Result<Vec<u8>> {
        let mut c = Compress::new(ColorSpace::JCS_YCbCr);
        // Must come first: it resets every other parameter. mozjpeg's own
        // default profile (trellis, progressive) is about 30x slower.
        c.set_fastest_defaults();
        c.set_size(p.width, p.height);
        c.set_raw_data_in(true);
        c.set_quality(quality as f32);
        for (comp, (h, v)) in c.components_mut().iter_mut().zip([(2, 2), (1, 1), (1, 1)]) {
            comp.h_samp_factor = h;
            comp.v_samp_factor = v;
        }
        let mut s = c.start_compress(Vec::with_capacity(capacity_hint))?;
        if !s.write_raw_data(&[&p.y, &p.cb, &p.cr]) {
            return Err(io::Error::other(
                "the compressor stopped before the last row",
            ));
        }
        s.finish()
    };
    let failed = |message: String| EncodeError::Compress {
        width: p.width,
        height: p.height,
        message,
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(jpeg)) => Ok(jpeg),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(panic) => Err(failed(panic_message(panic))),
    }
}

fn panic_message(panic: Box<dyn Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "libjpeg failed without a message".to_string()
    }
}

#[cfg(test)]
mod tests;
