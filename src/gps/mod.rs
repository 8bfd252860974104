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
//! Nothing here sets the clock or stores anything yet; consumers take
//! [`GpsFix`] values from the callback given to [`GpsSource::start`].
//! docs/gps.md describes the choices.

pub mod fix;
pub mod nmea;
pub mod serial;
pub mod source;
pub mod state;

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use fix::{check_for_clock, FixQuality, FixRejection, GpsFix, DATE_FLOOR_DAYS};
pub use source::{FixSink, GpsSource};
pub use state::{GpsCounters, GpsState, NmeaDecoder};

/// Where the receiver is and how fast it talks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpsConfig {
    /// A tty path, or "auto" for the first of /dev/serial/by-id/*,
    /// /dev/ttyACM0, /dev/ttyUSB0.
    #[serde(default = "GpsConfig::auto")]
    pub device: String,
    /// The line rate (4800, 9600, 19200, 38400, 57600 or 115200); absent to
    /// detect it.
    #[serde(default)]
    pub baud: Option<u32>,
}

impl Default for GpsConfig {
    fn default() -> GpsConfig {
        GpsConfig {
            device: GpsConfig::auto(),
            baud: None,
        }
    }
}

impl GpsConfig {
    fn auto() -> String {
        "auto".to_string()
    }

    /// Checks the fields; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.device.is_empty() {
            return Err("gps.device: empty (a tty path or \"auto\")".into());
        }
        if let Some(b) = self.baud {
            serial::baud_rate(b).map_err(|e| format!("gps.baud: {e}"))?;
        }
        Ok(())
    }

    /// The device to open now (for "auto", whatever is plugged in now).
    pub fn resolve_device(&self) -> io::Result<PathBuf> {
        if self.device == "auto" {
            source::resolve_auto(
                Path::new("/dev/serial/by-id"),
                &["/dev/ttyACM0", "/dev/ttyUSB0"],
            )
        } else {
            Ok(PathBuf::from(&self.device))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_plain_and_strict() {
        let c: GpsConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, GpsConfig::default());
        let c: GpsConfig =
            serde_json::from_str(r#"{"device": "/dev/ttyAMA0", "baud": 9600}"#).unwrap();
        assert_eq!(c.baud, Some(9600));
        assert!(c.validate().is_ok());
        assert!(serde_json::from_str::<GpsConfig>(r#"{"bauds": 9600}"#).is_err());
        let c = GpsConfig {
            baud: Some(1200),
            ..GpsConfig::default()
        };
        assert!(c.validate().unwrap_err().starts_with("gps.baud"));
    }

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
