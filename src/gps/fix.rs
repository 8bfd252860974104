//! A completed fix epoch and the rules for trusting its time.
//!
//! A receiver prints one RMC and one GGA per epoch with the same UTC time;
//! together they are a [`GpsFix`]. Whether that fix may set the wall clock
//! is decided here, by [`check_for_clock`], and nowhere else, so the clock
//! code and the storage code cannot disagree about it.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::frame::CaptureTime;
use crate::store::format::{PositionSample, FLAG_WALL_ESTIMATED};

/// How good the position solution is, from GGA's quality digit and GSA's
/// dimension.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FixQuality {
    #[default]
    NoFix,
    /// A fix whose dimension no GSA has told us yet.
    Fix,
    Fix2d,
    Fix3d,
    /// Differential GPS (SBAS such as EGNOS or WAAS on most modules).
    Dgps,
    Rtk,
    FloatRtk,
    /// The receiver extrapolates with its own sensors (or from the last fix).
    DeadReckoning,
    /// A position typed into the receiver.
    Manual,
    /// The receiver's simulator: nothing it says is real.
    Simulation,
}

impl FixQuality {
    /// From GGA's quality digit (0..8) and the latest GSA mode (1 no fix,
    /// 2 2D, 3 3D).
    pub fn from_nmea(gga_quality: u8, gsa_mode: Option<u8>) -> FixQuality {
        match gga_quality {
            0 => FixQuality::NoFix,
            1 | 3 => match gsa_mode {
                Some(2) => FixQuality::Fix2d,
                Some(3) => FixQuality::Fix3d,
                _ => FixQuality::Fix,
            },
            2 => FixQuality::Dgps,
            4 => FixQuality::Rtk,
            5 => FixQuality::FloatRtk,
            6 => FixQuality::DeadReckoning,
            7 => FixQuality::Manual,
            _ => FixQuality::Simulation,
        }
    }

    /// Whether the position comes from satellites now (or from the
    /// receiver's dead reckoning, which it keeps on satellite time).
    pub fn has_fix(self) -> bool {
        !matches!(
            self,
            FixQuality::NoFix | FixQuality::Manual | FixQuality::Simulation
        )
    }
}

/// One epoch: an RMC and a GGA with the same UTC time of day.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GpsFix {
    /// UTC of the epoch in nanoseconds since the Unix epoch (RMC date and
    /// time); None when the receiver does not know the date yet.
    pub utc_ns: Option<i64>,
    /// CLOCK_MONOTONIC when the epoch's second sentence was read, for
    /// pairing the fix with frames.
    pub mono_ns: u64,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// Metres above mean sea level.
    pub alt_m: Option<f64>,
    pub speed_mps: Option<f64>,
    /// Course over ground, degrees from true north.
    pub heading_deg: Option<f64>,
    pub quality: FixQuality,
    /// RMC status: true for `A` (or `D`), false for `V`.
    pub status_valid: bool,
    /// Satellites used in the solution (GGA).
    pub sats: Option<u32>,
    pub hdop: Option<f32>,
}

impl FixQuality {
    /// The number a stored position carries (`store::format::PositionSample`).
    pub fn code(self) -> u8 {
        match self {
            FixQuality::NoFix => 0,
            FixQuality::Fix => 1,
            FixQuality::Fix2d => 2,
            FixQuality::Fix3d => 3,
            FixQuality::Dgps => 4,
            FixQuality::Rtk => 5,
            FixQuality::FloatRtk => 6,
            FixQuality::DeadReckoning => 7,
            FixQuality::Manual => 8,
            FixQuality::Simulation => 9,
        }
    }
}

impl GpsFix {
    /// The fix as the segments store it, received at `received` on the
    /// recorder's clocks (`estimated`: its wall time is an estimate).
    /// Fields out of their stored range are left out, not clamped.
    pub fn to_position(&self, received: CaptureTime, estimated: bool) -> PositionSample {
        let e7 = |deg: f64, max: f64| {
            (deg.is_finite() && deg.abs() <= max).then(|| (deg * 1e7).round() as i32)
        };
        let lat_lon = match (self.lat, self.lon) {
            (Some(lat), Some(lon)) if self.status_valid => e7(lat, 90.0).zip(e7(lon, 180.0)),
            _ => None,
        };
        PositionSample {
            received,
            flags: if estimated { FLAG_WALL_ESTIMATED } else { 0 },
            utc_ns: self.utc_ns,
            lat_lon_e7: lat_lon,
            altitude_mm: self
                .alt_m
                .filter(|a| a.is_finite() && a.abs() < 2_000_000.0)
                .map(|a| (a * 1000.0).round() as i32),
            speed_mm_s: self
                .speed_mps
                .filter(|v| v.is_finite() && (0.0..4_000_000.0).contains(v))
                .map(|v| (v * 1000.0).round() as u32),
            heading_cdeg: self
                .heading_deg
                .filter(|h| h.is_finite() && (0.0..360.0).contains(h))
                .map(|h| ((h * 100.0).round() as u16).min(35_999)),
            quality: self.quality.code(),
            satellites: self.sats.map(|n| n.min(u8::MAX as u32) as u8),
            hdop_centi: self
                .hdop
                .filter(|h| h.is_finite() && *h >= 0.0)
                .map(|h| (h * 100.0).round().min(u16::MAX as f32) as u16),
        }
    }

    /// Whether this epoch has a position worth showing or storing.
    pub fn has_position(&self) -> bool {
        self.status_valid && self.quality.has_fix() && self.lat.is_some() && self.lon.is_some()
    }
}

/// 2024-01-01 in days since 1970-01-01: no correct receiver reports a date
/// before it any more, so an earlier one is a receiver that is wrong. One
/// week-number cycle (1024 weeks) after it is the ceiling: the latest date
/// this build believes, which also refuses a receiver's 1980 default that
/// a two-digit year turns into 2080.
pub const DATE_FLOOR_DAYS: i64 = 19_723;

/// The GPS week number has 10 bits: it wraps every 1024 weeks (about 19.6
/// years: August 1999, April 2019, November 2038). A receiver whose firmware
/// does not know the current era reports a date this much in the past.
pub const GPS_WEEK_ROLLOVER_DAYS: i64 = 1024 * 7;

/// How far after the floor a rolled-over date may land once corrected and
/// still be named a week rollover: the years this build is expected to run.
pub const ROLLOVER_PLAUSIBLE_DAYS: i64 = 10 * 366;

/// Slack before the floor for a corrected date (a build made a few days
/// before its floor date).
const ROLLOVER_SLACK_DAYS: i64 = 7;

/// Why a fix must not set the clock.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FixRejection {
    #[error("the receiver does not know the date yet")]
    NoDate,
    #[error("the receiver marks the fix void (RMC status V)")]
    StatusVoid,
    #[error("no satellite fix ({0:?})")]
    NoFix(FixQuality),
    #[error("date {} is before {}", show_date(*.reported_days), show_date(*.floor_days))]
    BeforeFloor { reported_days: i64, floor_days: i64 },
    #[error("date {} is after {}, later than any receiver can know", show_date(*.reported_days), show_date(*.ceiling_days))]
    AfterCeiling {
        reported_days: i64,
        ceiling_days: i64,
    },
    #[error(
        "date {} is {weeks} weeks before {}: the receiver's firmware does not know the GPS week-number rollover",
        show_date(*.reported_days), show_date(*.likely_days)
    )]
    WeekRollover {
        reported_days: i64,
        /// 1024 × k.
        weeks: i64,
        /// The reported date moved forward by `weeks`.
        likely_days: i64,
    },
}

/// Whether `fix` may set the wall clock; its UTC time in nanoseconds since
/// the epoch if so. `floor_days` is [`DATE_FLOOR_DAYS`] outside tests.
pub fn check_for_clock(fix: &GpsFix, floor_days: i64) -> Result<i64, FixRejection> {
    let utc_ns = fix.utc_ns.ok_or(FixRejection::NoDate)?;
    if !fix.status_valid {
        return Err(FixRejection::StatusVoid);
    }
    if !fix.quality.has_fix() {
        return Err(FixRejection::NoFix(fix.quality));
    }
    let reported_days = utc_ns.div_euclid(86_400 * 1_000_000_000);
    let ceiling_days = floor_days + GPS_WEEK_ROLLOVER_DAYS;
    if reported_days > ceiling_days {
        return Err(FixRejection::AfterCeiling {
            reported_days,
            ceiling_days,
        });
    }
    if reported_days >= floor_days {
        return Ok(utc_ns);
    }
    for k in 1..=3 {
        let likely_days = reported_days + k * GPS_WEEK_ROLLOVER_DAYS;
        if (floor_days - ROLLOVER_SLACK_DAYS..=floor_days + ROLLOVER_PLAUSIBLE_DAYS)
            .contains(&likely_days)
        {
            return Err(FixRejection::WeekRollover {
                reported_days,
                weeks: k * 1024,
                likely_days,
            });
        }
    }
    Err(FixRejection::BeforeFloor {
        reported_days,
        floor_days,
    })
}

/// `YYYY-MM-DD` of a day count since 1970-01-01.
pub fn show_date(days: i64) -> String {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add_signed(chrono::TimeDelta::try_days(days)?))
        .map(|d| format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()))
        .unwrap_or_else(|| format!("day {days}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_NS: i64 = 86_400 * 1_000_000_000;

    fn fix(days: i64) -> GpsFix {
        GpsFix {
            utc_ns: Some(days * DAY_NS + 36_910 * 1_000_000_000),
            mono_ns: 1,
            lat: Some(52.52),
            lon: Some(13.4),
            alt_m: Some(34.5),
            speed_mps: Some(13.9),
            heading_deg: Some(87.5),
            quality: FixQuality::Fix3d,
            status_valid: true,
            sats: Some(9),
            hdop: Some(0.92),
        }
    }

    /// 2026-12-04
    const TODAY_DAYS: i64 = 20_791;

    #[test]
    fn a_fix_becomes_the_stored_position_and_odd_fields_are_left_out() {
        let at = CaptureTime {
            mono_ns: 7,
            wall_ns: 9,
        };
        let p = fix(TODAY_DAYS).to_position(at, true);
        assert_eq!(p.received, at);
        assert_eq!(p.flags, FLAG_WALL_ESTIMATED);
        assert_eq!(p.lat_lon_e7, Some((525_200_000, 134_000_000)));
        assert_eq!(
            (p.altitude_mm, p.speed_mm_s, p.heading_cdeg),
            (Some(34_500), Some(13_900), Some(8_750))
        );
        assert_eq!(
            (p.quality, p.satellites, p.hdop_centi),
            (3, Some(9), Some(92))
        );
        let odd = GpsFix {
            lat: Some(91.0),
            speed_mps: Some(-1.0),
            heading_deg: Some(360.0),
            hdop: Some(f32::NAN),
            ..fix(TODAY_DAYS)
        };
        let p = odd.to_position(at, false);
        assert_eq!(p.flags, 0);
        assert_eq!(
            (p.lat_lon_e7, p.speed_mm_s, p.heading_cdeg, p.hdop_centi),
            (None, None, None, None)
        );
        // A void fix stores no position, only its quality and time.
        let void = GpsFix {
            status_valid: false,
            quality: FixQuality::NoFix,
            ..fix(TODAY_DAYS)
        };
        let p = void.to_position(at, false);
        assert_eq!((p.lat_lon_e7, p.quality), (None, 0));
        assert!(p.utc_ns.is_some());
    }

    #[test]
    fn dates_print() {
        assert_eq!(show_date(DATE_FLOOR_DAYS), "2024-01-01");
        assert_eq!(show_date(TODAY_DAYS), "2026-12-04");
        assert_eq!(show_date(0), "1970-01-01");
    }

    #[test]
    fn a_good_fix_sets_the_clock() {
        let f = fix(TODAY_DAYS);
        assert_eq!(check_for_clock(&f, DATE_FLOOR_DAYS), Ok(f.utc_ns.unwrap()));
    }

    #[test]
    fn void_dateless_and_fixless_epochs_are_refused() {
        let mut f = fix(TODAY_DAYS);
        f.utc_ns = None;
        assert_eq!(
            check_for_clock(&f, DATE_FLOOR_DAYS),
            Err(FixRejection::NoDate)
        );
        let mut f = fix(TODAY_DAYS);
        f.status_valid = false;
        assert_eq!(
            check_for_clock(&f, DATE_FLOOR_DAYS),
            Err(FixRejection::StatusVoid)
        );
        let mut f = fix(TODAY_DAYS);
        f.quality = FixQuality::NoFix;
        assert_eq!(
            check_for_clock(&f, DATE_FLOOR_DAYS),
            Err(FixRejection::NoFix(FixQuality::NoFix))
        );
        f.quality = FixQuality::Simulation;
        assert!(check_for_clock(&f, DATE_FLOOR_DAYS).is_err());
    }

    #[test]
    fn a_date_1024_weeks_back_is_named_a_rollover() {
        let f = fix(TODAY_DAYS - GPS_WEEK_ROLLOVER_DAYS);
        let err = check_for_clock(&f, DATE_FLOOR_DAYS).unwrap_err();
        assert_eq!(
            err,
            FixRejection::WeekRollover {
                reported_days: TODAY_DAYS - GPS_WEEK_ROLLOVER_DAYS,
                weeks: 1024,
                likely_days: TODAY_DAYS
            }
        );
        assert_eq!(
            err.to_string(),
            "date 2007-04-20 is 1024 weeks before 2026-12-04: the receiver's firmware \
             does not know the GPS week-number rollover"
        );
        // Two rollovers behind (a 1999 firmware in 2026).
        let f = fix(TODAY_DAYS - 2 * GPS_WEEK_ROLLOVER_DAYS);
        assert!(matches!(
            check_for_clock(&f, DATE_FLOOR_DAYS),
            Err(FixRejection::WeekRollover { weeks: 2048, .. })
        ));
    }

    #[test]
    fn other_old_dates_are_just_before_the_floor() {
        // 1980-01-06 (as a four-digit year would give it; RMC's two digits
        // make it 2080): no multiple of 1024 weeks lands it near the floor.
        let f = fix(3_657);
        assert!(matches!(
            check_for_clock(&f, DATE_FLOOR_DAYS),
            Err(FixRejection::BeforeFloor { .. })
        ));
        let f = fix(DATE_FLOOR_DAYS - 1);
        assert_eq!(
            check_for_clock(&f, DATE_FLOOR_DAYS)
                .unwrap_err()
                .to_string(),
            "date 2023-12-31 is before 2024-01-01"
        );
    }

    #[test]
    fn dates_beyond_one_week_cycle_after_the_floor_are_refused() {
        // "060180": a receiver's 1980-01-06 default, read as 2080.
        let f = fix(40_182);
        assert_eq!(
            check_for_clock(&f, DATE_FLOOR_DAYS)
                .unwrap_err()
                .to_string(),
            "date 2080-01-06 is after 2043-08-17, later than any receiver can know"
        );
        let f = fix(DATE_FLOOR_DAYS + GPS_WEEK_ROLLOVER_DAYS);
        assert!(check_for_clock(&f, DATE_FLOOR_DAYS).is_ok());
    }

    #[test]
    fn quality_combines_gga_and_gsa() {
        assert_eq!(FixQuality::from_nmea(0, Some(3)), FixQuality::NoFix);
        assert_eq!(FixQuality::from_nmea(1, Some(3)), FixQuality::Fix3d);
        assert_eq!(FixQuality::from_nmea(1, Some(2)), FixQuality::Fix2d);
        assert_eq!(FixQuality::from_nmea(1, None), FixQuality::Fix);
        assert_eq!(FixQuality::from_nmea(2, Some(3)), FixQuality::Dgps);
        assert_eq!(FixQuality::from_nmea(6, None), FixQuality::DeadReckoning);
        assert_eq!(
            serde_json::to_string(&FixQuality::Fix3d).unwrap(),
            "\"fix3d\""
        );
    }
}
