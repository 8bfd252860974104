//! ISO BMFF (`.mp4`) box writing for exports: `ftyp`, the `moov` with its
//! sample tables, and the `mdat` header. Nothing here reads footage; the
//! caller describes each track's samples and chunks, and this module turns
//! that description into bytes. `docs/export.md` has the box layout.
//!
//! Every box is written big-endian with a 32-bit size patched in when the box
//! ends. Only `mdat` can outgrow 32 bits; it gets the 64-bit `largesize`
//! form in [`mdat_header`].

use std::io::Write;

/// Ticks per second of the movie and of every track.
pub const TIMESCALE: u32 = 90_000;

/// Seconds from 1904-01-01 (the MP4 epoch) to 1970-01-01.
const MP4_EPOCH_OFFSET_S: u64 = 2_082_844_800;

/// Identity transform (16.16 and 2.30 fixed point), as every player expects.
const MATRIX_IDENTITY: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// `und` (undetermined) packed as three 5-bit letters.
const LANGUAGE_UND: u16 = 0x55c4;

/// Builds nested boxes in one buffer. A per-sample table is not copied in:
/// it is spliced (named by track and table, counted in the sizes of the
/// boxes around it) and stays in its [`SampleTable`], so a day's tables are
/// in memory once.
#[derive(Default)]
pub struct BoxWriter {
    pub buf: Vec<u8>,
    /// Start of each open box in `buf`, and the spliced bytes before it.
    open: Vec<(usize, u64)>,
    splices: Vec<Splice>,
    spliced_len: u64,
}

/// A table left out of [`BoxWriter::buf`], to be read from its track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Splice {
    /// Where in `buf` its bytes belong.
    at: usize,
    track: usize,
    table: Table,
    len: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    Stts,
    Stsz,
}

impl BoxWriter {
    pub fn begin(&mut self, fourcc: &[u8; 4]) {
        self.open.push((self.buf.len(), self.spliced_len));
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
        self.buf.extend_from_slice(fourcc);
    }

    /// A "full box": version and 24-bit flags after the type.
    pub fn begin_full(&mut self, fourcc: &[u8; 4], version: u8, flags: u32) {
        self.begin(fourcc);
        self.u32(((version as u32) << 24) | (flags & 0x00ff_ffff));
    }

    pub fn end(&mut self) {
        let (start, spliced_before) = self.open.pop().expect("end() matches a begin()");
        let size = (self.buf.len() - start) as u64 + (self.spliced_len - spliced_before);
        // The caller caps the frame count so that no table reaches 4 GiB.
        let size = u32::try_from(size).expect("box smaller than 4 GiB");
        self.buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    pub fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    fn splice(&mut self, track: usize, table: Table, len: usize) {
        self.splices.push(Splice {
            at: self.buf.len(),
            track,
            table,
            len: len as u64,
        });
        self.spliced_len += len as u64;
    }

    /// Everything written, as one buffer with the tables of `tracks`
    /// copied in (tests, and files small enough to hold twice).
    pub fn into_bytes(self, tracks: &[Track]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buf.len() + self.spliced_len as usize);
        let mut from = 0;
        for s in &self.splices {
            out.extend_from_slice(&self.buf[from..s.at]);
            out.extend_from_slice(tracks[s.track].samples.table(s.table));
            from = s.at;
        }
        out.extend_from_slice(&self.buf[from..]);
        out
    }
}

/// A run of samples stored back to back in `mdat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub samples: u32,
    /// 1-based index into the track's sample descriptions.
    pub description: u32,
    /// Offset of the first sample from the start of the `mdat` body.
    pub body_offset: u64,
}

/// What a track's samples are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackMedia {
    /// Motion JPEG, one sample description per picture size (a camera can
    /// change resolution between segments).
    Jpeg { sizes: Vec<(u32, u32)> },
    /// 3GPP timed text (`tx3g`) drawn over a video of this size.
    Text { width: u32, height: u32 },
    /// H.264 (`avc1`): samples are access units with 4-byte NAL lengths.
    Avc(AvcMedia),
}

/// An H.264 track's description and its key frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvcMedia {
    pub width: u32,
    pub height: u32,
    /// The `avcC` body, see [`avc_config`].
    pub config: Vec<u8>,
    /// 1-based numbers of the samples that are key frames (`stss`).
    pub sync_samples: Vec<u32>,
}

#[derive(Clone, Debug)]
pub struct Track {
    pub id: u32,
    pub media: TrackMedia,
    pub samples: SampleTable,
    pub chunks: Vec<Chunk>,
}

impl Track {
    pub fn duration(&self) -> u64 {
        self.samples.duration
    }
}

/// Each sample's duration and size, kept as the entries of the `stts` and
/// `stsz` boxes: at most 12 bytes a sample (8 when durations repeat), the
/// only per-sample memory a file header needs.
#[derive(Clone, Debug, Default)]
pub struct SampleTable {
    /// `stts` entries (count, delta), big-endian.
    stts: Vec<u8>,
    /// `stsz` entries, big-endian (left out when every size is the same).
    stsz: Vec<u8>,
    count: u32,
    /// In ticks of [`TIMESCALE`].
    duration: u64,
    /// The size every sample so far has, if they all have the same.
    uniform_size: Option<u32>,
}

impl SampleTable {
    pub fn from_parts(durations: &[u32], sizes: &[u32]) -> SampleTable {
        debug_assert_eq!(durations.len(), sizes.len());
        let mut t = SampleTable::default();
        for (d, s) in durations.iter().zip(sizes) {
            t.push(*d, *s);
        }
        t
    }

    /// Adds a sample of `duration` ticks and `size` bytes.
    pub fn push(&mut self, duration: u32, size: u32) {
        let n = self.stts.len();
        let last_delta = (n >= 8).then(|| be32(&self.stts[n - 4..]));
        if last_delta == Some(duration) {
            let count = be32(&self.stts[n - 8..n - 4]) + 1;
            self.stts[n - 8..n - 4].copy_from_slice(&count.to_be_bytes());
        } else {
            self.stts.extend_from_slice(&1u32.to_be_bytes());
            self.stts.extend_from_slice(&duration.to_be_bytes());
        }
        self.stsz.extend_from_slice(&size.to_be_bytes());
        self.uniform_size = match (self.count, self.uniform_size) {
            (0, _) => Some(size),
            (_, Some(u)) if u == size => Some(u),
            _ => None,
        };
        self.count += 1;
        self.duration += duration as u64;
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Total, in ticks of [`TIMESCALE`].
    pub fn duration(&self) -> u64 {
        self.duration
    }

    /// The size of sample `i` (0-based).
    pub fn size(&self, i: usize) -> u32 {
        be32(&self.stsz[i * 4..i * 4 + 4])
    }

    /// Frees what the tables do not use.
    pub fn shrink_to_fit(&mut self) {
        if self.uniform_size.is_some() {
            self.stsz = Vec::new();
        }
        self.stts.shrink_to_fit();
        self.stsz.shrink_to_fit();
    }

    fn table(&self, table: Table) -> &[u8] {
        match table {
            Table::Stts => &self.stts,
            Table::Stsz if self.uniform_size.is_some() => &[],
            Table::Stsz => &self.stsz,
        }
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The movie as a whole.
pub struct Movie<'a> {
    pub tracks: &'a [Track],
    /// Wall time of the first frame, for the creation and modification times.
    pub start_wall_ns: i64,
    /// Added to every chunk's body offset: where the `mdat` body starts.
    pub body_start: u64,
    /// Write `co64` (64-bit chunk offsets) instead of `stco`.
    pub co64: bool,
}

pub const FTYP_BRANDS: [&[u8; 4]; 3] = [b"isom", b"iso2", b"mp41"];

pub fn write_ftyp(w: &mut BoxWriter) {
    w.begin(b"ftyp");
    w.bytes(b"isom");
    w.u32(0x200);
    for b in FTYP_BRANDS {
        w.bytes(b);
    }
    w.end();
}

/// `mdat` header for a body of `body_len` bytes: 8 bytes, or 16 with a
/// 64-bit size once the box would not fit in 32 bits.
pub fn mdat_header(body_len: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(16);
    if body_len + 8 <= u32::MAX as u64 {
        h.extend_from_slice(&((body_len + 8) as u32).to_be_bytes());
        h.extend_from_slice(b"mdat");
    } else {
        h.extend_from_slice(&1u32.to_be_bytes());
        h.extend_from_slice(b"mdat");
        h.extend_from_slice(&(body_len + 16).to_be_bytes());
    }
    h
}

pub fn write_moov(w: &mut BoxWriter, movie: &Movie) {
    let duration = movie.tracks.iter().map(Track::duration).max().unwrap_or(0);
    let created = (movie.start_wall_ns.max(0) as u64) / 1_000_000_000 + MP4_EPOCH_OFFSET_S;
    let long = duration > u32::MAX as u64 || created > u32::MAX as u64;
    w.begin(b"moov");

    w.begin_full(b"mvhd", long as u8, 0);
    times(w, long, created, TIMESCALE, duration);
    w.u32(0x0001_0000); // rate 1.0
    w.u16(0x0100); // volume 1.0
    w.zeros(2 + 8);
    for m in MATRIX_IDENTITY {
        w.u32(m);
    }
    w.zeros(24); // pre_defined
    w.u32(movie.tracks.iter().map(|t| t.id).max().unwrap_or(0) + 1);
    w.end();

    for (i, track) in movie.tracks.iter().enumerate() {
        write_trak(w, movie, i, track, created);
    }
    w.end();
}

/// creation, modification, (track id,) timescale or not, duration: the
/// version 0 or 1 layout shared by `mvhd` and `mdhd`.
fn times(w: &mut BoxWriter, long: bool, created: u64, timescale: u32, duration: u64) {
    if long {
        w.u64(created);
        w.u64(created);
        w.u32(timescale);
        w.u64(duration);
    } else {
        w.u32(created as u32);
        w.u32(created as u32);
        w.u32(timescale);
        w.u32(duration as u32);
    }
}

fn write_trak(w: &mut BoxWriter, movie: &Movie, index: usize, track: &Track, created: u64) {
    let duration = track.duration();
    let long = duration > u32::MAX as u64 || created > u32::MAX as u64;
    let (width, height, layer, text) = match &track.media {
        TrackMedia::Jpeg { sizes } => {
            let (w0, h0) = sizes.first().copied().unwrap_or((0, 0));
            (w0, h0, 0i16, false)
        }
        // Text sits above the picture (lower layers are drawn on top).
        TrackMedia::Text { width, height } => (*width, *height, -1i16, true),
        TrackMedia::Avc(avc) => (avc.width, avc.height, 0i16, false),
    };
    w.begin(b"trak");

    // Flags: enabled, in movie, in preview.
    w.begin_full(b"tkhd", long as u8, 0x7);
    if long {
        w.u64(created);
        w.u64(created);
        w.u32(track.id);
        w.u32(0);
        w.u64(duration);
    } else {
        w.u32(created as u32);
        w.u32(created as u32);
        w.u32(track.id);
        w.u32(0);
        w.u32(duration as u32);
    }
    w.zeros(8);
    w.i16(layer);
    w.u16(0); // alternate group
    w.u16(0); // volume: not audio
    w.u16(0);
    for m in MATRIX_IDENTITY {
        w.u32(m);
    }
    w.u32(width << 16);
    w.u32(height << 16);
    w.end();

    w.begin(b"mdia");
    w.begin_full(b"mdhd", long as u8, 0);
    times(w, long, created, TIMESCALE, duration);
    w.u16(LANGUAGE_UND);
    w.u16(0);
    w.end();

    let (handler, name): (&[u8; 4], &[u8]) = if text {
        (b"sbtl", b"Capture time (UTC)\0")
    } else {
        (b"vide", b"Camera\0")
    };
    w.begin_full(b"hdlr", 0, 0);
    w.u32(0);
    w.bytes(handler);
    w.zeros(12);
    w.bytes(name);
    w.end();

    w.begin(b"minf");
    if text {
        w.begin_full(b"nmhd", 0, 0);
        w.end();
    } else {
        w.begin_full(b"vmhd", 0, 1);
        w.zeros(8); // graphics mode, opcolor
        w.end();
    }
    w.begin(b"dinf");
    w.begin_full(b"dref", 0, 0);
    w.u32(1);
    w.begin_full(b"url ", 0, 1); // flag 1: data in this file
    w.end();
    w.end();
    w.end();

    write_stbl(w, movie, index, track);
    w.end(); // minf
    w.end(); // mdia
    w.end(); // trak
}

fn write_stbl(w: &mut BoxWriter, movie: &Movie, index: usize, track: &Track) {
    w.begin(b"stbl");

    w.begin_full(b"stsd", 0, 0);
    match &track.media {
        TrackMedia::Jpeg { sizes } => {
            w.u32(sizes.len() as u32);
            for (width, height) in sizes {
                jpeg_sample_entry(w, *width, *height);
            }
        }
        TrackMedia::Text { width, height } => {
            w.u32(1);
            text_sample_entry(w, *width, *height);
        }
        TrackMedia::Avc(avc) => {
            w.u32(1);
            avc_sample_entry(w, avc);
        }
    }
    w.end();

    // Decoding times, run-length coded.
    let stts = track.samples.table(Table::Stts);
    w.begin_full(b"stts", 0, 0);
    w.u32((stts.len() / 8) as u32);
    w.splice(index, Table::Stts, stts.len());
    w.end();

    // No `stss` for JPEG: without it every sample is a sync sample.
    if let TrackMedia::Avc(avc) = &track.media {
        w.begin_full(b"stss", 0, 0);
        w.u32(avc.sync_samples.len() as u32);
        for n in &avc.sync_samples {
            w.u32(*n);
        }
        w.end();
    }

    // Samples per chunk, run-length coded over chunks.
    w.begin_full(b"stsc", 0, 0);
    let mut entries: Vec<(u32, u32, u32)> = Vec::new();
    for (i, c) in track.chunks.iter().enumerate() {
        if entries
            .last()
            .is_none_or(|(_, n, d)| (*n, *d) != (c.samples, c.description))
        {
            entries.push((i as u32 + 1, c.samples, c.description));
        }
    }
    w.u32(entries.len() as u32);
    for (first, n, d) in entries {
        w.u32(first);
        w.u32(n);
        w.u32(d);
    }
    w.end();

    w.begin_full(b"stsz", 0, 0);
    w.u32(track.samples.uniform_size.unwrap_or(0));
    w.u32(track.samples.count);
    w.splice(index, Table::Stsz, track.samples.table(Table::Stsz).len());
    w.end();

    if movie.co64 {
        w.begin_full(b"co64", 0, 0);
        w.u32(track.chunks.len() as u32);
        for c in &track.chunks {
            w.u64(movie.body_start + c.body_offset);
        }
    } else {
        w.begin_full(b"stco", 0, 0);
        w.u32(track.chunks.len() as u32);
        for c in &track.chunks {
            // The caller switches to co64 before any offset passes 32 bits.
            w.u32((movie.body_start + c.body_offset) as u32);
        }
    }
    w.end();

    w.end(); // stbl
}

/// Visual sample entry `jpeg` (Photo JPEG): every sample is one complete
/// JPEG image. ffmpeg, VLC and QuickTime all map this type to Motion JPEG.
fn jpeg_sample_entry(w: &mut BoxWriter, width: u32, height: u32) {
    w.begin(b"jpeg");
    w.zeros(6);
    w.u16(1); // data reference index
    w.u16(0); // version
    w.u16(0); // revision level
    w.zeros(4); // vendor
    w.u32(0); // temporal quality
    w.u32(512); // spatial quality: normal
    w.u16(width.min(u16::MAX as u32) as u16);
    w.u16(height.min(u16::MAX as u32) as u16);
    w.u32(0x0048_0000); // 72 dpi
    w.u32(0x0048_0000);
    w.u32(0); // data size
    w.u16(1); // frames per sample
    let name = b"Photo - JPEG";
    w.u8(name.len() as u8);
    w.bytes(name);
    w.zeros(31 - name.len());
    w.u16(24); // depth: colour
    w.i16(-1); // no colour table
    w.end();
}

/// Visual sample entry `avc1` (ISO/IEC 14496-15) with its `avcC`.
fn avc_sample_entry(w: &mut BoxWriter, avc: &AvcMedia) {
    w.begin(b"avc1");
    w.zeros(6);
    w.u16(1); // data reference index
    w.zeros(16); // pre_defined, reserved
    w.u16(avc.width.min(u16::MAX as u32) as u16);
    w.u16(avc.height.min(u16::MAX as u32) as u16);
    w.u32(0x0048_0000); // 72 dpi
    w.u32(0x0048_0000);
    w.u32(0); // reserved
    w.u16(1); // frames per sample
    w.zeros(32); // compressor name: none
    w.u16(24); // depth: colour
    w.i16(-1);
    w.begin(b"avcC");
    w.bytes(&avc.config);
    w.end();
    w.end();
}

/// `ftyp`, `moov` and the `mdat` header of a file, holding its tracks: the
/// per-sample tables are read from them as the header is written, never
/// copied (see [`BoxWriter`]).
pub struct FileHeader {
    /// Everything but the spliced tables.
    boxes: BoxWriter,
    tracks: Vec<Track>,
    len: u64,
}

impl FileHeader {
    /// The header for a body of `body_len` bytes that follows it. Chunk
    /// offsets are 32-bit unless the last chunk would start past
    /// `chunk_offset_limit` (`u32::MAX` outside tests).
    pub fn new(
        mut tracks: Vec<Track>,
        start_wall_ns: i64,
        body_len: u64,
        chunk_offset_limit: u64,
    ) -> FileHeader {
        for t in &mut tracks {
            t.samples.shrink_to_fit();
        }
        let moov = |body_start: u64, co64: bool| {
            let mut w = BoxWriter::default();
            write_ftyp(&mut w);
            write_moov(
                &mut w,
                &Movie {
                    tracks: &tracks,
                    start_wall_ns,
                    body_start,
                    co64,
                },
            );
            w.bytes(&mdat_header(body_len));
            w
        };
        let last_chunk_offset = tracks
            .iter()
            .filter_map(|t| t.chunks.last())
            .map(|c| c.body_offset)
            .max()
            .unwrap_or(0);
        let header_len = |w: &BoxWriter| w.buf.len() as u64 + w.spliced_len;
        // Laid out once to learn its length (the tables are not copied).
        let short = header_len(&moov(0, false));
        let co64 = short + last_chunk_offset > chunk_offset_limit;
        let body_start = if co64 {
            header_len(&moov(0, true))
        } else {
            short
        };
        let mut boxes = moov(body_start, co64);
        boxes.buf.shrink_to_fit();
        debug_assert_eq!(header_len(&boxes), body_start);
        FileHeader {
            boxes,
            tracks,
            len: body_start,
        }
    }

    /// Bytes in the header; the body starts here.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes bytes `[lo, hi)` of the header.
    pub fn write_range(&self, lo: u64, hi: u64, out: &mut dyn Write) -> std::io::Result<()> {
        // (start in the header, bytes) of each stretch, in order.
        let mut at = 0u64;
        let mut from = 0usize;
        let mut stretches: Vec<&[u8]> = Vec::with_capacity(2 * self.boxes.splices.len() + 1);
        for s in &self.boxes.splices {
            stretches.push(&self.boxes.buf[from..s.at]);
            stretches.push(self.tracks[s.track].samples.table(s.table));
            from = s.at;
        }
        stretches.push(&self.boxes.buf[from..]);
        for bytes in stretches {
            let end = at + bytes.len() as u64;
            if end > lo && at < hi {
                let a = lo.saturating_sub(at) as usize;
                let b = (hi.min(end) - at) as usize;
                out.write_all(&bytes[a..b])?;
            }
            at = end;
        }
        Ok(())
    }

    /// The whole header in one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len as usize);
        self.write_range(0, self.len, &mut out)
            .expect("writing to a Vec");
        out
    }
}

/// The NAL units of an Annex B byte stream (start codes removed).
pub fn annexb_nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|s| {
            // The next start code, and a fourth zero before it if present.
            let mut e = s - 3;
            while e > 0 && data[e - 1] == 0 {
                e -= 1;
            }
            e
        })
        .chain(std::iter::once(data.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .map(move |(s, e)| &data[s..e.max(s)])
        .filter(|n| !n.is_empty())
}

/// Appends an Annex B access unit as an MP4 sample: each NAL unit behind
/// its 4-byte big-endian length. SPS and PPS are left out (they live in
/// `avcC`). Returns the bytes appended.
pub fn append_avc_sample(annexb: &[u8], out: &mut Vec<u8>) -> usize {
    let before = out.len();
    for nal in annexb_nal_units(annexb) {
        if matches!(nal[0] & 0x1f, 7 | 8) {
            continue;
        }
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out.len() - before
}

/// The `avcC` body (AVCDecoderConfigurationRecord) from the SPS and PPS of
/// a key frame's access unit; `None` if it lacks either.
pub fn avc_config(keyframe: &[u8]) -> Option<Vec<u8>> {
    let sps = annexb_nal_units(keyframe).find(|n| n[0] & 0x1f == 7 && n.len() >= 4)?;
    let pps = annexb_nal_units(keyframe).find(|n| n[0] & 0x1f == 8)?;
    let mut c = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    c.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    c.extend_from_slice(sps);
    c.push(1);
    c.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    c.extend_from_slice(pps);
    Some(c)
}

/// Text sample entry `tx3g` (3GPP TS 26.245): white text, centred at the
/// bottom of the picture on a translucent black band.
fn text_sample_entry(w: &mut BoxWriter, width: u32, height: u32) {
    let font_size = (height / 18).clamp(10, 255);
    let band = (font_size * 2).min(height);
    let clamp16 = |v: u32| v.min(i16::MAX as u32) as i16;
    w.begin(b"tx3g");
    w.zeros(6);
    w.u16(1); // data reference index
    w.u32(0); // display flags
    w.u8(1); // horizontal justification: centre
    w.u8(0xff); // vertical justification: bottom
    w.bytes(&[0, 0, 0, 0x99]); // background RGBA
                               // Default text box: top, left, bottom, right.
    w.i16(clamp16(height - band));
    w.i16(0);
    w.i16(clamp16(height));
    w.i16(clamp16(width));
    // Default style: characters 0..0, font 1, plain, size, white.
    w.u16(0);
    w.u16(0);
    w.u16(1);
    w.u8(0);
    w.u8(font_size as u8);
    w.bytes(&[0xff, 0xff, 0xff, 0xff]);
    w.begin(b"ftab");
    w.u16(1);
    w.u16(1);
    let font = b"Sans-Serif";
    w.u8(font.len() as u8);
    w.bytes(font);
    w.end();
    w.end();
}

/// One `tx3g` sample: a 16-bit length and the UTF-8 text.
pub fn text_sample(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let b = &b[..b.len().min(u16::MAX as usize)];
    let mut out = Vec::with_capacity(2 + b.len());
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
    out
}

/// Finds the boxes of a path like `moov/trak/mdia` in `data` (tests, and
/// checking our own output). Returns the body ranges of every match.
pub fn find_boxes(data: &[u8], path: &[&[u8; 4]]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    find_in(data, 0, path, &mut out);
    out
}

fn find_in(data: &[u8], base: usize, path: &[&[u8; 4]], out: &mut Vec<std::ops::Range<usize>>) {
    let Some((want, rest)) = path.split_first() else {
        return;
    };
    let mut pos = 0usize;
    while pos + 8 <= data.len() {
        let size32 = u32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]);
        let kind = &data[pos + 4..pos + 8];
        let (header, size) = match size32 {
            1 if pos + 16 <= data.len() => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[pos + 8..pos + 16]);
                (16usize, u64::from_be_bytes(b) as usize)
            }
            0 => (8, data.len() - pos),
            n => (8, n as usize),
        };
        if size < header {
            return;
        }
        let end = (pos + size).min(data.len());
        if kind == &want[..] {
            let body = pos + header..end;
            if rest.is_empty() {
                out.push(base + body.start..base + body.end);
            } else {
                find_in(&data[body.clone()], base + body.start, rest, out);
            }
        }
        pos += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_carry_their_own_size() {
        let mut w = BoxWriter::default();
        w.begin(b"moov");
        w.begin_full(b"mvhd", 1, 0);
        w.u64(7);
        w.end();
        w.end();
        assert_eq!(be32(&w.buf[0..4]) as usize, w.buf.len());
        assert_eq!(&w.buf[4..8], b"moov");
        assert_eq!(be32(&w.buf[8..12]), 20);
        assert_eq!(w.buf[16], 1); // version
        let found = find_boxes(&w.buf, &[b"moov", b"mvhd"]);
        assert_eq!(found, vec![16..28]);
    }

    #[test]
    fn mdat_header_switches_to_64_bits_past_4_gib() {
        assert_eq!(mdat_header(100), [0, 0, 0, 108, b'm', b'd', b'a', b't']);
        let h = mdat_header(u32::MAX as u64);
        assert_eq!(h.len(), 16);
        assert_eq!(be32(&h[0..4]), 1);
        assert_eq!(&h[8..16], &(u32::MAX as u64 + 16).to_be_bytes());
    }

    #[test]
    fn stts_entries_collapse_equal_neighbours() {
        let t = SampleTable::from_parts(&[3, 3, 3, 4, 3], &[1, 1, 1, 1, 1]);
        let entries: Vec<u32> = t.stts.chunks(4).map(be32).collect();
        assert_eq!(entries, vec![3, 3, 1, 4, 1, 3]);
        assert_eq!((t.len(), t.duration()), (5, 16));
        assert!(SampleTable::default().stts.is_empty());
    }

    #[test]
    fn header_written_in_ranges_is_the_header_whole() {
        let track = |id, sizes: &[u32]| Track {
            id,
            media: TrackMedia::Jpeg {
                sizes: vec![(64, 48)],
            },
            samples: SampleTable::from_parts(&vec![3000; sizes.len()], sizes),
            chunks: vec![Chunk {
                samples: sizes.len() as u32,
                description: 1,
                body_offset: 0,
            }],
        };
        let tracks = vec![track(1, &[5, 6, 7, 8]), track(2, &[9; 3])];
        let header = FileHeader::new(tracks.clone(), 0, 100, u32::MAX as u64);
        let whole = header.to_vec();
        assert_eq!(whole.len() as u64, header.len());
        // The same bytes as a header laid out in one buffer.
        let mut w = BoxWriter::default();
        write_ftyp(&mut w);
        write_moov(
            &mut w,
            &Movie {
                tracks: &tracks,
                start_wall_ns: 0,
                body_start: header.len(),
                co64: false,
            },
        );
        w.bytes(&mdat_header(100));
        assert_eq!(w.into_bytes(&tracks), whole);
        for (lo, hi) in [(0, 1), (3, 200), (100, whole.len() as u64), (7, 7)] {
            let hi = hi.min(whole.len() as u64);
            let mut part = Vec::new();
            header.write_range(lo, hi, &mut part).unwrap();
            assert_eq!(part, &whole[lo as usize..hi as usize], "{lo}..{hi}");
        }
        // Uniform sizes leave the stsz table out.
        let stsz = find_boxes(
            &whole,
            &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsz"],
        );
        assert_eq!(stsz[0].len(), 12 + 16);
        assert_eq!(stsz[1].len(), 12);
    }

    fn movie_bytes(co64: bool, body_start: u64) -> Vec<u8> {
        let track = Track {
            id: 1,
            media: TrackMedia::Jpeg {
                sizes: vec![(640, 480)],
            },
            samples: SampleTable::from_parts(&[3000, 3000, 2999], &[10, 20, 30]),
            chunks: vec![
                Chunk {
                    samples: 2,
                    description: 1,
                    body_offset: 0,
                },
                Chunk {
                    samples: 1,
                    description: 1,
                    body_offset: 30,
                },
            ],
        };
        let tracks = [track];
        let mut w = BoxWriter::default();
        write_moov(
            &mut w,
            &Movie {
                tracks: &tracks,
                start_wall_ns: 1_800_000_000_000_000_000,
                body_start,
                co64,
            },
        );
        w.into_bytes(&tracks)
    }

    #[test]
    fn chunk_offsets_are_32_or_64_bits_as_asked() {
        let stbl: &[&[u8; 4]] = &[b"moov", b"trak", b"mdia", b"minf", b"stbl"];
        let small = movie_bytes(false, 1000);
        let stco = find_boxes(&small, &[stbl, &[b"stco"]].concat());
        assert_eq!(stco.len(), 1);
        let b = &small[stco[0].clone()];
        assert_eq!(be32(&b[4..8]), 2);
        assert_eq!(be32(&b[8..12]), 1000);
        assert_eq!(be32(&b[12..16]), 1030);

        let big = movie_bytes(true, 5 << 30);
        assert!(find_boxes(&big, &[stbl, &[b"stco"]].concat()).is_empty());
        let co64 = find_boxes(&big, &[stbl, &[b"co64"]].concat());
        let b = &big[co64[0].clone()];
        assert_eq!(be32(&b[4..8]), 2);
        assert_eq!(&b[8..16], &(5u64 << 30).to_be_bytes());
        assert_eq!(&b[16..24], &((5u64 << 30) + 30).to_be_bytes());
        // Only the offsets table grows: 4 more bytes per chunk.
        assert_eq!(big.len(), small.len() + 8);
    }

    #[test]
    fn stts_and_stsz_describe_every_sample() {
        let m = movie_bytes(false, 0);
        let stbl: &[&[u8; 4]] = &[b"moov", b"trak", b"mdia", b"minf", b"stbl"];
        let stts = &m[find_boxes(&m, &[stbl, &[b"stts"]].concat())[0].clone()];
        assert_eq!(be32(&stts[4..8]), 2);
        assert_eq!((be32(&stts[8..12]), be32(&stts[12..16])), (2, 3000));
        assert_eq!((be32(&stts[16..20]), be32(&stts[20..24])), (1, 2999));
        let stsz = &m[find_boxes(&m, &[stbl, &[b"stsz"]].concat())[0].clone()];
        assert_eq!(be32(&stsz[4..8]), 0);
        assert_eq!(be32(&stsz[8..12]), 3);
        let mdhd = &m[find_boxes(&m, &[b"moov", b"trak", b"mdia", b"mdhd"])[0].clone()];
        assert_eq!(be32(&mdhd[12..16]), TIMESCALE);
        assert_eq!(be32(&mdhd[16..20]), 8999);
    }

    #[test]
    fn annex_b_becomes_length_prefixed_samples_and_an_avcc() {
        let au = [
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 9, // SPS
            0, 0, 0, 1, 0x68, 0xce, // PPS
            0, 0, 1, 0x65, 1, 2, 3, // IDR slice, 3-byte start code
        ];
        let nals: Vec<&[u8]> = annexb_nal_units(&au).collect();
        assert_eq!(nals.len(), 3);
        assert_eq!(nals[2], &[0x65, 1, 2, 3]);
        let mut out = Vec::new();
        assert_eq!(append_avc_sample(&au, &mut out), 8);
        assert_eq!(out, vec![0, 0, 0, 4, 0x65, 1, 2, 3]);
        let c = avc_config(&au).expect("avcC");
        assert_eq!(&c[..6], &[1, 0x42, 0xc0, 0x1e, 0xff, 0xe1]);
        assert_eq!(&c[6..8], &[0, 5]);
        assert_eq!(&c[13..], &[1, 0, 2, 0x68, 0xce]);
        assert!(avc_config(&au[15..]).is_none());
    }

    #[test]
    fn avc_tracks_list_their_key_frames() {
        let track = Track {
            id: 1,
            media: TrackMedia::Avc(AvcMedia {
                width: 64,
                height: 48,
                config: vec![1, 2, 3],
                sync_samples: vec![1, 31],
            }),
            samples: SampleTable::from_parts(&[3000; 40], &[5; 40]),
            chunks: vec![Chunk {
                samples: 40,
                description: 1,
                body_offset: 0,
            }],
        };
        let tracks = [track];
        let mut w = BoxWriter::default();
        write_moov(
            &mut w,
            &Movie {
                tracks: &tracks,
                start_wall_ns: 0,
                body_start: 0,
                co64: false,
            },
        );
        let m = w.into_bytes(&tracks);
        let stbl: &[&[u8; 4]] = &[b"moov", b"trak", b"mdia", b"minf", b"stbl"];
        let stss = &m[find_boxes(&m, &[stbl, &[b"stss"]].concat())[0].clone()];
        assert_eq!(&stss[4..], &[0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 31]);
        let stsd = find_boxes(&m, &[stbl, &[b"stsd"]].concat())[0].clone();
        let avcc = find_boxes(&m[stsd.start + 8..stsd.end], &[b"avc1"])[0].clone();
        let body = &m[stsd.start + 8 + avcc.start..stsd.start + 8 + avcc.end];
        assert_eq!(&body[24..28], &[0, 64, 0, 48]);
        assert_eq!(find_boxes(&body[78..], &[b"avcC"]), vec![8..11]);
    }

    #[test]
    fn long_movies_use_version_1_times() {
        let track = |durations: Vec<u32>| Track {
            id: 1,
            media: TrackMedia::Jpeg {
                sizes: vec![(64, 48)],
            },
            samples: SampleTable::from_parts(&durations, &vec![1; durations.len()]),
            chunks: vec![Chunk {
                samples: durations.len() as u32,
                description: 1,
                body_offset: 0,
            }],
        };
        let version = |durations: Vec<u32>, path: &[&[u8; 4]]| {
            let tracks = [track(durations)];
            let mut w = BoxWriter::default();
            write_moov(
                &mut w,
                &Movie {
                    tracks: &tracks,
                    start_wall_ns: 1_800_000_000_000_000_000,
                    body_start: 0,
                    co64: false,
                },
            );
            let m = w.into_bytes(&tracks);
            let body = find_boxes(&m, path)[0].clone();
            (m[body.start], m[body.clone()].to_vec())
        };
        let mvhd: &[&[u8; 4]] = &[b"moov", b"mvhd"];
        let mdhd: &[&[u8; 4]] = &[b"moov", b"trak", b"mdia", b"mdhd"];
        assert_eq!(version(vec![3000; 10], mvhd).0, 0);
        let (v, body) = version(vec![u32::MAX, 2], mvhd);
        assert_eq!(v, 1);
        // version/flags, creation, modification, timescale, then 64-bit duration.
        assert_eq!(&body[24..32], &(u32::MAX as u64 + 2).to_be_bytes());
        assert_eq!(version(vec![u32::MAX, 2], mdhd).0, 1);
        assert_eq!(
            version(vec![u32::MAX, 2], &[b"moov", b"trak", b"tkhd"]).0,
            1
        );
    }
}
