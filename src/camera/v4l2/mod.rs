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

pub(crate) mod device;
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
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
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
            rotated_by_camera: 0,
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
        rotated_by_camera: 0,
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::mjpeg::tests::{decode_rgb, fixture, strip_dht};
    use super::*;
    use crate::clock::SimulatedClock;
    use crate::frame::CaptureTime;

    enum FakeEvent {
        Frame(Vec<u8>),
        /// A buffer the driver flagged with V4L2_BUF_FLAG_ERROR.
        CorruptFrame(Vec<u8>),
        Fail(Errno),
        Timeout,
    }

    struct FakeState {
        plugged: bool,
        caps: DeviceCaps,
        formats: Vec<FormatDesc>,
        /// Extra bytes at the end of each raw row.
        row_padding: u32,
        /// What S_PARM reports back; `None` = no frame-rate control.
        interval_reply: Option<FrameInterval>,
        events: VecDeque<FakeEvent>,
        open: bool,
        streaming: bool,
        buffer_count: u32,
        next_index: u32,
        /// Dequeued and not yet requeued.
        outstanding: Vec<u32>,
        opens: u32,
        set_formats: Vec<(FourCc, u32, u32)>,
    }

    /// A scripted V4L2 device; the test keeps a handle to its state to
    /// unplug it, plug it back and queue more frames.
    struct FakeV4l2Device {
        state: Arc<Mutex<FakeState>>,
        current: Vec<u8>,
    }

    fn capture_caps() -> DeviceCaps {
        DeviceCaps {
            driver: "uvcvideo".into(),
            card: "Fake Webcam".into(),
            bus_info: "usb-0000:00:14.0-1".into(),
            caps: V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING,
        }
    }

    fn fmt(code: &[u8; 4], sizes: &[(u32, u32)], fps: &[u32]) -> FormatDesc {
        FormatDesc {
            fourcc: FourCc::new(code),
            description: String::new(),
            sizes: sizes
                .iter()
                .map(|&(width, height)| FrameSize {
                    width,
                    height,
                    intervals: fps.iter().map(|&f| FrameInterval::from_fps(f)).collect(),
                })
                .collect(),
        }
    }

    impl FakeV4l2Device {
        fn new(formats: Vec<FormatDesc>) -> (FakeV4l2Device, Arc<Mutex<FakeState>>) {
            let state = Arc::new(Mutex::new(FakeState {
                plugged: true,
                caps: capture_caps(),
                formats,
                row_padding: 0,
                interval_reply: Some(FrameInterval::from_fps(30)),
                events: VecDeque::new(),
                open: false,
                streaming: false,
                buffer_count: 0,
                next_index: 0,
                outstanding: Vec::new(),
                opens: 0,
                set_formats: Vec::new(),
            }));
            let dev = FakeV4l2Device {
                state: state.clone(),
                current: Vec::new(),
            };
            (dev, state)
        }

        fn st(&self) -> std::sync::MutexGuard<'_, FakeState> {
            self.state.lock().unwrap()
        }

        fn check(&self, op: &'static str) -> Result<(), DeviceError> {
            let st = self.st();
            if !st.plugged {
                return Err(DeviceError::new(op, Errno::ENODEV));
            }
            if !st.open {
                return Err(DeviceError::new(op, Errno::EBADF));
            }
            Ok(())
        }
    }

    impl V4l2Device for FakeV4l2Device {
        fn open(&mut self, _path: &str) -> Result<(), DeviceError> {
            let mut st = self.st();
            assert!(!st.open, "opened twice without close");
            if !st.plugged {
                return Err(DeviceError::new("open", Errno::ENOENT));
            }
            st.open = true;
            st.opens += 1;
            Ok(())
        }

        fn capabilities(&mut self) -> Result<DeviceCaps, DeviceError> {
            self.check("VIDIOC_QUERYCAP")?;
            Ok(self.st().caps.clone())
        }

        fn formats(&mut self) -> Result<Vec<FormatDesc>, DeviceError> {
            self.check("VIDIOC_ENUM_FMT")?;
            Ok(self.st().formats.clone())
        }

        fn set_format(
            &mut self,
            fourcc: FourCc,
            width: u32,
            height: u32,
        ) -> Result<ActiveFormat, DeviceError> {
            self.check("VIDIOC_S_FMT")?;
            let mut st = self.st();
            st.set_formats.push((fourcc, width, height));
            let desc = st
                .formats
                .iter()
                .find(|d| d.fourcc == fourcc)
                .or(st.formats.first())
                .cloned()
                .ok_or(DeviceError::new("VIDIOC_S_FMT", Errno::EINVAL))?;
            // Like a driver: an unknown size snaps to the first listed one.
            let (w, h) = if desc.sizes.is_empty()
                || desc
                    .sizes
                    .iter()
                    .any(|s| (s.width, s.height) == (width, height))
            {
                (width, height)
            } else {
                (desc.sizes[0].width, desc.sizes[0].height)
            };
            let bytes_per_line = match desc.fourcc.pixel_format() {
                Some(PixelFormat::Yuyv) => w * 2 + st.row_padding,
                Some(PixelFormat::Nv12) | Some(PixelFormat::I420) => w + st.row_padding,
                _ => 0,
            };
            Ok(ActiveFormat {
                fourcc: desc.fourcc,
                width: w,
                height: h,
                bytes_per_line,
                size_image: bytes_per_line * h * 2,
            })
        }

        fn set_frame_interval(
            &mut self,
            _interval: FrameInterval,
        ) -> Result<Option<FrameInterval>, DeviceError> {
            self.check("VIDIOC_S_PARM")?;
            Ok(self.st().interval_reply)
        }

        fn start(&mut self, buffers: u32) -> Result<u32, DeviceError> {
            self.check("VIDIOC_STREAMON")?;
            let mut st = self.st();
            st.streaming = true;
            st.buffer_count = buffers;
            st.next_index = 0;
            st.outstanding.clear();
            Ok(buffers)
        }

        fn dequeue(&mut self, _timeout_ms: u32) -> Result<Option<FilledBuffer<'_>>, DeviceError> {
            self.check("VIDIOC_DQBUF")?;
            let mut st = self.st();
            assert!(st.streaming, "dequeue before start");
            assert!(
                st.outstanding.len() < st.buffer_count as usize,
                "all buffers dequeued and none requeued"
            );
            let (bytes, flags) = match st.events.pop_front() {
                None | Some(FakeEvent::Timeout) => return Ok(None),
                Some(FakeEvent::Fail(errno)) => {
                    return Err(DeviceError::new("VIDIOC_DQBUF", errno))
                }
                Some(FakeEvent::Frame(b)) => (b, 0),
                Some(FakeEvent::CorruptFrame(b)) => (b, V4L2_BUF_FLAG_ERROR),
            };
            let index = st.next_index;
            st.next_index = (index + 1) % st.buffer_count;
            st.outstanding.push(index);
            drop(st);
            self.current = bytes;
            Ok(Some(FilledBuffer {
                index,
                data: &self.current,
                flags,
                sequence: 0,
            }))
        }

        fn requeue(&mut self, index: u32) -> Result<(), DeviceError> {
            self.check("VIDIOC_QBUF")?;
            let mut st = self.st();
            let at = st
                .outstanding
                .iter()
                .position(|&i| i == index)
                .expect("requeue of a buffer not dequeued");
            st.outstanding.remove(at);
            Ok(())
        }

        fn stop(&mut self) -> Result<(), DeviceError> {
            let mut st = self.st();
            st.streaming = false;
            st.outstanding.clear();
            if !st.plugged {
                return Err(DeviceError::new("VIDIOC_STREAMOFF", Errno::ENODEV));
            }
            Ok(())
        }

        fn close(&mut self) {
            let mut st = self.st();
            st.streaming = false;
            st.open = false;
        }
    }

    fn clock() -> (SimulatedClock, Arc<dyn Clock>) {
        let c = SimulatedClock::new(1_000_000_000, 1_763_719_200_000_000_000);
        (c.clone(), Arc::new(c))
    }

    fn camera(
        dev: FakeV4l2Device,
        w: u32,
        h: u32,
        fps: u32,
    ) -> (V4l2Camera<FakeV4l2Device>, SimulatedClock) {
        let (sim, clock) = clock();
        (
            V4l2Camera::with_device(dev, "/dev/video0".into(), w, h, fps, clock),
            sim,
        )
    }

    fn mjpeg_320() -> Vec<FormatDesc> {
        vec![fmt(b"MJPG", &[(320, 240), (640, 480)], &[30, 15])]
    }

    fn expect_disconnected(r: Result<impl fmt::Debug, CameraError>) -> String {
        match r {
            Err(CameraError::Disconnected { device, reason }) => {
                assert_eq!(device, "/dev/video0");
                reason
            }
            other => panic!("expected Disconnected, got {other:?}"),
        }
    }

    #[test]
    fn format_choice_table() {
        struct Case {
            name: &'static str,
            offered: Vec<FormatDesc>,
            want: (u32, u32, u32),
            expect: (&'static [u8; 4], u32, u32, Option<u32>),
        }
        let cases = [
            Case {
                name: "only YUYV offered",
                offered: vec![fmt(b"YUYV", &[(640, 480), (1280, 720)], &[30, 10])],
                want: (1280, 720, 30),
                expect: (b"YUYV", 1280, 720, Some(30)),
            },
            Case {
                name: "MJPEG beats YUYV at the same size",
                offered: vec![
                    fmt(b"YUYV", &[(1280, 720)], &[10]),
                    fmt(b"MJPG", &[(1280, 720)], &[30]),
                ],
                want: (1280, 720, 30),
                expect: (b"MJPG", 1280, 720, Some(30)),
            },
            Case {
                name: "YUYV beats NV12 beats YU12",
                offered: vec![
                    fmt(b"YU12", &[(640, 480)], &[30]),
                    fmt(b"NV12", &[(640, 480)], &[30]),
                    fmt(b"YUYV", &[(640, 480)], &[30]),
                ],
                want: (640, 480, 30),
                expect: (b"YUYV", 640, 480, Some(30)),
            },
            Case {
                name: "NV12 beats YU12",
                offered: vec![
                    fmt(b"YU12", &[(640, 480)], &[30]),
                    fmt(b"NV12", &[(640, 480)], &[30]),
                ],
                want: (640, 480, 30),
                expect: (b"NV12", 640, 480, Some(30)),
            },
            Case {
                name: "no exact size: smallest covering size",
                offered: vec![fmt(
                    b"MJPG",
                    &[(1920, 1080), (640, 480), (1280, 720), (800, 600)],
                    &[30],
                )],
                want: (1024, 576, 30),
                expect: (b"MJPG", 1280, 720, Some(30)),
            },
            Case {
                name: "request larger than anything: largest size",
                offered: vec![fmt(
                    b"MJPG",
                    &[(640, 480), (1920, 1080), (1280, 720)],
                    &[30],
                )],
                want: (3840, 2160, 30),
                expect: (b"MJPG", 1920, 1080, Some(30)),
            },
            Case {
                name: "wider but shorter does not count as covering",
                offered: vec![fmt(b"MJPG", &[(1280, 400), (1280, 1024)], &[30])],
                want: (1280, 720, 30),
                expect: (b"MJPG", 1280, 1024, Some(30)),
            },
            Case {
                name: "exact YUYV beats MJPEG at another size",
                offered: vec![
                    fmt(b"MJPG", &[(1920, 1080)], &[30]),
                    fmt(b"YUYV", &[(640, 480)], &[30]),
                ],
                want: (640, 480, 30),
                expect: (b"YUYV", 640, 480, Some(30)),
            },
            Case {
                name: "unusable formats are ignored",
                offered: vec![
                    fmt(b"H264", &[(640, 480)], &[30]),
                    fmt(b"YUYV", &[(320, 240)], &[30]),
                ],
                want: (640, 480, 30),
                expect: (b"YUYV", 320, 240, Some(30)),
            },
            Case {
                name: "closest frame rate",
                offered: vec![fmt(b"MJPG", &[(640, 480)], &[30, 15, 5])],
                want: (640, 480, 20),
                expect: (b"MJPG", 640, 480, Some(15)),
            },
            Case {
                name: "frame rate tie goes to the faster",
                offered: vec![fmt(b"MJPG", &[(640, 480)], &[20, 30])],
                want: (640, 480, 25),
                expect: (b"MJPG", 640, 480, Some(30)),
            },
            Case {
                name: "sizes not enumerated: ask for the request",
                offered: vec![fmt(b"YUYV", &[], &[])],
                want: (800, 600, 30),
                expect: (b"YUYV", 800, 600, None),
            },
            Case {
                name: "the JPEG fourcc counts as MJPEG",
                offered: vec![
                    fmt(b"YUYV", &[(640, 480)], &[30]),
                    fmt(b"JPEG", &[(640, 480)], &[30]),
                ],
                want: (640, 480, 30),
                expect: (b"JPEG", 640, 480, Some(30)),
            },
        ];
        for c in cases {
            let got = choose_format("/dev/video0", &c.offered, c.want.0, c.want.1, c.want.2)
                .unwrap_or_else(|e| panic!("{}: {e}", c.name));
            let (code, w, h, fps) = c.expect;
            assert_eq!(got.fourcc, FourCc::new(code), "{}", c.name);
            assert_eq!(
                Some(got.format),
                FourCc::new(code).pixel_format(),
                "{}",
                c.name
            );
            assert_eq!((got.width, got.height), (w, h), "{}", c.name);
            assert_eq!(
                got.interval.map(|i| i.fps_milli() / 1000),
                fps,
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn nothing_usable_is_unsupported_and_lists_the_offer() {
        let offered = vec![
            fmt(b"H264", &[(1920, 1080), (1280, 720)], &[30]),
            FormatDesc {
                description: "16-bit RGB 5-6-5".into(),
                ..fmt(b"RGBP", &[(640, 480)], &[30])
            },
        ];
        let err = choose_format("/dev/video7", &offered, 1280, 720, 30).unwrap_err();
        let CameraError::Unsupported {
            ref device,
            ref reason,
        } = err
        else {
            panic!("expected Unsupported, got {err:?}");
        };
        assert_eq!(device, "/dev/video7");
        for part in [
            "H264 1920x1080 1280x720",
            "RGBP (16-bit RGB 5-6-5) 640x480",
            "MJPEG",
        ] {
            assert!(reason.contains(part), "{part:?} missing from {reason:?}");
        }
        assert!(err.to_string().contains("/dev/video7"));

        let err = choose_format("/dev/video7", &[], 1280, 720, 30).unwrap_err();
        assert!(err.to_string().contains("offers: nothing"), "{err}");
    }

    #[test]
    fn frame_interval_rates() {
        let ntsc = FrameInterval {
            numerator: 1001,
            denominator: 30000,
        };
        assert_eq!(ntsc.fps_milli(), 29970);
        assert_eq!(FrameInterval::from_fps(0).fps_milli(), 1000);
        assert_eq!(
            FrameInterval {
                numerator: 0,
                denominator: 0
            }
            .fps_milli(),
            0
        );
        assert_eq!(FourCc::MJPG.to_string(), "MJPG");
        assert_eq!(FourCc(0x0000_3436).to_string(), "64??");
    }

    #[test]
    fn disconnect_errnos() {
        for errno in [Errno::ENODEV, Errno::ENXIO, Errno::ENOENT] {
            assert!(is_disconnect(errno, false), "{errno}");
            assert!(is_disconnect(errno, true), "{errno}");
        }
        assert!(is_disconnect(Errno::EIO, true));
        assert!(!is_disconnect(Errno::EIO, false));
        assert!(!is_disconnect(Errno::EBUSY, true));
        assert!(!is_disconnect(Errno::EACCES, false));
        let e = camera_error(
            "/dev/video0",
            DeviceError::new("open", Errno::EACCES),
            false,
        );
        assert!(matches!(e, CameraError::Io { .. }), "{e:?}");
        assert!(e.to_string().contains("/dev/video0"), "{e}");
    }

    #[test]
    fn mjpeg_frames_pass_through_byte_identical() {
        let (dev, state) = FakeV4l2Device::new(mjpeg_320());
        let fixtures: Vec<Vec<u8>> = (1..=3).map(|i| fixture(&format!("uvc_{i}.jpg"))).collect();
        state
            .lock()
            .unwrap()
            .events
            .extend(fixtures.iter().cloned().map(FakeEvent::Frame));
        let (mut cam, sim) = camera(dev, 320, 240, 30);
        let format = cam.open().unwrap();
        assert_eq!(
            format,
            StreamFormat {
                format: PixelFormat::Jpeg,
                width: 320,
                height: 240,
                fps_milli: 30_000
            }
        );
        assert_eq!(
            state.lock().unwrap().set_formats,
            vec![(FourCc::MJPG, 320, 240)]
        );
        for (i, want) in fixtures.iter().enumerate() {
            sim.advance(Duration::from_millis(33));
            let before = sim.now();
            let frame = cam.next_frame().unwrap();
            assert_eq!(frame.format, PixelFormat::Jpeg);
            assert_eq!((frame.width, frame.height), (320, 240));
            assert!(frame.planes.is_empty());
            assert_eq!(frame.bytes(), &want[..], "frame {i}");
            assert_eq!(frame.captured, before);
        }
        assert_eq!(cam.skipped_frames(), 0);
        assert_eq!(cam.dht_inserted_frames(), 0);
        assert!(
            state.lock().unwrap().outstanding.is_empty(),
            "every buffer went back"
        );
        cam.close();
        assert!(!state.lock().unwrap().open);
    }

    #[test]
    fn uvc_frames_without_huffman_tables_come_out_decodable() {
        let (dev, state) = FakeV4l2Device::new(mjpeg_320());
        let original = fixture("uvc_1.jpg");
        let mut from_camera = strip_dht(&original);
        // And padded past EOI, as many cameras deliver it.
        from_camera.resize(from_camera.len() + 700, 0);
        state
            .lock()
            .unwrap()
            .events
            .push_back(FakeEvent::Frame(from_camera));
        let (mut cam, _) = camera(dev, 320, 240, 30);
        cam.open().unwrap();
        let frame = cam.next_frame().unwrap();
        assert_eq!(frame.bytes().len(), original.len());
        assert_eq!(decode_rgb(frame.bytes()), decode_rgb(&original));
        assert_eq!(cam.dht_inserted_frames(), 1);
    }

    #[test]
    fn garbage_buffers_are_skipped_and_counted() {
        let (dev, state) = FakeV4l2Device::new(mjpeg_320());
        let (a, b) = (fixture("uvc_1.jpg"), fixture("uvc_2.jpg"));
        let truncated = a[..a.len() / 3].to_vec();
        state.lock().unwrap().events.extend([
            FakeEvent::Frame(vec![0u8; 4096]),
            FakeEvent::Frame(b"hello".to_vec()),
            FakeEvent::Frame(a.clone()),
            FakeEvent::Frame(truncated),
            FakeEvent::Frame(Vec::new()),
            // The error flag alone does not drop a JPEG that parses completely.
            FakeEvent::CorruptFrame(b.clone()),
        ]);
        let (mut cam, _) = camera(dev, 320, 240, 30);
        cam.open().unwrap();
        assert_eq!(cam.next_frame().unwrap().bytes(), &a[..]);
        assert_eq!(cam.skipped_frames(), 2);
        assert_eq!(cam.next_frame().unwrap().bytes(), &b[..]);
        assert_eq!(cam.skipped_frames(), 4);
        assert!(state.lock().unwrap().outstanding.is_empty());
    }

    #[test]
    fn endless_garbage_ends_in_an_error_instead_of_spinning() {
        let (dev, state) = FakeV4l2Device::new(mjpeg_320());
        state
            .lock()
            .unwrap()
            .events
            .extend((0..200).map(|_| FakeEvent::Frame(vec![0x55; 1000])));
        let (mut cam, _) = camera(dev, 320, 240, 30);
        cam.open().unwrap();
        let err = cam.next_frame().unwrap_err();
        let CameraError::Io { context, .. } = &err else {
            panic!("expected Io, got {err:?}");
        };
        assert!(
            context.contains("60 unusable buffers in a row"),
            "{context}"
        );
        assert!(context.contains("55 55"), "{context}");
        assert_eq!(cam.skipped_frames(), u64::from(MAX_CONSECUTIVE_BAD_FRAMES));
    }

    #[test]
    fn unplug_mid_stream_is_disconnected_and_replug_resumes() {
        let (dev, state) = FakeV4l2Device::new(mjpeg_320());
        let jpeg = fixture("uvc_3.jpg");
        state.lock().unwrap().events.extend([
            FakeEvent::Frame(jpeg.clone()),
            FakeEvent::Fail(Errno::ENODEV),
        ]);
        let (mut cam, _) = camera(dev, 320, 240, 30);
        cam.open().unwrap();
        assert_eq!(cam.next_frame().unwrap().bytes(), &jpeg[..]);
        let reason = expect_disconnected(cam.next_frame());
        assert!(reason.contains("ENODEV"), "{reason}");

        // The caller's reconnect loop: close, then open until the camera is back.
        state.lock().unwrap().plugged = false;
        cam.close();
        assert!(!state.lock().unwrap().open);
        let reason = expect_disconnected(cam.open());
        assert!(reason.contains("ENOENT"), "{reason}");
        cam.close();

        {
            let mut st = state.lock().unwrap();
            st.plugged = true;
            st.events.push_back(FakeEvent::Frame(jpeg.clone()));
            st.events.push_back(FakeEvent::Fail(Errno::EIO));
        }
        cam.open().unwrap();
        assert_eq!(cam.next_frame().unwrap().bytes(), &jpeg[..]);
        // EIO while streaming also means the camera fell off the bus.
        expect_disconnected(cam.next_frame());
        assert_eq!(state.lock().unwrap().opens, 2);
    }

    #[test]
    fn vanished_device_fails_every_call_with_disconnected() {
        let (dev, state) = FakeV4l2Device::new(mjpeg_320());
        let (mut cam, _) = camera(dev, 320, 240, 30);
        cam.open().unwrap();
        state.lock().unwrap().plugged = false;
        expect_disconnected(cam.next_frame());
        // close() on a vanished device must not panic or leak state.
        cam.close();
        assert!(!state.lock().unwrap().open);
        expect_disconnected(cam.next_frame());
    }

    #[test]
    fn no_frame_in_time_is_a_timeout() {
        let (dev, state) = FakeV4l2Device::new(mjpeg_320());
        state.lock().unwrap().events.extend([
            FakeEvent::Timeout,
            FakeEvent::Frame(fixture("uvc_1.jpg")),
            FakeEvent::Timeout,
        ]);
        let (mut cam, _) = camera(dev, 320, 240, 30);
        cam.open().unwrap();
        match cam.next_frame() {
            Err(CameraError::Timeout { waited_ms, .. }) => {
                assert_eq!(waited_ms, u64::from(FIRST_FRAME_TIMEOUT_MS))
            }
            other => panic!("expected Timeout, got {other:?}"),
        }
        cam.next_frame().unwrap();
        match cam.next_frame() {
            Err(CameraError::Timeout { waited_ms, .. }) => {
                assert_eq!(waited_ms, u64::from(FRAME_TIMEOUT_MIN_MS))
            }
            other => panic!("expected Timeout, got {other:?}"),
        }
    }

    #[test]
    fn next_frame_before_open_is_disconnected() {
        let (dev, _) = FakeV4l2Device::new(mjpeg_320());
        let (mut cam, _) = camera(dev, 320, 240, 30);
        expect_disconnected(cam.next_frame());
    }

    #[test]
    fn non_capture_device_is_unsupported_and_left_closed() {
        let (dev, state) = FakeV4l2Device::new(mjpeg_320());
        state.lock().unwrap().caps.caps = 0x0080_0000 | V4L2_CAP_STREAMING; // META_CAPTURE
        let (mut cam, _) = camera(dev, 320, 240, 30);
        let err = cam.open().unwrap_err();
        assert!(matches!(err, CameraError::Unsupported { .. }), "{err:?}");
        assert!(err.to_string().contains("Fake Webcam"), "{err}");
        assert!(!state.lock().unwrap().open);

        let (dev, state) = FakeV4l2Device::new(vec![fmt(b"H264", &[(1280, 720)], &[30])]);
        let (mut cam, _) = camera(dev, 1280, 720, 30);
        let err = cam.open().unwrap_err();
        assert!(err.to_string().contains("H264 1280x720"), "{err}");
        assert!(!state.lock().unwrap().open);
    }

    #[test]
    fn driver_size_and_rate_are_reported_as_chosen() {
        let (dev, state) = FakeV4l2Device::new(mjpeg_320());
        state.lock().unwrap().interval_reply = Some(FrameInterval {
            numerator: 1001,
            denominator: 15000,
        });
        let (mut cam, _) = camera(dev, 1920, 1080, 30);
        let f = cam.open().unwrap();
        assert_eq!((f.width, f.height, f.fps_milli), (640, 480, 14985));

        // No frame-rate control: report the rate we asked for.
        let (dev, state) = FakeV4l2Device::new(mjpeg_320());
        state.lock().unwrap().interval_reply = None;
        let (mut cam, _) = camera(dev, 320, 240, 15);
        assert_eq!(cam.open().unwrap().fps_milli, 15_000);
    }

    /// A raw frame whose byte at (plane, row, col) encodes its position.
    fn raw_frame(planes: &[(usize, usize, usize)]) -> Vec<u8> {
        // (stride, rows, used bytes per row)
        let mut out = Vec::new();
        for (p, &(stride, rows, used)) in planes.iter().enumerate() {
            for r in 0..rows {
                for c in 0..stride {
                    out.push(if c < used {
                        (p * 100 + r * 7 + c) as u8
                    } else {
                        0xEE
                    });
                }
            }
        }
        out
    }

    #[test]
    fn raw_yuyv_keeps_the_driver_stride() {
        let (dev, state) = FakeV4l2Device::new(vec![fmt(b"YUYV", &[(6, 4)], &[30])]);
        state.lock().unwrap().row_padding = 4;
        let data = raw_frame(&[(16, 4, 12)]);
        let mut long = data.clone();
        long.extend_from_slice(&[1, 2, 3]); // sizeimage slack past the frame
        state
            .lock()
            .unwrap()
            .events
            .push_back(FakeEvent::Frame(long));
        let (mut cam, _) = camera(dev, 6, 4, 30);
        assert_eq!(cam.open().unwrap().format, PixelFormat::Yuyv);
        let frame = cam.next_frame().unwrap();
        assert_eq!(frame.format, PixelFormat::Yuyv);
        assert_eq!(
            frame.planes,
            vec![Plane {
                offset: 0,
                stride: 16
            }]
        );
        assert_eq!(frame.bytes(), &data[..]);
    }

    #[test]
    fn raw_nv12_and_i420_planes() {
        // NV12 6x4, 2 bytes of row padding: Y 8x4, CbCr 8x2.
        let (dev, state) = FakeV4l2Device::new(vec![fmt(b"NV12", &[(6, 4)], &[30])]);
        state.lock().unwrap().row_padding = 2;
        let nv12 = raw_frame(&[(8, 4, 6), (8, 2, 6)]);
        state
            .lock()
            .unwrap()
            .events
            .push_back(FakeEvent::Frame(nv12.clone()));
        let (mut cam, _) = camera(dev, 6, 4, 30);
        cam.open().unwrap();
        let f = cam.next_frame().unwrap();
        assert_eq!(f.format, PixelFormat::Nv12);
        assert_eq!(
            f.planes,
            vec![
                Plane {
                    offset: 0,
                    stride: 8
                },
                Plane {
                    offset: 32,
                    stride: 8
                }
            ]
        );
        assert_eq!(f.bytes(), &nv12[..]);

        // YU12 6x4 tightly packed: Y 6x4, Cb 3x2, Cr 3x2; matches VideoFrame::packed.
        let (dev, state) = FakeV4l2Device::new(vec![fmt(b"YU12", &[(6, 4)], &[30])]);
        let i420 = raw_frame(&[(6, 4, 6), (3, 2, 3), (3, 2, 3)]);
        state
            .lock()
            .unwrap()
            .events
            .push_back(FakeEvent::Frame(i420.clone()));
        let (mut cam, _) = camera(dev, 6, 4, 30);
        cam.open().unwrap();
        let f = cam.next_frame().unwrap();
        let packed = VideoFrame::packed(
            PixelFormat::I420,
            6,
            4,
            i420.clone(),
            CaptureTime::default(),
        );
        assert_eq!(f.planes, packed.planes);
        assert_eq!(f.bytes(), &i420[..]);
    }

    #[test]
    fn short_or_flagged_raw_buffers_are_skipped() {
        let (dev, state) = FakeV4l2Device::new(vec![fmt(b"YUYV", &[(4, 2)], &[30])]);
        let good = raw_frame(&[(8, 2, 8)]);
        state.lock().unwrap().events.extend([
            FakeEvent::Frame(good[..10].to_vec()),
            FakeEvent::CorruptFrame(good.clone()),
            FakeEvent::Frame(good.clone()),
        ]);
        let (mut cam, _) = camera(dev, 4, 2, 30);
        cam.open().unwrap();
        assert_eq!(cam.next_frame().unwrap().bytes(), &good[..]);
        assert_eq!(cam.skipped_frames(), 2);
    }

    #[test]
    fn discover_keeps_streaming_capture_nodes_with_usable_formats() {
        let mut devices = VecDeque::new();
        // /dev/video0: a webcam.
        let (webcam, _) = FakeV4l2Device::new(vec![
            fmt(b"YUYV", &[(640, 480)], &[30]),
            fmt(b"MJPG", &[(1280, 720), (640, 480)], &[30]),
        ]);
        devices.push_back(webcam);
        // /dev/video1: the same webcam's metadata node.
        let (meta, st) = FakeV4l2Device::new(vec![]);
        st.lock().unwrap().caps.caps = 0x0080_0000 | V4L2_CAP_STREAMING;
        devices.push_back(meta);
        // /dev/video2: an H.264-only camera.
        let (h264, _) = FakeV4l2Device::new(vec![fmt(b"H264", &[(1920, 1080)], &[30])]);
        devices.push_back(h264);
        // /dev/video3: unplugged between listing and opening.
        let (gone, st) = FakeV4l2Device::new(mjpeg_320());
        st.lock().unwrap().plugged = false;
        devices.push_back(gone);

        let paths: Vec<String> = (0..4).map(|n| format!("/dev/video{n}")).collect();
        let found = discover_on(&paths, || devices.pop_front().unwrap());
        assert_eq!(
            found,
            vec![DiscoveredCamera {
                device: "/dev/video0".into(),
                driver: "uvcvideo".into(),
                card: "Fake Webcam".into(),
                bus_info: "usb-0000:00:14.0-1".into(),
                formats: vec![
                    (PixelFormat::Jpeg, vec![(1280, 720), (640, 480)]),
                    (PixelFormat::Yuyv, vec![(640, 480)]),
                ],
            }]
        );
    }

    #[test]
    fn discover_on_this_machine_does_not_fail() {
        // No /dev/video* here; with a camera plugged in this lists it.
        for cam in discover() {
            assert!(cam.device.starts_with("/dev/video"));
            assert!(!cam.formats.is_empty());
        }
    }
}
