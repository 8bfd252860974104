//! Making a UVC camera's MJPEG frame a JPEG file any decoder accepts.
//!
//! Many UVC webcams leave out the Huffman tables (the DHT segment) because
//! the Motion-JPEG convention says decoders must assume the standard tables
//! from ITU T.81 Annex K.3. libjpeg-turbo and ffmpeg do; many other decoders
//! (browsers' image stacks, pure-Rust decoders, photo viewers) do not. So a
//! frame without a DHT before its first scan gets the standard tables
//! inserted just before the SOS marker, which keeps a JFIF APP0 right after
//! SOI where JFIF requires it.
//!
//! Cameras also often hand over a buffer padded past the EOI marker (with
//! zeros, or a previous frame's tail); everything after EOI is dropped.
//! The marker walk understands entropy-coded data (stuffed `FF 00`, restart
//! markers, fill bytes), so an `FF D9` inside garbage is never mistaken
//! for the end of the image.

use std::fmt;

/// Shorter than this cannot be a whole JPEG (SOI, DQT, SOF, SOS, EOI).
pub const MJPEG_MIN_BYTES: usize = 128;

/// Why a camera buffer is not a storable JPEG.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JpegProblem {
    TooShort {
        len: usize,
    },
    /// The buffer does not start with SOI (`FF D8`).
    NotJpeg {
        first_bytes: [u8; 2],
    },
    /// The buffer ends before the EOI marker (the camera dropped USB packets).
    Truncated {
        len: usize,
    },
    /// The marker structure is broken at `offset`.
    Malformed {
        offset: usize,
        what: &'static str,
    },
}

impl fmt::Display for JpegProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JpegProblem::TooShort { len } => write!(f, "only {len} bytes, too short for a JPEG"),
            JpegProblem::NotJpeg { first_bytes } => write!(
                f,
                "starts with {:02X} {:02X}, not the JPEG start marker FF D8",
                first_bytes[0], first_bytes[1]
            ),
            JpegProblem::Truncated { len } => {
                write!(f, "ends after {len} bytes without an end-of-image marker")
            }
            JpegProblem::Malformed { offset, what } => write!(f, "{what} at byte {offset}"),
        }
    }
}

/// A repaired frame: the bytes to store and what was changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairedJpeg {
    pub bytes: Vec<u8>,
    /// The standard Huffman tables were inserted.
    pub inserted_dht: bool,
    /// Bytes dropped after the EOI marker.
    pub trimmed_bytes: usize,
}

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const DHT: u8 = 0xC4;
const TEM: u8 = 0x01;

/// Checks a camera buffer, inserts the standard Huffman tables if the frame
/// has none, and drops anything after EOI. The result is a fresh `Vec`
/// (the input usually lives in a driver buffer that goes back to the camera).
pub fn repair_mjpeg(data: &[u8]) -> Result<RepairedJpeg, JpegProblem> {
    if data.len() < MJPEG_MIN_BYTES {
        return Err(JpegProblem::TooShort { len: data.len() });
    }
    if data[0] != 0xFF || data[1] != SOI {
        return Err(JpegProblem::NotJpeg {
            first_bytes: [data[0], data[1]],
        });
    }
    let truncated = JpegProblem::Truncated { len: data.len() };
    let mut has_dht = false;
    let mut has_frame_header = false;
    let mut first_sos: Option<usize> = None;
    let mut i = 2;
    let end = loop {
        // A marker, possibly preceded by fill bytes (extra 0xFF).
        if i >= data.len() {
            return Err(truncated);
        }
        if data[i] != 0xFF {
            return Err(JpegProblem::Malformed {
                offset: i,
                what: "expected a marker",
            });
        }
        while i + 1 < data.len() && data[i + 1] == 0xFF {
            i += 1;
        }
        if i + 1 >= data.len() {
            return Err(truncated);
        }
        let marker_at = i;
        let marker = data[i + 1];
        match marker {
            EOI => {
                if first_sos.is_none() {
                    return Err(JpegProblem::Malformed {
                        offset: i,
                        what: "end of image before any image data",
                    });
                }
                break i + 2;
            }
            SOI => {
                return Err(JpegProblem::Malformed {
                    offset: i,
                    what: "second start-of-image marker",
                })
            }
            TEM | 0xD0..=0xD7 => {
                i += 2;
                continue;
            }
            _ => {}
        }
        if i + 4 > data.len() {
            return Err(truncated);
        }
        let seg_len = usize::from(u16::from_be_bytes([data[i + 2], data[i + 3]]));
        if seg_len < 2 {
            return Err(JpegProblem::Malformed {
                offset: i,
                what: "segment length below 2",
            });
        }
        let seg_end = i + 2 + seg_len;
        if seg_end > data.len() {
            return Err(truncated);
        }
        match marker {
            DHT if first_sos.is_none() => has_dht = true,
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if marker != 0xC8 && marker != 0xCC => has_frame_header = true,
            _ => {}
        }
        i = seg_end;
        if marker == SOS {
            if !has_frame_header {
                return Err(JpegProblem::Malformed {
                    offset: marker_at,
                    what: "scan before any frame header (SOF)",
                });
            }
            first_sos.get_or_insert(marker_at);
            i = skip_entropy_coded(data, i).ok_or(truncated.clone())?;
        }
    };
    let Some(sos) = first_sos else {
        return Err(truncated);
    };
    let trimmed_bytes = data.len() - end;
    let bytes = if has_dht {
        data[..end].to_vec()
    } else {
        let mut out = Vec::with_capacity(end + STANDARD_DHT_SEGMENT.len());
        out.extend_from_slice(&data[..sos]);
        out.extend_from_slice(&STANDARD_DHT_SEGMENT);
        out.extend_from_slice(&data[sos..end]);
        out
    };
    Ok(RepairedJpeg {
        bytes,
        inserted_dht: !has_dht,
        trimmed_bytes,
    })
}

/// Returns the offset of the first marker after entropy-coded data starting
/// at `from`, or `None` if the data runs out first.
fn skip_entropy_coded(data: &[u8], from: usize) -> Option<usize> {
    let mut j = from;
    while j + 1 < data.len() {
        if data[j] != 0xFF {
            j += 1;
            continue;
        }
        match data[j + 1] {
            // Stuffed zero byte, or a restart marker inside the scan.
            0x00 | 0xD0..=0xD7 => j += 2,
            // Fill byte; the marker code follows.
            0xFF => j += 1,
            _ => return Some(j),
        }
    }
    None
}

/// Number of codes of each length 1..=16, then the symbols, for the four
/// tables of ITU T.81 Annex K.3 (table class/id byte first).
const DC_LUMA_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_CHROMA_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const AC_LUMA_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
const AC_LUMA_VALUES: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
    0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];
const AC_CHROMA_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
const AC_CHROMA_VALUES: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
    0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];

/// Marker (2) + length (2) + four tables of class/id (1) + counts (16) + symbols.
const STANDARD_DHT_LEN: usize = 4 + 4 * 17 + 12 + 162 + 12 + 162;

/// One DHT segment holding all four standard tables (`FF C4 01 A2 ...`).
pub const STANDARD_DHT_SEGMENT: [u8; STANDARD_DHT_LEN] = build_standard_dht();

const fn build_standard_dht() -> [u8; STANDARD_DHT_LEN] {
    let mut out = [0u8; STANDARD_DHT_LEN];
    let body_len = (STANDARD_DHT_LEN - 2) as u16;
    out[0] = 0xFF;
    out[1] = DHT;
    out[2] = (body_len >> 8) as u8;
    out[3] = body_len as u8;
    let mut at = 4;
    // (class << 4 | id): DC luma, AC luma, DC chroma, AC chroma.
    at = put_table(&mut out, at, 0x00, &DC_LUMA_BITS, &DC_VALUES);
    at = put_table(&mut out, at, 0x10, &AC_LUMA_BITS, &AC_LUMA_VALUES);
    at = put_table(&mut out, at, 0x01, &DC_CHROMA_BITS, &DC_VALUES);
    at = put_table(&mut out, at, 0x11, &AC_CHROMA_BITS, &AC_CHROMA_VALUES);
    assert!(at == STANDARD_DHT_LEN);
    out
}

const fn put_table(
    out: &mut [u8; STANDARD_DHT_LEN],
    mut at: usize,
    class_id: u8,
    bits: &[u8; 16],
    values: &[u8],
) -> usize {
    out[at] = class_id;
    at += 1;
    let mut total = 0usize;
    let mut k = 0;
    while k < 16 {
        out[at] = bits[k];
        total += bits[k] as usize;
        at += 1;
        k += 1;
    }
    assert!(total == values.len());
    let mut k = 0;
    while k < values.len() {
        out[at] = values[k];
        at += 1;
        k += 1;
    }
    at
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Segments before the first SOS as (marker, whole segment bytes).
    fn header_segments(jpeg: &[u8]) -> Vec<(u8, &[u8])> {
        let mut out = Vec::new();
        let mut i = 2;
        loop {
            let marker = jpeg[i + 1];
            let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
            out.push((marker, &jpeg[i..i + 2 + len]));
            if marker == SOS {
                return out;
            }
            i += 2 + len;
        }
    }

    /// What a UVC camera sends: the same JPEG without its DHT segments.
    pub(crate) fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut i = 2;
        for (marker, seg) in header_segments(jpeg) {
            if marker != DHT {
                out.extend_from_slice(seg);
            }
            i += seg.len();
        }
        out.extend_from_slice(&jpeg[i..]);
        out
    }

    /// Every Huffman table in the DHT segments as (class/id, counts, symbols).
    fn huffman_tables(jpeg: &[u8]) -> Vec<(u8, Vec<u8>, Vec<u8>)> {
        let mut tables = Vec::new();
        for (marker, seg) in header_segments(jpeg) {
            if marker != DHT {
                continue;
            }
            let mut p = 4;
            while p < seg.len() {
                let counts = seg[p + 1..p + 17].to_vec();
                let n: usize = counts.iter().map(|&c| usize::from(c)).sum();
                tables.push((seg[p], counts, seg[p + 17..p + 17 + n].to_vec()));
                p += 17 + n;
            }
        }
        tables.sort();
        tables
    }

    pub(crate) fn decode_rgb(jpeg: &[u8]) -> (usize, usize, Vec<u8>) {
        let d = mozjpeg::Decompress::new_mem(jpeg).expect("JPEG header");
        let mut d = d.rgb().expect("start decode");
        let (w, h) = (d.width(), d.height());
        let px = d.read_scanlines::<u8>().expect("scanlines");
        d.finish().expect("finish");
        (w, h, px)
    }

    #[test]
    fn standard_tables_equal_the_ones_ffmpeg_writes() {
        // The fixtures were written by ffmpeg with `-huffman default`, i.e.
        // with the Annex K tables; ours must be the same four tables.
        let ours = huffman_tables(
            &[&[0xFF, 0xD8][..], &STANDARD_DHT_SEGMENT, &[0xFF, SOS, 0, 2]].concat(),
        );
        assert_eq!(ours.len(), 4);
        for name in ["uvc_1.jpg", "uvc422_1.jpg"] {
            assert_eq!(huffman_tables(&fixture(name)), ours, "{name}");
        }
        assert_eq!(&STANDARD_DHT_SEGMENT[..4], &[0xFF, 0xC4, 0x01, 0xA2]);
    }

    #[test]
    fn complete_jpeg_passes_through_byte_identical() {
        for name in ["uvc_1.jpg", "uvc_2.jpg", "uvc_3.jpg", "uvc422_1.jpg"] {
            let jpeg = fixture(name);
            let fixed = repair_mjpeg(&jpeg).unwrap();
            assert_eq!(fixed.bytes, jpeg, "{name}");
            assert!(!fixed.inserted_dht);
            assert_eq!(fixed.trimmed_bytes, 0);
        }
    }

    #[test]
    fn missing_dht_is_inserted_before_sos_and_decodes_to_same_pixels() {
        for name in ["uvc_1.jpg", "uvc422_1.jpg"] {
            let original = fixture(name);
            let stripped = strip_dht(&original);
            assert!(huffman_tables(&stripped).is_empty());
            assert_eq!(stripped.len(), original.len() - STANDARD_DHT_SEGMENT.len());

            let fixed = repair_mjpeg(&stripped).unwrap();
            assert!(fixed.inserted_dht, "{name}");
            let segs = header_segments(&fixed.bytes);
            // JFIF APP0 stays first; the tables sit right before the scan.
            assert_eq!(segs[0].0, 0xE0);
            assert_eq!(segs[segs.len() - 2].0, DHT);
            assert_eq!(segs.last().unwrap().0, SOS);
            assert_eq!(huffman_tables(&fixed.bytes), huffman_tables(&original));
            assert_eq!(fixed.bytes.len(), original.len());

            assert_eq!(decode_rgb(&fixed.bytes), decode_rgb(&original), "{name}");
        }
    }

    #[test]
    fn garbage_after_eoi_is_trimmed_even_if_it_contains_ff_d9() {
        let jpeg = fixture("uvc_2.jpg");
        let mut padded = jpeg.clone();
        padded.extend_from_slice(&[0u8; 1000]);
        padded.extend_from_slice(&[0xFF, 0xD9, 0x12, 0xFF, 0xD9, 0]);
        let fixed = repair_mjpeg(&padded).unwrap();
        assert_eq!(fixed.bytes, jpeg);
        assert_eq!(fixed.trimmed_bytes, 1006);
    }

    #[test]
    fn non_jpeg_short_and_truncated_buffers_are_rejected() {
        assert_eq!(
            repair_mjpeg(&[0xFF, 0xD8, 0xFF]),
            Err(JpegProblem::TooShort { len: 3 })
        );
        let zeros = vec![0u8; 4096];
        assert_eq!(
            repair_mjpeg(&zeros),
            Err(JpegProblem::NotJpeg {
                first_bytes: [0, 0]
            })
        );
        let jpeg = fixture("uvc_1.jpg");
        let cut = &jpeg[..jpeg.len() / 2];
        assert_eq!(
            repair_mjpeg(cut),
            Err(JpegProblem::Truncated { len: cut.len() })
        );
        // SOI followed by noise.
        let mut noise = vec![0xFF, 0xD8];
        noise.extend((0..500u32).map(|i| (i * 7 % 251) as u8));
        assert!(matches!(
            repair_mjpeg(&noise),
            Err(JpegProblem::Malformed { offset: 2, .. })
        ));
        let msg = repair_mjpeg(&zeros).unwrap_err().to_string();
        assert!(msg.contains("00 00"), "{msg}");
    }
}
