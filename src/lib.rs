//! dashvault: a dash cam recorder whose footage survives the power being cut
//! at any instant.
//!
//! The crate is layered the way data flows:
//! - [`clock`] and [`frame`] are the base: time sources and the in-memory
//!   picture types every other layer speaks.
//! - [`camera`] produces frames (synthetic test pattern, V4L2 webcams, and a
//!   slot for the Pi camera).
//! - [`encode`] turns raw frames into JPEG (rotation, burned-in timestamp).
//! - [`store`] owns the segment format and every durability rule; nothing
//!   outside it opens a segment file.
//! - [`export`] builds `.mp4` files of stored footage on demand, for the
//!   CLI and HTTP alike; [`share`] re-encodes a range as a small H.264
//!   clip to send from a phone.
//! - [`recorder`] wires cameras, encoder pools and segment writers together
//!   with bounded queues and counts everything in [`status`]; it adds the
//!   cameras [`discovery`] finds while running and shows its state on the
//!   [`led`].
//! - [`timekeeper`] keeps the wall clock from running backwards without a
//!   real-time clock; [`incident`] locks footage around a trigger, and
//!   [`triggers`] reads the button and the G-sensor.
//! - [`cli`] holds one module per subcommand; `main.rs` only dispatches.

pub mod camera;
pub mod cli;
pub mod clock;
pub mod config;
pub mod discovery;
pub mod encode;
pub mod export;
pub mod frame;
pub mod gps;
pub mod http;
pub mod incident;
pub mod led;
pub mod live;
pub mod recorder;
pub mod share;
pub mod status;
pub mod store;
pub mod timekeeper;
pub mod triggers;
