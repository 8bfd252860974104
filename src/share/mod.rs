//! Share clips: a range of stored footage re-encoded as H.264, small
//! enough to send from a phone and playable by every phone and browser.
//!
//! The lossless export (`export`) copies the stored JPEGs; this layer
//! decodes them, scales them to the chosen size and encodes H.264 with one
//! of the encoders behind [`encoder::H264Encoder`]: the Pi's hardware
//! encoder where it exists, a software encoder elsewhere.

pub mod cache;
pub mod clip;
pub mod encoder;
pub mod jobs;
#[cfg(feature = "software-h264")]
pub mod openh264;
pub mod picture;
pub mod v4l2_m2m;
