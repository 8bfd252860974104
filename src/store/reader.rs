//! Reading segments: the index from a valid trailer (one read), else a scan
//! that stops at the first record whose header or payload CRC fails. Every
//! frame handed out has had both CRCs checked, so nothing torn or corrupt is
//! ever served as video.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::format::{
    decode_index, IndexEntry, RecordHeader, RecordKind, StreamHeader, Trailer, HEADER_LEN,
    TRAILER_LEN,
};
use super::io::{SegmentFile, StorageIo};
use super::StoreError;

/// Bytes read per call while scanning.
const SCAN_CHUNK_BYTES: usize = 4 << 20;

/// What a scan from the start of a segment found.
#[derive(Clone, Debug, Default)]
pub struct ScanResult {
    pub stream: Option<StreamHeader>,
    pub frames: Vec<IndexEntry>,
    /// End of the last valid record (frame, padding or stream header).
    pub valid_end: u64,
    pub file_len: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub stop: Option<String>,
    /// A valid index record was reached (the segment was being closed).
    pub reached_index: bool,
    /// Whether every byte after `valid_end` is zero (a preallocated tail).
    pub tail_is_zero: bool,
}

/// Walks records from offset 0, checking every CRC.
pub fn scan(file: &dyn SegmentFile, path: &Path) -> Result<ScanResult, StoreError> {
    let file_len = file
        .file_len()
        .map_err(|e| StoreError::io(path, "reading size", e))?;
    let mut out = ScanResult {
        file_len,
        ..ScanResult::default()
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = 0u64; // file offset of buf[0]
    let mut pos = 0u64;
    loop {
        if pos + HEADER_LEN as u64 > file_len {
            if pos < file_len {
                out.stop = Some(format!("{} stray bytes at the end", file_len - pos));
            }
            break;
        }
        let hdr = read_span(
            file,
            path,
            &mut buf,
            &mut buf_start,
            pos,
            HEADER_LEN,
            file_len,
        )?;
        let header = match RecordHeader::decode(hdr) {
            Ok(h) => h,
            Err(e) => {
                out.stop = Some(format!("byte {pos}: {e}"));
                break;
            }
        };
        let end = pos + header.record_len();
        if end > file_len {
            out.stop = Some(format!("byte {pos}: record runs past the end of the file"));
            break;
        }
        let payload = read_span(
            file,
            path,
            &mut buf,
            &mut buf_start,
            pos + HEADER_LEN as u64,
            header.payload_len as usize,
            file_len,
        )?;
        if let Err(e) = header.check_payload(payload) {
            out.stop = Some(format!("byte {pos}: {e}"));
            break;
        }
        match header.kind {
            RecordKind::StreamHeader if pos == 0 => match StreamHeader::decode(payload) {
                Ok(s) => out.stream = Some(s),
                Err(e) => {
                    out.stop = Some(format!("byte 0: {e}"));
                    break;
                }
            },
            _ if pos == 0 => {
                out.stop = Some("byte 0: first record is not a stream header".into());
                break;
            }
            RecordKind::StreamHeader => {
                out.stop = Some(format!("byte {pos}: second stream header"));
                break;
            }
            RecordKind::Frame => out.frames.push(IndexEntry {
                offset: pos,
                payload_len: header.payload_len,
                flags: header.flags,
                seq: header.seq,
                mono_ns: header.mono_ns,
                wall_ns: header.wall_ns,
            }),
            RecordKind::Padding => {}
            RecordKind::Index => {
                out.reached_index = true;
                break;
            }
        }
        pos = end;
        out.valid_end = end;
    }
    out.tail_is_zero = tail_is_zero(file, path, out.valid_end, file_len)?;
    Ok(out)
}

/// Returns `len` bytes at `pos`, refilling `buf` in large chunks.
fn read_span<'a>(
    file: &dyn SegmentFile,
    path: &Path,
    buf: &'a mut Vec<u8>,
    buf_start: &mut u64,
    pos: u64,
    len: usize,
    file_len: u64,
) -> Result<&'a [u8], StoreError> {
    let have = pos >= *buf_start && pos + len as u64 <= *buf_start + buf.len() as u64;
    if !have {
        let want = (len.max(SCAN_CHUNK_BYTES) as u64).min(file_len - pos) as usize;
        buf.resize(want, 0);
        file.read_exact_at(buf, pos)
            .map_err(|e| StoreError::io(path, "reading records", e))?;
        *buf_start = pos;
    }
    let at = (pos - *buf_start) as usize;
    Ok(&buf[at..at + len])
}

fn tail_is_zero(
    file: &dyn SegmentFile,
    path: &Path,
    from: u64,
    file_len: u64,
) -> Result<bool, StoreError> {
    let mut pos = from;
    let mut chunk = vec![0u8; 1 << 20];
    while pos < file_len {
        let n = ((file_len - pos) as usize).min(chunk.len());
        file.read_exact_at(&mut chunk[..n], pos)
            .map_err(|e| StoreError::io(path, "reading tail", e))?;
        if chunk[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}

/// Reads and checks the trailer and the index it points to.
pub fn read_closed_index(
    file: &dyn SegmentFile,
    path: &Path,
) -> Result<Option<(StreamHeader, Vec<IndexEntry>, Trailer)>, StoreError> {
    let len = file
        .file_len()
        .map_err(|e| StoreError::io(path, "reading size", e))?;
    if len < (HEADER_LEN + TRAILER_LEN) as u64 {
        return Ok(None);
    }
    let mut tb = [0u8; TRAILER_LEN];
    file.read_exact_at(&mut tb, len - TRAILER_LEN as u64)
        .map_err(|e| StoreError::io(path, "reading trailer", e))?;
    let Ok(trailer) = Trailer::decode(&tb) else {
        return Ok(None);
    };
    let idx_end = trailer.index_offset + trailer.index_record_len as u64;
    if idx_end + TRAILER_LEN as u64 != len || (trailer.index_record_len as usize) < HEADER_LEN {
        return Ok(None);
    }
    let mut rec = vec![0u8; trailer.index_record_len as usize];
    file.read_exact_at(&mut rec, trailer.index_offset)
        .map_err(|e| StoreError::io(path, "reading index", e))?;
    let Ok(h) = RecordHeader::decode(&rec[..HEADER_LEN]) else {
        return Ok(None);
    };
    if h.kind != RecordKind::Index || h.check_payload(&rec[HEADER_LEN..]).is_err() {
        return Ok(None);
    }
    let Ok(frames) = decode_index(&rec[HEADER_LEN..]) else {
        return Ok(None);
    };
    if frames.len() != trailer.frame_count as usize {
        return Ok(None);
    }
    // The stream header is the first record.
    let mut hb = [0u8; HEADER_LEN];
    file.read_exact_at(&mut hb, 0)
        .map_err(|e| StoreError::io(path, "reading stream header", e))?;
    let Ok(sh) = RecordHeader::decode(&hb) else {
        return Ok(None);
    };
    if sh.kind != RecordKind::StreamHeader {
        return Ok(None);
    }
    let mut payload = vec![0u8; sh.payload_len as usize];
    file.read_exact_at(&mut payload, HEADER_LEN as u64)
        .map_err(|e| StoreError::io(path, "reading stream header", e))?;
    if sh.check_payload(&payload).is_err() {
        return Ok(None);
    }
    let Ok(stream) = StreamHeader::decode(&payload) else {
        return Ok(None);
    };
    Ok(Some((stream, frames, trailer)))
}

/// An opened segment: its stream description and frame index.
pub struct SegmentReader {
    pub path: PathBuf,
    pub stream: StreamHeader,
    pub frames: Vec<IndexEntry>,
    /// Whether the index came from a valid trailer (false: it was scanned).
    pub closed: bool,
    /// Wall times were corrected by a clock anchor (`store::anchor`).
    pub relabelled: bool,
    file: Box<dyn SegmentFile>,
}

impl SegmentReader {
    pub fn open(io: &dyn StorageIo, path: &Path) -> Result<SegmentReader, StoreError> {
        let file = io
            .open_read(path)
            .map_err(|e| StoreError::io(path, "opening segment", e))?;
        if let Some((stream, frames, _)) = read_closed_index(file.as_ref(), path)? {
            return Ok(SegmentReader {
                path: path.to_path_buf(),
                stream,
                frames,
                closed: true,
                relabelled: false,
                file,
            }
            .anchored(io));
        }
        let scanned = scan(file.as_ref(), path)?;
        let Some(stream) = scanned.stream else {
            return Err(StoreError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "no valid stream header ({})",
                    scanned.stop.unwrap_or_else(|| "empty file".into())
                ),
            });
        };
        Ok(SegmentReader {
            path: path.to_path_buf(),
            stream,
            frames: scanned.frames,
            closed: false,
            relabelled: false,
            file,
        }
        .anchored(io))
    }

    /// Applies the clock anchor of the recording boot, if the clock was set
    /// after these frames were recorded.
    fn anchored(mut self, io: &dyn StorageIo) -> SegmentReader {
        if let Some(dir) = self.path.parent() {
            self.relabelled = super::anchor::apply(io, dir, &self.stream.boot_id, &mut self.frames);
        }
        self
    }

    /// The JPEG of frame `i`, after checking both CRCs again.
    pub fn read_frame(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        let entry = self.frames.get(i).ok_or_else(|| StoreError::Invalid {
            path: self.path.clone(),
            message: format!("frame {i} out of range ({} frames)", self.frames.len()),
        })?;
        let mut rec = vec![0u8; HEADER_LEN + entry.payload_len as usize];
        self.file
            .read_exact_at(&mut rec, entry.offset)
            .map_err(|e| StoreError::io(&self.path, "reading frame", e))?;
        let bad = |source| StoreError::Format {
            path: self.path.clone(),
            offset: entry.offset,
            source,
        };
        let h = RecordHeader::decode(&rec[..HEADER_LEN]).map_err(bad)?;
        if h.kind != RecordKind::Frame || h.payload_len != entry.payload_len {
            return Err(StoreError::Invalid {
                path: self.path.clone(),
                message: format!("index entry {i} does not point at a frame record"),
            });
        }
        h.check_payload(&rec[HEADER_LEN..]).map_err(bad)?;
        rec.drain(..HEADER_LEN);
        Ok(rec)
    }

    /// Bytes from the start of the first record of `frames` to the end of
    /// the last: what [`read_run`](SegmentReader::read_run) reads for them.
    pub fn run_bytes(&self, frames: Range<usize>) -> u64 {
        match (
            self.frames.get(frames.start),
            frames.end.checked_sub(1).and_then(|l| self.frames.get(l)),
        ) {
            (Some(first), Some(last)) if frames.start < frames.end => {
                (last.offset + HEADER_LEN as u64 + last.payload_len as u64)
                    .saturating_sub(first.offset)
            }
            _ => 0,
        }
    }

    /// Reads the records of frames `frames` (consecutive indexes) with one
    /// positional read into `buf`, and checks each one as [`read_frame`]
    /// does, plus that its frame number matches the index. Nothing of the
    /// run is returned unless every frame in it checks.
    ///
    /// [`read_frame`]: SegmentReader::read_frame
    pub fn read_run<'a>(
        &'a self,
        frames: Range<usize>,
        buf: &'a mut Vec<u8>,
    ) -> Result<FrameRun<'a>, StoreError> {
        let entries = self
            .frames
            .get(frames.clone())
            .ok_or_else(|| StoreError::Invalid {
                path: self.path.clone(),
                message: format!(
                    "frames {}..{} out of range ({} frames)",
                    frames.start,
                    frames.end,
                    self.frames.len()
                ),
            })?;
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            buf.clear();
            return Ok(FrameRun {
                entries,
                base: 0,
                bytes: buf,
            });
        };
        let base = first.offset;
        let end = last.offset + HEADER_LEN as u64 + last.payload_len as u64;
        if end < base {
            return Err(StoreError::Invalid {
                path: self.path.clone(),
                message: format!(
                    "index entries {}..{} are out of order",
                    frames.start, frames.end
                ),
            });
        }
        buf.resize((end - base) as usize, 0);
        self.file
            .read_exact_at(buf, base)
            .map_err(|e| StoreError::io(&self.path, "reading frames", e))?;
        for (k, entry) in entries.iter().enumerate() {
            let bad = |source| StoreError::Format {
                path: self.path.clone(),
                offset: entry.offset,
                source,
            };
            let at = entry
                .offset
                .checked_sub(base)
                .map(|a| a as usize)
                .filter(|a| a + HEADER_LEN + entry.payload_len as usize <= buf.len())
                .ok_or_else(|| StoreError::Invalid {
                    path: self.path.clone(),
                    message: format!(
                        "index entry {} (byte {}) is out of order",
                        frames.start + k,
                        entry.offset
                    ),
                })?;
            let h = RecordHeader::decode(&buf[at..at + HEADER_LEN]).map_err(bad)?;
            if h.kind != RecordKind::Frame
                || h.payload_len != entry.payload_len
                || h.seq != entry.seq
            {
                return Err(StoreError::Invalid {
                    path: self.path.clone(),
                    message: format!(
                        "byte {}: record does not match index entry {} (frame {})",
                        entry.offset,
                        frames.start + k,
                        entry.seq
                    ),
                });
            }
            let payload = &buf[at + HEADER_LEN..at + HEADER_LEN + entry.payload_len as usize];
            h.check_payload(payload).map_err(bad)?;
        }
        Ok(FrameRun {
            entries,
            base,
            bytes: buf,
        })
    }
}

/// Frames read by [`SegmentReader::read_run`], every CRC checked.
pub struct FrameRun<'a> {
    entries: &'a [IndexEntry],
    /// File offset of `bytes[0]`.
    base: u64,
    bytes: &'a [u8],
}

impl FrameRun<'_> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The JPEG of the `k`-th frame of the run.
    pub fn payload(&self, k: usize) -> &[u8] {
        let e = &self.entries[k];
        let at = (e.offset - self.base) as usize + HEADER_LEN;
        &self.bytes[at..at + e.payload_len as usize]
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::frame::CaptureTime;
    use crate::status::CameraStatus;
    use crate::store::sim::SimIo;
    use crate::store::writer::{EncodedFrame, SegmentWriter, WriterSettings};
    use crate::store::FormatError;

    const INTERVAL_NS: u64 = 33_333_333;

    fn payload(n: u64) -> Vec<u8> {
        (0..100 + n as usize * 37)
            .map(|i| (i as u64 * 7 + n) as u8)
            .collect()
    }

    /// One closed segment of `frames` frames on simulated storage.
    fn segment(frames: u64) -> (SimIo, PathBuf) {
        let sim = SimIo::default();
        let io: Arc<dyn StorageIo> = Arc::new(sim.clone());
        let settings = WriterSettings {
            camera_id: "c".into(),
            camera_dir: PathBuf::from("/d/recordings/c"),
            fps_milli: 30_000,
            segment_length_ns: 60_000_000_000,
            first_segment_length_ns: 60_000_000_000,
            sync_interval_ns: 100_000_000,
            want_direct: true,
            boot_id: [1; 16],
        };
        let mut w =
            SegmentWriter::new(io, settings, CameraStatus::new("c"), Default::default()).unwrap();
        for n in 0..frames {
            let t = n * INTERVAL_NS;
            let frame = EncodedFrame {
                jpeg: payload(n).into(),
                width: 8,
                height: 8,
                captured: CaptureTime {
                    mono_ns: t,
                    wall_ns: t as i64,
                },
                flags: 0,
            };
            w.append(&frame, t).unwrap();
        }
        w.close().unwrap();
        let path = sim
            .live_files()
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "dvr"))
            .unwrap();
        (sim, path)
    }

    #[test]
    fn a_run_reads_the_same_payloads_as_single_frames() {
        let (sim, path) = segment(40);
        let reader = SegmentReader::open(&sim, &path).unwrap();
        let mut buf = Vec::new();
        let run = reader.read_run(3..17, &mut buf).unwrap();
        assert_eq!(run.len(), 14);
        for k in 0..run.len() {
            assert_eq!(run.payload(k), reader.read_frame(3 + k).unwrap());
            assert_eq!(run.payload(k), payload(3 + k as u64));
        }
        assert_eq!(buf.len() as u64, reader.run_bytes(3..17));
        assert!(reader.read_run(5..5, &mut buf).unwrap().is_empty());
        assert_eq!(reader.run_bytes(5..5), 0);
        assert!(reader.read_run(30..41, &mut buf).is_err());
    }

    #[test]
    fn a_damaged_frame_fails_its_run_naming_the_offset() {
        let (sim, path) = segment(20);
        let offset = SegmentReader::open(&sim, &path).unwrap().frames[10].offset;
        let mut bytes = sim.contents(&path).unwrap();
        bytes[offset as usize + HEADER_LEN + 50] ^= 0x01;
        sim.put_durable(&path, bytes);
        let reader = SegmentReader::open(&sim, &path).unwrap();
        let mut buf = Vec::new();
        match reader.read_run(5..15, &mut buf) {
            Err(StoreError::Format {
                offset: at,
                source: FormatError::PayloadCrc { .. },
                ..
            }) => assert_eq!(at, offset),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a damaged frame was served"),
        }
        // Runs that do not include it still read.
        assert_eq!(reader.read_run(11..20, &mut buf).unwrap().len(), 9);
    }
}
