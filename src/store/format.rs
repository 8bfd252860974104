//! Byte layout of segment files: CRC-framed records and the closing trailer.
//! `docs/storage.md` has the same tables with the reasoning behind them.
//!
//! Every record is a 48-byte little-endian header followed by its payload:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 4 | magic `DVR1` |
//! | 4 | 1 | kind (1 stream header, 2 frame, 3 padding, 4 index, 5 position) |
//! | 5 | 1 | flags (frame, position: bit 0 = wall time estimated) |
//! | 6 | 2 | format version (1) |
//! | 8 | 4 | payload length |
//! | 12 | 4 | CRC32 of the payload |
//! | 16 | 8 | frame number (per camera); position: number within the segment |
//! | 24 | 8 | monotonic capture (position: reception) time, ns |
//! | 32 | 8 | wall-clock capture (reception) time, ns since the Unix epoch (UTC) |
//! | 40 | 4 | reserved, zero |
//! | 44 | 4 | CRC32 of bytes 0..44 |
//!
//! A cleanly closed segment ends with a 32-byte [`Trailer`] that points at its
//! index record.

use crate::frame::CaptureTime;

pub const RECORD_MAGIC: [u8; 4] = *b"DVR1";
pub const TRAILER_MAGIC: [u8; 4] = *b"DVTR";
pub const FORMAT_VERSION: u16 = 1;
pub const HEADER_LEN: usize = 48;
pub const TRAILER_LEN: usize = 32;
/// Alignment of every sync: data is written in whole blocks of this size.
pub const BLOCK_BYTES: usize = 4096;
/// No single record may be larger; a header claiming more is treated as corrupt.
pub const PAYLOAD_BYTES_MAX: u32 = 64 << 20;
pub const INDEX_ENTRY_LEN: usize = 32;
pub const CAMERA_ID_BYTES_MAX: usize = 64;

/// Frame flag: the wall-clock time was estimated (clock not yet trusted).
pub const FLAG_WALL_ESTIMATED: u8 = 1;
/// Index record flag: a copy of the stream-header payload follows the
/// entries, so a damaged first record costs nothing.
pub const INDEX_FLAG_STREAM_COPY: u8 = 1;
/// Index record flag: written by recovery after a cut, not by a clean close.
pub const INDEX_FLAG_RECOVERED: u8 = 2;
/// Index record flag: a position table follows the frame entries (before
/// the stream-header copy). Absent when the segment holds no position, so a
/// segment recorded without GPS is byte for byte what it was before.
pub const INDEX_FLAG_POSITIONS: u8 = 4;
/// Payload bytes of a position record (format version 1).
pub const POSITION_PAYLOAD_LEN: usize = 36;
/// Bytes of one position in the index's position table.
pub const INDEX_POSITION_LEN: usize = 28 + POSITION_PAYLOAD_LEN;
/// Most frame numbers one index entry may skip (its 24-bit skip field).
pub const INDEX_SKIP_MAX: u64 = 0xff_ffff;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    StreamHeader = 1,
    Frame = 2,
    Padding = 3,
    Index = 4,
    Position = 5,
}

impl RecordKind {
    fn from_u8(v: u8) -> Option<RecordKind> {
        match v {
            1 => Some(RecordKind::StreamHeader),
            2 => Some(RecordKind::Frame),
            3 => Some(RecordKind::Padding),
            4 => Some(RecordKind::Index),
            5 => Some(RecordKind::Position),
            _ => None,
        }
    }
}

/// Why bytes are not a valid record or trailer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 4]),
    #[error("header CRC mismatch (stored {stored:08x}, computed {computed:08x})")]
    HeaderCrc { stored: u32, computed: u32 },
    #[error("payload CRC mismatch (stored {stored:08x}, computed {computed:08x})")]
    PayloadCrc { stored: u32, computed: u32 },
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    #[error("unsupported format version {0}")]
    Version(u16),
    #[error("payload length {0} exceeds the {PAYLOAD_BYTES_MAX}-byte limit")]
    TooLong(u32),
    #[error("truncated: need {needed} bytes, have {have}")]
    Truncated { needed: usize, have: usize },
    #[error("malformed {what}: {why}")]
    Malformed { what: &'static str, why: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub kind: RecordKind,
    pub flags: u8,
    pub payload_len: u32,
    pub payload_crc: u32,
    pub seq: u64,
    pub mono_ns: u64,
    pub wall_ns: i64,
}

impl RecordHeader {
    pub fn new(kind: RecordKind, payload: &[u8], seq: u64, time: CaptureTime) -> RecordHeader {
        RecordHeader {
            kind,
            flags: 0,
            payload_len: payload.len() as u32,
            payload_crc: crc32fast::hash(payload),
            seq,
            mono_ns: time.mono_ns,
            wall_ns: time.wall_ns,
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&RECORD_MAGIC);
        b[4] = self.kind as u8;
        b[5] = self.flags;
        b[6..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        b[12..16].copy_from_slice(&self.payload_crc.to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.mono_ns.to_le_bytes());
        b[32..40].copy_from_slice(&self.wall_ns.to_le_bytes());
        let crc = crc32fast::hash(&b[0..44]);
        b[44..48].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header (magic, header CRC, kind, version, length).
    pub fn decode(b: &[u8]) -> Result<RecordHeader, FormatError> {
        if b.len() < HEADER_LEN {
            return Err(FormatError::Truncated {
                needed: HEADER_LEN,
                have: b.len(),
            });
        }
        let magic = [b[0], b[1], b[2], b[3]];
        if magic != RECORD_MAGIC {
            return Err(FormatError::BadMagic(magic));
        }
        let stored = le_u32(&b[44..48]);
        let computed = crc32fast::hash(&b[0..44]);
        if stored != computed {
            return Err(FormatError::HeaderCrc { stored, computed });
        }
        let version = u16::from_le_bytes([b[6], b[7]]);
        if version != FORMAT_VERSION {
            return Err(FormatError::Version(version));
        }
        let kind = RecordKind::from_u8(b[4]).ok_or(FormatError::UnknownKind(b[4]))?;
        let payload_len = le_u32(&b[8..12]);
        if payload_len > PAYLOAD_BYTES_MAX {
            return Err(FormatError::TooLong(payload_len));
        }
        Ok(RecordHeader {
            kind,
            flags: b[5],
            payload_len,
            payload_crc: le_u32(&b[12..16]),
            seq: le_u64(&b[16..24]),
            mono_ns: le_u64(&b[24..32]),
            wall_ns: le_u64(&b[32..40]) as i64,
        })
    }

    pub fn check_payload(&self, payload: &[u8]) -> Result<(), FormatError> {
        if payload.len() != self.payload_len as usize {
            return Err(FormatError::Truncated {
                needed: self.payload_len as usize,
                have: payload.len(),
            });
        }
        let computed = crc32fast::hash(payload);
        if computed != self.payload_crc {
            return Err(FormatError::PayloadCrc {
                stored: self.payload_crc,
                computed,
            });
        }
        Ok(())
    }

    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + self.payload_len as u64
    }

    pub fn time(&self) -> CaptureTime {
        CaptureTime {
            mono_ns: self.mono_ns,
            wall_ns: self.wall_ns,
        }
    }
}

/// What the stream-header record (always the first record) says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamHeader {
    pub codec: Codec,
    pub width: u32,
    pub height: u32,
    pub fps_milli: u32,
    pub boot_id: [u8; 16],
    /// Per-camera segment sequence number; the same number is in the file name.
    pub segment_seq: u64,
    pub camera_id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Jpeg = 1,
    /// Reserved so a hardware H.264 path can share the format.
    H264 = 2,
}

impl StreamHeader {
    const FIXED_LEN: usize = 2 + 1 + 1 + 4 + 4 + 4 + 16 + 8 + 1;

    pub fn encode(&self) -> Vec<u8> {
        let id = self.camera_id.as_bytes();
        let id = &id[..id.len().min(CAMERA_ID_BYTES_MAX)];
        let mut b = Vec::with_capacity(Self::FIXED_LEN + id.len());
        b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        b.push(self.codec as u8);
        b.push(0);
        b.extend_from_slice(&self.width.to_le_bytes());
        b.extend_from_slice(&self.height.to_le_bytes());
        b.extend_from_slice(&self.fps_milli.to_le_bytes());
        b.extend_from_slice(&self.boot_id);
        b.extend_from_slice(&self.segment_seq.to_le_bytes());
        b.push(id.len() as u8);
        b.extend_from_slice(id);
        b
    }

    pub fn decode(b: &[u8]) -> Result<StreamHeader, FormatError> {
        let bad = |why: String| FormatError::Malformed {
            what: "stream header",
            why,
        };
        if b.len() < Self::FIXED_LEN {
            return Err(bad(format!(
                "{} bytes, need at least {}",
                b.len(),
                Self::FIXED_LEN
            )));
        }
        let codec = match b[2] {
            1 => Codec::Jpeg,
            2 => Codec::H264,
            other => return Err(bad(format!("unknown codec {other}"))),
        };
        let id_len = b[Self::FIXED_LEN - 1] as usize;
        if b.len() != Self::FIXED_LEN + id_len {
            return Err(bad(format!(
                "camera id length {id_len} does not match payload"
            )));
        }
        let camera_id = String::from_utf8(b[Self::FIXED_LEN..].to_vec())
            .map_err(|_| bad("camera id is not UTF-8".into()))?;
        let mut boot_id = [0u8; 16];
        boot_id.copy_from_slice(&b[16..32]);
        Ok(StreamHeader {
            codec,
            width: le_u32(&b[4..8]),
            height: le_u32(&b[8..12]),
            fps_milli: le_u32(&b[12..16]),
            boot_id,
            segment_seq: le_u64(&b[32..40]),
            camera_id,
        })
    }
}

/// Where one frame is and when it was captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// File offset of the frame's record header.
    pub offset: u64,
    pub payload_len: u32,
    pub flags: u8,
    pub seq: u64,
    pub mono_ns: u64,
    pub wall_ns: i64,
}

impl IndexEntry {
    pub fn time(&self) -> CaptureTime {
        CaptureTime {
            mono_ns: self.mono_ns,
            wall_ns: self.wall_ns,
        }
    }
}

/// One GPS position as the store keeps it: what the receiver said, in
/// fixed-point units, and when the recorder received it. The store knows
/// nothing of NMEA; callers convert their fixes into this.
///
/// Payload of a position record (36 bytes, little-endian):
///
/// | offset | size | field |
/// |-------:|-----:|-------|
/// | 0 | 2 | format version `1` |
/// | 2 | 2 | which fields are known: bit 0 UTC, 1 latitude and longitude, 2 altitude, 3 speed, 4 heading, 5 satellites, 6 HDOP |
/// | 4 | 8 | UTC of the fix, ns since 1970 (i64), from the receiver |
/// | 12 | 4 | latitude, 1e-7 degrees (i32) |
/// | 16 | 4 | longitude, 1e-7 degrees (i32) |
/// | 20 | 4 | altitude above mean sea level, mm (i32) |
/// | 24 | 4 | speed over ground, mm/s (u32) |
/// | 28 | 2 | course over ground, centidegrees from true north (u16, < 36000) |
/// | 30 | 1 | fix quality (see [`PositionSample::quality`]) |
/// | 31 | 1 | satellites used |
/// | 32 | 2 | HDOP, hundredths |
/// | 34 | 2 | reserved, zero |
///
/// A field whose bit is clear is written as zero and read as `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PositionSample {
    /// When the recorder received the fix, on its own clocks (the record
    /// header's time fields), like a frame's capture time.
    pub received: CaptureTime,
    /// Record flags: [`FLAG_WALL_ESTIMATED`] when `received.wall_ns` is an
    /// estimate, as for frames.
    pub flags: u8,
    /// UTC of the fix as the receiver reported it, ns since 1970.
    pub utc_ns: Option<i64>,
    /// Latitude and longitude, 1e-7 degrees (±900 000 000, ±1 800 000 000).
    pub lat_lon_e7: Option<(i32, i32)>,
    /// Altitude above mean sea level, mm.
    pub altitude_mm: Option<i32>,
    /// Speed over ground, mm/s.
    pub speed_mm_s: Option<u32>,
    /// Course over ground, centidegrees from true north (0..36000).
    pub heading_cdeg: Option<u16>,
    /// Fix quality: 0 no fix, 1 fix of unknown dimension, 2 2D, 3 3D,
    /// 4 differential, 5 RTK, 6 float RTK, 7 dead reckoning, 8 manual,
    /// 9 simulation; other values are kept as they are.
    pub quality: u8,
    /// Satellites used in the solution.
    pub satellites: Option<u8>,
    /// Horizontal dilution of precision, hundredths.
    pub hdop_centi: Option<u16>,
}

const POS_UTC: u16 = 1;
const POS_LAT_LON: u16 = 2;
const POS_ALTITUDE: u16 = 4;
const POS_SPEED: u16 = 8;
const POS_HEADING: u16 = 16;
const POS_SATELLITES: u16 = 32;
const POS_HDOP: u16 = 64;

impl PositionSample {
    /// The record payload ([`POSITION_PAYLOAD_LEN`] bytes).
    pub fn encode_payload(&self) -> [u8; POSITION_PAYLOAD_LEN] {
        let mut b = [0u8; POSITION_PAYLOAD_LEN];
        let mut known = 0u16;
        b[0..2].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        if let Some(t) = self.utc_ns {
            known |= POS_UTC;
            b[4..12].copy_from_slice(&t.to_le_bytes());
        }
        if let Some((lat, lon)) = self.lat_lon_e7 {
            known |= POS_LAT_LON;
            b[12..16].copy_from_slice(&lat.to_le_bytes());
            b[16..20].copy_from_slice(&lon.to_le_bytes());
        }
        if let Some(a) = self.altitude_mm {
            known |= POS_ALTITUDE;
            b[20..24].copy_from_slice(&a.to_le_bytes());
        }
        if let Some(v) = self.speed_mm_s {
            known |= POS_SPEED;
            b[24..28].copy_from_slice(&v.to_le_bytes());
        }
        if let Some(h) = self.heading_cdeg {
            known |= POS_HEADING;
            b[28..30].copy_from_slice(&h.to_le_bytes());
        }
        b[30] = self.quality;
        if let Some(n) = self.satellites {
            known |= POS_SATELLITES;
            b[31] = n;
        }
        if let Some(h) = self.hdop_centi {
            known |= POS_HDOP;
            b[32..34].copy_from_slice(&h.to_le_bytes());
        }
        b[2..4].copy_from_slice(&known.to_le_bytes());
        b
    }

    /// The sample in a position record's payload; `received` and `flags`
    /// come from the record header. Refuses a payload that is not exactly
    /// version 1's length, another version, or coordinates and a heading
    /// out of their ranges (a record whose CRCs check but that we did not
    /// write).
    pub fn decode_payload(
        b: &[u8],
        received: CaptureTime,
        flags: u8,
    ) -> Result<PositionSample, FormatError> {
        let bad = |why: String| FormatError::Malformed {
            what: "position",
            why,
        };
        if b.len() != POSITION_PAYLOAD_LEN {
            return Err(bad(format!(
                "{} bytes, version 1 has {POSITION_PAYLOAD_LEN}",
                b.len()
            )));
        }
        let version = u16::from_le_bytes([b[0], b[1]]);
        if version != FORMAT_VERSION {
            return Err(bad(format!("unsupported version {version}")));
        }
        let known = u16::from_le_bytes([b[2], b[3]]);
        let has = |bit: u16| known & bit != 0;
        let lat = le_u32(&b[12..16]) as i32;
        let lon = le_u32(&b[16..20]) as i32;
        if has(POS_LAT_LON)
            && (lat.unsigned_abs() > 900_000_000 || lon.unsigned_abs() > 1_800_000_000)
        {
            return Err(bad(format!(
                "latitude {lat} or longitude {lon} out of range"
            )));
        }
        let heading = u16::from_le_bytes([b[28], b[29]]);
        if has(POS_HEADING) && heading >= 36_000 {
            return Err(bad(format!("heading {heading} centidegrees out of range")));
        }
        Ok(PositionSample {
            received,
            flags,
            utc_ns: has(POS_UTC).then(|| le_u64(&b[4..12]) as i64),
            lat_lon_e7: has(POS_LAT_LON).then_some((lat, lon)),
            altitude_mm: has(POS_ALTITUDE).then(|| le_u32(&b[20..24]) as i32),
            speed_mm_s: has(POS_SPEED).then(|| le_u32(&b[24..28])),
            heading_cdeg: has(POS_HEADING).then_some(heading),
            quality: b[30],
            satellites: has(POS_SATELLITES).then_some(b[31]),
            hdop_centi: has(POS_HDOP).then(|| u16::from_le_bytes([b[32], b[33]])),
        })
    }

    /// The position record's header for this sample, numbered `seq` within
    /// its segment.
    pub fn record_header(&self, payload: &[u8], seq: u64) -> RecordHeader {
        let mut h = RecordHeader::new(RecordKind::Position, payload, seq, self.received);
        h.flags = self.flags;
        h
    }
}

/// Where one position record is, and what it says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PositionEntry {
    /// File offset of the position's record header.
    pub offset: u64,
    pub sample: PositionSample,
}

/// What an index record holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexContents {
    pub frames: Vec<IndexEntry>,
    /// Empty unless the record has [`INDEX_FLAG_POSITIONS`].
    pub positions: Vec<PositionEntry>,
    /// The stream-header copy, with [`INDEX_FLAG_STREAM_COPY`].
    pub stream: Option<StreamHeader>,
}

/// An index payload and the record flags that describe it: frame entries,
/// then the position table if there are positions
/// ([`INDEX_FLAG_POSITIONS`]), then the stream-header copy if given
/// ([`INDEX_FLAG_STREAM_COPY`]). Without positions the bytes are exactly
/// those of [`encode_index`] (+ [`encode_index_with_stream`]).
pub fn encode_index_contents(
    frames: &[IndexEntry],
    positions: &[PositionEntry],
    stream: Option<&StreamHeader>,
) -> (Vec<u8>, u8) {
    let mut b = encode_index(frames);
    let mut flags = 0;
    if !positions.is_empty() {
        flags |= INDEX_FLAG_POSITIONS;
        b.reserve(4 + positions.len() * INDEX_POSITION_LEN);
        b.extend_from_slice(&(positions.len() as u32).to_le_bytes());
        for p in positions {
            b.extend_from_slice(&p.offset.to_le_bytes());
            b.extend_from_slice(&p.sample.received.mono_ns.to_le_bytes());
            b.extend_from_slice(&p.sample.received.wall_ns.to_le_bytes());
            b.extend_from_slice(&[p.sample.flags, 0, 0, 0]);
            b.extend_from_slice(&p.sample.encode_payload());
        }
    }
    if let Some(stream) = stream {
        flags |= INDEX_FLAG_STREAM_COPY;
        b.extend_from_slice(&stream.encode());
    }
    (b, flags)
}

/// Decodes an index record's payload given the record's flags.
pub fn decode_index_contents(flags: u8, b: &[u8]) -> Result<IndexContents, FormatError> {
    let bad = |why: String| FormatError::Malformed {
        what: "index position table",
        why,
    };
    let (frames, mut rest) = decode_index_entries(b)?;
    let mut positions = Vec::new();
    if flags & INDEX_FLAG_POSITIONS != 0 {
        if rest.len() < 4 {
            return Err(bad(format!("{} bytes, need at least 4", rest.len())));
        }
        let count = le_u32(&rest[0..4]) as usize;
        let end = count
            .checked_mul(INDEX_POSITION_LEN)
            .and_then(|n| n.checked_add(4))
            .filter(|end| *end <= rest.len())
            .ok_or_else(|| bad(format!("{count} positions do not fit {} bytes", rest.len())))?;
        positions.reserve(count);
        for (i, e) in rest[4..end].chunks_exact(INDEX_POSITION_LEN).enumerate() {
            let received = CaptureTime {
                mono_ns: le_u64(&e[8..16]),
                wall_ns: le_u64(&e[16..24]) as i64,
            };
            let sample = PositionSample::decode_payload(&e[28..], received, e[24])
                .map_err(|err| bad(format!("position {i}: {err}")))?;
            positions.push(PositionEntry {
                offset: le_u64(&e[0..8]),
                sample,
            });
        }
        rest = &rest[end..];
    }
    let stream = if flags & INDEX_FLAG_STREAM_COPY != 0 {
        Some(StreamHeader::decode(rest)?)
    } else if !rest.is_empty() {
        return Err(FormatError::Malformed {
            what: "index",
            why: format!("{} bytes after the entries", rest.len()),
        });
    } else {
        None
    };
    Ok(IndexContents {
        frames,
        positions,
        stream,
    })
}

/// Index payload: entry count (u32), the first frame's sequence number (u64),
/// then per frame 32 bytes: record offset u64, payload length u32, flags u8,
/// a 24-bit count of frame numbers skipped before this entry (0 unless
/// recovery closed the segment around damaged records), monotonic ns u64,
/// wall ns i64. With [`INDEX_FLAG_STREAM_COPY`] in the record's flags, the
/// stream-header payload follows the entries.
pub fn encode_index(entries: &[IndexEntry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(12 + entries.len() * INDEX_ENTRY_LEN);
    b.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    b.extend_from_slice(&entries.first().map_or(0, |e| e.seq).to_le_bytes());
    let mut next = entries.first().map_or(0, |e| e.seq);
    for e in entries {
        // Callers hand over increasing numbers with bounded gaps (the
        // writer's are consecutive; recovery's scan enforces the bound).
        debug_assert!(e.seq >= next && e.seq - next <= INDEX_SKIP_MAX);
        let skip = e.seq.saturating_sub(next).min(INDEX_SKIP_MAX) as u32;
        next = e.seq.saturating_add(1);
        b.extend_from_slice(&e.offset.to_le_bytes());
        b.extend_from_slice(&e.payload_len.to_le_bytes());
        b.push(e.flags);
        b.extend_from_slice(&skip.to_le_bytes()[..3]);
        b.extend_from_slice(&e.mono_ns.to_le_bytes());
        b.extend_from_slice(&e.wall_ns.to_le_bytes());
    }
    b
}

/// The index payload with the stream-header copy after the entries; the
/// record carrying it needs [`INDEX_FLAG_STREAM_COPY`].
pub fn encode_index_with_stream(entries: &[IndexEntry], stream: &StreamHeader) -> Vec<u8> {
    let mut b = encode_index(entries);
    b.extend_from_slice(&stream.encode());
    b
}

/// Decodes an index payload of exactly `12 + 32·count` bytes.
pub fn decode_index(b: &[u8]) -> Result<Vec<IndexEntry>, FormatError> {
    let (entries, rest) = decode_index_entries(b)?;
    if !rest.is_empty() {
        return Err(FormatError::Malformed {
            what: "index",
            why: format!("{} bytes after the entries", rest.len()),
        });
    }
    Ok(entries)
}

/// Decodes an index record's payload given the record's flags: the entries
/// and, when the flags say one follows, the stream-header copy (a position
/// table, if any, is checked and left out; see [`decode_index_contents`]).
pub fn decode_index_record(
    flags: u8,
    b: &[u8],
) -> Result<(Vec<IndexEntry>, Option<StreamHeader>), FormatError> {
    let c = decode_index_contents(flags, b)?;
    Ok((c.frames, c.stream))
}

fn decode_index_entries(b: &[u8]) -> Result<(Vec<IndexEntry>, &[u8]), FormatError> {
    let bad = |why: String| FormatError::Malformed { what: "index", why };
    if b.len() < 12 {
        return Err(bad(format!("{} bytes, need at least 12", b.len())));
    }
    let count = le_u32(&b[0..4]) as usize;
    let first_seq = le_u64(&b[4..12]);
    let end = count
        .checked_mul(INDEX_ENTRY_LEN)
        .and_then(|n| n.checked_add(12))
        .filter(|end| *end <= b.len())
        .ok_or_else(|| bad(format!("{count} entries do not fit {} bytes", b.len())))?;
    let mut out = Vec::with_capacity(count);
    let mut seq = first_seq;
    for (i, e) in b[12..end].chunks_exact(INDEX_ENTRY_LEN).enumerate() {
        let skip = u32::from_le_bytes([e[13], e[14], e[15], 0]) as u64;
        seq = seq
            .checked_add(skip)
            .ok_or_else(|| bad(format!("entry {i}: frame number overflows")))?;
        out.push(IndexEntry {
            offset: le_u64(&e[0..8]),
            payload_len: le_u32(&e[8..12]),
            flags: e[12],
            seq,
            mono_ns: le_u64(&e[16..24]),
            wall_ns: le_u64(&e[24..32]) as i64,
        });
        seq = seq.wrapping_add(1);
    }
    Ok((out, &b[end..]))
}

/// Width and height from a JPEG's frame header (SOFn), to describe frames
/// whose stream header is lost.
pub fn jpeg_dimensions(jpeg: &[u8]) -> Option<(u32, u32)> {
    if !jpeg.starts_with(&[0xff, 0xd8]) {
        return None;
    }
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        if jpeg[i] != 0xff {
            return None;
        }
        let marker = jpeg[i + 1];
        if marker == 0xff {
            i += 1; // fill byte
            continue;
        }
        if marker == 0x01 || (0xd0..=0xd8).contains(&marker) {
            i += 2; // markers without a length
            continue;
        }
        if marker == 0xd9 || marker == 0xda {
            return None; // end of image or scan data before any frame header
        }
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        let is_sof = (0xc0..=0xcf).contains(&marker) && !matches!(marker, 0xc4 | 0xc8 | 0xcc);
        if is_sof {
            let f = jpeg.get(i + 5..i + 9)?;
            let height = u16::from_be_bytes([f[0], f[1]]) as u32;
            let width = u16::from_be_bytes([f[2], f[3]]) as u32;
            return (width > 0 && height > 0).then_some((width, height));
        }
        i += 2 + len;
    }
    None
}

/// The last 32 bytes of a cleanly closed segment.
///
/// | offset | size | field |
/// |-------:|-----:|-------|
/// | 0 | 4 | magic `DVTR` |
/// | 4 | 2 | format version |
/// | 6 | 2 | reserved |
/// | 8 | 8 | offset of the index record |
/// | 16 | 4 | length of the index record (header + payload) |
/// | 20 | 4 | frame count |
/// | 24 | 4 | reserved |
/// | 28 | 4 | CRC32 of bytes 0..28 |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    pub index_offset: u64,
    pub index_record_len: u32,
    pub frame_count: u32,
}

impl Trailer {
    pub fn encode(&self) -> [u8; TRAILER_LEN] {
        let mut b = [0u8; TRAILER_LEN];
        b[0..4].copy_from_slice(&TRAILER_MAGIC);
        b[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[8..16].copy_from_slice(&self.index_offset.to_le_bytes());
        b[16..20].copy_from_slice(&self.index_record_len.to_le_bytes());
        b[20..24].copy_from_slice(&self.frame_count.to_le_bytes());
        let crc = crc32fast::hash(&b[0..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<Trailer, FormatError> {
        if b.len() != TRAILER_LEN {
            return Err(FormatError::Truncated {
                needed: TRAILER_LEN,
                have: b.len(),
            });
        }
        let magic = [b[0], b[1], b[2], b[3]];
        if magic != TRAILER_MAGIC {
            return Err(FormatError::BadMagic(magic));
        }
        let stored = le_u32(&b[28..32]);
        let computed = crc32fast::hash(&b[0..28]);
        if stored != computed {
            return Err(FormatError::HeaderCrc { stored, computed });
        }
        let version = u16::from_le_bytes([b[4], b[5]]);
        if version != FORMAT_VERSION {
            return Err(FormatError::Version(version));
        }
        Ok(Trailer {
            index_offset: le_u64(&b[8..16]),
            index_record_len: le_u32(&b[16..20]),
            frame_count: le_u32(&b[20..24]),
        })
    }
}

/// A padding record that makes room for `tail` more bytes to end exactly on
/// an `align` boundary, when placed at file offset `pos`. Empty when no
/// padding is needed; otherwise at least one header long.
pub fn padding_record(pos: u64, align: usize, tail: usize) -> Vec<u8> {
    let align = align as u64;
    let mut gap = (align - (pos + tail as u64) % align) % align;
    if gap == 0 {
        return Vec::new();
    }
    while gap < HEADER_LEN as u64 {
        gap += align;
    }
    let payload = vec![0u8; gap as usize - HEADER_LEN];
    let header = RecordHeader::new(RecordKind::Padding, &payload, 0, CaptureTime::default());
    let mut out = Vec::with_capacity(gap as usize);
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&payload);
    out
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_header(kind: RecordKind, payload: &[u8]) -> RecordHeader {
        let mut h = RecordHeader::new(
            kind,
            payload,
            42,
            CaptureTime {
                mono_ns: 123_456_789,
                wall_ns: 1_763_719_200_000_000_000,
            },
        );
        h.flags = FLAG_WALL_ESTIMATED;
        h
    }

    fn stream_header() -> StreamHeader {
        StreamHeader {
            codec: Codec::Jpeg,
            width: 1280,
            height: 720,
            fps_milli: 30_000,
            boot_id: [7; 16],
            segment_seq: 9,
            camera_id: "front".into(),
        }
    }

    fn entries() -> Vec<IndexEntry> {
        (0..5)
            .map(|i| IndexEntry {
                offset: 4096 + i * 1000,
                payload_len: 900 + i as u32,
                flags: (i % 2) as u8,
                seq: 100 + i,
                mono_ns: 1_000_000 * i,
                wall_ns: -5 + i as i64,
            })
            .collect()
    }

    /// Every record kind as (header bytes + payload bytes).
    fn all_records() -> Vec<(RecordKind, Vec<u8>)> {
        vec![
            (RecordKind::StreamHeader, stream_header().encode()),
            (RecordKind::Frame, b"\xff\xd8jpeg bytes\xff\xd9".to_vec()),
            (RecordKind::Padding, vec![0u8; 100]),
            (RecordKind::Index, encode_index(&entries())),
            (RecordKind::Position, position(3).encode_payload().to_vec()),
        ]
    }

    /// A position with every field known (`n` varies it).
    fn position(n: i32) -> PositionSample {
        PositionSample {
            received: CaptureTime {
                mono_ns: 5_000_000_000 + n as u64,
                wall_ns: 1_800_000_000_000_000_000 + n as i64,
            },
            flags: FLAG_WALL_ESTIMATED,
            utc_ns: Some(1_799_999_999_000_000_000 + n as i64),
            lat_lon_e7: Some((-338_688_000 + n, 1_512_093_000 - n)),
            altitude_mm: Some(-12_345 + n),
            speed_mm_s: Some(27_780),
            heading_cdeg: Some(35_999),
            quality: 3,
            satellites: Some(11),
            hdop_centi: Some(87),
        }
    }

    fn position_entries() -> Vec<PositionEntry> {
        (0..3)
            .map(|i| PositionEntry {
                offset: 4096 + 5000 + i as u64 * 84,
                sample: position(i),
            })
            .collect()
    }

    #[test]
    fn positions_round_trip_with_and_without_their_optional_fields() {
        let full = position(7);
        let t = full.received;
        let decoded =
            PositionSample::decode_payload(&full.encode_payload(), t, full.flags).unwrap();
        assert_eq!(decoded, full);
        let bare = PositionSample {
            received: t,
            quality: 0,
            ..PositionSample::default()
        };
        let payload = bare.encode_payload();
        assert_eq!(payload.len(), POSITION_PAYLOAD_LEN);
        assert!(
            payload[2..].iter().all(|b| *b == 0),
            "unknown fields are zeros"
        );
        assert_eq!(
            PositionSample::decode_payload(&payload, t, 0).unwrap(),
            bare
        );
    }

    #[test]
    fn a_position_payload_we_did_not_write_is_refused() {
        let t = CaptureTime::default();
        let good = position(1).encode_payload();
        assert!(PositionSample::decode_payload(&good[..35], t, 0).is_err());
        let mut longer = good.to_vec();
        longer.push(0);
        assert!(PositionSample::decode_payload(&longer, t, 0).is_err());
        let mut version = good;
        version[0] = 2;
        assert!(PositionSample::decode_payload(&version, t, 0).is_err());
        for (lat, lon) in [(900_000_001, 0), (0, -1_800_000_001), (i32::MIN, 0)] {
            let mut p = position(1);
            p.lat_lon_e7 = Some((lat, lon));
            assert!(PositionSample::decode_payload(&p.encode_payload(), t, 0).is_err());
        }
        let mut p = position(1);
        p.heading_cdeg = Some(36_000);
        assert!(PositionSample::decode_payload(&p.encode_payload(), t, 0).is_err());
        // Out-of-range values under a clear bit are not looked at.
        let mut p = position(1);
        p.heading_cdeg = None;
        let mut b = p.encode_payload();
        b[28..30].copy_from_slice(&40_000u16.to_le_bytes());
        assert!(PositionSample::decode_payload(&b, t, 0).is_ok());
    }

    #[test]
    fn an_index_without_positions_is_byte_for_byte_the_old_one() {
        let (b, flags) = encode_index_contents(&entries(), &[], Some(&stream_header()));
        assert_eq!(b, encode_index_with_stream(&entries(), &stream_header()));
        assert_eq!(flags, INDEX_FLAG_STREAM_COPY);
        let (b, flags) = encode_index_contents(&entries(), &[], None);
        assert_eq!((b, flags), (encode_index(&entries()), 0));
        // Old indexes, with and without the copy, decode as before.
        let old = encode_index_with_stream(&entries(), &stream_header());
        let c = decode_index_contents(INDEX_FLAG_STREAM_COPY, &old).unwrap();
        assert_eq!(
            c,
            IndexContents {
                frames: entries(),
                positions: Vec::new(),
                stream: Some(stream_header()),
            }
        );
        let c = decode_index_contents(0, &encode_index(&entries())).unwrap();
        assert!(c.positions.is_empty() && c.stream.is_none());
    }

    #[test]
    fn an_index_with_positions_round_trips_and_checks_its_table() {
        for stream in [None, Some(stream_header())] {
            let (b, flags) =
                encode_index_contents(&entries(), &position_entries(), stream.as_ref());
            assert!(flags & INDEX_FLAG_POSITIONS != 0);
            let table = 4 + 3 * INDEX_POSITION_LEN;
            assert_eq!(
                b.len(),
                12 + 5 * INDEX_ENTRY_LEN + table + stream.as_ref().map_or(0, |s| s.encode().len())
            );
            let c = decode_index_contents(flags, &b).unwrap();
            assert_eq!(
                c,
                IndexContents {
                    frames: entries(),
                    positions: position_entries(),
                    stream: stream.clone(),
                }
            );
            assert_eq!(
                decode_index_record(flags, &b).unwrap(),
                (entries(), stream.clone())
            );
            // Without the flag, the table is bytes that do not belong.
            assert!(decode_index_contents(flags & !INDEX_FLAG_POSITIONS, &b).is_err());
            // A count that does not fit, and a position that does not decode.
            let count_at = 12 + 5 * INDEX_ENTRY_LEN;
            let mut more = b.clone();
            more[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            assert!(decode_index_contents(flags, &more).is_err());
            let mut bad = b.clone();
            bad[count_at + 4 + 28] = 9; // position 0's format version
            assert!(decode_index_contents(flags, &bad).is_err());
        }
    }

    #[test]
    fn every_record_kind_round_trips() {
        for (kind, payload) in all_records() {
            let h = sample_header(kind, &payload);
            let decoded = RecordHeader::decode(&h.encode()).unwrap();
            assert_eq!(decoded, h);
            decoded.check_payload(&payload).unwrap();
        }
        assert_eq!(
            StreamHeader::decode(&stream_header().encode()).unwrap(),
            stream_header()
        );
        assert_eq!(decode_index(&encode_index(&entries())).unwrap(), entries());
        let with_copy = encode_index_with_stream(&entries(), &stream_header());
        assert_eq!(
            decode_index_record(INDEX_FLAG_STREAM_COPY, &with_copy).unwrap(),
            (entries(), Some(stream_header()))
        );
        assert!(decode_index(&with_copy).is_err());
        let t = Trailer {
            index_offset: 1 << 40,
            index_record_len: 5000,
            frame_count: 1800,
        };
        assert_eq!(Trailer::decode(&t.encode()).unwrap(), t);
    }

    #[test]
    fn every_single_byte_corruption_is_detected() {
        for (kind, payload) in all_records() {
            let h = sample_header(kind, &payload);
            let mut record = h.encode().to_vec();
            record.extend_from_slice(&payload);
            for pos in 0..record.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut bad = record.clone();
                    bad[pos] ^= flip;
                    let detected = match RecordHeader::decode(&bad[..HEADER_LEN]) {
                        Err(_) => true,
                        Ok(h2) => h2
                            .check_payload(&bad[HEADER_LEN..HEADER_LEN + payload.len()])
                            .is_err(),
                    };
                    assert!(
                        detected,
                        "{kind:?}: flipping {flip:#x} at byte {pos} went unnoticed"
                    );
                }
            }
        }
        let trailer = Trailer {
            index_offset: 8192,
            index_record_len: 300,
            frame_count: 7,
        }
        .encode();
        for pos in 0..TRAILER_LEN {
            let mut bad = trailer;
            bad[pos] ^= 0x10;
            assert!(Trailer::decode(&bad).is_err(), "trailer byte {pos}");
        }
    }

    #[test]
    fn index_entries_may_skip_frame_numbers() {
        let mut e = entries();
        e[2].seq += 5;
        e[3].seq += 5;
        e[4].seq += 70_000;
        assert_eq!(decode_index(&encode_index(&e)).unwrap(), e);
    }

    #[test]
    fn jpeg_dimensions_come_from_the_frame_header() {
        // SOI, an APP0 segment, then SOF0 with height 720 and width 1280.
        let mut j = vec![0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x00, 0x00];
        j.extend_from_slice(&[0xff, 0xc0, 0x00, 0x11, 0x08, 0x02, 0xd0, 0x05, 0x00, 0x03]);
        assert_eq!(jpeg_dimensions(&j), Some((1280, 720)));
        assert_eq!(jpeg_dimensions(&j[..12]), None);
        assert_eq!(jpeg_dimensions(b"not a jpeg"), None);
        assert_eq!(jpeg_dimensions(&[0xff, 0xd8, 0xff, 0xda, 0, 2]), None);
    }

    #[test]
    fn zeros_and_short_input_are_not_records() {
        assert!(matches!(
            RecordHeader::decode(&[0u8; HEADER_LEN]),
            Err(FormatError::BadMagic(_))
        ));
        assert!(matches!(
            RecordHeader::decode(&[0u8; 10]),
            Err(FormatError::Truncated { .. })
        ));
        assert!(Trailer::decode(&[0u8; TRAILER_LEN]).is_err());
    }

    #[test]
    fn oversized_length_is_rejected_even_with_valid_crc() {
        let mut h = sample_header(RecordKind::Frame, b"x");
        h.payload_len = PAYLOAD_BYTES_MAX + 1;
        assert_eq!(
            RecordHeader::decode(&h.encode()),
            Err(FormatError::TooLong(PAYLOAD_BYTES_MAX + 1))
        );
    }

    #[test]
    fn padding_lands_on_the_boundary() {
        for start in [0u64, 4096, 8192] {
            for used in [0usize, 1, 47, 48, 100, 4000, 4049, 4050, 4095, 4096] {
                for tail in [0usize, 32, 500] {
                    let mut out = vec![1u8; used];
                    let pad = padding_record(start + used as u64, BLOCK_BYTES, tail);
                    let added = pad.len();
                    out.extend_from_slice(&pad);
                    assert_eq!((start + (out.len() + tail) as u64) % BLOCK_BYTES as u64, 0);
                    assert!(added == 0 || added >= HEADER_LEN);
                    if added > 0 {
                        let h = RecordHeader::decode(&out[used..used + HEADER_LEN]).unwrap();
                        assert_eq!(h.kind, RecordKind::Padding);
                        h.check_payload(&out[used + HEADER_LEN..]).unwrap();
                    }
                }
            }
        }
    }
}
