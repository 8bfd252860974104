//! The Raspberry Pi's hardware H.264 encoder (`bcm2835-codec`, usually
//! `/dev/video11`) behind [`H264Encoder`], through the V4L2
//! memory-to-memory multi-planar API.
//!
//! Three layers, as in the camera's V4L2 code:
//! - [`ioctl`]: the multi-planar and codec structs and request numbers.
//! - [`M2mDevice`]: the device calls an encoder needs (formats, controls,
//!   mmap buffers on the OUTPUT and CAPTURE queues, poll, stop), one method
//!   per ioctl step, implemented by [`RealM2mDevice`] and by a fake in the
//!   tests.
//! - [`V4l2M2mEncoder`]: the stream logic. Pictures go into free OUTPUT
//!   buffers (copied row by row into the driver's stride and plane height),
//!   finished CAPTURE buffers come back as access units in input order;
//!   `finish` sends `V4L2_ENC_CMD_STOP` and drains until the buffer flagged
//!   `V4L2_BUF_FLAG_LAST` (or EPIPE). Every wait is a `poll` bounded by
//!   [`STALL_TIMEOUT_MS`]; each error names the device and the step.
//!
//! Invariants kept whatever the driver does: the n-th access unit returned
//! belongs to the n-th picture (checked with the timestamps, each
//! picture's time in the clip, that the driver copies from OUTPUT to
//! CAPTURE buffers, and by counting); a key frame's
//! access unit carries SPS and PPS (a header the driver sends in a buffer of
//! its own is held and put in front of the next picture, and the last
//! SPS/PPS seen is put in front of a key frame that lacks them).
//!
//! How the tests' fake differs from the real bcm2835-codec:
//! - no compression: each "access unit" is a few bytes naming the picture
//!   number and a checksum of the visible pixels it read from the OUTPUT
//!   buffer (Annex B start codes; NAL type 5 with SPS and PPS on key
//!   frames, type 1 otherwise), so tests check order, key frames and that
//!   rows were copied into the right place;
//! - formats: it follows bcm2835-codec's rules as the driver source states
//!   them for the video encoder (luma stride rounded up to 32 bytes,
//!   `sizeimage = bytesperline * height * 3 / 2`, height unchanged, LAST on
//!   an empty buffer) and, as MMAL's encoder is known to, sends SPS/PPS in
//!   a buffer of their own before the first picture (not seen on a Pi
//!   here; inline-only headers are tested too), and can be told to pad the rows to 16 as the driver does for
//!   its decoder, to change the height in its S_FMT answer, to put the
//!   LAST flag on the final unit, to ignore REPEAT_SEQ_HEADER, to drop
//!   timestamps or a picture;
//! - timing: it encodes only when it is polled or a buffer is queued, never
//!   in the background, and can be told to hold back a number of pictures
//!   (output lagging input) or to stall (a poll that times out at once
//!   rather than after [`STALL_TIMEOUT_MS`]);
//! - it checks the call order (formats before REQBUFS, QBUF of a buffer the
//!   driver already holds, DQBUF before STREAMON) by failing like a driver
//!   would, and records every call for the tests to compare.
//!
//! The real firmware also rate-controls, may take the first picture more
//! slowly, and scales timestamps to microseconds and back (harmless: ours
//! are whole microseconds); none of that is simulated.

mod device;
pub mod ioctl;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;

pub use self::device::RealM2mDevice;
use self::ioctl::*;
use super::encoder::{AccessUnit, EncodeError, EncoderSettings, H264Encoder, Picture};
use crate::camera::v4l2::{DeviceCaps, DeviceError, FourCc};
use crate::export::mp4::annexb_nal_units;

/// The name in every [`EncodeError`] from this module.
pub const ENCODER_NAME: &str = "v4l2-m2m";
/// What bcm2835-codec's encoder node calls itself in `VIDIOC_QUERYCAP`.
pub const BCM2835_ENCODER_CARD: &str = "bcm2835-codec-encode";
/// Raw picture buffers: enough to keep the firmware busy while we copy the
/// next picture, few enough for a Pi Zero's CMA pool at 1080p (3 MB each).
pub const OUTPUT_BUFFER_COUNT: u32 = 4;
/// Encoded buffers.
pub const CAPTURE_BUFFER_COUNT: u32 = 4;
/// The longest the encoder may keep us waiting for any buffer. The Pi's
/// encoder takes some 30 ms a 1080p picture; a second without anything
/// means it is stuck.
pub const STALL_TIMEOUT_MS: u32 = 3_000;
/// Smallest encoded buffer asked for; a key frame at a high bitrate must fit.
pub const CAPTURE_BUFFER_BYTES_MIN: u32 = 512 * 1024;
/// Bounds a loop of non-blocking dequeues, in case a driver never says EAGAIN.
const DEQUEUE_BURST_MAX: u32 = 64;

pub const FOURCC_H264: FourCc = FourCc::new(b"H264");

/// The two queues of a memory-to-memory device, named the V4L2 way: the
/// application writes to OUTPUT (raw pictures) and reads CAPTURE (H.264).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queue {
    Output,
    Capture,
}

impl Queue {
    pub fn buf_type(self) -> u32 {
        match self {
            Queue::Output => V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE,
            Queue::Capture => V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Queue::Output => "output",
            Queue::Capture => "capture",
        }
    }
}

/// A single-plane format as asked for and as the driver answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFormat {
    pub fourcc: FourCc,
    pub width: u32,
    pub height: u32,
    /// 0 when asking means "driver's choice".
    pub bytes_per_line: u32,
    pub size_image: u32,
}

/// A buffer the driver handed back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DequeuedBuffer {
    pub index: u32,
    /// The payload is `data_offset..bytes_used` of the mapped buffer.
    pub data_offset: u32,
    pub bytes_used: u32,
    /// `V4L2_BUF_FLAG_*`.
    pub flags: u32,
    /// Microseconds, copied by the driver from the OUTPUT buffer the
    /// picture came in.
    pub timestamp_us: u64,
}

/// The calls a memory-to-memory encoder makes, one per ioctl step, in this
/// order: `open`, `capabilities`, `set_format` (output, then capture),
/// `set_crop`, `set_frame_rate`, `set_control`s, `request_buffers` (both
/// queues), `queue_buffer` of every capture buffer, `stream_on` (both), then
/// `queue_buffer`/`wait`/`dequeue_buffer`, `encoder_stop`, `stream_off`,
/// `close`. `close` must be safe in any state.
pub trait M2mDevice: Send {
    fn open(&mut self, path: &Path) -> Result<(), DeviceError>;
    fn capabilities(&mut self) -> Result<DeviceCaps, DeviceError>;
    /// `VIDIOC_S_FMT`; returns what the driver chose.
    fn set_format(&mut self, queue: Queue, want: QueueFormat) -> Result<QueueFormat, DeviceError>;
    /// `VIDIOC_S_SELECTION` crop on the OUTPUT queue: the visible picture
    /// inside a format the driver enlarged.
    fn set_crop(&mut self, width: u32, height: u32) -> Result<(), DeviceError>;
    /// `VIDIOC_S_PARM` on the OUTPUT queue.
    fn set_frame_rate(&mut self, fps: u32) -> Result<(), DeviceError>;
    /// `VIDIOC_S_CTRL`.
    fn set_control(&mut self, id: u32, value: i32) -> Result<(), DeviceError>;
    /// `VIDIOC_REQBUFS` (MMAP), then `VIDIOC_QUERYBUF` and mmap of each;
    /// returns how many buffers the driver gave.
    fn request_buffers(&mut self, queue: Queue, count: u32) -> Result<u32, DeviceError>;
    /// The mapped memory of one buffer, all of it.
    fn buffer(&mut self, queue: Queue, index: u32) -> Result<&mut [u8], DeviceError>;
    /// `VIDIOC_QBUF`.
    fn queue_buffer(
        &mut self,
        queue: Queue,
        index: u32,
        bytes_used: u32,
        timestamp_us: u64,
    ) -> Result<(), DeviceError>;
    /// `VIDIOC_DQBUF` without blocking: `Ok(None)` when nothing is ready
    /// (EAGAIN); EPIPE after the LAST buffer comes back as an error.
    fn dequeue_buffer(&mut self, queue: Queue) -> Result<Option<DequeuedBuffer>, DeviceError>;
    fn stream_on(&mut self, queue: Queue) -> Result<(), DeviceError>;
    fn stream_off(&mut self, queue: Queue) -> Result<(), DeviceError>;
    /// Polls for a buffer to dequeue on either queue; `Ok(false)` when
    /// `timeout_ms` passed without one.
    fn wait(&mut self, timeout_ms: u32) -> Result<bool, DeviceError>;
    /// `VIDIOC_ENCODER_CMD` with `V4L2_ENC_CMD_STOP`.
    fn encoder_stop(&mut self) -> Result<(), DeviceError>;
    /// Unmaps and frees the buffers and closes the node.
    fn close(&mut self);
}

/// Whether QUERYCAP describes bcm2835-codec's encoder node.
pub fn is_hardware_encoder(caps: &DeviceCaps) -> bool {
    let m2m = caps.caps & V4L2_CAP_VIDEO_M2M_MPLANE != 0 && caps.caps & V4L2_CAP_STREAMING != 0;
    m2m && caps.card == BCM2835_ENCODER_CARD
}

/// The Pi's hardware H.264 encoder node, if this machine has one: the first
/// `/dev/video*` (in number order) whose QUERYCAP names bcm2835-codec's
/// encoder with memory-to-memory multi-planar streaming. The number is not
/// trusted: it changes with kernel versions and other video drivers.
pub fn find_hardware_encoder() -> Option<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n: u32 = name.strip_prefix("video")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    nodes.sort();
    let paths: Vec<PathBuf> = nodes.into_iter().map(|(_, p)| p).collect();
    find_hardware_encoder_on(&paths, RealM2mDevice::new)
}

/// [`find_hardware_encoder`] over given paths with any device type.
pub fn find_hardware_encoder_on<D: M2mDevice>(
    paths: &[PathBuf],
    mut make: impl FnMut() -> D,
) -> Option<PathBuf> {
    for path in paths {
        let mut dev = make();
        let caps = dev.open(path).and_then(|()| dev.capabilities());
        dev.close();
        match caps {
            Ok(caps) if is_hardware_encoder(&caps) => return Some(path.clone()),
            Ok(_) => {}
            Err(e) => log::debug!("{}: not probed: {e}", path.display()),
        }
    }
    None
}

/// Where the planes of a picture go in one OUTPUT buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct I420Layout {
    pub stride: usize,
    /// Luma rows the buffer holds (at least the picture height).
    pub rows: usize,
    pub chroma_stride: usize,
    pub chroma_rows: usize,
    pub u_offset: usize,
    pub v_offset: usize,
    pub size: usize,
}

impl I420Layout {
    /// The layout the driver's answer implies. `bytesperline` is the luma
    /// stride (YU12 chroma rows are half of it). The luma plane's height in
    /// the buffer is the format's height, or up to 16-aligned when
    /// `sizeimage` is exactly that (bcm2835-codec does so for its decoder
    /// and image encoder roles, not for the video encoder, whose
    /// `sizeimage` is `bytesperline * height * 3 / 2`).
    pub fn from_format(fmt: &QueueFormat, width: u32, height: u32) -> I420Layout {
        let stride = (fmt.bytes_per_line as usize).max(width as usize);
        let mut rows = (fmt.height.max(height)) as usize;
        // Only an exact fit counts: a size rounded up to a page is not rows.
        let implied = fmt.size_image as usize * 2 / (3 * stride);
        if implied > rows
            && implied <= rows.next_multiple_of(16)
            && stride * implied * 3 / 2 == fmt.size_image as usize
        {
            rows = implied;
        }
        let chroma_stride = stride.div_ceil(2);
        let chroma_rows = rows.div_ceil(2);
        let u_offset = stride * rows;
        let v_offset = u_offset + chroma_stride * chroma_rows;
        I420Layout {
            stride,
            rows,
            chroma_stride,
            chroma_rows,
            u_offset,
            v_offset,
            size: v_offset + chroma_stride * chroma_rows,
        }
    }
}

/// Copies `height` rows of `width` bytes into a plane of `stride`-byte
/// rows, then repeats the last row down to `rows` so the encoder's bottom
/// macroblocks see the picture's edge rather than stale memory.
fn copy_plane(dst: &mut [u8], stride: usize, rows: usize, src: &[u8], width: usize, height: usize) {
    for r in 0..rows {
        let from = r.min(height - 1) * width;
        dst[r * stride..r * stride + width].copy_from_slice(&src[from..from + width]);
    }
}

/// The H.264 level the firmware needs for this size and rate (Table A-1:
/// macroblocks per frame and per second), from 2.0 to 4.2.
pub fn h264_level(width: u32, height: u32, fps: u32) -> i32 {
    let mbs = u64::from(width.div_ceil(16)) * u64::from(height.div_ceil(16));
    let mbps = mbs * u64::from(fps.max(1));
    // (max frame size, max macroblocks/s, V4L2 enum value)
    const LEVELS: [(u64, u64, i32); 9] = [
        (396, 11_880, 5),     // 2.0
        (792, 19_800, 6),     // 2.1
        (1_620, 20_250, 7),   // 2.2
        (1_620, 40_500, 8),   // 3.0
        (3_600, 108_000, 9),  // 3.1
        (5_120, 216_000, 10), // 3.2
        (8_192, 245_760, 11), // 4.0
        (8_192, 245_760, 12), // 4.1
        (8_704, 522_240, 13), // 4.2
    ];
    LEVELS
        .iter()
        .find(|&&(fs, rate, _)| mbs <= fs && mbps <= rate)
        .map_or(13, |&(_, _, v)| v)
}

/// NAL unit types in an Annex B byte stream, in order.
pub fn nal_types(data: &[u8]) -> Vec<u8> {
    annexb_nal_units(data).map(|nal| nal[0] & 0x1f).collect()
}

/// SPS and PPS NAL units of `data`, each behind a 4-byte start code.
fn parameter_sets(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in annexb_nal_units(data).filter(|n| matches!(n[0] & 0x1f, 7 | 8)) {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    out
}

fn error_at(path: &Path, message: impl std::fmt::Display) -> EncodeError {
    EncodeError {
        encoder: ENCODER_NAME,
        message: format!("{}: {message}", path.display()),
    }
}

fn device_error_at(path: &Path, step: &str, e: DeviceError) -> EncodeError {
    let gone = if matches!(e.errno, Errno::ENODEV | Errno::ENXIO | Errno::ENOENT) {
        " (the device is gone)"
    } else {
        ""
    };
    // `e.op` is in `step` already, which says more (queue, format).
    error_at(
        path,
        format_args!("{step} failed: {:?} ({}){gone}", e.errno, e.errno.desc()),
    )
}

/// The hardware encoder on one V4L2 memory-to-memory device.
pub struct V4l2M2mEncoder<D: M2mDevice = RealM2mDevice> {
    device: D,
    path: PathBuf,
    driver: String,
    settings: EncoderSettings,
    layout: I420Layout,
    free_outputs: Vec<u32>,
    pictures_in: u64,
    units_out: u64,
    /// Parameter sets the driver sent in a buffer without a picture.
    pending_header: Vec<u8>,
    /// The newest SPS and PPS seen, for a key frame that comes without.
    parameter_sets: Vec<u8>,
    finished: bool,
}

impl V4l2M2mEncoder<RealM2mDevice> {
    /// Opens and configures the encoder at `path` (see [`find_hardware_encoder`]).
    pub fn open(path: &Path, settings: EncoderSettings) -> Result<Self, EncodeError> {
        V4l2M2mEncoder::with_device(RealM2mDevice::new(), path, settings)
    }
}

impl<D: M2mDevice> V4l2M2mEncoder<D> {
    /// Configures `device` opened at `path` and starts streaming.
    pub fn with_device(
        device: D,
        path: &Path,
        settings: EncoderSettings,
    ) -> Result<Self, EncodeError> {
        let mut enc = V4l2M2mEncoder {
            device,
            path: path.to_path_buf(),
            driver: String::new(),
            settings,
            layout: I420Layout::from_format(
                &QueueFormat {
                    fourcc: FourCc::YU12,
                    width: 0,
                    height: 0,
                    bytes_per_line: 0,
                    size_image: 0,
                },
                settings.width,
                settings.height,
            ),
            free_outputs: Vec::new(),
            pictures_in: 0,
            units_out: 0,
            pending_header: Vec::new(),
            parameter_sets: Vec::new(),
            finished: false,
        };
        match enc.start() {
            Ok(()) => Ok(enc),
            Err(e) => {
                enc.device.close();
                Err(e)
            }
        }
    }

    fn error(&self, message: impl std::fmt::Display) -> EncodeError {
        error_at(&self.path, message)
    }

    fn device_error(&self, step: &str, e: DeviceError) -> EncodeError {
        device_error_at(&self.path, step, e)
    }

    fn start(&mut self) -> Result<(), EncodeError> {
        let EncoderSettings {
            width,
            height,
            fps,
            bitrate_bps,
            keyframe_interval,
        } = self.settings;
        if width == 0 || height == 0 || width % 2 != 0 || height % 2 != 0 {
            return Err(self.error(format_args!(
                "{width}x{height}: width and height must be even and not zero"
            )));
        }
        let path = self.path.clone();
        self.device
            .open(&path)
            .map_err(|e| self.device_error("open", e))?;
        let caps = self
            .device
            .capabilities()
            .map_err(|e| self.device_error("VIDIOC_QUERYCAP", e))?;
        if caps.caps & V4L2_CAP_VIDEO_M2M_MPLANE == 0 || caps.caps & V4L2_CAP_STREAMING == 0 {
            return Err(self.error(format_args!(
                "not a multi-planar memory-to-memory device with streaming (driver {}, card {}, caps {:#x})",
                caps.driver, caps.card, caps.caps
            )));
        }
        self.driver = caps.driver;

        let want = QueueFormat {
            fourcc: FourCc::YU12,
            width,
            height,
            bytes_per_line: width,
            size_image: 0,
        };
        let got = self.device.set_format(Queue::Output, want).map_err(|e| {
            self.device_error(&format!("VIDIOC_S_FMT (output, YU12 {width}x{height})"), e)
        })?;
        if got.fourcc != FourCc::YU12 || got.width < width || got.height < height {
            return Err(self.error(format_args!(
                "VIDIOC_S_FMT (output): asked for YU12 {width}x{height}, the driver chose {} {}x{}",
                got.fourcc, got.width, got.height
            )));
        }
        if (got.width, got.height) != (width, height) {
            // The driver enlarged the picture: encode only the visible part.
            self.device.set_crop(width, height).map_err(|e| {
                self.device_error(
                    &format!(
                        "VIDIOC_S_SELECTION (crop {width}x{height} inside {}x{})",
                        got.width, got.height
                    ),
                    e,
                )
            })?;
        }
        self.layout = I420Layout::from_format(&got, width, height);

        let capture_bytes = (width * height / 2).max(CAPTURE_BUFFER_BYTES_MIN);
        let want = QueueFormat {
            fourcc: FOURCC_H264,
            width,
            height,
            bytes_per_line: 0,
            size_image: capture_bytes,
        };
        let got = self
            .device
            .set_format(Queue::Capture, want)
            .map_err(|e| self.device_error("VIDIOC_S_FMT (capture, H264)", e))?;
        if got.fourcc != FOURCC_H264 {
            return Err(self.error(format_args!(
                "VIDIOC_S_FMT (capture): asked for H264, the driver chose {}",
                got.fourcc
            )));
        }

        // The frame rate is only a rate-control hint: go on without it.
        if let Err(e) = self.device.set_frame_rate(fps) {
            log::warn!("{}: VIDIOC_S_PARM ({fps} fps): {e}", path.display());
        }
        let level = h264_level(width, height, fps);
        // (what, control, value, needed): the clip must have the bitrate,
        // the profile every phone plays and seek points; without the others
        // the firmware's defaults still make a valid stream (key frames get
        // the last SPS/PPS seen when headers are not repeated).
        let controls = [
            (
                "bitrate",
                V4L2_CID_MPEG_VIDEO_BITRATE,
                bitrate_bps.min(i32::MAX as u32) as i32,
                true,
            ),
            (
                "bitrate mode",
                V4L2_CID_MPEG_VIDEO_BITRATE_MODE,
                V4L2_MPEG_VIDEO_BITRATE_MODE_CBR,
                false,
            ),
            (
                "profile",
                V4L2_CID_MPEG_VIDEO_H264_PROFILE,
                V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE,
                true,
            ),
            ("level", V4L2_CID_MPEG_VIDEO_H264_LEVEL, level, false),
            (
                "key frame interval",
                V4L2_CID_MPEG_VIDEO_H264_I_PERIOD,
                keyframe_interval.clamp(1, i32::MAX as u32) as i32,
                true,
            ),
            (
                "repeat sequence header",
                V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER,
                1,
                false,
            ),
        ];
        for (what, id, value, needed) in controls {
            match self.device.set_control(id, value) {
                Ok(()) => {}
                Err(e) if needed => {
                    return Err(self.device_error(&format!("VIDIOC_S_CTRL ({what} {value})"), e))
                }
                Err(e) => log::info!("{}: VIDIOC_S_CTRL ({what} {value}): {e}", path.display()),
            }
        }

        let outputs = self
            .device
            .request_buffers(Queue::Output, OUTPUT_BUFFER_COUNT)
            .map_err(|e| self.device_error("VIDIOC_REQBUFS (output)", e))?;
        let captures = self
            .device
            .request_buffers(Queue::Capture, CAPTURE_BUFFER_COUNT)
            .map_err(|e| self.device_error("VIDIOC_REQBUFS (capture)", e))?;
        if outputs == 0 || captures == 0 {
            return Err(self.error(format_args!(
                "VIDIOC_REQBUFS: the driver gave {outputs} output and {captures} capture buffers"
            )));
        }
        let mapped = self
            .device
            .buffer(Queue::Output, 0)
            .map_err(|e| device_error_at(&path, "mmap (output)", e))?
            .len();
        if mapped < self.layout.size {
            return Err(self.error(format_args!(
                "an output buffer of {mapped} bytes cannot hold a {width}x{height} picture with stride {} and {} rows ({} bytes)",
                self.layout.stride, self.layout.rows, self.layout.size
            )));
        }
        for index in 0..captures {
            self.device
                .queue_buffer(Queue::Capture, index, 0, 0)
                .map_err(|e| self.device_error("VIDIOC_QBUF (capture)", e))?;
        }
        for queue in [Queue::Output, Queue::Capture] {
            self.device.stream_on(queue).map_err(|e| {
                self.device_error(&format!("VIDIOC_STREAMON ({})", queue.label()), e)
            })?;
        }
        self.free_outputs = (0..outputs).rev().collect();
        Ok(())
    }

    fn check_picture(&self, p: &Picture<'_>) -> Result<(), EncodeError> {
        let (w, h) = (p.width as usize, p.height as usize);
        if (p.width, p.height) != (self.settings.width, self.settings.height) {
            return Err(self.error(format_args!(
                "picture {} is {w}x{h}, the encoder was set up for {}x{}",
                self.pictures_in + 1,
                self.settings.width,
                self.settings.height
            )));
        }
        let c = (w / 2) * (h / 2);
        if p.y.len() < w * h || p.u.len() < c || p.v.len() < c {
            return Err(self.error(format_args!(
                "picture {}: planes of {}, {} and {} bytes are too short for {w}x{h}",
                self.pictures_in + 1,
                p.y.len(),
                p.u.len(),
                p.v.len()
            )));
        }
        Ok(())
    }

    /// Waits until the driver gives back something or `STALL_TIMEOUT_MS`
    /// passes; the latter is an error saying what we waited for.
    fn wait(&mut self, waiting_for: &str) -> Result<(), EncodeError> {
        match self.device.wait(STALL_TIMEOUT_MS) {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.error(format_args!(
                "no {waiting_for} within {STALL_TIMEOUT_MS} ms ({} pictures in, {} access units out)",
                self.pictures_in, self.units_out
            ))),
            Err(e) => Err(self.device_error("poll", e)),
        }
    }

    /// Dequeues every finished buffer without blocking. Returns true once
    /// the LAST buffer (or EPIPE) was seen.
    fn reap(&mut self, out: &mut Vec<AccessUnit>) -> Result<bool, EncodeError> {
        let mut last = false;
        for _ in 0..DEQUEUE_BURST_MAX {
            match self.device.dequeue_buffer(Queue::Capture) {
                Ok(Some(b)) => {
                    if self.take_capture(b, out)? {
                        last = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) if e.errno == Errno::EPIPE => {
                    last = true;
                    break;
                }
                Err(e) => return Err(self.device_error("VIDIOC_DQBUF (capture)", e)),
            }
        }
        for _ in 0..DEQUEUE_BURST_MAX {
            match self.device.dequeue_buffer(Queue::Output) {
                Ok(Some(b)) => self.free_outputs.push(b.index),
                Ok(None) => break,
                // After the stop the output queue may report EPIPE too.
                Err(e) if e.errno == Errno::EPIPE => break,
                Err(e) => return Err(self.device_error("VIDIOC_DQBUF (output)", e)),
            }
        }
        Ok(last)
    }

    /// Takes one encoded buffer; returns whether it was the last.
    fn take_capture(
        &mut self,
        b: DequeuedBuffer,
        out: &mut Vec<AccessUnit>,
    ) -> Result<bool, EncodeError> {
        if b.flags & V4L2_BUF_FLAG_ERROR != 0 {
            return Err(self.error(format_args!(
                "the driver flagged encoded buffer {} as damaged (after {} access units)",
                b.index, self.units_out
            )));
        }
        let data = {
            let mapped = self
                .device
                .buffer(Queue::Capture, b.index)
                .map_err(|e| device_error_at(&self.path, "capture buffer", e))?;
            let end = (b.bytes_used as usize).min(mapped.len());
            mapped[(b.data_offset as usize).min(end)..end].to_vec()
        };
        let last = b.flags & V4L2_BUF_FLAG_LAST != 0;
        if !data.is_empty() {
            self.take_unit(data, b.timestamp_us, out)?;
        }
        if !last {
            self.device
                .queue_buffer(Queue::Capture, b.index, 0, 0)
                .map_err(|e| self.device_error("VIDIOC_QBUF (capture)", e))?;
        }
        Ok(last)
    }

    fn take_unit(
        &mut self,
        data: Vec<u8>,
        timestamp_us: u64,
        out: &mut Vec<AccessUnit>,
    ) -> Result<(), EncodeError> {
        let types = nal_types(&data);
        let has_sps = types.contains(&7);
        if has_sps {
            self.parameter_sets = parameter_sets(&data);
        }
        if !types.iter().any(|t| (1..=5).contains(t)) {
            // A header without a picture (SPS/PPS/SEI): it belongs in front
            // of the next picture.
            self.pending_header.extend_from_slice(&data);
            return Ok(());
        }
        let expected = self.units_out + 1;
        // The driver copies our timestamp to the buffer; 0 means it did
        // not, and only the count can be checked.
        if timestamp_us != 0 && timestamp_us != self.picture_time_us(expected) {
            let fps = u64::from(self.settings.fps.max(1));
            let got = (timestamp_us * fps + 500_000) / 1_000_000;
            return Err(self.error(format_args!(
                "access unit of picture {got} came out where picture {expected} was due (the encoder dropped or reordered pictures)"
            )));
        }
        if expected > self.pictures_in {
            return Err(self.error(format_args!(
                "access unit {expected} came out for only {} pictures",
                self.pictures_in
            )));
        }
        let keyframe = types.contains(&5);
        let mut unit = std::mem::take(&mut self.pending_header);
        if has_sps {
            // The picture repeats the header sent alone before it (the
            // firmware's first buffer, then REPEAT_SEQ_HEADER): keep one.
            unit.clear();
        }
        if keyframe && !has_sps && !nal_types(&unit).contains(&7) {
            if self.parameter_sets.is_empty() {
                return Err(self.error(format_args!(
                    "key frame {expected} came without SPS/PPS and none were seen before"
                )));
            }
            unit.extend_from_slice(&self.parameter_sets);
        }
        unit.extend_from_slice(&data);
        self.units_out = expected;
        out.push(AccessUnit {
            data: unit,
            keyframe,
        });
        Ok(())
    }

    /// The timestamp picture `n` (from 1) goes in with: its time in the
    /// clip, as real clients give the firmware (which may use it for rate
    /// control); never 0, and distinct for every picture up to 1 MHz.
    fn picture_time_us(&self, n: u64) -> u64 {
        n * 1_000_000 / u64::from(self.settings.fps.max(1))
    }

    fn shut_down(&mut self) {
        for queue in [Queue::Output, Queue::Capture] {
            if let Err(e) = self.device.stream_off(queue) {
                log::debug!("{}: VIDIOC_STREAMOFF: {e}", self.path.display());
            }
        }
        self.device.close();
    }
}

impl<D: M2mDevice> H264Encoder for V4l2M2mEncoder<D> {
    fn name(&self) -> String {
        format!("{} {}", self.driver, self.path.display())
    }

    fn encode(&mut self, picture: &Picture<'_>) -> Result<Vec<AccessUnit>, EncodeError> {
        if self.finished {
            return Err(self.error("a picture after the end of the stream"));
        }
        self.check_picture(picture)?;
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_millis(u64::from(STALL_TIMEOUT_MS));
        let index = loop {
            self.reap(&mut out)?;
            if let Some(index) = self.free_outputs.pop() {
                break index;
            }
            if Instant::now() >= deadline {
                return Err(self.error(format_args!(
                    "no free picture buffer within {STALL_TIMEOUT_MS} ms"
                )));
            }
            self.wait("picture buffer back from the encoder")?;
        };
        let l = self.layout;
        let (w, h) = (picture.width as usize, picture.height as usize);
        let buf = self
            .device
            .buffer(Queue::Output, index)
            .map_err(|e| device_error_at(&self.path, "output buffer", e))?;
        if buf.len() < l.size {
            let len = buf.len();
            return Err(error_at(
                &self.path,
                format_args!(
                    "output buffer {index} has {len} bytes, a picture needs {}",
                    l.size
                ),
            ));
        }
        copy_plane(&mut buf[..l.u_offset], l.stride, l.rows, picture.y, w, h);
        copy_plane(
            &mut buf[l.u_offset..l.v_offset],
            l.chroma_stride,
            l.chroma_rows,
            picture.u,
            w / 2,
            h / 2,
        );
        copy_plane(
            &mut buf[l.v_offset..l.size],
            l.chroma_stride,
            l.chroma_rows,
            picture.v,
            w / 2,
            h / 2,
        );
        let number = self.pictures_in + 1;
        let time_us = self.picture_time_us(number);
        self.device
            .queue_buffer(Queue::Output, index, l.size as u32, time_us)
            .map_err(|e| self.device_error("VIDIOC_QBUF (output)", e))?;
        self.pictures_in = number;
        self.reap(&mut out)?;
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<AccessUnit>, EncodeError> {
        if self.finished {
            return Ok(Vec::new());
        }
        self.finished = true;
        let mut out = Vec::new();
        let result = self.drain(&mut out);
        self.shut_down();
        result.map(|()| out)
    }
}

impl<D: M2mDevice> V4l2M2mEncoder<D> {
    fn drain(&mut self, out: &mut Vec<AccessUnit>) -> Result<(), EncodeError> {
        self.reap(out)?;
        if self.units_out == self.pictures_in {
            // Nothing in flight; a stop now would only wait for an empty LAST buffer.
            return Ok(());
        }
        // Drivers without the command: drain by count instead.
        let by_count = match self.device.encoder_stop() {
            Ok(()) => false,
            Err(e) if matches!(e.errno, Errno::ENOTTY | Errno::EINVAL) => {
                log::info!(
                    "{}: VIDIOC_ENCODER_CMD: {e}; draining by count",
                    self.path.display()
                );
                true
            }
            Err(e) => return Err(self.device_error("VIDIOC_ENCODER_CMD (stop)", e)),
        };
        // Each round either takes a buffer or waits once; a driver that
        // keeps waking us without progress is bounded by the deadline.
        let deadline = Instant::now() + Duration::from_millis(u64::from(STALL_TIMEOUT_MS) * 2);
        loop {
            if self.reap(out)? || (by_count && self.units_out == self.pictures_in) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(self.error("the encoder kept waking us without finishing the stream"));
            }
            self.wait("end of stream from the encoder")?;
        }
        if self.units_out != self.pictures_in {
            return Err(self.error(format_args!(
                "the encoder ended the stream after {} access units for {} pictures",
                self.units_out, self.pictures_in
            )));
        }
        Ok(())
    }
}

impl<D: M2mDevice> Drop for V4l2M2mEncoder<D> {
    fn drop(&mut self) {
        self.device.close();
    }
}

#[cfg(test)]
mod tests;
