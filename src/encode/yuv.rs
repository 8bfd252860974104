//! Conversion of camera pixel layouts into padded I420 scratch planes.
//!
//! The compressor takes raw 4:2:0 planes whose rows are exactly as wide as
//! the JPEG block grid and whose row count covers whole MCU rows (16 luma
//! rows, 8 chroma rows). [`PaddedI420::fill`] produces exactly that from any
//! supported [`Source`] in one pass per output plane: format conversion,
//! rotation and edge padding all happen while each output byte is written
//! once. Padding replicates the last column and row so partial edge blocks
//! do not ring.
//!
//! Invariant: every [`PlaneView`] handed in has been checked by the caller
//! to hold `rows` rows of `row_bytes` at its stride, so indexing inside the
//! views cannot go out of bounds for coordinates inside the source size.

/// Rotation applied while copying, clockwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rotation {
    R0,
    R90,
    R180,
    R270,
}

impl Rotation {
    pub(crate) fn from_degrees(deg: u16) -> Option<Rotation> {
        match deg {
            0 => Some(Rotation::R0),
            90 => Some(Rotation::R90),
            180 => Some(Rotation::R180),
            270 => Some(Rotation::R270),
            _ => None,
        }
    }

    fn swaps_axes(self) -> bool {
        matches!(self, Rotation::R90 | Rotation::R270)
    }
}

/// One plane of a source picture: `data[y * stride + x]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PlaneView<'a> {
    pub data: &'a [u8],
    pub stride: usize,
}

impl<'a> PlaneView<'a> {
    #[inline(always)]
    fn at(&self, x: usize, y: usize) -> u8 {
        self.data[y * self.stride + x]
    }

    #[inline(always)]
    fn row(&self, y: usize, len: usize) -> &'a [u8] {
        &self.data[y * self.stride..y * self.stride + len]
    }
}

/// How the source picture's samples are laid out.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Layout<'a> {
    /// Three planes; chroma is subsampled by `sub_x` x `sub_y` (each 1 or 2).
    /// I420 is `2 x 2`; decoded JPEGs may be 4:2:2 (`2 x 1`) or 4:4:4.
    Planar {
        y: PlaneView<'a>,
        cb: PlaneView<'a>,
        cr: PlaneView<'a>,
        sub_x: usize,
        sub_y: usize,
    },
    /// Luma only (a greyscale JPEG); chroma becomes neutral.
    Gray { y: PlaneView<'a> },
    /// Y plane plus interleaved CbCr at half resolution both ways.
    Nv12 { y: PlaneView<'a>, uv: PlaneView<'a> },
    /// Packed 4:2:2, `Y0 Cb Y1 Cr`.
    Yuyv { packed: PlaneView<'a> },
}

/// A source picture of `width` x `height` luma samples.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Source<'a> {
    pub width: usize,
    pub height: usize,
    pub layout: Layout<'a>,
}

/// Reusable I420 planes laid out the way the compressor's raw input wants.
#[derive(Debug, Default)]
pub(crate) struct PaddedI420 {
    pub y: Vec<u8>,
    pub cb: Vec<u8>,
    pub cr: Vec<u8>,
    /// Picture size after rotation.
    pub width: usize,
    pub height: usize,
    /// `width` rounded up to 8 (whole luma blocks).
    pub y_stride: usize,
    /// Chroma width rounded up to 8 (whole chroma blocks).
    pub c_stride: usize,
    /// `height` rounded up to 16 (whole MCU rows).
    pub y_rows: usize,
    /// `y_rows / 2`.
    pub c_rows: usize,
}

impl PaddedI420 {
    pub(crate) fn chroma_width(&self) -> usize {
        self.width.div_ceil(2)
    }

    pub(crate) fn chroma_height(&self) -> usize {
        self.height.div_ceil(2)
    }

    /// Sizes the planes for a `width` x `height` output picture, growing the
    /// buffers only when needed. Contents are left for `fill` to overwrite.
    fn prepare(&mut self, width: usize, height: usize) {
        self.width = width;
        self.height = height;
        self.y_stride = width.next_multiple_of(8);
        self.c_stride = width.div_ceil(2).next_multiple_of(8);
        self.y_rows = height.next_multiple_of(16);
        self.c_rows = self.y_rows / 2;
        self.y.resize(self.y_stride * self.y_rows, 0);
        self.cb.resize(self.c_stride * self.c_rows, 0);
        self.cr.resize(self.c_stride * self.c_rows, 0);
    }

    /// Converts, rotates and pads `src` into these planes.
    pub(crate) fn fill(&mut self, src: &Source<'_>, rot: Rotation) {
        let (w, h) = (src.width, src.height);
        let (ow, oh) = if rot.swaps_axes() { (h, w) } else { (w, h) };
        self.prepare(ow, oh);
        let (ocw, och) = (ow.div_ceil(2), oh.div_ceil(2));
        let (ys, cs) = (self.y_stride, self.c_stride);

        // Whole planes (and single channels of interleaved ones) go through
        // `rotate_samples`, which reads source rows sequentially whatever the
        // rotation; only resampled chroma needs the per-sample path.
        match src.layout {
            Layout::Planar {
                y,
                cb,
                cr,
                sub_x,
                sub_y,
            } => {
                rotate_samples(&mut self.y, ys, ow, oh, rot, Samples::plane(y));
                if sub_x == 2 && sub_y == 2 {
                    rotate_samples(&mut self.cb, cs, ocw, och, rot, Samples::plane(cb));
                    rotate_samples(&mut self.cr, cs, ocw, och, rot, Samples::plane(cr));
                } else {
                    let (fb, fr) = (
                        subsampled_fetch(cb, sub_x, sub_y, w, h),
                        subsampled_fetch(cr, sub_x, sub_y, w, h),
                    );
                    fill_rotated(&mut self.cb, cs, ocw, och, rot, fb);
                    fill_rotated(&mut self.cr, cs, ocw, och, rot, fr);
                }
            }
            Layout::Gray { y } => {
                rotate_samples(&mut self.y, ys, ow, oh, rot, Samples::plane(y));
                self.cb.fill(128);
                self.cr.fill(128);
            }
            Layout::Nv12 { y, uv } => {
                rotate_samples(&mut self.y, ys, ow, oh, rot, Samples::plane(y));
                if rot == Rotation::R0 {
                    // One pass over each CbCr row fills both planes.
                    for r in 0..och {
                        let src_row = uv.row(r, 2 * ocw);
                        let (db, dr) = (
                            &mut self.cb[r * cs..r * cs + ocw],
                            &mut self.cr[r * cs..r * cs + ocw],
                        );
                        for ((b, c), pair) in db
                            .iter_mut()
                            .zip(dr.iter_mut())
                            .zip(src_row.chunks_exact(2))
                        {
                            *b = pair[0];
                            *c = pair[1];
                        }
                    }
                } else {
                    let (cb, cr) = (Samples::channel(uv, 2, 0), Samples::channel(uv, 2, 1));
                    rotate_samples(&mut self.cb, cs, ocw, och, rot, cb);
                    rotate_samples(&mut self.cr, cs, ocw, och, rot, cr);
                }
            }
            Layout::Yuyv { packed } => {
                let row_bytes = 2 * w;
                let last_row = h - 1;
                // The chroma pair of column `cx` (of the virtual 4:2:0 plane),
                // averaged over the two source rows it covers. An odd width
                // leaves the last macropixel without Cr: reuse its neighbour's.
                let cb_at = move |cx: usize, r: usize| packed.at(4 * cx + 1, r);
                let cr_at = move |cx: usize, r: usize| {
                    let i = 4 * cx + 3;
                    if i < row_bytes {
                        packed.at(i, r)
                    } else if i >= 4 {
                        packed.at(i - 4, r)
                    } else {
                        packed.at(i - 2, r)
                    }
                };
                let avg = |a: u8, b: u8| ((a as u16 + b as u16 + 1) >> 1) as u8;
                let luma = Samples::channel(packed, 2, 0);
                rotate_samples(&mut self.y, ys, ow, oh, rot, luma);
                if rot == Rotation::R0 {
                    for r in 0..och {
                        let (r0, r1) = (2 * r, (2 * r + 1).min(last_row));
                        let (a, b) = (packed.row(r0, row_bytes), packed.row(r1, row_bytes));
                        let whole = w / 2;
                        let db = &mut self.cb[r * cs..r * cs + ocw];
                        let dr = &mut self.cr[r * cs..r * cs + ocw];
                        for (((b_out, r_out), pa), pb) in db
                            .iter_mut()
                            .zip(dr.iter_mut())
                            .zip(a.chunks_exact(4))
                            .zip(b.chunks_exact(4))
                            .take(whole)
                        {
                            *b_out = avg(pa[1], pb[1]);
                            *r_out = avg(pa[3], pb[3]);
                        }
                        for cx in whole..ocw {
                            db[cx] = avg(cb_at(cx, r0), cb_at(cx, r1));
                            dr[cx] = avg(cr_at(cx, r0), cr_at(cx, r1));
                        }
                    }
                } else {
                    let fetch_b = |cx: usize, cy: usize| {
                        avg(cb_at(cx, 2 * cy), cb_at(cx, (2 * cy + 1).min(last_row)))
                    };
                    let fetch_r = |cx: usize, cy: usize| {
                        avg(cr_at(cx, 2 * cy), cr_at(cx, (2 * cy + 1).min(last_row)))
                    };
                    fill_rotated(&mut self.cb, cs, ocw, och, rot, fetch_b);
                    fill_rotated(&mut self.cr, cs, ocw, och, rot, fetch_r);
                }
            }
        }
        pad_plane(&mut self.cb, cs, ocw, och, self.c_rows);
        pad_plane(&mut self.cr, cs, ocw, och, self.c_rows);
        pad_plane(&mut self.y, ys, ow, oh, self.y_rows);
    }
}

/// Samples of one source channel: `data[y * stride + x * step + first]`.
/// A whole plane has step 1; NV12's Cb is step 2 from 0, YUYV's Y step 2
/// from 0.
#[derive(Clone, Copy, Debug)]
struct Samples<'a> {
    plane: PlaneView<'a>,
    step: usize,
    first: usize,
}

impl<'a> Samples<'a> {
    fn plane(plane: PlaneView<'a>) -> Samples<'a> {
        Samples {
            plane,
            step: 1,
            first: 0,
        }
    }

    fn channel(plane: PlaneView<'a>, step: usize, first: usize) -> Samples<'a> {
        Samples { plane, step, first }
    }

    /// The bytes holding samples `x0..x1` of row `y`: every `step`th byte,
    /// starting with the first.
    #[inline(always)]
    fn run(&self, y: usize, x0: usize, x1: usize) -> &'a [u8] {
        let start = y * self.plane.stride + self.first + x0 * self.step;
        let len = (x1 - x0 - 1) * self.step + 1;
        &self.plane.data[start..start + len]
    }

    /// The 8x8 samples whose top-left is (`x`, `y`): one little-endian
    /// word per row, byte `c` of word `r` being sample (`x + c`, `y + r`).
    #[inline(always)]
    fn block8(&self, x: usize, y: usize) -> [u64; 8] {
        std::array::from_fn(|r| {
            let run = self.run(y + r, x, x + 8);
            let mut bytes = [0u8; 8];
            if self.step == 1 {
                bytes.copy_from_slice(&run[..8]);
            } else {
                for (o, c) in bytes.iter_mut().zip(run.chunks(self.step)) {
                    *o = c[0];
                }
            }
            u64::from_le_bytes(bytes)
        })
    }
}

/// Copies a `src_w` x `src_h` channel into `dst` rotated by `rot`, so the
/// `out_w` x `out_h` output is the source turned clockwise. Source rows are
/// always read front to back; for 90 and 270 degrees the writes go down
/// output columns one cache-sized tile at a time.
fn rotate_samples(
    dst: &mut [u8],
    dst_stride: usize,
    out_w: usize,
    out_h: usize,
    rot: Rotation,
    src: Samples<'_>,
) {
    if out_w == 0 || out_h == 0 {
        return;
    }
    let (src_w, src_h) = if rot.swaps_axes() {
        (out_h, out_w)
    } else {
        (out_w, out_h)
    };
    match rot {
        Rotation::R0 | Rotation::R180 => {
            for oy in 0..out_h {
                let row = &mut dst[oy * dst_stride..oy * dst_stride + out_w];
                let sy = if rot == Rotation::R0 {
                    oy
                } else {
                    src_h - 1 - oy
                };
                let run = src.run(sy, 0, src_w);
                // Plain slice iterators (never `step_by`, never reversing a
                // strided iterator) keep these loops vectorised. `chunks`
                // never yields an empty chunk, so `c[0]` exists.
                match (src.step, rot) {
                    (1, Rotation::R0) => row.copy_from_slice(run),
                    (1, _) => row
                        .iter_mut()
                        .zip(run.iter().rev())
                        .for_each(|(d, s)| *d = *s),
                    (step, Rotation::R0) => row
                        .iter_mut()
                        .zip(run.chunks(step))
                        .for_each(|(d, c)| *d = c[0]),
                    (step, _) => row
                        .iter_mut()
                        .rev()
                        .zip(run.chunks(step))
                        .for_each(|(d, c)| *d = c[0]),
                }
            }
        }
        Rotation::R90 | Rotation::R270 => {
            let cw = rot == Rotation::R90;
            // Whole 8x8 blocks, transposed in registers, walked tile by tile
            // so the output rows a tile writes stay in L1 until complete.
            let (bw, bh) = (src_w / 8 * 8, src_h / 8 * 8);
            for ty in (0..bh).step_by(TILE_PX) {
                for tx in (0..bw).step_by(TILE_PX) {
                    for by in (ty..(ty + TILE_PX).min(bh)).step_by(8) {
                        for bx in (tx..(tx + TILE_PX).min(bw)).step_by(8) {
                            // columns[c] byte k = source (bx + c, by + k).
                            let columns = transpose8(src.block8(bx, by));
                            for (c, col) in columns.into_iter().enumerate() {
                                let (o, out) = if cw {
                                    // Source (sx, sy) lands at (src_h - 1 - sy, sx).
                                    ((bx + c) * dst_stride + src_h - 8 - by, col.swap_bytes())
                                } else {
                                    // Source (sx, sy) lands at (sy, src_w - 1 - sx).
                                    ((src_w - 1 - bx - c) * dst_stride + by, col)
                                };
                                dst[o..o + 8].copy_from_slice(&out.to_le_bytes());
                            }
                        }
                    }
                }
            }
            // The right and bottom strips that do not fill a block.
            let mut put = |sx: usize, sy: usize, v: u8| {
                let (ox, oy) = if cw {
                    (src_h - 1 - sy, sx)
                } else {
                    (sy, src_w - 1 - sx)
                };
                dst[oy * dst_stride + ox] = v;
            };
            for sy in 0..src_h {
                let from = if sy < bh { bw } else { 0 };
                if from < src_w {
                    for (i, c) in src.run(sy, from, src_w).chunks(src.step).enumerate() {
                        put(from + i, sy, c[0]);
                    }
                }
            }
        }
    }
}

/// Transposes an 8x8 byte matrix held as one little-endian word per row:
/// afterwards byte `k` of word `c` is what byte `c` of word `k` was.
/// Three rounds swap 1-, 2- and 4-byte sub-blocks across the diagonal.
#[inline(always)]
fn transpose8(mut m: [u64; 8]) -> [u64; 8] {
    for (shift, mask, pairs) in [
        (
            8,
            0x00FF_00FF_00FF_00FFu64,
            [(0, 1), (2, 3), (4, 5), (6, 7)],
        ),
        (16, 0x0000_FFFF_0000_FFFF, [(0, 2), (1, 3), (4, 6), (5, 7)]),
        (32, 0x0000_0000_FFFF_FFFF, [(0, 4), (1, 5), (2, 6), (3, 7)]),
    ] {
        for (a, b) in pairs {
            let t = ((m[a] >> shift) ^ m[b]) & mask;
            m[b] ^= t;
            m[a] ^= t << shift;
        }
    }
    m
}

/// A fetch function over a chroma plane subsampled `sub_x` x `sub_y` that
/// reads it as a 4:2:0 plane of a `w` x `h` picture, averaging the two
/// samples a full-resolution axis has per 4:2:0 sample.
fn subsampled_fetch(
    p: PlaneView<'_>,
    sub_x: usize,
    sub_y: usize,
    w: usize,
    h: usize,
) -> impl Fn(usize, usize) -> u8 + '_ {
    // Size of the source chroma plane in samples.
    let (pw, ph) = (w.div_ceil(sub_x), h.div_ceil(sub_y));
    move |cx, cy| {
        let (x0, x1) = if sub_x == 2 {
            (cx, cx)
        } else {
            (2 * cx, (2 * cx + 1).min(pw - 1))
        };
        let (y0, y1) = if sub_y == 2 {
            (cy, cy)
        } else {
            (2 * cy, (2 * cy + 1).min(ph - 1))
        };
        let sum =
            p.at(x0, y0) as u16 + p.at(x1, y0) as u16 + p.at(x0, y1) as u16 + p.at(x1, y1) as u16;
        ((sum + 2) >> 2) as u8
    }
}

/// Side of the square tiles the rotated copy walks, so the source rows a
/// tile touches stay in cache while its columns are read.
const TILE_PX: usize = 32;

/// Fills the `out_w` x `out_h` area of `dst` with `fetch(sx, sy)` of the
/// source position that lands at each output position under `rot`.
fn fill_rotated(
    dst: &mut [u8],
    dst_stride: usize,
    out_w: usize,
    out_h: usize,
    rot: Rotation,
    fetch: impl Fn(usize, usize) -> u8,
) {
    let (src_w, src_h) = if rot.swaps_axes() {
        (out_h, out_w)
    } else {
        (out_w, out_h)
    };
    match rot {
        Rotation::R0 => fill_tiled(dst, dst_stride, out_w, out_h, &fetch),
        Rotation::R90 => fill_tiled(dst, dst_stride, out_w, out_h, |ox, oy| {
            fetch(oy, src_h - 1 - ox)
        }),
        Rotation::R180 => fill_tiled(dst, dst_stride, out_w, out_h, |ox, oy| {
            fetch(src_w - 1 - ox, src_h - 1 - oy)
        }),
        Rotation::R270 => fill_tiled(dst, dst_stride, out_w, out_h, |ox, oy| {
            fetch(src_w - 1 - oy, ox)
        }),
    }
}

#[inline(always)]
fn fill_tiled(
    dst: &mut [u8],
    dst_stride: usize,
    out_w: usize,
    out_h: usize,
    at: impl Fn(usize, usize) -> u8,
) {
    for ty in (0..out_h).step_by(TILE_PX) {
        for tx in (0..out_w).step_by(TILE_PX) {
            let x_end = (tx + TILE_PX).min(out_w);
            for oy in ty..(ty + TILE_PX).min(out_h) {
                let row = &mut dst[oy * dst_stride + tx..oy * dst_stride + x_end];
                for (i, d) in row.iter_mut().enumerate() {
                    *d = at(tx + i, oy);
                }
            }
        }
    }
}

/// Replicates the last column into the stride padding and the last row
/// into the padding rows.
fn pad_plane(plane: &mut [u8], stride: usize, w: usize, h: usize, rows: usize) {
    if w == 0 || h == 0 {
        return;
    }
    if w < stride {
        for r in 0..h {
            let row = &mut plane[r * stride..(r + 1) * stride];
            let edge = row[w - 1];
            row[w..].fill(edge);
        }
    }
    let last = (h - 1) * stride;
    for r in h..rows {
        plane.copy_within(last..last + stride, r * stride);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 5x3 I420 picture with distinct luma values `10 * y + x`.
    fn luma_5x3() -> Vec<u8> {
        (0..3)
            .flat_map(|y| (0..5).map(move |x| (10 * y + x) as u8))
            .collect()
    }

    fn fill_gray(rot: Rotation) -> PaddedI420 {
        let y = luma_5x3();
        let src = Source {
            width: 5,
            height: 3,
            layout: Layout::Gray {
                y: PlaneView {
                    data: &y,
                    stride: 5,
                },
            },
        };
        let mut p = PaddedI420::default();
        p.fill(&src, rot);
        p
    }

    fn luma_at(p: &PaddedI420, x: usize, y: usize) -> u8 {
        p.y[y * p.y_stride + x]
    }

    #[test]
    fn rotation_maps_corners_clockwise() {
        let p = fill_gray(Rotation::R0);
        assert_eq!((p.width, p.height, p.y_stride, p.y_rows), (5, 3, 8, 16));
        assert_eq!(luma_at(&p, 4, 2), 24);

        // Clockwise 90: the source's bottom-left corner becomes top-left.
        let p = fill_gray(Rotation::R90);
        assert_eq!((p.width, p.height), (3, 5));
        assert_eq!(luma_at(&p, 0, 0), 20);
        assert_eq!(luma_at(&p, 2, 0), 0);
        assert_eq!(luma_at(&p, 2, 4), 4);

        let p = fill_gray(Rotation::R180);
        assert_eq!(luma_at(&p, 0, 0), 24);
        assert_eq!(luma_at(&p, 4, 2), 0);

        // Clockwise 270: the source's top-right corner becomes top-left.
        let p = fill_gray(Rotation::R270);
        assert_eq!((p.width, p.height), (3, 5));
        assert_eq!(luma_at(&p, 0, 0), 4);
        assert_eq!(luma_at(&p, 0, 4), 0);
    }

    #[test]
    fn transpose8_swaps_rows_and_columns() {
        let m: [u64; 8] = std::array::from_fn(|r| {
            u64::from_le_bytes(std::array::from_fn(|c| (10 * r + c) as u8))
        });
        let t = transpose8(m);
        for (c, word) in t.iter().enumerate() {
            let expected: [u8; 8] = std::array::from_fn(|k| (10 * k + c) as u8);
            assert_eq!(word.to_le_bytes(), expected, "column {c}");
        }
    }

    #[test]
    fn rotating_large_planes_matches_per_pixel_mapping() {
        // Big enough for whole 8x8 blocks plus ragged right and bottom
        // strips; every pixel must land where the clockwise turn puts it.
        let (w, h) = (45, 21);
        let luma: Vec<u8> = (0..w * h).map(|i| (i * 7 % 251) as u8).collect();
        let src = Source {
            width: w,
            height: h,
            layout: Layout::Gray {
                y: PlaneView {
                    data: &luma,
                    stride: w,
                },
            },
        };
        for rot in [Rotation::R90, Rotation::R180, Rotation::R270] {
            let mut p = PaddedI420::default();
            p.fill(&src, rot);
            for oy in 0..p.height {
                for ox in 0..p.width {
                    let (sx, sy) = match rot {
                        Rotation::R90 => (oy, h - 1 - ox),
                        Rotation::R180 => (w - 1 - ox, h - 1 - oy),
                        _ => (w - 1 - oy, ox),
                    };
                    assert_eq!(
                        luma_at(&p, ox, oy),
                        luma[sy * w + sx],
                        "{rot:?} at ({ox}, {oy})"
                    );
                }
            }
        }
    }

    #[test]
    fn padding_replicates_edges() {
        let p = fill_gray(Rotation::R0);
        // Columns 5..8 repeat column 4; rows 3..16 repeat row 2.
        assert_eq!(&p.y[0..8], &[0, 1, 2, 3, 4, 4, 4, 4]);
        assert_eq!(&p.y[15 * 8..16 * 8], &[20, 21, 22, 23, 24, 24, 24, 24]);
        assert!(p.cb.iter().all(|&v| v == 128));
        assert_eq!(p.cb.len(), p.c_stride * p.c_rows);
        assert_eq!(p.c_rows, 8);
    }

    #[test]
    fn yuyv_chroma_is_averaged_over_row_pairs() {
        // 4x2 YUYV: row 0 chroma (100, 200), row 1 chroma (110, 210).
        let packed = [
            1, 100, 2, 200, 3, 100, 4, 200, //
            5, 110, 6, 210, 7, 110, 8, 210,
        ];
        let src = Source {
            width: 4,
            height: 2,
            layout: Layout::Yuyv {
                packed: PlaneView {
                    data: &packed,
                    stride: 8,
                },
            },
        };
        let mut p = PaddedI420::default();
        p.fill(&src, Rotation::R0);
        assert_eq!(&p.y[0..4], &[1, 2, 3, 4]);
        assert_eq!(&p.y[8..12], &[5, 6, 7, 8]);
        assert_eq!(&p.cb[0..2], &[105, 105]);
        assert_eq!(&p.cr[0..2], &[205, 205]);
        let mut q = PaddedI420::default();
        q.fill(&src, Rotation::R180);
        assert_eq!(&q.y[0..4], &[8, 7, 6, 5]);
        assert_eq!(&q.cb[0..2], &[105, 105]);
    }
}
