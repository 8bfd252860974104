//! Stored JPEG frames turned into the I420 pictures an H.264 encoder takes,
//! at the share clip's size.
//!
//! libjpeg decodes straight to a smaller size (DCT scaling by 1/2, 1/4 or
//! 1/8), which is the cheap part of the reduction and averages like an area
//! filter; a bilinear step then reaches the exact size, never more than a
//! factor of two away. Samples come out as BT.601 limited range ("TV range"), what
//! every H.264 player assumes; JPEG's full range is mapped on the way.

use std::fmt;

use mozjpeg::{ColorSpace, Decompress};

use super::encoder::Picture;

/// Lines of a share clip. A source with fewer lines keeps its own: a clip
/// is never upscaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareSize {
    P480,
    P720,
    P1080,
}

impl ShareSize {
    pub const ACCEPTED: &'static str = "480, 720 or 1080";

    pub fn lines(self) -> u32 {
        match self {
            ShareSize::P480 => 480,
            ShareSize::P720 => 720,
            ShareSize::P1080 => 1080,
        }
    }

    pub fn parse(s: &str) -> Option<ShareSize> {
        match s.trim().trim_end_matches('p') {
            "480" => Some(ShareSize::P480),
            "720" => Some(ShareSize::P720),
            "1080" => Some(ShareSize::P1080),
            _ => None,
        }
    }

    /// The picture size for a `width`x`height` source: at most this many
    /// lines, the source's aspect, both sides even.
    pub fn picture_size(self, width: u32, height: u32) -> (u32, u32) {
        let h = self.lines().min(height.max(2)) & !1;
        let w =
            ((width as u64 * h as u64 + height.max(1) as u64 / 2) / height.max(1) as u64) as u32;
        ((w.max(2) + 1) & !1, h)
    }
}

/// A JPEG that could not be decoded (its record's CRCs checked, so the
/// camera wrote it that way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JPEG does not decode: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes JPEGs into one reused I420 picture of a fixed size.
pub struct PictureScaler {
    width: u32,
    height: u32,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    /// Decoded YCbCr, interleaved, at the DCT-scaled size.
    decoded: Vec<u8>,
}

/// Full range to limited range, per plane kind.
fn luma_lut() -> [u8; 256] {
    std::array::from_fn(|i| (16 + (i as u32 * 219 + 127) / 255) as u8)
}
fn chroma_lut() -> [u8; 256] {
    std::array::from_fn(|i| {
        (128 + ((i as i32 - 128) * 224 + 127 * (i as i32 - 128).signum()) / 255) as u8
    })
}

/// For each output position, the first source position and the weight
/// (of 256) of the next one: bilinear, centres aligned.
fn taps(src: usize, dst: usize) -> Vec<(u32, u32)> {
    (0..dst)
        .map(|i| {
            let x = ((i as f64 + 0.5) * src as f64 / dst as f64 - 0.5).max(0.0);
            let x0 = (x.floor() as usize).min(src - 1);
            let w = if x0 + 1 < src {
                ((x - x0 as f64) * 256.0).round() as u32
            } else {
                0
            };
            (x0 as u32, w.min(256))
        })
        .collect()
}

impl PictureScaler {
    pub fn new(width: u32, height: u32) -> PictureScaler {
        let (w, h) = (width as usize, height as usize);
        PictureScaler {
            width,
            height,
            y: vec![16; w * h],
            u: vec![128; w / 2 * (h / 2)],
            v: vec![128; w / 2 * (h / 2)],
            decoded: Vec::new(),
        }
    }

    /// The current picture: the last one decoded (mid grey before any).
    pub fn picture(&self) -> Picture<'_> {
        Picture {
            width: self.width,
            height: self.height,
            y: &self.y,
            u: &self.u,
            v: &self.v,
        }
    }

    /// Decodes `jpeg` into the picture. On error the picture keeps the
    /// previous frame, so a clip can hold it in place of the bad one.
    pub fn decode(&mut self, jpeg: &[u8]) -> Result<(), DecodeError> {
        let (tw, th) = (self.width as usize, self.height as usize);
        let decoded = &mut self.decoded;
        // libjpeg reports fatal errors by unwinding out of its callbacks.
        let size = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
            || -> Result<(usize, usize), String> {
                let mut d = Decompress::new_mem(jpeg).map_err(|e| e.to_string())?;
                let (sw, sh) = d.size();
                if sw == 0 || sh == 0 {
                    return Err("empty picture".into());
                }
                // The smallest of 1/8, 1/4, 1/2 and 1 that keeps at least
                // the target size: libjpeg-turbo has SIMD code for these,
                // and its other scales (3/8, 6/8...) are slower than a full
                // decode.
                let n = [1u8, 2, 4, 8]
                    .into_iter()
                    .find(|n| sw * *n as usize >= tw * 8 && sh * *n as usize >= th * 8)
                    .unwrap_or(8);
                d.scale(n);
                d.do_fancy_upsampling(false);
                let mut started = d
                    .to_colorspace(ColorSpace::JCS_YCbCr)
                    .map_err(|e| e.to_string())?;
                let (dw, dh) = (started.width(), started.height());
                decoded.resize(dw * dh * 3, 0);
                started
                    .read_scanlines_into::<u8>(decoded)
                    .map_err(|e| e.to_string())?;
                started.finish().map_err(|e| e.to_string())?;
                Ok((dw, dh))
            },
        ))
        .map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "libjpeg error".into())
        })
        .and_then(|r| r)
        .map_err(DecodeError)?;
        self.scale_from(size.0, size.1);
        Ok(())
    }

    /// Bilinear from `decoded` (`sw`x`sh` YCbCr) into the I420 planes.
    fn scale_from(&mut self, sw: usize, sh: usize) {
        let (tw, th) = (self.width as usize, self.height as usize);
        let src = &self.decoded;
        let (ly, lc) = (luma_lut(), chroma_lut());
        let lerp = |a: u8, b: u8, w: u32| a as u32 * (256 - w) + b as u32 * w;
        let xs = taps(sw, tw);
        let ys = taps(sh, th);
        for (oy, &(y0, wy)) in ys.iter().enumerate() {
            let r0 = &src[y0 as usize * sw * 3..][..sw * 3];
            let r1 = &src[(y0 as usize + (wy > 0) as usize) * sw * 3..][..sw * 3];
            let out = &mut self.y[oy * tw..][..tw];
            for (o, &(x0, wx)) in out.iter_mut().zip(&xs) {
                let x0 = x0 as usize * 3;
                let x1 = x0 + if wx > 0 { 3 } else { 0 };
                let top = lerp(r0[x0], r0[x1], wx);
                let bottom = lerp(r1[x0], r1[x1], wx);
                let v = (top * (256 - wy) + bottom * wy + (1 << 15)) >> 16;
                *o = ly[v.min(255) as usize];
            }
        }
        let (cw, ch) = (tw / 2, th / 2);
        let xs = taps(sw, cw);
        let ys = taps(sh, ch);
        for (oy, &(y0, wy)) in ys.iter().enumerate() {
            let r0 = &src[y0 as usize * sw * 3..][..sw * 3];
            let r1 = &src[(y0 as usize + (wy > 0) as usize) * sw * 3..][..sw * 3];
            let u = &mut self.u[oy * cw..][..cw];
            let v = &mut self.v[oy * cw..][..cw];
            for ((ou, ov), &(x0, wx)) in u.iter_mut().zip(v.iter_mut()).zip(&xs) {
                let x0 = x0 as usize * 3;
                let x1 = x0 + if wx > 0 { 3 } else { 0 };
                for (c, o) in [(1, ou), (2, ov)] {
                    let top = lerp(r0[x0 + c], r0[x1 + c], wx);
                    let bottom = lerp(r1[x0 + c], r1[x1 + c], wx);
                    let val = (top * (256 - wy) + bottom * wy + (1 << 15)) >> 16;
                    *o = lc[val.min(255) as usize];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_keep_the_aspect_stay_even_and_never_upscale() {
        assert_eq!(ShareSize::P480.picture_size(1280, 720), (854, 480));
        assert_eq!(ShareSize::P720.picture_size(1920, 1080), (1280, 720));
        // A 720-line source asked for 1080 stays 720.
        assert_eq!(ShareSize::P1080.picture_size(1280, 720), (1280, 720));
        assert_eq!(ShareSize::P480.picture_size(640, 480), (640, 480));
        // Odd sources come out even.
        assert_eq!(ShareSize::P480.picture_size(333, 211), (332, 210));
        assert_eq!(ShareSize::parse("720p"), Some(ShareSize::P720));
        assert_eq!(ShareSize::parse("360"), None);
    }

    #[test]
    fn full_range_maps_to_limited_range() {
        let (y, c) = (luma_lut(), chroma_lut());
        assert_eq!((y[0], y[255]), (16, 235));
        assert_eq!((c[0], c[128], c[255]), (16, 128, 240));
    }

    fn jpeg(width: usize, height: usize) -> Vec<u8> {
        let rgb: Vec<u8> = (0..width * height)
            .flat_map(|i| {
                let (x, y) = (i % width, i / width);
                [(x * 255 / width) as u8, (y * 255 / height) as u8, 90]
            })
            .collect();
        let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        c.set_size(width, height);
        c.set_quality(90.0);
        let mut c = c.start_compress(Vec::new()).expect("start");
        c.write_scanlines(&rgb).expect("write");
        c.finish().expect("finish")
    }

    #[test]
    fn a_jpeg_becomes_a_picture_of_the_asked_size() {
        let (w, h) = ShareSize::P480.picture_size(1280, 720);
        let mut s = PictureScaler::new(w, h);
        s.decode(&jpeg(1280, 720)).expect("decode");
        let p = s.picture();
        assert_eq!((p.width, p.height), (854, 480));
        assert_eq!(p.y.len(), 854 * 480);
        assert_eq!(p.u.len(), 427 * 240);
        // The gradient survives: dark at the top left, bright bottom right.
        assert!(p.y[0] < p.y[854 * 480 - 1]);
        assert!(p.y.iter().all(|v| (16..=235).contains(v)));
    }

    #[test]
    fn a_broken_jpeg_is_an_error_and_keeps_the_last_picture() {
        let mut s = PictureScaler::new(64, 48);
        let good = jpeg(128, 96);
        s.decode(&good).expect("decode");
        let before = s.picture().y.to_vec();
        assert!(s.decode(b"not a jpeg").is_err());
        assert_eq!(s.picture().y, &before[..]);
    }
}
