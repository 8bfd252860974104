//! The contract every H.264 encoder meets, so the share clip pipeline does
//! not care whether the Pi's hardware or a software library does the work.

use std::fmt;

/// One picture to encode: planar YUV 4:2:0 (I420), even width and height,
/// each plane tightly packed (the luma stride is `width`, the chroma
/// strides `width / 2`).
#[derive(Debug, Clone, Copy)]
pub struct Picture<'a> {
    pub width: u32,
    pub height: u32,
    pub y: &'a [u8],
    pub u: &'a [u8],
    pub v: &'a [u8],
}

/// What an encoder is asked to produce. Width and height are those of every
/// [`Picture`] it will be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderSettings {
    pub width: u32,
    pub height: u32,
    /// Frames per second the clip plays at, as a rate-control hint; the
    /// muxer writes the real capture times.
    pub fps: u32,
    /// Target average bitrate in bits per second.
    pub bitrate_bps: u32,
    /// At most this many frames between key frames, so a player can seek.
    pub keyframe_interval: u32,
}

/// One encoded picture: an H.264 access unit as an Annex B byte stream
/// (start codes before each NAL unit). A key frame's access unit carries
/// its SPS and PPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

/// An encoder failure, naming the encoder and what it was doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    pub encoder: &'static str,
    pub message: String,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} encoder: {}", self.encoder, self.message)
    }
}

impl std::error::Error for EncodeError {}

/// An H.264 encoder producing Constrained Baseline or Main profile without
/// B-frames, so access units come out in the order pictures went in, one
/// per picture.
///
/// A hardware encoder works asynchronously: [`encode`](Self::encode) may
/// return the access units of earlier pictures, or none yet, and
/// [`finish`](Self::finish) returns the rest. Across both calls, the
/// n-th access unit returned belongs to the n-th picture given.
pub trait H264Encoder {
    /// A short name for the log and status ("openh264", "v4l2 /dev/video11").
    fn name(&self) -> String;

    /// Hands one picture to the encoder; returns the access units finished
    /// so far, oldest first.
    fn encode(&mut self, picture: &Picture<'_>) -> Result<Vec<AccessUnit>, EncodeError>;

    /// Ends the stream: returns every access unit not yet returned.
    fn finish(&mut self) -> Result<Vec<AccessUnit>, EncodeError>;
}
