//! Round trips through a real JPEG decoder (mozjpeg, in process).

use super::*;
use crate::frame::{CaptureTime, Plane};

const DARK: u8 = 40;
const BRIGHT: u8 = 200;
const CB: u8 = 90;
const CR: u8 = 170;
/// 2025-11-21T10:00:00Z
const WALL_NS: i64 = 1_763_719_200_000_000_000;

fn settings(rotation: u16, embed_timestamp: bool) -> EncoderSettings {
    EncoderSettings {
        quality: 90,
        rotation,
        embed_timestamp,
    }
}

/// Left half dark, right half bright; uniform chroma (CB, CR).
fn halves_luma(x: usize, w: usize) -> u8 {
    if x < w / 2 {
        DARK
    } else {
        BRIGHT
    }
}

fn captured() -> CaptureTime {
    CaptureTime {
        mono_ns: 1,
        wall_ns: WALL_NS,
    }
}

/// An I420 frame whose rows are `pad` bytes longer than the picture.
fn i420_frame(w: usize, h: usize, pad: usize, luma: impl Fn(usize, usize) -> u8) -> VideoFrame {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (ys, cs) = (w + pad, cw + pad);
    let mut data = vec![0xEE; ys * h + 2 * cs * ch];
    for y in 0..h {
        for x in 0..w {
            data[y * ys + x] = luma(x, y);
        }
    }
    let (cb_off, cr_off) = (ys * h, ys * h + cs * ch);
    for y in 0..ch {
        for x in 0..cw {
            data[cb_off + y * cs + x] = CB;
            data[cr_off + y * cs + x] = CR;
        }
    }
    VideoFrame {
        format: PixelFormat::I420,
        width: w as u32,
        height: h as u32,
        planes: vec![
            Plane {
                offset: 0,
                stride: ys,
            },
            Plane {
                offset: cb_off,
                stride: cs,
            },
            Plane {
                offset: cr_off,
                stride: cs,
            },
        ],
        data: Box::new(data),
        captured: captured(),
        rotated_by_camera: 0,
    }
}

fn nv12_frame(w: usize, h: usize, pad: usize) -> VideoFrame {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let stride = 2 * cw + pad;
    // The chroma plane starts at an aligned offset after some slack, as
    // camera buffers often do.
    let uv_off = stride * h + 64;
    let mut data = vec![0xEE; uv_off + stride * ch];
    for y in 0..h {
        for x in 0..w {
            data[y * stride + x] = halves_luma(x, w);
        }
    }
    for y in 0..ch {
        for x in 0..cw {
            data[uv_off + y * stride + 2 * x] = CB;
            data[uv_off + y * stride + 2 * x + 1] = CR;
        }
    }
    VideoFrame {
        format: PixelFormat::Nv12,
        width: w as u32,
        height: h as u32,
        planes: vec![
            Plane { offset: 0, stride },
            Plane {
                offset: uv_off,
                stride,
            },
        ],
        data: Box::new(data),
        captured: captured(),
        rotated_by_camera: 0,
    }
}

fn yuyv_frame(w: usize, h: usize) -> VideoFrame {
    let mut data = vec![0u8; 2 * w * h];
    for y in 0..h {
        for x in 0..w {
            let i = y * 2 * w + 2 * x;
            data[i] = halves_luma(x, w);
            data[i + 1] = if x % 2 == 0 { CB } else { CR };
        }
    }
    VideoFrame::packed(PixelFormat::Yuyv, w as u32, h as u32, data, captured())
}

fn jpeg_frame(jpeg: Vec<u8>, w: usize, h: usize) -> VideoFrame {
    VideoFrame::packed(PixelFormat::Jpeg, w as u32, h as u32, jpeg, captured())
}

/// A decoded picture: full-resolution Y, Cb, Cr.
struct Decoded {
    w: usize,
    h: usize,
    ycc: Vec<u8>,
}

impl Decoded {
    fn of(jpeg: &[u8]) -> Decoded {
        let d = Decompress::new_mem(jpeg).expect("header");
        let mut s = d.to_colorspace(ColorSpace::JCS_YCbCr).expect("start");
        let (w, h) = (s.width(), s.height());
        let ycc: Vec<u8> = s.read_scanlines().expect("scanlines");
        s.finish().expect("finish");
        assert_eq!(ycc.len(), w * h * 3);
        Decoded { w, h, ycc }
    }

    fn at(&self, x: usize, y: usize, c: usize) -> u8 {
        self.ycc[(y * self.w + x) * 3 + c]
    }

    /// Mean of component `c` over `[x0, x1) x [y0, y1)`.
    fn mean(&self, c: usize, x0: usize, x1: usize, y0: usize, y1: usize) -> f64 {
        let mut sum = 0u64;
        for y in y0..y1 {
            for x in x0..x1 {
                sum += self.at(x, y, c) as u64;
            }
        }
        sum as f64 / ((x1 - x0) * (y1 - y0)) as f64
    }
}

fn near(actual: f64, expected: u8, what: &str) {
    assert!(
        (actual - expected as f64).abs() < 8.0,
        "{what}: mean {actual:.1}, expected about {expected}"
    );
}

/// Checks that a halves frame encoded under `rotation` has its bright half
/// where the clockwise rotation puts the source's right half.
fn assert_halves(img: &EncodedImage, src_w: usize, src_h: usize, rotation: u16) {
    let d = Decoded::of(&img.jpeg);
    let (ow, oh) = output_size(src_w as u32, src_h as u32, rotation);
    assert_eq!(
        (d.w, d.h),
        (ow as usize, oh as usize),
        "rotation {rotation}"
    );
    assert_eq!((img.width, img.height), (ow, oh));
    let (w, h) = (d.w, d.h);
    // Stay 4 px clear of the edge between the halves (JPEG blurs it).
    let (lo_w, hi_w) = (w / 2 - 4, w / 2 + 4);
    let (lo_h, hi_h) = (h / 2 - 4, h / 2 + 4);
    let (first, second) = match rotation {
        0 => (d.mean(0, 0, lo_w, 0, h), d.mean(0, hi_w, w, 0, h)), // left, right
        180 => (d.mean(0, hi_w, w, 0, h), d.mean(0, 0, lo_w, 0, h)), // right, left
        90 => (d.mean(0, 0, w, 0, lo_h), d.mean(0, 0, w, hi_h, h)), // top, bottom
        _ => (d.mean(0, 0, w, hi_h, h), d.mean(0, 0, w, 0, lo_h)), // bottom, top
    };
    near(first, DARK, &format!("dark half at rotation {rotation}"));
    near(
        second,
        BRIGHT,
        &format!("bright half at rotation {rotation}"),
    );
    near(d.mean(1, 0, w, 0, h), CB, "Cb");
    near(d.mean(2, 0, w, 0, h), CR, "Cr");
}

fn encode(frame: &VideoFrame, rotation: u16) -> EncodedImage {
    JpegEncoder::new(settings(rotation, false))
        .encode(frame)
        .unwrap_or_else(|e| panic!("{} rotation {rotation}: {e}", frame.format))
}

#[test]
fn i420_halves_survive_every_rotation() {
    for (w, h) in [(64, 48), (67, 45)] {
        let frame = i420_frame(w, h, 0, |x, _| halves_luma(x, w));
        for rot in [0, 90, 180, 270] {
            let img = encode(&frame, rot);
            assert!(!img.passthrough);
            assert_halves(&img, w, h, rot);
        }
    }
}

#[test]
fn i420_with_strided_rows_reads_only_the_picture() {
    // Row padding is filled with 0xEE; any of it leaking in would show.
    let frame = i420_frame(67, 45, 13, |x, _| halves_luma(x, 67));
    for rot in [0, 90, 180, 270] {
        assert_halves(&encode(&frame, rot), 67, 45, rot);
    }
}

#[test]
fn nv12_with_stride_wider_than_picture_round_trips() {
    for (w, h) in [(64, 48), (67, 45)] {
        let frame = nv12_frame(w, h, 32);
        for rot in [0, 90, 180, 270] {
            assert_halves(&encode(&frame, rot), w, h, rot);
        }
    }
}

#[test]
fn rotation_the_camera_already_did_is_not_done_again() {
    // A libcamera frame turned 180 degrees by the ISP: its picture is
    // already upside down, so a 180 setting leaves it as it is and 270
    // turns it only by the remaining 90.
    let (w, h) = (64, 48);
    let mut frame = nv12_frame(w, h, 0);
    frame.rotated_by_camera = 180;
    assert_halves(&encode(&frame, 180), w, h, 0);
    assert_halves(&encode(&frame, 270), w, h, 90);
}

#[test]
fn yuyv_round_trips() {
    for (w, h) in [(64, 48), (67, 45)] {
        let frame = yuyv_frame(w, h);
        for rot in [0, 90, 180, 270] {
            assert_halves(&encode(&frame, rot), w, h, rot);
        }
    }
}

#[test]
fn fine_detail_lands_on_the_right_pixels() {
    // A single bright 8x8 square near the top-left corner of a dark frame
    // must end up in the matching corner after each rotation.
    let (w, h) = (64, 48);
    let frame = i420_frame(w, h, 5, |x, y| {
        if (8..16).contains(&x) && (8..16).contains(&y) {
            BRIGHT
        } else {
            DARK
        }
    });
    for (rot, (x0, y0)) in [(0, (8, 8)), (90, (32, 8)), (180, (48, 32)), (270, (8, 48))] {
        let d = Decoded::of(&encode(&frame, rot).jpeg);
        near(
            d.mean(0, x0 + 2, x0 + 6, y0 + 2, y0 + 6),
            BRIGHT,
            &format!("square at {rot}"),
        );
    }
}

#[test]
fn jpeg_without_changes_passes_through_byte_for_byte() {
    let raw = i420_frame(64, 48, 0, |x, _| halves_luma(x, 64));
    let jpeg = encode(&raw, 0).jpeg;
    let mut enc = JpegEncoder::new(settings(0, false));

    let out = enc.encode(&jpeg_frame(jpeg.clone(), 64, 48)).unwrap();
    assert!(out.passthrough);
    assert_eq!(out.jpeg, jpeg);
    assert_eq!((out.width, out.height), (64, 48));

    // Zero padding after EOI, as some UVC cameras deliver, is kept as is.
    let mut padded = jpeg.clone();
    padded.extend_from_slice(&[0; 100]);
    let out = enc.encode(&jpeg_frame(padded.clone(), 64, 48)).unwrap();
    assert_eq!(out.jpeg, padded);
}

#[test]
fn truncated_or_foreign_jpeg_is_rejected_with_the_reason() {
    let raw = i420_frame(64, 48, 0, |x, _| halves_luma(x, 64));
    let jpeg = encode(&raw, 0).jpeg;
    let mut enc = JpegEncoder::new(settings(0, false));

    let cut = jpeg[..jpeg.len() - 10].to_vec();
    let err = enc
        .encode(&jpeg_frame(cut, 64, 48))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not end with FF D9"), "{err}");
    assert!(err.contains(&format!("{} bytes", jpeg.len() - 10)), "{err}");

    let err = enc.encode(&jpeg_frame(vec![0x89, b'P', b'N', b'G', 0, 0], 64, 48));
    let err = err.unwrap_err().to_string();
    assert!(
        err.contains("does not start with FF D8 (starts with 89 50)"),
        "{err}"
    );

    let err = enc
        .encode(&jpeg_frame(vec![0xFF, 0xD8], 64, 48))
        .unwrap_err();
    assert!(matches!(err, EncodeError::NotJpeg { len: 2, .. }), "{err}");
}

#[test]
fn jpeg_input_is_reencoded_when_rotated() {
    let raw = i420_frame(67, 45, 0, |x, _| halves_luma(x, 67));
    let jpeg = encode(&raw, 0).jpeg;
    for rot in [90, 180, 270] {
        let mut enc = JpegEncoder::new(settings(rot, false));
        let out = enc.encode(&jpeg_frame(jpeg.clone(), 67, 45)).unwrap();
        assert!(!out.passthrough);
        assert_halves(&out, 67, 45, rot);
    }
}

/// A 4:2:2 JPEG, as UVC webcams send, made from RGB scanlines.
fn jpeg_422(w: usize, h: usize) -> Vec<u8> {
    let mut c = Compress::new(ColorSpace::JCS_RGB);
    c.set_fastest_defaults();
    c.set_size(w, h);
    c.set_quality(95.0);
    c.set_chroma_sampling_pixel_sizes((2, 1), (2, 1));
    let mut rgb = Vec::with_capacity(w * h * 3);
    for _y in 0..h {
        for x in 0..w {
            let v = halves_luma(x, w);
            rgb.extend_from_slice(&[v, v, v]);
        }
    }
    let mut s = c.start_compress(Vec::new()).unwrap();
    s.write_scanlines(&rgb).unwrap();
    s.finish().unwrap()
}

#[test]
fn jpeg_422_input_is_reencoded_with_rotation() {
    let (w, h) = (66, 46);
    let jpeg = jpeg_422(w, h);
    let luma_v = Decompress::new_mem(&jpeg).unwrap().components()[0].v_samp_factor;
    assert_eq!(luma_v, 1, "fixture should be 4:2:2");
    let mut enc = JpegEncoder::new(settings(180, false));
    let out = enc.encode(&jpeg_frame(jpeg, w, h)).unwrap();
    let dec = Decoded::of(&out.jpeg);
    assert_eq!((dec.w, dec.h), (w, h));
    near(dec.mean(0, 0, w / 2 - 4, 0, h), BRIGHT, "left after 180");
    near(dec.mean(0, w / 2 + 4, w, 0, h), DARK, "right after 180");
    near(dec.mean(1, 0, w, 0, h), 128, "grey Cb");
}

#[test]
fn undecodable_jpeg_is_an_error_not_a_panic() {
    let mut garbage = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x03, 0x42];
    garbage.extend_from_slice(&[0x17; 40]);
    garbage.extend_from_slice(&[0xFF, 0xD9]);
    let mut enc = JpegEncoder::new(settings(90, false));
    let err = enc.encode(&jpeg_frame(garbage, 64, 48)).unwrap_err();
    assert!(matches!(err, EncodeError::Decode { len: 49, .. }), "{err}");
    assert!(err.to_string().contains("could not be decoded"), "{err}");
}

#[test]
fn timestamp_changes_only_the_top_left_box() {
    let (w, h) = (320, 240);
    // A smooth diagonal gradient, so every block has content.
    let frame = i420_frame(w, h, 0, |x, y| (30 + (x + y) / 3) as u8);
    let plain = Decoded::of(
        &JpegEncoder::new(settings(0, false))
            .encode(&frame)
            .unwrap()
            .jpeg,
    );
    let stamped = Decoded::of(
        &JpegEncoder::new(settings(0, true))
            .encode(&frame)
            .unwrap()
            .jpeg,
    );

    let b = overlay::text_box(w, h, format_overlay(WALL_NS).len()).unwrap();
    let diff = |x: usize, y: usize| (plain.at(x, y, 0) as i32 - stamped.at(x, y, 0) as i32).abs();

    let mut inside = 0u64;
    for y in b.y..b.y + b.h {
        for x in b.x..b.x + b.w {
            inside += diff(x, y) as u64;
        }
    }
    let inside_mean = inside as f64 / (b.w * b.h) as f64;
    assert!(
        inside_mean > 20.0,
        "overlay barely visible: mean luma change {inside_mean:.1}"
    );

    // Outside the 16x16 blocks the box touches, the picture is identical.
    let (x_end, y_end) = (
        (b.x + b.w).next_multiple_of(16),
        (b.y + b.h).next_multiple_of(16),
    );
    for y in 0..h {
        for x in 0..w {
            if x < x_end && y < y_end {
                continue;
            }
            assert!(
                diff(x, y) <= 1,
                "luma changed at ({x}, {y}) outside the overlay"
            );
        }
    }
}

#[test]
fn timestamp_is_upright_after_rotation() {
    // The box is drawn on the rotated picture: for a 90 degree rotation of
    // a 240x320 frame it is as wide as on an unrotated 320x240 one.
    let frame = i420_frame(240, 320, 0, |_, _| 128);
    let out = JpegEncoder::new(settings(90, true)).encode(&frame).unwrap();
    let d = Decoded::of(&out.jpeg);
    assert_eq!((d.w, d.h), (320, 240));
    let b = overlay::text_box(320, 240, 23).unwrap();
    // The padding row above the text is pure box colour.
    let box_row = d.mean(0, b.x + 2, b.x + b.w - 2, b.y, b.y + 1);
    assert!(box_row < 40.0, "box row mean {box_row:.1}");
    // Some glyph pixels are bright.
    let bright = (b.y..b.y + b.h)
        .flat_map(|y| (b.x..b.x + b.w).map(move |x| (x, y)))
        .filter(|&(x, y)| d.at(x, y, 0) > 180)
        .count();
    assert!(bright > 100, "only {bright} bright pixels in the box");
}

#[test]
fn short_buffer_error_names_format_size_and_bytes() {
    let mut frame = VideoFrame::packed(PixelFormat::Nv12, 1280, 720, vec![0; 1000], captured());
    frame.data = Box::new(vec![0u8; 1000]);
    let err = JpegEncoder::new(settings(0, false))
        .encode(&frame)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "frame buffer too small: NV12 1280x720 needs 1382400 bytes, got 1000"
    );
}

#[test]
fn bad_plane_descriptions_are_errors() {
    let mut frame = i420_frame(64, 48, 0, |_, _| 0);
    frame.planes[1].stride = 10;
    let err = JpegEncoder::new(settings(0, false))
        .encode(&frame)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Cb plane stride 10 is shorter than its row of 32 bytes"),
        "{err}"
    );

    frame.planes.truncate(2);
    let err = JpegEncoder::new(settings(0, false))
        .encode(&frame)
        .unwrap_err();
    assert!(
        matches!(
            err,
            EncodeError::PlaneCount {
                expected: 3,
                got: 2,
                ..
            }
        ),
        "{err}"
    );

    let mut frame = i420_frame(64, 48, 0, |_, _| 0);
    frame.planes[2].offset = usize::MAX - 4;
    let err = JpegEncoder::new(settings(0, false))
        .encode(&frame)
        .unwrap_err();
    assert!(matches!(err, EncodeError::FrameTooSmall { .. }), "{err}");

    let frame = VideoFrame::packed(PixelFormat::I420, 0, 48, Vec::new(), captured());
    let err = JpegEncoder::new(settings(0, false))
        .encode(&frame)
        .unwrap_err();
    assert!(
        matches!(err, EncodeError::BadSize { width: 0, .. }),
        "{err}"
    );
}

#[test]
fn unknown_rotation_is_rejected() {
    let frame = i420_frame(16, 16, 0, |_, _| 0);
    let err = JpegEncoder::new(settings(45, false))
        .encode(&frame)
        .unwrap_err();
    assert_eq!(err.to_string(), "rotation 45 is not one of 0, 90, 180, 270");
}

#[test]
fn scratch_planes_are_reused_across_sizes() {
    let mut enc = JpegEncoder::new(settings(90, true));
    for (w, h) in [(64, 48), (17, 9), (1, 1), (67, 45), (2, 3)] {
        let frame = i420_frame(w, h, 3, |x, _| halves_luma(x, w));
        let out = enc.encode(&frame).unwrap();
        let d = Decoded::of(&out.jpeg);
        assert_eq!((d.w, d.h), (h, w));
    }
}

#[test]
fn mjpeg_scale_maps_monotonically_into_range() {
    assert_eq!(quality_from_mjpeg_scale(2), 95);
    assert_eq!(quality_from_mjpeg_scale(31), 20);
    // The table in the doc comment.
    for (mjpeg, quality) in [
        (3, 92),
        (5, 87),
        (8, 79),
        (10, 74),
        (15, 61),
        (20, 48),
        (25, 36),
    ] {
        assert_eq!(
            quality_from_mjpeg_scale(mjpeg),
            quality,
            "mjpeg_quality {mjpeg}"
        );
    }
    // Out-of-range values clamp to the ends.
    assert_eq!(quality_from_mjpeg_scale(0), 95);
    assert_eq!(quality_from_mjpeg_scale(255), 20);
    let mut prev = u8::MAX;
    for q in 2..=31 {
        let mapped = quality_from_mjpeg_scale(q);
        assert!((1..=100).contains(&mapped), "{q} -> {mapped}");
        assert!(mapped < prev, "{q} -> {mapped} is not below {prev}");
        prev = mapped;
    }
}

#[test]
fn settings_come_from_the_camera_config() {
    let mut cam = CameraConfig::synthetic("front");
    cam.jpeg_quality = 60;
    cam.rotation = 270;
    cam.embed_timestamp = false;
    let s = EncoderSettings::from_camera(&cam);
    assert_eq!(
        s,
        EncoderSettings {
            quality: 60,
            rotation: 270,
            embed_timestamp: false
        }
    );
    assert_eq!(output_size(1280, 720, 270), (720, 1280));
    assert_eq!(output_size(1280, 720, 180), (1280, 720));
    // Quality is clamped into libjpeg's range.
    let enc = JpegEncoder::new(EncoderSettings { quality: 0, ..s });
    assert_eq!(enc.settings().quality, 1);
}

#[test]
fn a_caption_follows_the_time_while_fresh_then_its_placeholder() {
    use super::caption::Caption;
    use std::sync::Arc;
    let frame = i420_frame(320, 240, 0, |_, _| 128);
    let caption = Arc::new(Caption::default());
    let mut enc = JpegEncoder::new(settings(0, true)).with_caption(caption.clone());
    let time_only = overlay::text_box(320, 240, format_overlay(WALL_NS).len()).unwrap();
    let with_speed = overlay::text_box(320, 240, format_overlay(WALL_NS).len() + 8).unwrap();
    // The strip the speed takes, right of the time's box: dark box colour
    // with a caption, the grey scene without.
    let strip = |jpeg: &[u8]| {
        let d = Decoded::of(jpeg);
        d.mean(
            0,
            time_only.x + time_only.w + 2,
            with_speed.x + with_speed.w - 2,
            with_speed.y,
            with_speed.y + 1,
        )
    };
    let none = enc.encode(&frame).unwrap();
    assert!(strip(&none.jpeg) > 100.0, "no caption set: the scene");
    caption.set(frame.captured.mono_ns, "50 km/h".into());
    let fresh = enc.encode(&frame).unwrap();
    assert!(strip(&fresh.jpeg) < 40.0, "the speed's box is drawn");
    // Stale: the placeholder, as wide.
    caption.set(frame.captured.mono_ns + 10_000_000_000, "50 km/h".into());
    caption.set_placeholder(Some("-- km/h".into()));
    let stale = enc.encode(&frame).unwrap();
    assert!(strip(&stale.jpeg) < 40.0, "the placeholder's box is drawn");
    assert_ne!(stale.jpeg, fresh.jpeg, "another text");
    // Without the time overlay nothing is drawn at all.
    let mut plain = JpegEncoder::new(settings(0, false)).with_caption(caption);
    let out = plain.encode(&frame).unwrap();
    assert!(strip(&out.jpeg) > 100.0);
}
