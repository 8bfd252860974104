//! The burned-in timestamp: white 8x8 bitmap-font text on an opaque dark box
//! in the top-left corner, drawn straight into the (already rotated) scratch
//! planes so the text is always upright.
//!
//! Only the box is touched: it is filled dark in luma and neutral in chroma
//! (so the text stays white on a coloured scene), then the set glyph pixels
//! are painted. Everything outside [`TextBox`] is left exactly as it was.

use super::yuv::PaddedI420;

/// Glyph cell size of the font, before scaling.
const GLYPH_PX: usize = 8;
/// Frame height that gets one font pixel per glyph pixel; the scale grows by
/// one for every further multiple (720p -> 3, 1080p -> 4).
const HEIGHT_PER_SCALE_PX: usize = 240;
/// Distance of the box from the picture's top and left edges, in font pixels.
const MARGIN_FONT_PX: usize = 4;
/// Dark border around the text inside the box, in font pixels.
const PADDING_FONT_PX: usize = 1;
const BOX_LUMA: u8 = 16;
const TEXT_LUMA: u8 = 235;
const NEUTRAL_CHROMA: u8 = 128;

/// The area of the picture the overlay covers, already clipped to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TextBox {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
    /// Picture pixels per font pixel.
    pub scale: usize,
}

/// Where `chars` characters of text go on a `width` x `height` picture, or
/// `None` when the picture is too small to show any of it.
pub(crate) fn text_box(width: usize, height: usize, chars: usize) -> Option<TextBox> {
    let scale = (height / HEIGHT_PER_SCALE_PX).max(1);
    let margin = MARGIN_FONT_PX * scale;
    let pad = PADDING_FONT_PX * scale;
    if margin >= width || margin >= height || chars == 0 {
        return None;
    }
    let w = (chars * GLYPH_PX * scale + 2 * pad).min(width - margin);
    let h = (GLYPH_PX * scale + 2 * pad).min(height - margin);
    Some(TextBox {
        x: margin,
        y: margin,
        w,
        h,
        scale,
    })
}

/// Draws `text` (ASCII; other characters show as blanks) onto `planes`.
/// Returns the area touched.
pub(crate) fn draw_text(planes: &mut PaddedI420, text: &str) -> Option<TextBox> {
    let b = text_box(planes.width, planes.height, text.chars().count())?;
    let ys = planes.y_stride;

    for r in b.y..b.y + b.h {
        planes.y[r * ys + b.x..r * ys + b.x + b.w].fill(BOX_LUMA);
    }
    let cs = planes.c_stride;
    let (cx0, cx1) = (b.x / 2, (b.x + b.w).div_ceil(2).min(planes.chroma_width()));
    let (cy0, cy1) = (b.y / 2, (b.y + b.h).div_ceil(2).min(planes.chroma_height()));
    for r in cy0..cy1 {
        planes.cb[r * cs + cx0..r * cs + cx1].fill(NEUTRAL_CHROMA);
        planes.cr[r * cs + cx0..r * cs + cx1].fill(NEUTRAL_CHROMA);
    }

    let s = b.scale;
    let pad = PADDING_FONT_PX * s;
    let (x_end, y_end) = (b.x + b.w, b.y + b.h);
    for (i, ch) in text.chars().enumerate() {
        let glyph = match font8x8::legacy::BASIC_LEGACY.get(ch as usize) {
            Some(g) => g,
            None => continue,
        };
        let gx0 = b.x + pad + i * GLYPH_PX * s;
        if gx0 >= x_end {
            break;
        }
        for (gy, bits) in glyph.iter().enumerate() {
            if *bits == 0 {
                continue;
            }
            let py0 = b.y + pad + gy * s;
            let py1 = (py0 + s).min(y_end);
            for gx in 0..GLYPH_PX {
                // font8x8 stores the leftmost pixel in the lowest bit.
                if bits >> gx & 1 == 0 {
                    continue;
                }
                let px0 = gx0 + gx * s;
                let px1 = (px0 + s).min(x_end);
                if px0 >= px1 {
                    continue;
                }
                for py in py0..py1 {
                    planes.y[py * ys + px0..py * ys + px1].fill(TEXT_LUMA);
                }
            }
        }
    }
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_scales_with_height_and_is_clipped() {
        let b = text_box(1920, 1080, 23).unwrap();
        assert_eq!(b.scale, 4);
        assert_eq!((b.x, b.y), (16, 16));
        assert_eq!((b.w, b.h), (23 * 32 + 8, 40));

        let b = text_box(320, 240, 23).unwrap();
        assert_eq!((b.scale, b.w, b.h), (1, 23 * 8 + 2, 10));

        // Narrow picture: the box stops at the right edge.
        let b = text_box(64, 48, 23).unwrap();
        assert_eq!(b.x + b.w, 64);

        assert_eq!(text_box(3, 3, 23), None);
    }
}
