//! Hardware incident triggers: a push button on a GPIO line and a G-sensor
//! (I2C accelerometer). Each device sits behind a small input trait, so the
//! logic that turns raw input into incidents (debounce, shock detection) is
//! tested with simulated devices fed by recorded or synthetic data.
//!
//! - [`gpio`]: the Linux GPIO character device (v2 uAPI), edge events.
//! - [`accel`]: MPU-6050 and ADXL345 through `/dev/i2c-N`.

pub mod accel;
pub mod gpio;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};

/// A level change of the button line, with its kernel timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ButtonEdge {
    /// The button is pressed after this edge (active level, whatever the wiring).
    pub pressed: bool,
    pub at_ns: u64,
}

/// Where button edges come from.
pub trait ButtonInput: Send {
    /// The next edge, or `None` if there was none within `timeout`.
    fn next_edge(&mut self, timeout: Duration) -> std::io::Result<Option<ButtonEdge>>;
    fn describe(&self) -> String;
}

/// One accelerometer reading in g, with the monotonic time it was taken.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AccelSample {
    pub g: [f32; 3],
    pub at_ns: u64,
}

/// Where acceleration samples come from; paced by the source.
pub trait AccelInput: Send {
    /// The next sample; `None` when the source has nothing more (simulated
    /// traces end, real sensors never do).
    fn next_sample(&mut self) -> std::io::Result<Option<AccelSample>>;
    fn describe(&self) -> String;
}

/// Turns a bouncing contact into presses: a press counts once the line has
/// stayed pressed for `stable_ns`, and the next press needs a release that
/// was itself stable first.
#[derive(Clone, Debug)]
pub struct Debouncer {
    stable_ns: u64,
    /// Level as last reported by the line, and since when.
    raw_pressed: bool,
    raw_since_ns: u64,
    /// Level accepted after debouncing.
    accepted_pressed: bool,
}

impl Debouncer {
    pub fn new(stable: Duration) -> Debouncer {
        Debouncer {
            stable_ns: stable.as_nanos() as u64,
            raw_pressed: false,
            raw_since_ns: 0,
            accepted_pressed: false,
        }
    }

    /// Feeds an edge; returns true when it completes a press (that is, when
    /// the level seen before this edge had been stable long enough and was
    /// a press). Call [`Debouncer::settle`] when no edge came for a while.
    pub fn edge(&mut self, e: ButtonEdge) -> bool {
        let fired = self.settle(e.at_ns);
        if e.pressed != self.raw_pressed {
            self.raw_pressed = e.pressed;
            self.raw_since_ns = e.at_ns;
        }
        fired
    }

    /// Accepts the current raw level if it has been stable until `now_ns`;
    /// true when that is a new press.
    pub fn settle(&mut self, now_ns: u64) -> bool {
        if self.raw_pressed != self.accepted_pressed
            && now_ns.saturating_sub(self.raw_since_ns) >= self.stable_ns
        {
            self.accepted_pressed = self.raw_pressed;
            return self.accepted_pressed;
        }
        false
    }
}

/// Finds shocks in accelerometer samples: the deviation from a slowly
/// tracked gravity vector, over `threshold_g`, fires once; it re-arms after
/// `hold_off` with the signal back under half the threshold. Mounting angle
/// does not matter, because gravity is tracked rather than assumed.
#[derive(Clone, Debug)]
pub struct ShockDetector {
    threshold_g: f32,
    hold_off_ns: u64,
    gravity: Option<[f32; 3]>,
    last_fire_ns: Option<u64>,
    armed: bool,
}

impl ShockDetector {
    /// Gravity follows the signal with this weight per sample (about a
    /// second to settle at 100 Hz), slow enough that a bump barely moves it.
    const GRAVITY_WEIGHT: f32 = 0.01;

    pub fn new(threshold_g: f32, hold_off: Duration) -> ShockDetector {
        ShockDetector {
            threshold_g,
            hold_off_ns: hold_off.as_nanos() as u64,
            gravity: None,
            last_fire_ns: None,
            armed: true,
        }
    }

    /// The deviation of `s` from gravity, in g.
    fn deviation(&self, s: &AccelSample, gravity: &[f32; 3]) -> f32 {
        let d: Vec<f32> = (0..3).map(|i| s.g[i] - gravity[i]).collect();
        (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
    }

    /// Feeds one sample; true when it is a new shock.
    pub fn sample(&mut self, s: AccelSample) -> bool {
        let Some(mut gravity) = self.gravity else {
            self.gravity = Some(s.g);
            return false;
        };
        let dev = self.deviation(&s, &gravity);
        let mut fired = false;
        let held = self
            .last_fire_ns
            .is_some_and(|t| s.at_ns.saturating_sub(t) < self.hold_off_ns);
        if !held && !self.armed && dev < self.threshold_g / 2.0 {
            self.armed = true;
        }
        if self.armed && !held && dev >= self.threshold_g {
            fired = true;
            self.armed = false;
            self.last_fire_ns = Some(s.at_ns);
        }
        // A shock must not drag the gravity estimate with it.
        if dev < self.threshold_g / 2.0 {
            for (g, v) in gravity.iter_mut().zip(s.g) {
                *g += (v - *g) * Self::GRAVITY_WEIGHT;
            }
            self.gravity = Some(gravity);
        }
        fired
    }
}

/// Runs the button: debounces its edges and calls `on_press` for each press
/// until `stop` is set or the input fails for good (then it is reported and
/// retried after a pause, so unplugging a button never stops recording).
pub fn spawn_button(
    mut input: Box<dyn ButtonInput>,
    debounce: Duration,
    stop: Arc<AtomicBool>,
    on_press: Arc<dyn Fn() + Send + Sync>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("trigger-button".into())
        .spawn(move || {
            let mut d = Debouncer::new(debounce);
            while !stop.load(Ordering::Relaxed) {
                match input.next_edge(Duration::from_millis(100)) {
                    Ok(Some(e)) => {
                        if d.edge(e) {
                            on_press();
                        }
                    }
                    Ok(None) => {
                        // Edge times are CLOCK_MONOTONIC, like ours.
                        if d.settle(SystemClock.mono_ns()) {
                            on_press();
                        }
                    }
                    Err(e) => {
                        log::error!("{}: {e}; retrying in 5 s", input.describe());
                        pause_unless_stopped(&stop, Duration::from_secs(5));
                    }
                }
            }
        })
}

/// Waits `d`, or less once `stop` is set, so a failing device never holds
/// up the shutdown.
fn pause_unless_stopped(stop: &AtomicBool, d: Duration) {
    let step = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() && !stop.load(Ordering::Relaxed) {
        let now = left.min(step);
        std::thread::sleep(now);
        left -= now;
    }
}

/// Runs the G-sensor: feeds samples to the detector and calls `on_shock`.
pub fn spawn_accelerometer(
    mut input: Box<dyn AccelInput>,
    mut detector: ShockDetector,
    stop: Arc<AtomicBool>,
    on_shock: Arc<dyn Fn() + Send + Sync>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("trigger-gsensor".into())
        .spawn(move || {
            let mut failures = 0u32;
            while !stop.load(Ordering::Relaxed) {
                match input.next_sample() {
                    Ok(Some(s)) => {
                        failures = 0;
                        if detector.sample(s) {
                            on_shock();
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        failures += 1;
                        if failures == 1 || failures % 100 == 0 {
                            log::error!("{}: {e} ({failures} failures)", input.describe());
                        }
                        pause_unless_stopped(&stop, Duration::from_millis(500));
                    }
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn edge(pressed: bool, at_ms: u64) -> ButtonEdge {
        ButtonEdge {
            pressed,
            at_ns: at_ms * MS,
        }
    }

    /// A contact that chatters for a few ms on press and on release.
    fn bouncy_press(start_ms: u64, hold_ms: u64) -> Vec<ButtonEdge> {
        let mut v = Vec::new();
        for (i, t) in [0, 1, 2, 3, 5].into_iter().enumerate() {
            v.push(edge(i % 2 == 0, start_ms + t));
        }
        let up = start_ms + hold_ms;
        for (i, t) in [0, 1, 3, 4].into_iter().enumerate() {
            v.push(edge(i % 2 == 1, up + t));
        }
        v.push(edge(false, up + 6));
        v
    }

    fn presses(edges: &[ButtonEdge], stable_ms: u64, end_ms: u64) -> usize {
        let mut d = Debouncer::new(Duration::from_millis(stable_ms));
        let mut n = edges.iter().filter(|e| d.edge(**e)).count();
        n += usize::from(d.settle(end_ms * MS));
        n
    }

    #[test]
    fn a_bouncing_button_press_counts_once() {
        let mut edges = bouncy_press(1_000, 300);
        assert_eq!(presses(&edges, 30, 2_000), 1);
        // A second, separate press counts again.
        edges.extend(bouncy_press(3_000, 200));
        assert_eq!(presses(&edges, 30, 4_000), 2);
    }

    #[test]
    fn chatter_shorter_than_the_debounce_time_is_no_press() {
        // Vibration makes the contact touch for 5 ms at a time.
        let edges: Vec<ButtonEdge> = (0..40).map(|i| edge(i % 2 == 0, 1_000 + i * 5)).collect();
        assert_eq!(presses(&edges, 30, 2_000), 0);
    }

    #[test]
    fn a_press_held_without_further_edges_fires_on_settle() {
        let mut d = Debouncer::new(Duration::from_millis(30));
        assert!(!d.edge(edge(true, 100)));
        assert!(!d.settle(120 * MS));
        assert!(d.settle(131 * MS));
        assert!(!d.settle(500 * MS), "one press, one incident");
    }

    /// Samples at 100 Hz: gravity on z (tilted mount), plus `extra(t_s)`.
    fn trace(seconds: f32, mut extra: impl FnMut(f32) -> [f32; 3]) -> Vec<AccelSample> {
        let n = (seconds * 100.0) as u64;
        (0..n)
            .map(|i| {
                let t = i as f32 / 100.0;
                let e = extra(t);
                AccelSample {
                    g: [0.17 + e[0], 0.0 + e[1], 0.985 + e[2]],
                    at_ns: i * 10 * MS,
                }
            })
            .collect()
    }

    /// Deterministic pseudo-noise in [-1, 1].
    fn noise(i: u32) -> f32 {
        let x = i.wrapping_mul(2_654_435_761).rotate_left(13) ^ 0x5bd1_e995;
        (x % 20_001) as f32 / 10_000.0 - 1.0
    }

    fn shocks(samples: &[AccelSample], threshold_g: f32) -> usize {
        let mut d = ShockDetector::new(threshold_g, Duration::from_secs(2));
        samples.iter().filter(|s| d.sample(**s)).count()
    }

    #[test]
    fn a_simulated_bump_triggers_once() {
        // 60 ms impact of 4 g with ringing that decays over 300 ms.
        let s = trace(5.0, |t| {
            let dt = t - 2.0;
            if (0.0..0.06).contains(&dt) {
                [-4.0, 1.0, 0.5]
            } else if (0.06..0.36).contains(&dt) {
                let ring = (dt * 60.0).sin() * 2.5 * (1.0 - (dt - 0.06) / 0.3);
                [ring, 0.0, ring / 2.0]
            } else {
                [0.0; 3]
            }
        });
        assert_eq!(shocks(&s, 2.0), 1);
    }

    #[test]
    fn driving_vibration_and_braking_do_not_trigger() {
        // Engine and road vibration of ±0.4 g, potholes of 0.9 g, a hard
        // brake (0.8 g for two seconds) and a long bend (0.5 g lateral).
        let mut k = 0u32;
        let s = trace(60.0, |t| {
            k += 3;
            let road = [noise(k) * 0.4, noise(k + 1) * 0.4, noise(k + 2) * 0.4];
            let pothole = if (t % 7.0) < 0.05 { 0.9 } else { 0.0 };
            let brake = if (20.0..22.0).contains(&t) { -0.8 } else { 0.0 };
            let bend = if (30.0..40.0).contains(&t) { 0.5 } else { 0.0 };
            [road[0] + brake, road[1] + bend, road[2] + pothole]
        });
        assert_eq!(shocks(&s, 2.0), 0);
    }

    #[test]
    fn two_collisions_apart_trigger_twice_and_ringing_does_not() {
        let bump = |t: f32, at: f32| {
            if (at..at + 0.05).contains(&t) {
                3.5
            } else {
                0.0
            }
        };
        let s = trace(12.0, |t| {
            [bump(t, 2.0) + bump(t, 2.3) + bump(t, 8.0), 0.0, 0.0]
        });
        assert_eq!(shocks(&s, 2.0), 2);
    }

    /// A button that replays recorded edges, then stays quiet.
    struct ReplayButton(std::collections::VecDeque<ButtonEdge>);

    impl ButtonInput for ReplayButton {
        fn next_edge(&mut self, timeout: Duration) -> std::io::Result<Option<ButtonEdge>> {
            match self.0.pop_front() {
                Some(e) => Ok(Some(e)),
                None => {
                    std::thread::sleep(timeout.min(Duration::from_millis(10)));
                    Ok(None)
                }
            }
        }
        fn describe(&self) -> String {
            "replayed button".into()
        }
    }

    /// A button whose line has gone away.
    struct BrokenButton;

    impl ButtonInput for BrokenButton {
        fn next_edge(&mut self, _: Duration) -> std::io::Result<Option<ButtonEdge>> {
            Err(std::io::Error::from_raw_os_error(libc::ENODEV))
        }
        fn describe(&self) -> String {
            "broken button".into()
        }
    }

    #[test]
    fn a_failing_button_does_not_hold_up_the_shutdown() {
        let (count, on_press) = counter();
        let stop = Arc::new(AtomicBool::new(false));
        let t = spawn_button(
            Box::new(BrokenButton),
            Duration::from_millis(30),
            stop.clone(),
            on_press,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let asked = std::time::Instant::now();
        stop.store(true, Ordering::SeqCst);
        t.join().unwrap();
        // The retry pause is 5 s; stopping cuts it short.
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "{:?}",
            asked.elapsed()
        );
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }

    /// A G-sensor that replays a trace, then ends.
    struct ReplayAccel(std::vec::IntoIter<AccelSample>);

    impl AccelInput for ReplayAccel {
        fn next_sample(&mut self) -> std::io::Result<Option<AccelSample>> {
            Ok(self.0.next())
        }
        fn describe(&self) -> String {
            "replayed G-sensor".into()
        }
    }

    fn counter() -> (
        Arc<std::sync::atomic::AtomicUsize>,
        Arc<dyn Fn() + Send + Sync>,
    ) {
        let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let n2 = n.clone();
        (
            n,
            Arc::new(move || {
                n2.fetch_add(1, Ordering::SeqCst);
            }),
        )
    }

    #[test]
    fn the_button_thread_turns_two_bouncing_presses_into_two_incidents() {
        let mut edges = bouncy_press(1_000, 300);
        edges.extend(bouncy_press(3_000, 200));
        let (count, on_press) = counter();
        let stop = Arc::new(AtomicBool::new(false));
        let t = spawn_button(
            Box::new(ReplayButton(edges.into())),
            Duration::from_millis(30),
            stop.clone(),
            on_press,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        t.join().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn the_gsensor_thread_fires_once_for_a_bump_and_never_for_the_road() {
        let bump = trace(5.0, |t| {
            if (2.0..2.06).contains(&t) {
                [3.0, -2.5, 1.0]
            } else {
                [0.0; 3]
            }
        });
        let mut k = 0u32;
        let road = trace(30.0, |_| {
            k += 3;
            [noise(k) * 0.5, noise(k + 1) * 0.5, noise(k + 2) * 0.5]
        });
        for (samples, want) in [(bump, 1), (road, 0)] {
            let (count, on_shock) = counter();
            let t = spawn_accelerometer(
                Box::new(ReplayAccel(samples.into_iter())),
                ShockDetector::new(2.0, Duration::from_secs(2)),
                Arc::new(AtomicBool::new(false)),
                on_shock,
            )
            .unwrap();
            t.join().unwrap();
            assert_eq!(count.load(Ordering::SeqCst), want);
        }
    }
}
