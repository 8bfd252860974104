//! When a GPS fix may set the recorder's clock.
//!
//! Priority: GPS, then a phone, then the saved clock. The saved clock only
//! ever gives an estimate; GPS sets the clock as soon as it is trusted,
//! without anyone doing anything; a phone may set it at any time (someone
//! asked), and GPS corrects it afterwards only when the two disagree by more
//! than [`CORRECTION_NS`]: within that, the clock stays as it is and nothing
//! is relabelled again.
//!
//! A fix is trusted only when [`check_for_clock`] accepts it (a date, status
//! `A`, a satellite fix, no week-number rollover) and the fixes before it
//! agree: [`AGREEING_FIXES`] in a row whose UTC minus monotonic time lie
//! within [`AGREEMENT_NS`] of each other. A receiver's first fix after a
//! cold start can carry a time from its almanac or a stale RTC that the
//! next fixes contradict; any rejected fix starts the count again.
//!
//! The time set is the fix's UTC at the moment its sentences were read,
//! which is later than the epoch by the receiver's output delay (tens to a
//! few hundred milliseconds at 9600 baud): the clock may be up to that much
//! behind. That is within the 2 s the dashboard tolerates before it offers a
//! phone's time, and far closer than the saved clock after a power cut.

use std::collections::VecDeque;

use super::fix::{check_for_clock, FixRejection, GpsFix};

/// Consecutive agreeing fixes before GPS time is believed.
pub const AGREEING_FIXES: usize = 3;
/// How far apart (UTC minus monotonic time) agreeing fixes may be.
pub const AGREEMENT_NS: i64 = 250_000_000;
/// A clock already set (by a phone, or by GPS earlier) is set again only
/// when GPS disagrees with it by more than this.
pub const CORRECTION_NS: i64 = 2_000_000_000;

/// The recorder's clock as the policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecorderClock {
    pub wall_minus_mono_ns: i64,
    /// Only an estimate (restored from the saved time).
    pub estimated: bool,
}

/// Decides, fix by fix, when GPS time should set the clock.
#[derive(Debug)]
pub struct GpsClockPolicy {
    /// UTC minus monotonic time of the latest trusted-so-far fixes.
    recent: VecDeque<i64>,
    floor_days: i64,
    /// Why the last fix could not set the clock, for status and the log.
    pub last_rejection: Option<FixRejection>,
}

impl GpsClockPolicy {
    /// `floor_days`: [`super::DATE_FLOOR_DAYS`] outside tests.
    pub fn new(floor_days: i64) -> GpsClockPolicy {
        GpsClockPolicy {
            recent: VecDeque::with_capacity(AGREEING_FIXES),
            floor_days,
            last_rejection: None,
        }
    }

    /// Takes a fix; returns the wall-minus-monotonic offset to set the clock
    /// to, when it should be set now.
    pub fn on_fix(&mut self, fix: &GpsFix, clock: RecorderClock) -> Option<i64> {
        let utc_ns = match check_for_clock(fix, self.floor_days) {
            Ok(t) => t,
            Err(why) => {
                self.recent.clear();
                self.last_rejection = Some(why);
                return None;
            }
        };
        self.last_rejection = None;
        if self.recent.len() == AGREEING_FIXES {
            self.recent.pop_front();
        }
        self.recent.push_back(utc_ns - fix.mono_ns as i64);
        if self.recent.len() < AGREEING_FIXES {
            return None;
        }
        let mut sorted: Vec<i64> = self.recent.iter().copied().collect();
        sorted.sort_unstable();
        if sorted[sorted.len() - 1] - sorted[0] > AGREEMENT_NS {
            return None;
        }
        let agreed = sorted[sorted.len() / 2];
        let off_by = (agreed - clock.wall_minus_mono_ns).abs();
        if clock.estimated || off_by > CORRECTION_NS {
            // The next setting needs as many fresh fixes.
            self.recent.clear();
            return Some(agreed);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gps::fix::FixQuality;

    const S: i64 = 1_000_000_000;
    /// 2026-12-04T00:00:00Z
    const UTC: i64 = 1_796_342_400 * S;

    fn fix(utc_ns: i64, mono_s: f64) -> GpsFix {
        GpsFix {
            utc_ns: Some(utc_ns),
            mono_ns: (mono_s * 1e9) as u64,
            lat: Some(52.5),
            lon: Some(13.4),
            alt_m: Some(40.0),
            speed_mps: Some(10.0),
            heading_deg: Some(90.0),
            quality: FixQuality::Fix3d,
            status_valid: true,
            sats: Some(9),
            hdop: Some(0.9),
        }
    }

    fn estimated() -> RecorderClock {
        RecorderClock {
            wall_minus_mono_ns: 0,
            estimated: true,
        }
    }

    #[test]
    fn three_agreeing_fixes_set_an_estimated_clock() {
        let mut p = GpsClockPolicy::new(super::super::DATE_FLOOR_DAYS);
        assert_eq!(p.on_fix(&fix(UTC, 100.0), estimated()), None);
        assert_eq!(p.on_fix(&fix(UTC + S, 101.0), estimated()), None);
        let set = p.on_fix(&fix(UTC + 2 * S, 102.0), estimated());
        assert_eq!(set, Some(UTC - 100 * S));
        // Set: the next fixes agree with the clock and change nothing.
        let now = RecorderClock {
            wall_minus_mono_ns: UTC - 100 * S,
            estimated: false,
        };
        for k in 3..10 {
            assert_eq!(p.on_fix(&fix(UTC + k * S, 100.0 + k as f64), now), None);
        }
    }

    #[test]
    fn a_bad_first_fix_that_the_next_ones_contradict_sets_nothing() {
        let mut p = GpsClockPolicy::new(super::super::DATE_FLOOR_DAYS);
        // A cold start's first epoch: a time an hour off.
        assert_eq!(p.on_fix(&fix(UTC + 3600 * S, 100.0), estimated()), None);
        assert_eq!(p.on_fix(&fix(UTC + S, 101.0), estimated()), None);
        // The three do not agree: no setting yet.
        assert_eq!(p.on_fix(&fix(UTC + 2 * S, 102.0), estimated()), None);
        // Once the bad one has slid out, three agree.
        assert_eq!(
            p.on_fix(&fix(UTC + 3 * S, 103.0), estimated()),
            Some(UTC - 100 * S)
        );
    }

    #[test]
    fn a_rejected_fix_starts_the_count_again_and_says_why() {
        let mut p = GpsClockPolicy::new(super::super::DATE_FLOOR_DAYS);
        p.on_fix(&fix(UTC, 100.0), estimated());
        p.on_fix(&fix(UTC + S, 101.0), estimated());
        // 1024 weeks in the past: an old firmware's date.
        let rolled = UTC - 1024 * 7 * 86_400 * S;
        assert_eq!(p.on_fix(&fix(rolled + 2 * S, 102.0), estimated()), None);
        assert!(matches!(
            p.last_rejection,
            Some(FixRejection::WeekRollover { weeks: 1024, .. })
        ));
        let mut void = fix(UTC + 3 * S, 103.0);
        void.status_valid = false;
        assert_eq!(p.on_fix(&void, estimated()), None);
        assert_eq!(p.last_rejection, Some(FixRejection::StatusVoid));
        assert_eq!(p.on_fix(&fix(UTC + 4 * S, 104.0), estimated()), None);
        assert_eq!(p.on_fix(&fix(UTC + 5 * S, 105.0), estimated()), None);
        assert!(p.on_fix(&fix(UTC + 6 * S, 106.0), estimated()).is_some());
    }

    #[test]
    fn a_set_clock_is_corrected_only_beyond_two_seconds() {
        let mut p = GpsClockPolicy::new(super::super::DATE_FLOOR_DAYS);
        let gps = UTC - 100 * S;
        let phone = |off: i64| RecorderClock {
            wall_minus_mono_ns: gps + off,
            estimated: false,
        };
        for k in 0..6 {
            let t = UTC + k * S;
            assert_eq!(
                p.on_fix(&fix(t, 100.0 + k as f64), phone(1_500_000_000)),
                None
            );
        }
        let mut set = None;
        for k in 6..9 {
            let t = UTC + k * S;
            set = set.or(p.on_fix(&fix(t, 100.0 + k as f64), phone(-3 * S)));
        }
        assert_eq!(set, Some(gps));
    }
}
