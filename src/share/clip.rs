//! A share clip: the frames of one camera over a range, decoded, scaled,
//! encoded as H.264 and written as an `.mp4` with `moov` first and the
//! capture-time text track of the lossless export.
//!
//! Frames are read as the lossless export reads them (damaged frames are
//! left out and named, in the text track too) and streamed: one read batch,
//! one picture and one access unit at a time. The access units go to a
//! temporary body file beside the output while the sample tables (8 bytes
//! a frame, plus one chunk per second) grow; then the header is written
//! and the body copied after it.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::config::SpeedUnit;
use crate::export::mp4::{self, AvcMedia, Chunk, FileHeader, SampleTable, Track, TrackMedia};
use crate::export::{range_timing, ExportError, READ_BATCH_BYTES};
use crate::store::query::{collect_runs, FrameRange, SkippedFrames};
use crate::store::sidecar::{self, Readers};
use crate::store::{Store, StoreError};

use super::encoder::{AccessUnit, EncodeError, EncoderSettings, H264Encoder};
use super::picture::{PictureScaler, ShareSize};

/// How much to spend on picture quality, as bits per pixel per frame.
///
/// Dash cam footage is busy (the road moves under the whole picture), and
/// Constrained Baseline has no B-frames, so it needs more than a film of
/// the same size. `standard` gives 720p30 about 1 Mbit/s and 480p30 about
/// 0.43 Mbit/s: five minutes are about 36 MB or 16 MB, within what
/// messengers send, at a tenth of the lossless export or less (`make
/// bench`: SSIM against the stored frames above 0.95).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quality {
    /// 0.025: about 0.7 Mbit/s at 720p30; soft in motion, for slow links.
    Small,
    /// 0.035.
    Standard,
    /// 0.07: about 1.9 Mbit/s at 720p30, for number plates and faces.
    High,
}

impl Quality {
    pub const ACCEPTED: &'static str = "small, standard or high";

    pub fn parse(s: &str) -> Option<Quality> {
        match s.trim() {
            "small" => Some(Quality::Small),
            "standard" => Some(Quality::Standard),
            "high" => Some(Quality::High),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Quality::Small => "small",
            Quality::Standard => "standard",
            Quality::High => "high",
        }
    }

    /// Bits per pixel per frame, in thousandths.
    fn milli_bits_per_pixel(self) -> u64 {
        match self {
            Quality::Small => 25,
            Quality::Standard => 35,
            Quality::High => 70,
        }
    }

    pub fn bitrate_bps(self, width: u32, height: u32, fps: u32) -> u32 {
        let bps =
            width as u64 * height as u64 * fps.max(1) as u64 * self.milli_bits_per_pixel() / 1000;
        bps.clamp(100_000, 50_000_000) as u32
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShareOptions {
    pub size: ShareSize,
    pub quality: Quality,
    /// The unit of the text track's speeds.
    pub speed_unit: SpeedUnit,
}

impl Default for ShareOptions {
    fn default() -> ShareOptions {
        ShareOptions {
            size: ShareSize::P720,
            quality: Quality::Standard,
            speed_unit: SpeedUnit::default(),
        }
    }
}

/// A key frame at least every this many seconds, so players can seek.
const KEYFRAME_INTERVAL_S: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// The range: bad, empty or too long (as for the lossless export).
    #[error(transparent)]
    Range(#[from] ExportError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("the encoder's first access unit has no SPS and PPS")]
    NoParameterSets,
    #[error("cancelled after {done} of {total} frames")]
    Cancelled { done: usize, total: usize },
    #[error("writing {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// What was written.
#[derive(Debug, Clone)]
pub struct ShareReport {
    pub encoder: String,
    pub frames: usize,
    pub width: u32,
    pub height: u32,
    pub duration_ns: u64,
    pub bytes: u64,
    pub start_wall_ns: i64,
    /// Segments that could not be read.
    pub problems: Vec<String>,
    /// Frames left out of the range: damaged, or missing.
    pub skipped: Vec<SkippedFrames>,
    /// Frames whose JPEG did not decode; the one before is shown instead.
    pub undecodable: Vec<String>,
}

/// The encoder this build has for machines without a hardware one.
pub fn software_encoder(settings: EncoderSettings) -> Result<Box<dyn H264Encoder>, EncodeError> {
    #[cfg(feature = "software-h264")]
    {
        Ok(Box::new(super::openh264::OpenH264Encoder::new(settings)?))
    }
    #[cfg(not(feature = "software-h264"))]
    {
        let _ = settings;
        Err(EncodeError {
            encoder: "software",
            message: "this build has no software H.264 encoder (feature software-h264)".into(),
        })
    }
}

/// The Pi's hardware encoder when this machine has one and it opens with
/// these settings, otherwise the software encoder. Why the hardware one was
/// passed over goes to the log, so a Pi that encodes in software says why.
pub fn best_encoder(settings: EncoderSettings) -> Result<Box<dyn H264Encoder>, EncodeError> {
    if let Some(node) = super::v4l2_m2m::find_hardware_encoder() {
        match super::v4l2_m2m::V4l2M2mEncoder::open(&node, settings) {
            Ok(encoder) => return Ok(Box::new(encoder)),
            Err(e) => log::warn!("hardware H.264 encoder not used: {e}"),
        }
    }
    software_encoder(settings)
}

/// Which encoder [`best_encoder`] will use here, for the log and status.
pub fn share_encoder_description() -> String {
    if let Some(node) = super::v4l2_m2m::find_hardware_encoder() {
        format!("hardware ({})", node.display())
    } else if cfg!(feature = "software-h264") {
        "openh264 (software)".into()
    } else {
        "none: no hardware H.264 encoder, and this build has no software one".into()
    }
}

/// Collects access units into the body file and the sample tables.
struct Body {
    out: BufWriter<File>,
    len: u64,
    sizes: Vec<u32>,
    sync: Vec<u32>,
    chunks: Vec<Chunk>,
    /// A text sample was written since the last access unit: the next one
    /// starts a chunk.
    new_chunk: bool,
    config: Option<Vec<u8>>,
    texts: Vec<(String, u32, std::ops::Range<usize>)>,
    next_text: usize,
    text_sizes: Vec<u32>,
    text_chunks: Vec<Chunk>,
    sample: Vec<u8>,
}

impl Body {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Writes the texts that start at or before frame `frame`.
    fn texts_up_to(&mut self, frame: usize) -> std::io::Result<()> {
        while let Some((text, _, frames)) = self.texts.get(self.next_text) {
            if frames.start > frame {
                break;
            }
            let sample = mp4::text_sample(text);
            self.text_chunks.push(Chunk {
                samples: 1,
                description: 1,
                body_offset: self.len,
            });
            self.text_sizes.push(sample.len() as u32);
            self.next_text += 1;
            self.new_chunk = true;
            self.write(&sample)?;
        }
        Ok(())
    }

    fn push(&mut self, au: &AccessUnit) -> Result<(), ShareError> {
        let n = self.sizes.len();
        if self.config.is_none() {
            self.config = Some(mp4::avc_config(&au.data).ok_or(ShareError::NoParameterSets)?);
        }
        self.texts_up_to(n).map_err(|e| self.io(e))?;
        self.sample.clear();
        let size = mp4::append_avc_sample(&au.data, &mut self.sample);
        if self.new_chunk || self.chunks.is_empty() {
            self.chunks.push(Chunk {
                samples: 0,
                description: 1,
                body_offset: self.len,
            });
            self.new_chunk = false;
        }
        if let Some(c) = self.chunks.last_mut() {
            c.samples += 1;
        }
        self.sizes.push(size as u32);
        if au.keyframe {
            self.sync.push(n as u32 + 1);
        }
        let sample = std::mem::take(&mut self.sample);
        let r = self.write(&sample);
        self.sample = sample;
        r.map_err(|e| self.io(e))
    }

    fn io(&self, error: std::io::Error) -> ShareError {
        ShareError::Io {
            path: PathBuf::from("the clip's temporary body"),
            error,
        }
    }
}

/// How far a clip is. Every frame is first read and checked (its CRCs),
/// then decoded and encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClipProgress {
    /// Frames in the range: counted from the indexes while checking (damaged
    /// ones included), then the frames the clip holds.
    pub total: usize,
    pub checked: usize,
    pub encoded: usize,
}

/// Writes the share clip of `camera` over `[from_ns, to_ns)` to `path`.
/// `progress` is called after every segment checked and every frame
/// encoded; returning false cancels (nothing is left at `path`).
#[allow(clippy::too_many_arguments)]
pub fn write_clip(
    store: &Store,
    camera: &str,
    from_ns: i64,
    to_ns: i64,
    options: ShareOptions,
    path: &Path,
    make_encoder: &dyn Fn(EncoderSettings) -> Result<Box<dyn H264Encoder>, EncodeError>,
    progress: &mut dyn FnMut(ClipProgress) -> bool,
) -> Result<ShareReport, ShareError> {
    if to_ns <= from_ns {
        return Err(ExportError::BadTimeRange {
            from: from_ns,
            to: to_ns,
        }
        .into());
    }
    // Every frame is checked before the first is encoded, so the clip
    // never holds a damaged one and its time text can name what was left
    // out; the check is progress too, and can be cancelled.
    let mut segments = Vec::new();
    let mut checked = 0usize;
    let walk = store.walk_intact_range(
        camera,
        from_ns,
        to_ns,
        crate::export::EXPORT_FRAMES_MAX,
        &mut |seg| {
            checked += seg.checked;
            let total = seg.range_total;
            collect_runs(seg, &mut segments);
            progress(ClipProgress {
                total,
                checked,
                encoded: 0,
            })
        },
    )?;
    let range = FrameRange {
        camera: camera.to_string(),
        segments,
        problems: walk.problems,
        skipped: walk.skipped,
        over_limit: walk.over_limit,
        frames_found: walk.frames_found,
    };
    let total = range.frame_count();
    if walk.stopped {
        return Err(ShareError::Cancelled { done: 0, total });
    }
    if range.over_limit || total > crate::export::EXPORT_FRAMES_MAX {
        return Err(ExportError::TooManyFrames {
            camera: camera.to_string(),
            frames: range.frames_found.max(total),
            max: crate::export::EXPORT_FRAMES_MAX,
        }
        .into());
    }
    if total == 0 {
        return Err(ExportError::NoFootage {
            camera: camera.to_string(),
            from: from_ns,
            to: to_ns,
        }
        .into());
    }
    let stream = &range.segments[0].reader.stream;
    let (width, height) = options.size.picture_size(stream.width, stream.height);
    let fps = ((stream.fps_milli + 500) / 1000).clamp(1, 240);
    let settings = EncoderSettings {
        width,
        height,
        fps,
        bitrate_bps: options.quality.bitrate_bps(width, height, fps),
        keyframe_interval: fps * KEYFRAME_INTERVAL_S,
    };
    let mut encoder = make_encoder(settings)?;
    let timing = range_timing(&range, options.speed_unit);

    let body_path = temporary_path(path, "body");
    let io_err = |error| ShareError::Io {
        path: body_path.clone(),
        error,
    };
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&body_path)
        .map_err(io_err)?;
    // Removed whatever happens; the open handle keeps it readable.
    let _ = std::fs::remove_file(&body_path);
    let mut body = Body {
        out: BufWriter::with_capacity(1 << 20, file),
        len: 0,
        sizes: Vec::with_capacity(total),
        sync: Vec::new(),
        chunks: Vec::new(),
        new_chunk: true,
        config: None,
        texts: timing.texts,
        next_text: 0,
        text_sizes: Vec::new(),
        text_chunks: Vec::new(),
        sample: Vec::new(),
    };

    let mut scaler = PictureScaler::new(width, height);
    let mut undecodable = Vec::new();
    let mut buf = Vec::new();
    let mut done = 0usize;
    for seg in &range.segments {
        let reader = &seg.reader;
        let mut i = seg.frames.start;
        while i < seg.frames.end {
            let mut j = i + 1;
            while j < seg.frames.end && reader.run_bytes(i..j + 1) <= READ_BATCH_BYTES as u64 {
                j += 1;
            }
            let run = reader.read_run(i..j, &mut buf)?;
            for k in 0..run.len() {
                if let Err(e) = scaler.decode(run.payload(k)) {
                    undecodable.push(format!(
                        "{}: frame at byte {}: {e}",
                        reader.path.display(),
                        reader.frames[i + k].offset
                    ));
                }
                for au in encoder.encode(&scaler.picture())? {
                    body.push(&au)?;
                }
                done += 1;
                let now = ClipProgress {
                    total,
                    checked: total,
                    encoded: done,
                };
                if !progress(now) {
                    return Err(ShareError::Cancelled { done, total });
                }
            }
            i = j;
        }
    }
    for au in encoder.finish()? {
        body.push(&au)?;
    }
    if body.sizes.len() != total {
        return Err(EncodeError {
            encoder: "share clip",
            message: format!(
                "{} gave {} access units for {total} pictures",
                encoder.name(),
                body.sizes.len()
            ),
        }
        .into());
    }
    body.texts_up_to(usize::MAX).map_err(io_err)?;
    let mut file = body.out.into_inner().map_err(|e| io_err(e.into_error()))?;

    let video = Track {
        id: 1,
        media: TrackMedia::Avc(AvcMedia {
            width,
            height,
            config: body.config.unwrap_or_default(),
            sync_samples: body.sync,
        }),
        samples: SampleTable::from_parts(&timing.durations, &body.sizes),
        chunks: body.chunks,
    };
    let text_durations: Vec<u32> = body.texts.iter().map(|t| t.1).collect();
    let text = Track {
        id: 2,
        media: TrackMedia::Text { width, height },
        samples: SampleTable::from_parts(&text_durations, &body.text_sizes),
        chunks: body.text_chunks,
    };
    let header = FileHeader::new(
        vec![video, text],
        timing.start_wall_ns,
        body.len,
        u32::MAX as u64,
    );
    let bytes = header.len() + body.len;

    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    if path.file_name().is_none() {
        return Err(ShareError::Io {
            path: path.to_path_buf(),
            error: std::io::Error::other("not a file name"),
        });
    }
    sidecar::replace_file(path, Readers::Group, |out| {
        header.write_range(0, header.len(), out)?;
        let mut chunk = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            out.write_all(&chunk[..n])?;
        }
    })
    .map_err(|error| ShareError::Io {
        path: path.to_path_buf(),
        error,
    })?;

    Ok(ShareReport {
        encoder: encoder.name(),
        frames: total,
        width,
        height,
        duration_ns: timing.duration_ns,
        bytes,
        start_wall_ns: timing.start_wall_ns,
        problems: range.problems.clone(),
        skipped: range.skipped.clone(),
        undecodable,
    })
}

/// `.<name>.<what>.tmp` beside `path`.
fn temporary_path(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "clip".into());
    path.with_file_name(format!(".{name}.{what}.tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrates_follow_the_picture_and_the_preset() {
        assert_eq!(Quality::Standard.bitrate_bps(1280, 720, 30), 967_680);
        assert_eq!(Quality::Standard.bitrate_bps(854, 480, 30), 430_416);
        assert!(Quality::Small.bitrate_bps(854, 480, 30) < Quality::High.bitrate_bps(854, 480, 30));
        assert_eq!(Quality::parse("high"), Some(Quality::High));
        assert_eq!(Quality::parse("best"), None);
    }
}
