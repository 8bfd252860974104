//! What the receiver says now, built up line by line.
//!
//! [`NmeaDecoder`] is the whole interpretation of a receiver's output without
//! any I/O: it classifies each line, counts what it cannot use, keeps
//! [`GpsState`] current and pairs RMC with GGA into [`GpsFix`] epochs. The
//! reader thread in [`super::source`] only moves bytes into it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::fix::{FixQuality, GpsFix};
use super::nmea::{classify, Gga, Line, Rmc, Sentence, Talker};

/// What was read, by outcome. Nothing here is fatal; each says how noisy the
/// link is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpsCounters {
    /// Sentences read and used.
    pub sentences_ok: u64,
    pub checksum_errors: u64,
    /// Lines that are not sentences (noise, cut lines, a wrong baud rate).
    pub garbage: u64,
    /// Correct sentences we do not read: proprietary ($PUBX, $PMTK, $PSRF...),
    /// other types (GLL, TXT...), other talkers.
    pub unknown: u64,
    /// Correct sentences of a type we read whose fields do not parse.
    pub malformed: u64,
    /// Times the device was lost after being open.
    pub disconnects: u64,
}

/// The receiver as the status page shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GpsState {
    /// The tty in use (or last tried).
    pub device: String,
    pub connected: bool,
    /// The line rate in use, configured or detected.
    pub baud: Option<u32>,
    pub quality: FixQuality,
    pub sats_used: Option<u32>,
    /// Sum over systems of the satellites their GSV groups list.
    pub sats_in_view: Option<u32>,
    pub hdop: Option<f32>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub alt_m: Option<f64>,
    pub speed_mps: Option<f64>,
    pub heading_deg: Option<f64>,
    /// UTC of the last epoch with a position, ns since the Unix epoch.
    pub last_fix_utc_ns: Option<i64>,
    /// How long ago that epoch was read, by the monotonic clock; refreshed by
    /// [`GpsState::refresh_age`].
    pub last_fix_age_ms: Option<u64>,
    #[serde(skip)]
    pub last_fix_mono_ns: Option<u64>,
    pub counters: GpsCounters,
    pub last_error: Option<String>,
}

impl GpsState {
    pub fn refresh_age(&mut self, mono_ns: u64) {
        self.last_fix_age_ms = self
            .last_fix_mono_ns
            .map(|t| mono_ns.saturating_sub(t) / 1_000_000);
    }

    /// Forgets what described the live signal (the device is gone); keeps
    /// the last fix and the counters.
    pub fn clear_live(&mut self) {
        self.quality = FixQuality::NoFix;
        self.sats_used = None;
        self.sats_in_view = None;
        self.hdop = None;
        self.lat = None;
        self.lon = None;
        self.alt_m = None;
        self.speed_mps = None;
        self.heading_deg = None;
    }
}

/// Turns lines into state updates and fix epochs.
#[derive(Default)]
pub struct NmeaDecoder {
    gga: Option<Gga>,
    rmc: Option<Rmc>,
    gsa_mode: Option<u8>,
    gga_quality: u8,
    in_view: HashMap<Talker, u16>,
}

impl NmeaDecoder {
    pub fn new() -> NmeaDecoder {
        NmeaDecoder::default()
    }

    /// Forgets a half-read epoch (after a reconnect).
    pub fn reset(&mut self) {
        *self = NmeaDecoder::default();
    }

    /// Reads one line into `state`; returns the epoch it completes, if any.
    pub fn feed(&mut self, line: &[u8], mono_ns: u64, state: &mut GpsState) -> Option<GpsFix> {
        let c = &mut state.counters;
        let sentence = match classify(line) {
            Line::Sentence(s) => {
                c.sentences_ok += 1;
                s
            }
            Line::ChecksumError { computed, found } => {
                c.checksum_errors += 1;
                state.last_error = Some(format!(
                    "checksum {found:02X} where the text gives {computed:02X}"
                ));
                return None;
            }
            Line::Garbage(why) => {
                c.garbage += 1;
                state.last_error = Some(format!("garbage line: {why}"));
                return None;
            }
            Line::Unknown(_) => {
                c.unknown += 1;
                return None;
            }
            Line::Malformed(why) => {
                c.malformed += 1;
                state.last_error = Some(format!("malformed sentence: {why}"));
                return None;
            }
        };
        match sentence {
            Sentence::Gga(g) => {
                self.gga_quality = g.quality;
                state.quality = FixQuality::from_nmea(g.quality, self.gsa_mode);
                state.sats_used = g.sats_used;
                state.hdop = g.hdop.filter(|_| g.quality > 0);
                state.lat = g.lat;
                state.lon = g.lon;
                state.alt_m = g.alt_m.map(f64::from);
                if self
                    .rmc
                    .as_ref()
                    .is_some_and(|r| same_epoch(r.time_ms, g.time_ms))
                {
                    let rmc = self.rmc.take()?;
                    return Some(self.complete(rmc, g, mono_ns, state));
                }
                self.gga = Some(g);
            }
            Sentence::Rmc(r) => {
                state.lat = r.lat;
                state.lon = r.lon;
                state.speed_mps = r.speed_mps.filter(|_| r.valid);
                state.heading_deg = r.heading_deg.filter(|_| r.valid);
                if self
                    .gga
                    .as_ref()
                    .is_some_and(|g| same_epoch(r.time_ms, g.time_ms))
                {
                    let gga = self.gga.take()?;
                    return Some(self.complete(r, gga, mono_ns, state));
                }
                self.rmc = Some(r);
            }
            Sentence::Gsa(a) => {
                self.gsa_mode = Some(a.mode);
                state.quality = FixQuality::from_nmea(self.gga_quality, self.gsa_mode);
            }
            Sentence::Gsv(v) => {
                if v.message == 1 {
                    self.in_view.insert(v.talker, v.sats_in_view);
                    state.sats_in_view = Some(self.in_view.values().map(|&n| n as u32).sum());
                }
            }
            Sentence::Vtg(v) => {
                if v.speed_mps.is_some() || v.heading_deg.is_some() {
                    state.speed_mps = v.speed_mps;
                    state.heading_deg = v.heading_deg;
                }
            }
        }
        None
    }

    fn complete(&mut self, rmc: Rmc, gga: Gga, mono_ns: u64, state: &mut GpsState) -> GpsFix {
        self.gga = None;
        self.rmc = None;
        let fix = GpsFix {
            utc_ns: rmc.utc_ns(),
            mono_ns,
            lat: gga.lat.or(rmc.lat),
            lon: gga.lon.or(rmc.lon),
            alt_m: gga.alt_m.map(f64::from),
            speed_mps: rmc.speed_mps,
            heading_deg: rmc.heading_deg,
            quality: FixQuality::from_nmea(gga.quality, self.gsa_mode),
            status_valid: rmc.valid,
            sats: gga.sats_used,
            hdop: gga.hdop,
        };
        if fix.has_position() {
            state.last_fix_utc_ns = fix.utc_ns;
            state.last_fix_mono_ns = Some(mono_ns);
            state.refresh_age(mono_ns);
        }
        fix
    }
}

/// RMC and GGA of one epoch carry the same time of day; sentences without a
/// time (a cold receiver) never make an epoch.
fn same_epoch(a: Option<u32>, b: Option<u32>) -> bool {
    a.is_some() && a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(d: &mut NmeaDecoder, s: &mut GpsState, text: &str) -> Vec<GpsFix> {
        text.lines()
            .filter_map(|l| d.feed(l.as_bytes(), 5_000_000_000, s))
            .collect()
    }

    const EPOCH: &str = "\
$GNRMC,101510.00,A,5231.20048,N,01324.42016,E,27.000,87.50,041226,,,A*76
$GNVTG,87.50,T,,M,27.000,N,50.004,K,A*1D
$GNGGA,101510.00,5231.20048,N,01324.42016,E,1,09,0.92,34.5,M,39.9,M,,*7B
$GNGSA,A,3,05,13,15,18,20,29,,,,,,,1.65,0.92,1.37*13
$GPGSV,1,1,04,05,41,112,38,13,62,287,44,15,22,063,35,18,55,180,41*7D
$GLGSV,1,1,01,67,35,095,31*5D
$GNGLL,5231.20048,N,01324.42016,E,101510.00,A,A*7D
";

    #[test]
    fn one_epoch_makes_one_fix_and_fills_the_state() {
        let (mut d, mut s) = (NmeaDecoder::new(), GpsState::default());
        let fixes = feed_all(&mut d, &mut s, EPOCH);
        assert_eq!(fixes.len(), 1);
        let f = &fixes[0];
        assert_eq!(f.utc_ns, Some(1_796_379_310_000_000_000));
        assert_eq!(f.sats, Some(9));
        assert_eq!(f.quality, FixQuality::Fix);
        assert!(f.has_position());
        assert_eq!(
            s.quality,
            FixQuality::Fix3d,
            "GSA after GGA sets the dimension"
        );
        assert_eq!(s.sats_in_view, Some(5));
        assert_eq!(s.last_fix_utc_ns, f.utc_ns);
        assert_eq!(s.last_fix_age_ms, Some(0));
        assert_eq!(s.counters.sentences_ok, 6);
        assert_eq!(s.counters.unknown, 1);
        s.refresh_age(5_250_000_000);
        assert_eq!(s.last_fix_age_ms, Some(250));
    }

    #[test]
    fn gga_first_receivers_pair_too() {
        let (mut d, mut s) = (NmeaDecoder::new(), GpsState::default());
        let gga_first: String = EPOCH.lines().rev().map(|l| format!("{l}\n")).collect();
        assert_eq!(feed_all(&mut d, &mut s, &gga_first).len(), 1);
    }

    #[test]
    fn state_serialises_for_the_status_page() {
        let mut s = GpsState {
            device: "/dev/ttyACM0".into(),
            connected: true,
            baud: Some(9600),
            last_fix_mono_ns: Some(7),
            ..GpsState::default()
        };
        s.counters.garbage = 2;
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["device"], "/dev/ttyACM0");
        assert_eq!(v["quality"], "no_fix");
        assert_eq!(v["counters"]["garbage"], 2);
        assert!(v["lat"].is_null());
        assert!(
            v.get("last_fix_mono_ns").is_none(),
            "monotonic time stays inside"
        );
    }

    #[test]
    fn lines_without_time_make_no_epoch() {
        let (mut d, mut s) = (NmeaDecoder::new(), GpsState::default());
        let cold = "$GPRMC,,V,,,,,,,,,,N*53\n$GPGGA,,,,,,0,00,99.99,,,,,,*48\n$GPGSV,1,1,00*79\n";
        assert!(feed_all(&mut d, &mut s, cold).is_empty());
        assert_eq!(s.quality, FixQuality::NoFix);
        assert_eq!(s.sats_in_view, Some(0));
        assert_eq!(s.hdop, None, "99.99 without a fix means nothing");
    }
}
