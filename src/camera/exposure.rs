//! The dash-cam exposure cap: keep the shutter short enough that night
//! driving is not a smear of motion blur, and make up the light with gain.
//!
//! libcamera has no "longest automatic exposure" control, so the cap is a
//! small loop over what the camera reports for each frame:
//!
//! - while automatic exposure stays at or under the cap, nothing is touched;
//! - when it picks a longer exposure, the exposure time is fixed at the cap
//!   (`ExposureTimeMode = Manual`, `ExposureTime = cap`) and the gain stays
//!   automatic (`AnalogueGainMode = Auto`), so AEGC brightens the picture
//!   with gain instead of time;
//! - once the scene is bright enough that the gain is back at its minimum,
//!   exposure returns to automatic (the scene may now need less than the cap).
//!
//! A minimum dwell in the capped state keeps a scene right at the limit from
//! switching modes on every frame.

/// Longest exposure by default (1/100 s), kept with the config field it is
/// the default of.
pub use crate::config::DEFAULT_MAX_EXPOSURE_US;
/// Frames to stay capped before returning to automatic exposure.
const CAPPED_DWELL_FRAMES: u32 = 30;
/// At or under this analogue gain the capped scene is bright enough for
/// automatic exposure to pick a time under the cap by itself.
const RELEASE_GAIN: f32 = 1.05;

/// What the camera should change before its next frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ExposureAction {
    /// Fix the exposure time at this many microseconds, gain automatic.
    Hold(u32),
    /// Back to automatic exposure time.
    Release,
}

#[derive(Clone, Debug)]
pub struct ExposureCap {
    max_us: u32,
    capped: bool,
    frames_capped: u32,
}

impl ExposureCap {
    /// `max_us` 0 turns the cap off (exposure is then limited only by the
    /// frame duration).
    pub fn new(max_us: u32) -> ExposureCap {
        ExposureCap {
            max_us,
            capped: false,
            frames_capped: 0,
        }
    }

    pub fn is_capped(&self) -> bool {
        self.capped
    }

    /// Feeds the exposure time (µs) and analogue gain the camera reported
    /// for one frame; returns the change to make, if any.
    pub fn observe(&mut self, exposure_us: u32, analogue_gain: f32) -> Option<ExposureAction> {
        if self.max_us == 0 {
            return None;
        }
        if !self.capped {
            if exposure_us > self.max_us {
                self.capped = true;
                self.frames_capped = 0;
                return Some(ExposureAction::Hold(self.max_us));
            }
            return None;
        }
        self.frames_capped = self.frames_capped.saturating_add(1);
        if self.frames_capped >= CAPPED_DWELL_FRAMES && analogue_gain <= RELEASE_GAIN {
            self.capped = false;
            return Some(ExposureAction::Release);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_exposures_are_left_alone() {
        let mut cap = ExposureCap::new(10_000);
        for e in [100, 5_000, 10_000] {
            assert_eq!(cap.observe(e, 1.0), None);
        }
        assert!(!cap.is_capped());
    }

    #[test]
    fn a_long_exposure_is_held_at_the_cap_once() {
        let mut cap = ExposureCap::new(10_000);
        assert_eq!(cap.observe(33_000, 4.0), Some(ExposureAction::Hold(10_000)));
        assert!(cap.is_capped());
        // Still dark: gain is high, nothing more to do.
        for _ in 0..100 {
            assert_eq!(cap.observe(10_000, 8.0), None);
        }
    }

    #[test]
    fn bright_again_releases_after_the_dwell_and_not_before() {
        let mut cap = ExposureCap::new(10_000);
        cap.observe(20_000, 2.0);
        for _ in 0..CAPPED_DWELL_FRAMES - 1 {
            assert_eq!(cap.observe(10_000, 1.0), None);
        }
        assert_eq!(cap.observe(10_000, 1.0), Some(ExposureAction::Release));
        assert!(!cap.is_capped());
        // Auto picks a short time in daylight: stays released.
        assert_eq!(cap.observe(2_000, 1.0), None);
    }

    #[test]
    fn zero_turns_the_cap_off() {
        let mut cap = ExposureCap::new(0);
        assert_eq!(cap.observe(66_000, 8.0), None);
        assert!(!cap.is_capped());
    }
}
