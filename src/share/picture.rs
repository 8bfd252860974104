//! Stored JPEG frames turned into the I420 pictures an H.264 encoder takes,
//! at the share clip's size.
//!
//! A full-size YCbCr JPEG is read as libjpeg's raw planes (each component
//! at its own sampling, no chroma upsampling or interleaving) and each plane
//! is scaled bilinearly on its own: luma from the full-size luma, chroma
//! from the subsampled chroma. A JPEG much larger than the clip is instead
//! decoded straight to a smaller size (DCT scaling by 1/2, 1/4 or 1/8, which
//! averages like an area filter; raw planes are only available unscaled),
//! as interleaved YCbCr, and bilinear reaches the exact size from there,
//! never more than a factor of two away. Samples come out as BT.601 limited
//! range ("TV range"), what every H.264 player assumes; JPEG's full range is
//! mapped on the way.

use std::fmt;

use mozjpeg::{ColorSpace, CompInfoExt, Decompress};

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
    /// The last JPEG's samples: three raw planes, or interleaved YCbCr in
    /// the first. Kept between frames so decoding does not allocate.
    decoded: [Vec<u8>; 3],
    scratch: Scratch,
}

/// How a JPEG was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// libjpeg's raw planes at full size.
    Raw,
    /// Interleaved YCbCr (DCT-scaled, grayscale, or a sampling the raw
    /// route does not take).
    Interleaved,
}

/// Where one plane's samples sit in a decoded buffer.
#[derive(Debug, Clone, Copy)]
struct PlaneLayout {
    /// Index of the first sample.
    offset: usize,
    /// Distance between neighbours in a row: 1 for a plane, 3 for one
    /// component of interleaved YCbCr.
    step: usize,
    /// Distance between rows (libjpeg pads raw rows to whole blocks).
    stride: usize,
    width: usize,
    height: usize,
}

impl PlaneLayout {
    fn fits_in(&self, len: usize) -> bool {
        self.width > 0
            && self.height > 0
            && self.offset + (self.height - 1) * self.stride + (self.width - 1) * self.step < len
    }
}

/// Full range to limited range for one plane kind, on samples in 1/256
/// steps (0 to 255 * 256): `(s * mul + add) >> 24`, rounded. Arithmetic
/// rather than a table so the loops using it vectorize; u32 never
/// overflows (at most about 4.03e9).
#[derive(Debug, Clone, Copy)]
struct RangeMap {
    mul: u32,
    add: u32,
}

impl RangeMap {
    /// 16 + s * 219 / 255.
    const LUMA: RangeMap = RangeMap {
        mul: 56_283,
        add: (16 << 24) + (1 << 23),
    };
    /// 128 + (s - 128) * 224 / 255; `add` takes the 128 off first.
    const CHROMA: RangeMap = RangeMap {
        mul: 57_570,
        add: (128 << 24) - 32_768 * 57_570 + (1 << 23),
    };

    #[inline(always)]
    fn map(self, sample_256ths: u32) -> u8 {
        ((sample_256ths * self.mul + self.add) >> 24) as u8
    }
}

/// One bilinear tap: two source indices and the weight (of 256) of the
/// second. Both indices are valid, so the inner loops need no edge case.
#[derive(Debug, Clone, Copy)]
struct Tap {
    first: u32,
    next: u32,
    weight: u16,
}

/// Fills `out` with a tap per output position, centres aligned; source
/// position `i` is at index `offset + i * step`.
fn taps(out: &mut Vec<Tap>, src: usize, dst: usize, offset: usize, step: usize) {
    out.clear();
    out.extend((0..dst).map(|i| {
        let x = ((i as f64 + 0.5) * src as f64 / dst as f64 - 0.5).max(0.0);
        let x0 = (x.floor() as usize).min(src - 1);
        let (x1, w) = if x0 + 1 < src {
            (x0 + 1, ((x - x0 as f64) * 256.0).round() as u16)
        } else {
            (x0, 0)
        };
        Tap {
            first: (offset + x0 * step) as u32,
            next: (offset + x1 * step) as u32,
            weight: w.min(256),
        }
    }));
}

/// Buffers reused by every plane of every frame.
#[derive(Default)]
struct Scratch {
    xs: Vec<Tap>,
    ys: Vec<Tap>,
    /// Two horizontally filtered source rows (values of 256 times a
    /// sample) and which source row each holds.
    rows: [Vec<u16>; 2],
    held: [usize; 2],
}

impl Scratch {
    /// Bilinear from `src` (laid out as `layout`) into `dst`, `dw`x`dh`,
    /// mapped by `range`. Each source row is filtered horizontally once while
    /// consecutive output rows need it, then output rows are blends of two
    /// filtered rows.
    fn scale_plane(
        &mut self,
        src: &[u8],
        layout: PlaneLayout,
        dst: &mut [u8],
        (dw, dh): (usize, usize),
        range: RangeMap,
    ) {
        if (layout.width, layout.height) == (dw, dh) {
            // Same size (720p footage to a 720p clip): bilinear is a copy.
            for (y, out) in dst.chunks_exact_mut(dw).enumerate() {
                let line = &src[layout.offset + y * layout.stride..];
                if layout.step == 1 {
                    for (o, &v) in out.iter_mut().zip(&line[..dw]) {
                        *o = range.map(v as u32 * 256);
                    }
                } else {
                    for (o, &v) in out.iter_mut().zip(line.iter().step_by(layout.step)) {
                        *o = range.map(v as u32 * 256);
                    }
                }
            }
            return;
        }
        taps(&mut self.xs, layout.width, dw, layout.offset, layout.step);
        taps(&mut self.ys, layout.height, dh, 0, 1);
        for row in &mut self.rows {
            row.clear();
            row.resize(dw, 0);
        }
        self.held = [usize::MAX; 2];
        let xs = &self.xs;
        let filter = |row: &mut [u16], y: usize| {
            let line = &src[y * layout.stride..];
            for (o, t) in row.iter_mut().zip(xs) {
                *o = line[t.first as usize] as u16 * (256 - t.weight)
                    + line[t.next as usize] as u16 * t.weight;
            }
        };
        for (out, t) in dst.chunks_exact_mut(dw).zip(&self.ys) {
            let (y0, y1) = (t.first as usize, t.next as usize);
            let s0 = match self.held.iter().position(|&h| h == y0) {
                Some(s) => s,
                None => {
                    // Keep the slot that already holds the second row.
                    let s = (self.held[0] == y1) as usize;
                    filter(&mut self.rows[s], y0);
                    self.held[s] = y0;
                    s
                }
            };
            let s1 = if y1 == y0 {
                s0
            } else {
                if self.held[1 - s0] != y1 {
                    filter(&mut self.rows[1 - s0], y1);
                    self.held[1 - s0] = y1;
                }
                1 - s0
            };
            let (top, bottom) = (&self.rows[s0], &self.rows[s1]);
            let (wt, wb) = (256 - t.weight as u32, t.weight as u32);
            for ((o, &a), &b) in out.iter_mut().zip(top).zip(bottom) {
                *o = range.map((a as u32 * wt + b as u32 * wb) >> 8);
            }
        }
    }
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
            decoded: Default::default(),
            scratch: Scratch::default(),
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
        self.decode_by(jpeg, true).map(|_| ())
    }

    /// Decodes `jpeg`, through raw planes if `raw_allowed` and the JPEG
    /// suits them; says which route it took.
    fn decode_by(&mut self, jpeg: &[u8], raw_allowed: bool) -> Result<Route, DecodeError> {
        let (tw, th) = (self.width as usize, self.height as usize);
        let decoded = &mut self.decoded;
        // libjpeg reports fatal errors by unwinding out of its callbacks.
        let (route, layouts) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            read_jpeg(jpeg, (tw, th), raw_allowed, decoded)
        }))
        .map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "libjpeg error".into())
        })
        .and_then(|r| r)
        .map_err(DecodeError)?;
        let sources = match route {
            Route::Raw => [&self.decoded[0], &self.decoded[1], &self.decoded[2]],
            Route::Interleaved => [&self.decoded[0]; 3],
        };
        let (cw, ch) = (tw / 2, th / 2);
        if cw == 0 || ch == 0 {
            return Ok(route);
        }
        let s = &mut self.scratch;
        s.scale_plane(
            sources[0],
            layouts[0],
            &mut self.y,
            (tw, th),
            RangeMap::LUMA,
        );
        s.scale_plane(
            sources[1],
            layouts[1],
            &mut self.u,
            (cw, ch),
            RangeMap::CHROMA,
        );
        s.scale_plane(
            sources[2],
            layouts[2],
            &mut self.v,
            (cw, ch),
            RangeMap::CHROMA,
        );
        Ok(route)
    }
}

/// Decodes `jpeg` into `decoded` for a `target`-sized picture; says how
/// and where the Y, Cb and Cr samples lie.
fn read_jpeg(
    jpeg: &[u8],
    (tw, th): (usize, usize),
    raw_allowed: bool,
    decoded: &mut [Vec<u8>; 3],
) -> Result<(Route, [PlaneLayout; 3]), String> {
    let mut d = Decompress::new_mem(jpeg).map_err(|e| e.to_string())?;
    let (sw, sh) = d.size();
    if sw == 0 || sh == 0 {
        return Err("empty picture".into());
    }
    // The smallest of 1/8, 1/4, 1/2 and 1 that keeps at least the target
    // size: libjpeg-turbo has SIMD code for these, and its other scales
    // (3/8, 6/8...) are slower than a full decode.
    let n = [1u8, 2, 4, 8]
        .into_iter()
        .find(|n| sw * *n as usize >= tw * 8 && sh * *n as usize >= th * 8)
        .unwrap_or(8);
    let sampling: Vec<(usize, usize)> = d
        .components()
        .iter()
        .map(|c| (c.h_samp_factor as usize, c.v_samp_factor as usize))
        .collect();
    let max_h = sampling.iter().map(|s| s.0).max().unwrap_or(1);
    let max_v = sampling.iter().map(|s| s.1).max().unwrap_or(1);
    // The mozjpeg crate reads raw data an MCU row at a time, up to 16
    // lines, and only at full size.
    let raw = raw_allowed
        && n == 8
        && d.color_space() == ColorSpace::JCS_YCbCr
        && sampling.len() == 3
        && max_v <= 2;
    if raw {
        let mut started = d.raw().map_err(|e| e.to_string())?;
        for plane in decoded.iter_mut() {
            plane.clear();
        }
        let [y, u, v] = decoded;
        started.read_raw_data(&mut [y, u, v]);
        let mut layouts = [PlaneLayout {
            offset: 0,
            step: 1,
            stride: 0,
            width: 0,
            height: 0,
        }; 3];
        for ((l, c), plane) in layouts.iter_mut().zip(started.components()).zip(&*decoded) {
            let (h, v) = (c.h_samp_factor as usize, c.v_samp_factor as usize);
            l.stride = c.row_stride();
            l.width = (sw * h).div_ceil(max_h);
            l.height = (sh * v).div_ceil(max_v);
            if !l.fits_in(plane.len()) {
                return Err(format!(
                    "raw plane of {} bytes too short for {}x{}",
                    plane.len(),
                    l.width,
                    l.height
                ));
            }
        }
        started.finish().map_err(|e| e.to_string())?;
        return Ok((Route::Raw, layouts));
    }
    d.do_fancy_upsampling(false);
    let mut started = d
        .to_colorspace(ColorSpace::JCS_YCbCr)
        .map_err(|e| e.to_string())?;
    let (dw, dh) = (started.width(), started.height());
    let interleaved = &mut decoded[0];
    interleaved.resize(dw * dh * 3, 0);
    started
        .read_scanlines_into::<u8>(interleaved)
        .map_err(|e| e.to_string())?;
    started.finish().map_err(|e| e.to_string())?;
    let component = |offset| PlaneLayout {
        offset,
        step: 3,
        stride: dw * 3,
        width: dw,
        height: dh,
    };
    Ok((
        Route::Interleaved,
        [component(0), component(1), component(2)],
    ))
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
        let (y, c) = (RangeMap::LUMA, RangeMap::CHROMA);
        assert_eq!((y.map(0), y.map(255 * 256)), (16, 235));
        assert_eq!(
            (c.map(0), c.map(128 * 256), c.map(255 * 256)),
            (16, 128, 240)
        );
        // Whole samples map as the rounded formulas.
        for s in 0..=255i32 {
            let luma = 16 + (s * 219 + 127) / 255;
            let chroma = 128 + ((s - 128) * 224 + 127 * (s - 128).signum()) / 255;
            assert_eq!(y.map(s as u32 * 256) as i32, luma, "luma {s}");
            assert_eq!(c.map(s as u32 * 256) as i32, chroma, "chroma {s}");
        }
    }

    fn jpeg(width: usize, height: usize) -> Vec<u8> {
        jpeg_sampled(width, height, (2, 2))
    }

    /// A gradient JPEG with chroma sampled every `chroma` pixels.
    fn jpeg_sampled(width: usize, height: usize, chroma: (u8, u8)) -> Vec<u8> {
        let rgb: Vec<u8> = (0..width * height)
            .flat_map(|i| {
                let (x, y) = (i % width, i / width);
                [(x * 255 / width) as u8, (y * 255 / height) as u8, 90]
            })
            .collect();
        let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        c.set_size(width, height);
        c.set_quality(90.0);
        c.set_chroma_sampling_pixel_sizes(chroma, chroma);
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

    /// Largest difference between two planes.
    fn worst(a: &[u8], b: &[u8]) -> u8 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn raw_planes_match_the_interleaved_decode() {
        for ((sw, sh), chroma, size) in [
            ((1280, 720), (2, 2), ShareSize::P480),
            ((1280, 720), (2, 2), ShareSize::P720),
            // Odd sides: padded raw rows, chroma planes rounded up.
            ((333, 211), (2, 2), ShareSize::P480),
            ((1280, 720), (1, 1), ShareSize::P480),
            ((640, 360), (1, 1), ShareSize::P480),
            ((640, 360), (2, 1), ShareSize::P480),
        ] {
            let (w, h) = size.picture_size(sw, sh);
            let jpeg = jpeg_sampled(sw as usize, sh as usize, chroma);
            let mut raw = PictureScaler::new(w, h);
            let mut interleaved = PictureScaler::new(w, h);
            assert_eq!(raw.decode_by(&jpeg, true), Ok(Route::Raw));
            assert_eq!(interleaved.decode_by(&jpeg, false), Ok(Route::Interleaved));
            let (r, i) = (raw.picture(), interleaved.picture());
            let case = format!("{sw}x{sh} chroma {chroma:?} to {w}x{h}");
            // An odd side leaves the last chroma sample half outside the
            // picture; the raw plane spans it, upsampled chroma does not.
            let chroma_within = if sw % 2 == 1 || sh % 2 == 1 { 2 } else { 1 };
            assert!(worst(r.y, i.y) <= 1, "{case}: luma");
            assert!(worst(r.u, i.u) <= chroma_within, "{case}: Cb");
            assert!(worst(r.v, i.v) <= chroma_within, "{case}: Cr");
        }
    }

    #[test]
    fn a_much_larger_jpeg_is_dct_scaled_not_raw() {
        let mut s = PictureScaler::new(160, 90);
        assert_eq!(s.decode_by(&jpeg(1280, 720), true), Ok(Route::Interleaved));
        let p = s.picture();
        assert!(p.y[0] < p.y[160 * 90 - 1]);
    }

    #[test]
    fn a_jpeg_cut_short_is_caught_and_never_half_written() {
        let mut s = PictureScaler::new(64, 48);
        let good = jpeg(128, 96);
        s.decode(&good).expect("decode");
        let before = (s.y.clone(), s.u.clone(), s.v.clone());
        for cut in [2, 20, 200, good.len() / 2, good.len() - 2] {
            if s.decode(&good[..cut]).is_err() {
                assert_eq!((&s.y, &s.u, &s.v), (&before.0, &before.1, &before.2));
            }
            // The next good frame decodes as before.
            s.decode(&good).expect("decode after a cut one");
            assert_eq!(s.y, before.0, "after a cut at {cut}");
        }
    }

    #[test]
    fn the_row_reusing_scaler_matches_per_pixel_bilinear() {
        // Interleaved samples of odd sizes, scaled down, across and up.
        let (sw, sh) = (37, 23);
        let src: Vec<u8> = (0..sw * sh * 3).map(|i| (i * 7919 % 251) as u8).collect();
        for (dw, dh) in [(24, 15), (18, 11), (37, 23), (50, 40), (1, 1)] {
            for offset in 0..3 {
                let layout = PlaneLayout {
                    offset,
                    step: 3,
                    stride: sw * 3,
                    width: sw,
                    height: sh,
                };
                let mut got = vec![0; dw * dh];
                let range = RangeMap::LUMA;
                Scratch::default().scale_plane(&src, layout, &mut got, (dw, dh), range);
                let (mut xs, mut ys) = (Vec::new(), Vec::new());
                taps(&mut xs, sw, dw, offset, 3);
                taps(&mut ys, sh, dh, 0, 1);
                let want: Vec<u8> = ys
                    .iter()
                    .flat_map(|ty| xs.iter().map(move |tx| (ty, tx)))
                    .map(|(ty, tx)| {
                        let at = |y: usize, x: usize| src[y * sw * 3 + x] as u32;
                        let (wx, wy) = (tx.weight as u32, ty.weight as u32);
                        let (x0, x1) = (tx.first as usize, tx.next as usize);
                        let lerp = |y: usize| at(y, x0) * (256 - wx) + at(y, x1) * wx;
                        let (top, bottom) = (lerp(ty.first as usize), lerp(ty.next as usize));
                        // Rounded to a whole sample, then mapped, as
                        // pictures were made before the scaler kept 256ths.
                        let v = (top * (256 - wy) + bottom * wy + (1 << 15)) >> 16;
                        range.map(v * 256)
                    })
                    .collect();
                let case = format!("{sw}x{sh} to {dw}x{dh}, component {offset}");
                assert!(worst(&got, &want) <= 1, "{case}");
                if (dw, dh) == (sw, sh) {
                    assert_eq!(got, want, "{case}");
                }
            }
        }
    }
}
