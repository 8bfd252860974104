//! A GPS receiver on a serial port, as a source of position, speed and
//! satellite time.
//!
//! - [`nmea`] frames lines and checks their checksums; it owns what counts as
//!   a sentence, garbage or a sentence we do not read.
//! - [`state`] turns lines into the live [`GpsState`] and RMC+GGA pairs into
//!   [`GpsFix`] epochs, without I/O.
//! - [`fix`] decides whether an epoch's time may set the clock
//!   ([`check_for_clock`]), including the GPS week-number rollover.
//! - [`serial`] opens the tty raw and finds its baud rate.
//! - [`source`] runs the `gps-reader` thread that ties them together and
//!   reconnects after an unplug.
//!
//! - [`clock`] decides when trusted fixes set the recorder's clock.
//!
//! Nothing here sets the clock or stores anything itself; the recorder
//! takes [`GpsFix`] values from the callback given to [`GpsSource::start`].
//! docs/gps.md describes the choices.

pub mod clock;
pub mod fix;
pub mod nmea;
pub mod serial;
pub mod source;
pub mod state;

use std::io;
use std::path::{Path, PathBuf};

pub use fix::{check_for_clock, FixQuality, FixRejection, GpsFix, DATE_FLOOR_DAYS};
pub use source::{FixSink, GpsSource};
pub use state::{GpsCounters, GpsState, NmeaDecoder};

pub use crate::config::GpsConfig;

/// The device `config` names now (for "auto", whatever is plugged in now).
pub fn resolve_device(config: &GpsConfig) -> io::Result<PathBuf> {
    if config.device == "auto" {
        source::resolve_auto(
            Path::new("/dev/serial/by-id"),
            &["/dev/ttyACM0", "/dev/ttyUSB0"],
        )
    } else {
        Ok(PathBuf::from(&config.device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_takes_the_first_stable_name_then_the_fallbacks() {
        let dir = tempfile::tempdir().unwrap();
        let by_id = dir.path().join("by-id");
        let acm = dir.path().join("ttyACM0");
        let acm_s = acm.to_str().unwrap();
        assert!(source::resolve_auto(&by_id, &[acm_s]).is_err());
        std::fs::write(&acm, b"").unwrap();
        assert_eq!(source::resolve_auto(&by_id, &[acm_s]).unwrap(), acm);
        std::fs::create_dir(&by_id).unwrap();
        for n in [
            "usb-u-blox_GNSS_receiver-if00",
            "usb-1a86_USB_Serial-if00-port0",
        ] {
            std::fs::write(by_id.join(n), b"").unwrap();
        }
        assert_eq!(
            source::resolve_auto(&by_id, &[acm_s]).unwrap(),
            by_id.join("usb-1a86_USB_Serial-if00-port0")
        );
    }
}
