//! USB webcams (and any other single-planar V4L2 capture device).
//!
//! Three layers, so the logic can be tested without hardware:
//! - [`ioctl`]: the kernel structs and ioctl numbers, with size assertions.
//! - [`V4l2Device`]: a thin device trait (open, query, set format, stream
//!   with mmap buffers, dequeue, requeue, stop), implemented for real
//!   devices by [`RealV4l2Device`] and by a fake in the tests.
//! - [`V4l2Camera`]: a [`CameraSource`] that picks a format
//!   ([`choose_format`]), turns buffers into [`VideoFrame`]s and maps
//!   device errors to [`CameraError`].
//!
//! MJPEG is preferred and stored as is (after [`mjpeg::repair_mjpeg`] makes
//! it a standalone JPEG); raw YUYV, NV12 and I420 are copied out of the
//! driver's buffer so it can be requeued at once.
//!
//! Multi-planar devices (`VIDEO_CAPTURE_MPLANE`, typical of SoC camera
//! interfaces) are not handled here; the Pi camera goes through libcamera.

mod device;
pub mod ioctl;
pub mod mjpeg;

use std::fmt;
use std::sync::Arc;

use nix::errno::Errno;

pub use self::device::RealV4l2Device;
use self::ioctl::{V4L2_BUF_FLAG_ERROR, V4L2_CAP_STREAMING, V4L2_CAP_VIDEO_CAPTURE};
use crate::camera::{CameraError, CameraSource, StreamFormat};
use crate::clock::Clock;
use crate::config::CameraConfig;
use crate::frame::{PixelFormat, Plane, VideoFrame};

/// Buffers requested from the driver: enough to ride out a slow consumer
/// for a few frames, small enough for a Pi Zero's CMA pool at 1080p.
pub const STREAM_BUFFER_COUNT: u32 = 4;
/// How long the first frame after STREAMON may take (UVC cameras settle exposure first).
pub const FIRST_FRAME_TIMEOUT_MS: u32 = 5_000;
/// How long any later frame may take, at least; slow frame rates get 3 frame times.
pub const FRAME_TIMEOUT_MIN_MS: u32 = 2_000;
/// After this many unusable buffers in a row, give up and let the caller reopen.
pub const MAX_CONSECUTIVE_BAD_FRAMES: u32 = 60;

/// A V4L2 four-character pixel format code, e.g. `MJPG`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub u32);

impl FourCc {
    pub const MJPG: FourCc = FourCc::new(b"MJPG");
    /// Some cameras call their Motion-JPEG stream `JPEG`; the bytes are the same.
    pub const JPEG: FourCc = FourCc::new(b"JPEG");
    pub const YUYV: FourCc = FourCc::new(b"YUYV");
    pub const NV12: FourCc = FourCc::new(b"NV12");
    pub const YU12: FourCc = FourCc::new(b"YU12");

    pub const fn new(code: &[u8; 4]) -> FourCc {
        FourCc(u32::from_le_bytes(*code))
    }

    /// The pixel format frames of this fourcc become, if we can use it.
    pub fn pixel_format(self) -> Option<PixelFormat> {
        match self {
            FourCc::MJPG | FourCc::JPEG => Some(PixelFormat::Jpeg),
            FourCc::YUYV => Some(PixelFormat::Yuyv),
            FourCc::NV12 => Some(PixelFormat::Nv12),
            FourCc::YU12 => Some(PixelFormat::I420),
            _ => None,
        }
    }

    /// Lower is better; `None` for formats we cannot use.
    fn preference(self) -> Option<u8> {
        match self {
            FourCc::MJPG => Some(0),
            FourCc::JPEG => Some(1),
            FourCc::YUYV => Some(2),
            FourCc::NV12 => Some(3),
            FourCc::YU12 => Some(4),
            _ => None,
        }
    }
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.to_le_bytes() {
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc({self})")
    }
}

/// Seconds per frame as a fraction, as V4L2 states frame rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInterval {
    pub numerator: u32,
    pub denominator: u32,
}

impl FrameInterval {
    pub fn from_fps(fps: u32) -> FrameInterval {
        FrameInterval {
            numerator: 1,
            denominator: fps.max(1),
        }
    }

    /// Frames per second times 1000 (30000/1001 s -> 29970); 0 if unknown.
    pub fn fps_milli(self) -> u32 {
        if self.numerator == 0 {
            return 0;
        }
        (u64::from(self.denominator) * 1000 / u64::from(self.numerator)).min(u64::from(u32::MAX))
            as u32
    }
}

/// One frame size a format offers, with the frame intervals at that size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameSize {
    pub width: u32,
    pub height: u32,
    /// Empty when the driver does not enumerate intervals.
    pub intervals: Vec<FrameInterval>,
}

/// One pixel format a device offers. Stepwise and continuous size or
/// interval ranges are expanded by the device layer into a few concrete
/// choices (the range's ends and common sizes/rates inside it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatDesc {
    pub fourcc: FourCc,
    pub description: String,
    /// Empty when the driver does not enumerate sizes; any size is then tried.
    pub sizes: Vec<FrameSize>,
}

/// What `VIDIOC_QUERYCAP` says about one device node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceCaps {
    pub driver: String,
    pub card: String,
    pub bus_info: String,
    /// Capabilities of this node (`device_caps` when the driver reports it).
    pub caps: u32,
}

impl DeviceCaps {
    pub fn can_capture(&self) -> bool {
        self.caps & V4L2_CAP_VIDEO_CAPTURE != 0
    }

    pub fn can_stream(&self) -> bool {
        self.caps & V4L2_CAP_STREAMING != 0
    }
}

/// The format the driver settled on after `VIDIOC_S_FMT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveFormat {
    pub fourcc: FourCc,
    pub width: u32,
    pub height: u32,
    /// Bytes per row of the first plane (0 for compressed formats).
    pub bytes_per_line: u32,
    /// Largest buffer a frame can need.
    pub size_image: u32,
}

/// A filled buffer, borrowed from the device until it is requeued.
#[derive(Debug)]
pub struct FilledBuffer<'a> {
    pub index: u32,
    /// The `bytesused` part of the buffer.
    pub data: &'a [u8],
    /// `V4L2_BUF_FLAG_*`.
    pub flags: u32,
    pub sequence: u32,
}

/// A failed device call: which call, and the errno it returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceError {
    pub op: &'static str,
    pub errno: Errno,
}

impl DeviceError {
    pub fn new(op: &'static str, errno: Errno) -> DeviceError {
        DeviceError { op, errno }
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {} ({})",
            self.op,
            self.errno,
            self.errno.desc()
        )
    }
}

impl std::error::Error for DeviceError {}

/// The few V4L2 operations a capture loop needs. Calls come in this order:
/// `open`, `capabilities`/`formats`, `set_format`, `set_frame_interval`,
/// `start`, then `dequeue`/`requeue` pairs, `stop`, `close`. `close` must be
/// safe in any state, and `open` must work again after `close`.
pub trait V4l2Device: Send {
    fn open(&mut self, path: &str) -> Result<(), DeviceError>;
    fn capabilities(&mut self) -> Result<DeviceCaps, DeviceError>;
    fn formats(&mut self) -> Result<Vec<FormatDesc>, DeviceError>;
    /// Asks for a format; returns what the driver actually chose.
    fn set_format(
        &mut self,
        fourcc: FourCc,
        width: u32,
        height: u32,
    ) -> Result<ActiveFormat, DeviceError>;
    /// Asks for a frame interval; returns the one the driver chose, or `None`
    /// if the driver cannot set frame rates.
    fn set_frame_interval(
        &mut self,
        interval: FrameInterval,
    ) -> Result<Option<FrameInterval>, DeviceError>;
    /// Allocates and maps `buffers` buffers, queues them all and starts
    /// streaming. Returns how many buffers the driver gave.
    fn start(&mut self, buffers: u32) -> Result<u32, DeviceError>;
    /// Waits up to `timeout_ms` for a filled buffer; `Ok(None)` on timeout.
    fn dequeue(&mut self, timeout_ms: u32) -> Result<Option<FilledBuffer<'_>>, DeviceError>;
    /// Gives a dequeued buffer back to the driver.
    fn requeue(&mut self, index: u32) -> Result<(), DeviceError>;
    /// Stops streaming and frees the buffers.
    fn stop(&mut self) -> Result<(), DeviceError>;
    fn close(&mut self);
}

/// Errnos that mean the device is gone. EIO counts only while streaming:
/// uvcvideo returns it for a camera unplugged mid-stream, but before
/// streaming it can also mean a transient control failure.
pub fn is_disconnect(errno: Errno, streaming: bool) -> bool {
    matches!(errno, Errno::ENODEV | Errno::ENXIO | Errno::ENOENT)
        || (streaming && errno == Errno::EIO)
}

fn camera_error(device: &str, err: DeviceError, streaming: bool) -> CameraError {
    if is_disconnect(err.errno, streaming) {
        CameraError::Disconnected {
            device: device.to_string(),
            reason: err.to_string(),
        }
    } else {
        CameraError::Io {
            device: device.to_string(),
            context: err.op.to_string(),
            source: std::io::Error::from_raw_os_error(err.errno as i32),
        }
    }
}

/// The format, size and frame interval [`choose_format`] settled on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatChoice {
    pub fourcc: FourCc,
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    /// `None` when the driver lists no intervals; the requested rate is then asked for as is.
    pub interval: Option<FrameInterval>,
}

/// How well a frame size fits the request; lower is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SizeFit {
    Exact,
    /// Covers the request; smaller area is better.
    Larger(u64),
    /// Smaller than the request in some dimension; larger area is better.
    Smaller(std::cmp::Reverse<u64>),
}

fn size_fit(w: u32, h: u32, want_w: u32, want_h: u32) -> SizeFit {
    let area = u64::from(w) * u64::from(h);
    if (w, h) == (want_w, want_h) {
        SizeFit::Exact
    } else if w >= want_w && h >= want_h {
        SizeFit::Larger(area)
    } else {
        SizeFit::Smaller(std::cmp::Reverse(area))
    }
}

/// The interval whose rate is closest to `fps`; on a tie, the faster one.
fn closest_interval(intervals: &[FrameInterval], fps: u32) -> Option<FrameInterval> {
    let want = i64::from(fps) * 1000;
    intervals
        .iter()
        .filter(|i| i.numerator != 0 && i.denominator != 0)
        .min_by_key(|i| {
            let got = i64::from(i.fps_milli());
            ((got - want).abs(), std::cmp::Reverse(got))
        })
        .copied()
}

/// Picks what to ask the device for.
///
/// The size fit comes first (exact, then the smallest size covering the
/// request, then the largest available), then the format preference
/// (MJPEG, YUYV, NV12, I420): a camera offering MJPEG only at 1080p and
/// YUYV at the requested 640x480 records 640x480 YUYV, not 1080p. Among the
/// chosen size's intervals, the one closest to `fps` wins.
pub fn choose_format(
    device: &str,
    offered: &[FormatDesc],
    width: u32,
    height: u32,
    fps: u32,
) -> Result<FormatChoice, CameraError> {
    let mut best: Option<((SizeFit, u8), FormatChoice)> = None;
    for desc in offered {
        let (Some(rank), Some(format)) = (desc.fourcc.preference(), desc.fourcc.pixel_format())
        else {
            continue;
        };
        let candidates: Vec<(SizeFit, FormatChoice)> = if desc.sizes.is_empty() {
            // The driver does not enumerate sizes: ask for the request and
            // let VIDIOC_S_FMT adjust it.
            vec![(
                SizeFit::Exact,
                FormatChoice {
                    fourcc: desc.fourcc,
                    format,
                    width,
                    height,
                    interval: None,
                },
            )]
        } else {
            desc.sizes
                .iter()
                .map(|s| {
                    (
                        size_fit(s.width, s.height, width, height),
                        FormatChoice {
                            fourcc: desc.fourcc,
                            format,
                            width: s.width,
                            height: s.height,
                            interval: closest_interval(&s.intervals, fps),
                        },
                    )
                })
                .collect()
        };
        for (fit, choice) in candidates {
            let key = (fit, rank);
            if best.as_ref().map_or(true, |(k, _)| key < *k) {
                best = Some((key, choice));
            }
        }
    }
    best.map(|(_, c)| c)
        .ok_or_else(|| CameraError::Unsupported {
            device: device.to_string(),
            reason: format!(
            "it offers no format dashvault can record (MJPEG, YUYV, NV12 or YU12); it offers: {}",
            describe_formats(offered)
        ),
        })
}

/// `MJPG 1280x720 640x480, H264 1920x1080` (or `nothing`), for error messages.
pub fn describe_formats(offered: &[FormatDesc]) -> String {
    if offered.is_empty() {
        return "nothing".into();
    }
    offered
        .iter()
        .map(|d| {
            let mut s = d.fourcc.to_string();
            if !d.description.is_empty() {
                s.push_str(&format!(" ({})", d.description));
            }
            for size in &d.sizes {
                s.push_str(&format!(" {}x{}", size.width, size.height));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Plane layout of a raw frame in a buffer with `bytes_per_line`-byte rows,
/// and how many bytes the frame occupies. `None` for JPEG.
fn raw_layout(
    format: PixelFormat,
    width: u32,
    height: u32,
    bytes_per_line: u32,
) -> Option<(Vec<Plane>, usize)> {
    let (w, h) = (width as usize, height as usize);
    let ch = h.div_ceil(2);
    match format {
        PixelFormat::Yuyv => {
            let stride = (bytes_per_line as usize).max(w * 2);
            Some((vec![Plane { offset: 0, stride }], stride * h))
        }
        PixelFormat::Nv12 => {
            let stride = (bytes_per_line as usize).max(w);
            let uv_stride = stride.max(w.div_ceil(2) * 2);
            Some((
                vec![
                    Plane { offset: 0, stride },
                    Plane {
                        offset: stride * h,
                        stride: uv_stride,
                    },
                ],
                stride * h + uv_stride * ch,
            ))
        }
        PixelFormat::I420 => {
            // YU12 chroma rows are half the luma stride (videodev2 docs).
            let stride = (bytes_per_line as usize).max(w);
            let c_stride = stride.div_ceil(2).max(w.div_ceil(2));
            let u = stride * h;
            let v = u + c_stride * ch;
            Some((
                vec![
                    Plane { offset: 0, stride },
                    Plane {
                        offset: u,
                        stride: c_stride,
                    },
                    Plane {
                        offset: v,
                        stride: c_stride,
                    },
                ],
                v + c_stride * ch,
            ))
        }
        PixelFormat::Jpeg => None,
    }
}

/// A device that can record, as found by [`discover`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredCamera {
    pub device: String,
    pub driver: String,
    pub card: String,
    pub bus_info: String,
    /// Usable formats in preference order, each with its frame sizes.
    pub formats: Vec<(PixelFormat, Vec<(u32, u32)>)>,
}

/// Lists capture devices under `/dev/video*` that dashvault can record from
/// (single-planar capture with streaming I/O and at least one usable
/// format), in device-number order. Devices that cannot be opened (busy,
/// no permission) are skipped with a log line.
pub fn discover() -> Vec<DiscoveredCamera> {
    let mut nodes: Vec<(u32, String)> = match std::fs::read_dir("/dev") {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let n: u32 = name.strip_prefix("video")?.parse().ok()?;
                Some((n, format!("/dev/{name}")))
            })
            .collect(),
        Err(e) => {
            log::warn!("cannot list /dev: {e}");
            Vec::new()
        }
    };
    nodes.sort();
    let paths: Vec<String> = nodes.into_iter().map(|(_, p)| p).collect();
    discover_on(&paths, RealV4l2Device::new)
}

/// [`discover`] over given paths with any device type.
pub fn discover_on<D: V4l2Device>(
    paths: &[String],
    mut make: impl FnMut() -> D,
) -> Vec<DiscoveredCamera> {
    let mut found = Vec::new();
    for path in paths {
        let mut dev = make();
        if let Err(e) = dev.open(path) {
            log::info!("{path}: skipped: {e}");
            continue;
        }
        let probed = dev
            .capabilities()
            .and_then(|caps| Ok((caps, dev.formats()?)));
        dev.close();
        let (caps, formats) = match probed {
            Ok(p) => p,
            Err(e) => {
                log::info!("{path}: skipped: {e}");
                continue;
            }
        };
        if !caps.can_capture() || !caps.can_stream() {
            log::debug!(
                "{path}: skipped: not a streaming capture node (caps {:#010x})",
                caps.caps
            );
            continue;
        }
        let mut usable: Vec<_> = formats
            .iter()
            .filter_map(|d| {
                let sizes = d.sizes.iter().map(|s| (s.width, s.height)).collect();
                Some((d.fourcc.preference()?, d.fourcc.pixel_format()?, sizes))
            })
            .collect();
        if usable.is_empty() {
            log::info!(
                "{path}: skipped: no usable format; it offers {}",
                describe_formats(&formats)
            );
            continue;
        }
        usable.sort_by_key(|u| u.0);
        found.push(DiscoveredCamera {
            device: path.clone(),
            driver: caps.driver,
            card: caps.card,
            bus_info: caps.bus_info,
            formats: usable.into_iter().map(|(_, f, s)| (f, s)).collect(),
        });
    }
    found
}

/// What an open camera streams.
#[derive(Clone, Copy, Debug)]
struct Streaming {
    active: ActiveFormat,
    format: PixelFormat,
    fps_milli: u32,
    got_first_frame: bool,
}

/// A V4L2 capture device as a [`CameraSource`].
pub struct V4l2Camera<D: V4l2Device = RealV4l2Device> {
    device_path: String,
    width: u32,
    height: u32,
    fps: u32,
    clock: Arc<dyn Clock>,
    dev: D,
    streaming: Option<Streaming>,
    skipped_frames: u64,
    dht_inserted_frames: u64,
}

impl V4l2Camera<RealV4l2Device> {
    pub fn new(
        device_path: String,
        width: u32,
        height: u32,
        fps: u32,
        clock: Arc<dyn Clock>,
    ) -> Self {
        V4l2Camera::with_device(
            RealV4l2Device::new(),
            device_path,
            width,
            height,
            fps,
            clock,
        )
    }

    pub fn from_config(cfg: &CameraConfig, clock: Arc<dyn Clock>) -> Self {
        V4l2Camera::new(
            cfg.device.clone(),
            cfg.res_width,
            cfg.res_height,
            cfg.fps,
            clock,
        )
    }
}

impl<D: V4l2Device> V4l2Camera<D> {
    pub fn with_device(
        dev: D,
        device_path: String,
        width: u32,
        height: u32,
        fps: u32,
        clock: Arc<dyn Clock>,
    ) -> Self {
        V4l2Camera {
            device_path,
            width,
            height,
            fps,
            clock,
            dev,
            streaming: None,
            skipped_frames: 0,
            dht_inserted_frames: 0,
        }
    }

    /// Buffers dropped since construction: not a JPEG, truncated, flagged
    /// as corrupt by the driver, or too short for the raw format.
    pub fn skipped_frames(&self) -> u64 {
        self.skipped_frames
    }

    /// MJPEG frames that needed the standard Huffman tables inserted.
    pub fn dht_inserted_frames(&self) -> u64 {
        self.dht_inserted_frames
    }

    fn err(&self, e: DeviceError) -> CameraError {
        camera_error(&self.device_path, e, self.streaming.is_some())
    }

    fn unsupported(&self, reason: String) -> CameraError {
        CameraError::Unsupported {
            device: self.device_path.clone(),
            reason,
        }
    }

    fn negotiate(&mut self) -> Result<StreamFormat, CameraError> {
        let caps = self.dev.capabilities().map_err(|e| self.err(e))?;
        if !caps.can_capture() || !caps.can_stream() {
            return Err(self.unsupported(format!(
                "{} ({}) is not a streaming video capture device (capabilities {:#010x})",
                caps.card, caps.driver, caps.caps
            )));
        }
        let offered = self.dev.formats().map_err(|e| self.err(e))?;
        let choice = choose_format(
            &self.device_path,
            &offered,
            self.width,
            self.height,
            self.fps,
        )?;
        let active = self
            .dev
            .set_format(choice.fourcc, choice.width, choice.height)
            .map_err(|e| self.err(e))?;
        let Some(format) = active.fourcc.pixel_format() else {
            return Err(self.unsupported(format!(
                "asked for {} but the driver chose {}, which dashvault cannot record",
                choice.fourcc, active.fourcc
            )));
        };
        if (active.width, active.height) != (self.width, self.height) {
            log::warn!(
                "{}: asked for {}x{}, recording {}x{} {} (it offers {})",
                self.device_path,
                self.width,
                self.height,
                active.width,
                active.height,
                format,
                describe_formats(&offered)
            );
        }
        let wanted = choice
            .interval
            .unwrap_or_else(|| FrameInterval::from_fps(self.fps));
        let fps_milli = match self.dev.set_frame_interval(wanted) {
            Ok(Some(got)) if got.fps_milli() > 0 => got.fps_milli(),
            Ok(_) => wanted.fps_milli(),
            Err(e) if is_disconnect(e.errno, false) => return Err(self.err(e)),
            Err(e) => {
                // Frame rate is a wish, not a requirement: record at whatever the camera does.
                log::warn!("{}: cannot set {} fps: {e}", self.device_path, self.fps);
                wanted.fps_milli()
            }
        };
        let buffers = self
            .dev
            .start(STREAM_BUFFER_COUNT)
            .map_err(|e| self.err(e))?;
        log::info!(
            "{}: {} ({}) streaming {} {}x{} at {}.{:03} fps with {buffers} buffers",
            self.device_path,
            caps.card,
            caps.driver,
            active.fourcc,
            active.width,
            active.height,
            fps_milli / 1000,
            fps_milli % 1000
        );
        self.streaming = Some(Streaming {
            active,
            format,
            fps_milli,
            got_first_frame: false,
        });
        Ok(StreamFormat {
            format,
            width: active.width,
            height: active.height,
            fps_milli,
        })
    }

    fn frame_timeout_ms(s: &Streaming) -> u32 {
        if !s.got_first_frame {
            return FIRST_FRAME_TIMEOUT_MS;
        }
        let three_frames_ms = if s.fps_milli == 0 {
            0
        } else {
            (3_000_000u64 / u64::from(s.fps_milli)).min(u64::from(u32::MAX)) as u32
        };
        three_frames_ms.max(FRAME_TIMEOUT_MIN_MS)
    }
}

/// Why a dequeued buffer was not turned into a frame.
#[derive(Debug)]
enum Skip {
    DriverError,
    Jpeg(mjpeg::JpegProblem),
    ShortRaw { got: usize, need: usize },
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::DriverError => f.write_str("the driver flagged the buffer as corrupt"),
            Skip::Jpeg(p) => write!(f, "not a usable JPEG: {p}"),
            Skip::ShortRaw { got, need } => write!(f, "{got} bytes, a full frame needs {need}"),
        }
    }
}

/// Turns one buffer into a frame. Raw frames are copied so the buffer can go
/// back to the driver immediately; lending the mapped buffer through a
/// [`crate::frame::FrameBytes`] that requeues on drop would save the copy
/// but ties the driver's few buffers to the encoder queue's depth.
fn frame_from_buffer(
    s: &Streaming,
    buf: &FilledBuffer<'_>,
    captured: crate::frame::CaptureTime,
) -> Result<(VideoFrame, bool), Skip> {
    let (width, height) = (s.active.width, s.active.height);
    if s.format == PixelFormat::Jpeg {
        // A JPEG that parses from SOI to EOI is kept even if the driver set
        // the error flag: the flag often only means a short USB payload.
        let fixed = mjpeg::repair_mjpeg(buf.data).map_err(Skip::Jpeg)?;
        let frame = VideoFrame {
            format: PixelFormat::Jpeg,
            width,
            height,
            planes: Vec::new(),
            data: Box::new(fixed.bytes),
            captured,
        };
        return Ok((frame, fixed.inserted_dht));
    }
    if buf.flags & V4L2_BUF_FLAG_ERROR != 0 {
        return Err(Skip::DriverError);
    }
    let Some((planes, need)) = raw_layout(s.format, width, height, s.active.bytes_per_line) else {
        return Err(Skip::DriverError);
    };
    if buf.data.len() < need {
        return Err(Skip::ShortRaw {
            got: buf.data.len(),
            need,
        });
    }
    let frame = VideoFrame {
        format: s.format,
        width,
        height,
        planes,
        data: Box::new(buf.data[..need].to_vec()),
        captured,
    };
    Ok((frame, false))
}

impl<D: V4l2Device> CameraSource for V4l2Camera<D> {
    fn describe(&self) -> String {
        self.device_path.clone()
    }

    fn open(&mut self) -> Result<StreamFormat, CameraError> {
        // A previous session may have failed half-way; start clean.
        self.close();
        self.dev.open(&self.device_path).map_err(|e| self.err(e))?;
        let negotiated = self.negotiate();
        if negotiated.is_err() {
            self.close();
        }
        negotiated
    }

    fn next_frame(&mut self) -> Result<VideoFrame, CameraError> {
        let mut bad_in_a_row = 0u32;
        loop {
            let Some(mut s) = self.streaming else {
                return Err(CameraError::Disconnected {
                    device: self.device_path.clone(),
                    reason: "not open".into(),
                });
            };
            let timeout_ms = Self::frame_timeout_ms(&s);
            let (index, result) = match self.dev.dequeue(timeout_ms) {
                Ok(Some(buf)) => {
                    let captured = self.clock.now();
                    (buf.index, frame_from_buffer(&s, &buf, captured))
                }
                Ok(None) => {
                    return Err(CameraError::Timeout {
                        device: self.device_path.clone(),
                        waited_ms: u64::from(timeout_ms),
                    })
                }
                Err(e) => return Err(camera_error(&self.device_path, e, true)),
            };
            self.dev
                .requeue(index)
                .map_err(|e| camera_error(&self.device_path, e, true))?;
            match result {
                Ok((frame, inserted_dht)) => {
                    if inserted_dht {
                        self.dht_inserted_frames += 1;
                    }
                    s.got_first_frame = true;
                    self.streaming = Some(s);
                    return Ok(frame);
                }
                Err(skip) => {
                    self.skipped_frames += 1;
                    bad_in_a_row += 1;
                    if bad_in_a_row == 1 {
                        log::warn!("{}: skipped a buffer: {skip}", self.device_path);
                    } else {
                        log::debug!("{}: skipped a buffer: {skip}", self.device_path);
                    }
                    if bad_in_a_row >= MAX_CONSECUTIVE_BAD_FRAMES {
                        return Err(CameraError::Io {
                            device: self.device_path.clone(),
                            context: format!(
                                "{bad_in_a_row} unusable buffers in a row, the last: {skip}"
                            ),
                            source: std::io::Error::from(std::io::ErrorKind::InvalidData),
                        });
                    }
                }
            }
        }
    }

    fn close(&mut self) {
        if self.streaming.take().is_some() {
            if let Err(e) = self.dev.stop() {
                log::debug!("{}: {e}", self.device_path);
            }
        }
        self.dev.close();
    }
}

impl<D: V4l2Device> Drop for V4l2Camera<D> {
    fn drop(&mut self) {
        self.close();
    }
}
