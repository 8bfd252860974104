//! NMEA 0183 lines from a receiver, sorted into what we read and what we
//! count.
//!
//! This module owns the framing and the checksum: every line is classified
//! here before any field is looked at, so a corrupt or foreign line can only
//! ever move a counter. The fields of the five sentences we read (GGA, RMC,
//! GSA, GSV, VTG) are decoded by the `nmea` crate; see docs/gps.md for why.
//!
//! Nothing here panics on input: a line is at most [`LINE_BYTES_MAX`] bytes
//! and every outcome is a [`Line`] value.

use chrono::{Datelike, NaiveDate, NaiveTime, Timelike};

/// Longest line we accept. NMEA 0183 allows 82 characters including `$` and
/// CRLF; some receivers go to about 100 (the `nmea` crate's limit is 102).
pub const LINE_BYTES_MAX: usize = 120;

/// One knot in metres per second.
pub const KNOT_MPS: f64 = 1852.0 / 3600.0;

/// Which satellite system a sentence speaks for (its two-letter talker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Talker {
    /// `GP`: GPS alone.
    Gps,
    /// `GN`: a solution from several systems.
    Combined,
    /// `GL`: GLONASS.
    Glonass,
    /// `GA`: Galileo.
    Galileo,
    /// `BD` (and `GB`, its NMEA 4.11 name): BeiDou.
    Beidou,
}

impl Talker {
    fn from_id(id: &str) -> Option<Talker> {
        match id {
            "GP" => Some(Talker::Gps),
            "GN" => Some(Talker::Combined),
            "GL" => Some(Talker::Glonass),
            "GA" => Some(Talker::Galileo),
            "BD" | "GB" => Some(Talker::Beidou),
            _ => None,
        }
    }
}

/// GGA: the position solution and its quality.
#[derive(Clone, Debug, PartialEq)]
pub struct Gga {
    pub talker: Talker,
    /// UTC time of day of the solution, milliseconds since midnight.
    pub time_ms: Option<u32>,
    /// The GGA quality indicator: 0 no fix, 1 GPS, 2 DGPS, 3 PPS, 4 RTK,
    /// 5 float RTK, 6 dead reckoning, 7 manual, 8 simulation.
    pub quality: u8,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub sats_used: Option<u32>,
    pub hdop: Option<f32>,
    /// Altitude above mean sea level, metres.
    pub alt_m: Option<f32>,
}

/// RMC: the minimum fix, with the only date a receiver reliably sends.
#[derive(Clone, Debug, PartialEq)]
pub struct Rmc {
    pub talker: Talker,
    pub time_ms: Option<u32>,
    /// Days since 1970-01-01 of the RMC date field. Its year has two digits;
    /// the `nmea` crate reads 83..99 as 1983..1999 and 00..82 as 2000..2082
    /// (so a receiver's 1980 default comes out as 2080).
    pub date_days: Option<i64>,
    /// Status `A` (or `D`); false for `V`.
    pub valid: bool,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub speed_mps: Option<f64>,
    /// Course over ground, degrees from true north.
    pub heading_deg: Option<f64>,
}

impl Rmc {
    /// Nanoseconds since the Unix epoch, when both date and time are present.
    pub fn utc_ns(&self) -> Option<i64> {
        let (days, ms) = (self.date_days?, self.time_ms?);
        (days * 86_400_000 + ms as i64).checked_mul(1_000_000)
    }
}

/// GSA: the solution's dimension and the satellites in it.
#[derive(Clone, Debug, PartialEq)]
pub struct Gsa {
    pub talker: Talker,
    /// 1 no fix, 2 two-dimensional, 3 three-dimensional.
    pub mode: u8,
    /// Satellites listed as used by this sentence (a `GN` receiver sends one
    /// GSA per system).
    pub prns_used: usize,
    pub hdop: Option<f32>,
}

/// GSV: satellites in view of one system. Only the count is kept.
#[derive(Clone, Debug, PartialEq)]
pub struct Gsv {
    pub talker: Talker,
    /// Which message of the group this is, from 1. NMEA 4.11 lets later
    /// messages of a group leave the count empty, so only message 1 counts.
    pub message: u16,
    pub sats_in_view: u16,
}

/// VTG: course and speed over ground.
#[derive(Clone, Debug, PartialEq)]
pub struct Vtg {
    pub talker: Talker,
    pub speed_mps: Option<f64>,
    pub heading_deg: Option<f64>,
}

/// A sentence we read.
#[derive(Clone, Debug, PartialEq)]
pub enum Sentence {
    Gga(Gga),
    Rmc(Rmc),
    Gsa(Gsa),
    Gsv(Gsv),
    Vtg(Vtg),
}

/// What one line turned out to be. Each variant but `Sentence` moves its own
/// counter in [`super::GpsCounters`].
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    Sentence(Sentence),
    /// Framed like a sentence, but the checksum does not match the text.
    ChecksumError {
        computed: u8,
        found: u8,
    },
    /// Not a sentence at all: noise, a cut line, binary protocol bytes, or
    /// a receiver at another baud rate.
    Garbage(&'static str),
    /// A correct sentence we do not read: proprietary (`$P...`), another
    /// type (GLL, TXT, ZDA...) or another talker.
    Unknown(String),
    /// A correct sentence of a type we read whose fields do not parse.
    Malformed(String),
}

/// Classifies one line (without its line ending; a trailing CR is ignored).
pub fn classify(raw: &[u8]) -> Line {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    if raw.len() > LINE_BYTES_MAX {
        return Line::Garbage("line too long");
    }
    if raw.first() != Some(&b'$') {
        return Line::Garbage("does not start with '$'");
    }
    if !raw.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return Line::Garbage("not printable ASCII");
    }
    // Checked printable ASCII above, so this cannot fail.
    let Ok(text) = std::str::from_utf8(raw) else {
        return Line::Garbage("not printable ASCII");
    };
    let Some(star) = text.rfind('*') else {
        return Line::Garbage("no checksum");
    };
    let (body, hex) = (&text[1..star], &text[star + 1..]);
    let found = match (hex.len(), u8::from_str_radix(hex, 16)) {
        (2, Ok(v)) => v,
        _ => return Line::Garbage("checksum is not two hex digits"),
    };
    let computed = body.bytes().fold(0u8, |x, b| x ^ b);
    if computed != found {
        return Line::ChecksumError { computed, found };
    }
    let address = body.split(',').next().unwrap_or("");
    if address.starts_with('P') {
        return Line::Unknown(address.to_string());
    }
    if address.len() != 5 {
        return Line::Unknown(address.to_string());
    }
    let (talker_id, kind) = address.split_at(2);
    let Some(talker) = Talker::from_id(talker_id) else {
        return Line::Unknown(address.to_string());
    };
    if !matches!(kind, "GGA" | "RMC" | "GSA" | "GSV" | "VTG") {
        return Line::Unknown(address.to_string());
    }
    // GSV is per system by definition; a `GN` one says nothing we can use,
    // and the crate refuses it.
    if kind == "GSV" && talker == Talker::Combined {
        return Line::Unknown(address.to_string());
    }
    // nmea 0.7 collects GSA satellite fields into a fixed array of 18 and
    // panics beyond it; a correct GSA has 12, so refuse anything longer.
    if kind == "GSA" && body.split(',').count() > GSA_FIELDS_MAX {
        return Line::Malformed(format!("{address}: too many fields"));
    }
    match decode(text, talker) {
        Ok(s) => Line::Sentence(s),
        Err(e) => {
            // u-blox and others send "$GPGSV,1,1,00*79" when no satellite is
            // in view; nmea 0.7 wants a comma after the count. The count is
            // the only thing we read from GSV, so take it from the fields.
            if kind == "GSV" {
                if let Some(gsv) = empty_gsv(body, talker) {
                    return Line::Sentence(Sentence::Gsv(gsv));
                }
            }
            Line::Malformed(format!("{address}: {e}"))
        }
    }
}

/// Address, mode and fix type, then at most the 18 fields nmea 0.7 can hold
/// as satellites (it may take integer DOPs for satellites too). A correct GSA
/// has 12 satellites, 3 DOPs and, from NMEA 4.10, a system id: 19 fields.
const GSA_FIELDS_MAX: usize = 3 + 18;

fn decode(text: &str, talker: Talker) -> Result<Sentence, String> {
    use ::nmea::sentences::{gsa::GsaMode2, rmc::RmcStatusOfFix};
    use ::nmea::ParseResult;
    match ::nmea::parse_str(text).map_err(|e| e.to_string())? {
        ParseResult::GGA(g) => Ok(Sentence::Gga(Gga {
            talker,
            time_ms: g.fix_time.map(time_ms),
            quality: g.fix_type.map_or(0, quality_digit),
            lat: g.latitude,
            lon: g.longitude,
            sats_used: g.fix_satellites,
            hdop: g.hdop,
            alt_m: g.altitude,
        })),
        ParseResult::RMC(r) => Ok(Sentence::Rmc(Rmc {
            talker,
            time_ms: r.fix_time.map(time_ms),
            date_days: r.fix_date.map(days_since_epoch),
            valid: r.status_of_fix != RmcStatusOfFix::Invalid,
            lat: r.lat,
            lon: r.lon,
            speed_mps: r.speed_over_ground.map(|kn| kn as f64 * KNOT_MPS),
            heading_deg: r.true_course.map(f64::from),
        })),
        ParseResult::GSA(g) => Ok(Sentence::Gsa(Gsa {
            talker,
            mode: match g.mode2 {
                GsaMode2::NoFix => 1,
                GsaMode2::Fix2D => 2,
                GsaMode2::Fix3D => 3,
            },
            prns_used: g.fix_sats_prn.len(),
            hdop: g.hdop,
        })),
        ParseResult::GSV(g) => Ok(Sentence::Gsv(Gsv {
            talker,
            message: g.sentence_num,
            sats_in_view: g.sats_in_view,
        })),
        ParseResult::VTG(v) => Ok(Sentence::Vtg(Vtg {
            talker,
            speed_mps: v.speed_over_ground.map(|kn| kn as f64 * KNOT_MPS),
            heading_deg: v.true_course.map(f64::from),
        })),
        other => Err(format!(
            "unexpected {:?}",
            ::nmea::SentenceType::from(&other)
        )),
    }
}

/// Back to GGA's quality digit, which [`super::fix::FixQuality`] maps along
/// with GSA's mode.
fn quality_digit(t: ::nmea::sentences::FixType) -> u8 {
    use ::nmea::sentences::FixType;
    match t {
        FixType::Invalid => 0,
        FixType::Gps => 1,
        FixType::DGps => 2,
        FixType::Pps => 3,
        FixType::Rtk => 4,
        FixType::FloatRtk => 5,
        FixType::Estimated => 6,
        FixType::Manual => 7,
        FixType::Simulation => 8,
    }
}

fn empty_gsv(body: &str, talker: Talker) -> Option<Gsv> {
    let fields: Vec<&str> = body.split(',').collect();
    // `GPGSV,1,1,00` and NMEA 4.10's `GPGSV,1,1,00,1` (signal id).
    if !(4..=5).contains(&fields.len()) {
        return None;
    }
    let sats_in_view: u16 = fields[3].parse().ok()?;
    if sats_in_view != 0 {
        return None;
    }
    Some(Gsv {
        talker,
        message: fields[2].parse().ok()?,
        sats_in_view,
    })
}

fn time_ms(t: NaiveTime) -> u32 {
    // A leap second shows up as nanosecond >= 1e9; fold it into :59.999.
    let ms = (t.nanosecond() / 1_000_000).min(999);
    t.num_seconds_from_midnight() * 1000 + ms
}

fn days_since_epoch(d: NaiveDate) -> i64 {
    // 719_163 days from 0001-01-01 (day 1 in chrono's count) to 1970-01-01.
    d.num_days_from_ce() as i64 - 719_163
}

/// Splits a byte stream into lines. Bytes between lines that never form a
/// line (a run longer than [`LINE_BYTES_MAX`], or a partial line cut short by
/// a new `$`) come out as their own line so they are counted as garbage.
#[derive(Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    /// Skipping the rest of an overlong line until its end.
    overflowed: bool,
}

impl LineSplitter {
    pub fn new() -> LineSplitter {
        LineSplitter {
            buf: Vec::with_capacity(LINE_BYTES_MAX + 1),
            overflowed: false,
        }
    }

    /// Feeds bytes, calling `line` for every complete line (without `\n`).
    pub fn push(&mut self, bytes: &[u8], mut line: impl FnMut(&[u8])) {
        for &b in bytes {
            match b {
                b'\n' => {
                    if self.overflowed {
                        self.overflowed = false;
                    } else if !self.buf.is_empty() {
                        line(&self.buf);
                    }
                    self.buf.clear();
                }
                b'$' => {
                    // A sentence starts inside another: the first was cut.
                    // After an overlong run this is where reading resyncs.
                    if !self.buf.is_empty() && !self.overflowed {
                        line(&self.buf);
                    }
                    self.buf.clear();
                    self.overflowed = false;
                    self.buf.push(b);
                }
                _ if self.overflowed => {}
                _ => {
                    self.buf.push(b);
                    if self.buf.len() > LINE_BYTES_MAX {
                        line(&self.buf);
                        self.buf.clear();
                        self.overflowed = true;
                    }
                }
            }
        }
    }

    /// Drops a partial line (after a reconnect or a baud change).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.overflowed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_checksum(body: &str) -> String {
        let x = body.bytes().fold(0u8, |x, b| x ^ b);
        format!("${body}*{x:02X}")
    }

    fn sentence(line: &str) -> Sentence {
        match classify(line.as_bytes()) {
            Line::Sentence(s) => s,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn gga_with_a_fix() {
        let Sentence::Gga(g) =
            sentence("$GNGGA,101510.00,5231.20048,N,01324.42016,E,1,09,0.92,34.5,M,39.9,M,,*7B")
        else {
            panic!("not GGA")
        };
        assert_eq!(g.talker, Talker::Combined);
        assert_eq!(g.time_ms, Some((10 * 3600 + 15 * 60 + 10) * 1000));
        assert_eq!(g.quality, 1);
        assert!((g.lat.unwrap() - 52.520008).abs() < 1e-6);
        assert!((g.lon.unwrap() - 13.407003).abs() < 1e-6);
        assert_eq!(g.sats_used, Some(9));
        assert_eq!(g.hdop, Some(0.92));
        assert_eq!(g.alt_m, Some(34.5));
    }

    #[test]
    fn rmc_date_time_speed() {
        let Sentence::Rmc(r) =
            sentence("$GNRMC,101510.00,A,5231.20048,N,01324.42016,E,27.000,87.50,041226,,,A*76")
        else {
            panic!("not RMC")
        };
        assert!(r.valid);
        // 2026-12-04T10:15:10Z
        assert_eq!(r.utc_ns(), Some(1_796_379_310_000_000_000));
        assert!((r.speed_mps.unwrap() - 13.8900).abs() < 1e-3);
        assert_eq!(r.heading_deg, Some(87.5));
    }

    #[test]
    fn cold_start_sentences_have_empty_fields() {
        let Sentence::Rmc(r) = sentence("$GPRMC,,V,,,,,,,,,,N*53") else {
            panic!()
        };
        assert!(!r.valid);
        assert_eq!((r.time_ms, r.date_days, r.lat), (None, None, None));
        let Sentence::Gga(g) = sentence("$GPGGA,,,,,,0,00,99.99,,,,,,*48") else {
            panic!()
        };
        assert_eq!((g.quality, g.lat, g.sats_used), (0, None, Some(0)));
        let Sentence::Gsa(a) = sentence("$GPGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99*30") else {
            panic!()
        };
        assert_eq!((a.mode, a.prns_used), (1, 0));
        assert!(matches!(sentence("$GPVTG,,,,,,,,,N*30"), Sentence::Vtg(_)));
    }

    #[test]
    fn empty_gsv_is_read_despite_the_crate() {
        assert_eq!(
            sentence("$GPGSV,1,1,00*79"),
            Sentence::Gsv(Gsv {
                talker: Talker::Gps,
                message: 1,
                sats_in_view: 0
            })
        );
        let Sentence::Gsv(g) = sentence(&with_checksum(
            "GLGSV,1,1,04,67,35,095,31,68,60,190,38,77,25,300,27,78,09,345,",
        )) else {
            panic!()
        };
        assert_eq!((g.talker, g.sats_in_view), (Talker::Glonass, 4));
    }

    #[test]
    fn every_talker_we_read() {
        for (id, talker) in [
            ("GP", Talker::Gps),
            ("GN", Talker::Combined),
            ("GL", Talker::Glonass),
            ("GA", Talker::Galileo),
            ("BD", Talker::Beidou),
            ("GB", Talker::Beidou),
        ] {
            let line = with_checksum(&format!("{id}VTG,87.50,T,,M,27.000,N,50.004,K,A"));
            match sentence(&line) {
                Sentence::Vtg(v) => assert_eq!(v.talker, talker, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn checksum_errors_are_told_apart_from_garbage() {
        assert_eq!(
            classify(b"$GPGGA,,,,,,0,00,99.99,,,,,,*49"),
            Line::ChecksumError {
                computed: 0x48,
                found: 0x49
            }
        );
        assert!(matches!(classify(b"$GNGGA,101600.00,52"), Line::Garbage(_)));
        assert!(matches!(classify(b"GPGGA,,,*48"), Line::Garbage(_)));
        assert!(matches!(classify(b"$GPGGA*4"), Line::Garbage(_)));
        assert!(matches!(classify(b"\xb5b\x01\x07"), Line::Garbage(_)));
        assert!(matches!(classify(&[b'$'; 200]), Line::Garbage(_)));
    }

    #[test]
    fn proprietary_and_other_sentences_are_unknown() {
        for line in [
            "$PMTK010,001*2E",
            "$PSRF150,1*3E",
            &with_checksum("PUBX,04,101550.00,041226,468900.00,2343,18,-123456,21.5,21"),
            &with_checksum("GPGLL,,,,,,V,N"),
            &with_checksum("GPTXT,01,01,02,u-blox ag - www.u-blox.com"),
            &with_checksum("QZGSV,1,1,00"),
            &with_checksum("GNGSV,1,1,00"),
        ] {
            assert!(
                matches!(classify(line.as_bytes()), Line::Unknown(_)),
                "{line}"
            );
        }
    }

    #[test]
    fn malformed_fields_and_oversized_gsa_do_not_panic() {
        let long_gsa = with_checksum(&format!("GPGSA,A,3,{}1.0,1.0,1.0", "01,".repeat(25)));
        assert!(matches!(classify(long_gsa.as_bytes()), Line::Malformed(_)));
        let bad_lat = with_checksum("GPGGA,101510.00,52x1,N,01324.42016,E,1,09,0.92,34.5,M,,M,,");
        assert!(matches!(classify(bad_lat.as_bytes()), Line::Malformed(_)));
    }

    #[test]
    fn splitter_cuts_lines_and_surfaces_junk() {
        let mut s = LineSplitter::new();
        let mut lines = Vec::new();
        s.push(b"X1$GPVTG,,,,", |l| lines.push(l.to_vec()));
        s.push(b",,,,,N*30\r\n\n$GP", |l| lines.push(l.to_vec()));
        assert_eq!(
            lines,
            vec![b"X1".to_vec(), b"$GPVTG,,,,,,,,,N*30\r".to_vec()]
        );
        lines.clear();
        let junk = vec![b'x'; 3 * LINE_BYTES_MAX];
        s.reset();
        s.push(&junk, |l| lines.push(l.to_vec()));
        s.push(b"\n$GPVTG,,,,,,,,,N*30\n", |l| lines.push(l.to_vec()));
        assert_eq!(lines.len(), 2, "one overlong run, then the sentence");
        assert_eq!(lines[1], b"$GPVTG,,,,,,,,,N*30");
        // A sentence right after an overlong run, without a newline between.
        lines.clear();
        s.push(&junk, |l| lines.push(l.to_vec()));
        s.push(b"$GPVTG,,,,,,,,,N*30\n", |l| lines.push(l.to_vec()));
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1], b"$GPVTG,,,,,,,,,N*30");
    }
}
