//! Time sources. Everything that reads the time or waits takes a [`Clock`] so
//! tests can drive time deterministically with [`SimulatedClock`] instead of
//! sleeping.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::frame::CaptureTime;

pub const NANOS_PER_SEC: u64 = 1_000_000_000;

pub trait Clock: Send + Sync {
    /// CLOCK_MONOTONIC in nanoseconds.
    fn mono_ns(&self) -> u64;
    /// Wall clock in nanoseconds since the Unix epoch.
    fn wall_ns(&self) -> i64;
    /// Blocks until the monotonic clock reaches `deadline_ns` (returns at once if past).
    fn sleep_until(&self, deadline_ns: u64);
    /// Whether `wall_ns` is a guess (restored from the saved time after a
    /// boot without a real-time clock) rather than a time someone set.
    fn wall_estimated(&self) -> bool {
        false
    }

    fn now(&self) -> CaptureTime {
        CaptureTime {
            mono_ns: self.mono_ns(),
            wall_ns: self.wall_ns(),
        }
    }
}

/// The real clocks of this machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn mono_ns(&self) -> u64 {
        match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
            Ok(ts) => ts.tv_sec() as u64 * NANOS_PER_SEC + ts.tv_nsec() as u64,
            // CLOCK_MONOTONIC cannot fail on Linux; keep going rather than panic.
            Err(_) => 0,
        }
    }

    fn wall_ns(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i64,
            Err(e) => -(e.duration().as_nanos() as i64),
        }
    }

    fn sleep_until(&self, deadline_ns: u64) {
        let now = self.mono_ns();
        if deadline_ns > now {
            std::thread::sleep(Duration::from_nanos(deadline_ns - now));
        }
    }
}

/// A clock that only moves when a test advances it. `sleep_until` blocks until
/// another thread advances time far enough, so threaded code can be tested
/// without real waiting.
#[derive(Clone, Debug)]
pub struct SimulatedClock {
    inner: Arc<(Mutex<(u64, i64)>, Condvar)>,
}

impl SimulatedClock {
    pub fn new(mono_ns: u64, wall_ns: i64) -> SimulatedClock {
        SimulatedClock {
            inner: Arc::new((Mutex::new((mono_ns, wall_ns)), Condvar::new())),
        }
    }

    pub fn advance(&self, d: Duration) {
        let (lock, cv) = &*self.inner;
        let mut t = lock.lock().unwrap_or_else(|e| e.into_inner());
        t.0 += d.as_nanos() as u64;
        t.1 += d.as_nanos() as i64;
        cv.notify_all();
    }

    /// Moves the wall clock only, as a clock step (NTP, user setting the time) would.
    pub fn step_wall(&self, delta_ns: i64) {
        let (lock, _) = &*self.inner;
        let mut t = lock.lock().unwrap_or_else(|e| e.into_inner());
        t.1 += delta_ns;
    }
}

impl Clock for SimulatedClock {
    fn mono_ns(&self) -> u64 {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    fn wall_ns(&self) -> i64 {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    fn sleep_until(&self, deadline_ns: u64) {
        let (lock, cv) = &*self.inner;
        let mut t = lock.lock().unwrap_or_else(|e| e.into_inner());
        while t.0 < deadline_ns {
            t = cv.wait(t).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The recorder's wall clock: the machine's clock plus an offset that is
/// used when the system clock may not be set (no `CAP_SYS_TIME`), and a flag
/// saying whether the time is an estimate. Monotonic time passes through
/// untouched, so frame order and durations never depend on the wall clock.
pub struct AdjustableClock {
    inner: Arc<dyn Clock>,
    offset_ns: AtomicI64,
    estimated: AtomicBool,
}

impl AdjustableClock {
    pub fn new(inner: Arc<dyn Clock>) -> AdjustableClock {
        AdjustableClock {
            inner,
            offset_ns: AtomicI64::new(0),
            estimated: AtomicBool::new(false),
        }
    }

    /// Wall time of the machine's own clock, without the offset.
    pub fn system_wall_ns(&self) -> i64 {
        self.inner.wall_ns()
    }

    pub fn offset_ns(&self) -> i64 {
        self.offset_ns.load(Ordering::SeqCst)
    }

    pub fn set_offset_ns(&self, offset_ns: i64) {
        self.offset_ns.store(offset_ns, Ordering::SeqCst);
    }

    pub fn set_estimated(&self, estimated: bool) {
        self.estimated.store(estimated, Ordering::SeqCst);
    }
}

impl Clock for AdjustableClock {
    fn mono_ns(&self) -> u64 {
        self.inner.mono_ns()
    }

    fn wall_ns(&self) -> i64 {
        self.inner.wall_ns() + self.offset_ns()
    }

    fn sleep_until(&self, deadline_ns: u64) {
        self.inner.sleep_until(deadline_ns)
    }

    fn wall_estimated(&self) -> bool {
        self.estimated.load(Ordering::SeqCst)
    }
}

/// Sets the machine's wall clock. Behind a trait so that tests never change
/// the clock of the host they run on.
pub trait WallClockSetter: Send + Sync {
    fn set_wall_ns(&self, wall_ns: i64) -> std::io::Result<()>;
}

/// `clock_settime(CLOCK_REALTIME)`: needs `CAP_SYS_TIME` (root on the
/// appliance); `EPERM` otherwise, and the recorder then runs from an offset.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemWallClockSetter;

impl WallClockSetter for SystemWallClockSetter {
    fn set_wall_ns(&self, wall_ns: i64) -> std::io::Result<()> {
        let ts = libc::timespec {
            tv_sec: wall_ns.div_euclid(NANOS_PER_SEC as i64) as libc::time_t,
            tv_nsec: wall_ns.rem_euclid(NANOS_PER_SEC as i64) as libc::c_long,
        };
        // SAFETY: clock_settime only reads `ts`.
        if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

/// A setter that is never permitted, as for a service without `CAP_SYS_TIME`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeniedWallClockSetter;

impl WallClockSetter for DeniedWallClockSetter {
    fn set_wall_ns(&self, _: i64) -> std::io::Result<()> {
        Err(std::io::Error::from_raw_os_error(libc::EPERM))
    }
}

/// Steps a [`SimulatedClock`]'s wall time, as a permitted `clock_settime` would.
impl WallClockSetter for SimulatedClock {
    fn set_wall_ns(&self, wall_ns: i64) -> std::io::Result<()> {
        let (lock, _) = &*self.inner;
        lock.lock().unwrap_or_else(|e| e.into_inner()).1 = wall_ns;
        Ok(())
    }
}

/// Lower-case hex of a boot id, as used in file names.
pub fn boot_id_hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a wall time in nanoseconds (UTC).
pub fn format_rfc3339(wall_ns: i64) -> String {
    humantime::format_rfc3339_seconds(system_time(wall_ns)).to_string()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`: the API's form, precise enough to name a frame.
pub fn format_rfc3339_ms(wall_ns: i64) -> String {
    humantime::format_rfc3339_millis(system_time(wall_ns)).to_string()
}

/// `YYYY-MM-DD HH:MM:SS UTC`, the burned-in timestamp text.
pub fn format_overlay(wall_ns: i64) -> String {
    let s = format_rfc3339(wall_ns);
    // "2026-11-21T10:00:00Z" -> "2026-11-21 10:00:00 UTC"
    format!("{} {} UTC", &s[..10], &s[11..19])
}

/// Compact form used in segment file names: `YYYYMMDDTHHMMSSZ`.
pub fn format_compact(wall_ns: i64) -> String {
    format_rfc3339(wall_ns)
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect()
}

/// Parses an RFC 3339 time (`2026-11-20T10:00:00Z`, fractions allowed) to wall nanoseconds.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let trimmed = s.trim();
    // A time without a zone would be read as UTC silently, while the user
    // may have meant local time: the zone must be written, and be UTC.
    let utc = match trimmed
        .strip_suffix("+00:00")
        .or_else(|| trimmed.strip_suffix('z'))
    {
        Some(rest) => format!("{rest}Z"),
        None => trimmed.to_string(),
    };
    if !utc.ends_with('Z') {
        let zone = trimmed.len() > 6
            && trimmed.is_char_boundary(trimmed.len() - 6)
            && matches!(trimmed.as_bytes()[trimmed.len() - 6], b'+' | b'-');
        return Err(if zone {
            format!("'{s}' is not in UTC; write the time in UTC, ending in Z (e.g. 2026-11-20T10:00:00Z)")
        } else {
            format!("'{s}' has no time zone; add Z for UTC (e.g. 2026-11-20T10:00:00Z)")
        });
    }
    let t = humantime::parse_rfc3339_weak(&utc)
        .map_err(|e| format!("'{s}' is not a UTC time like 2026-11-20T10:00:00Z: {e}"))?;
    match t.duration_since(UNIX_EPOCH) {
        // Nanoseconds in an i64 end in April 2262; later times must not wrap.
        Ok(d) => i64::try_from(d.as_nanos())
            .map_err(|_| format!("'{s}' is after 2262-04-11, the last time that can be stored")),
        Err(_) => Err(format!("'{s}' is before 1970")),
    }
}

fn system_time(wall_ns: i64) -> SystemTime {
    if wall_ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(wall_ns as u64)
    } else {
        UNIX_EPOCH
    }
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`) as 16 bytes; monotonic
/// times are only comparable between frames with the same boot id.
pub fn boot_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") {
        let hex: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        for (i, pair) in hex.chunks(2).take(16).enumerate() {
            let text = std::str::from_utf8(pair).unwrap_or("0");
            id[i] = u8::from_str_radix(text, 16).unwrap_or(0);
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_without_a_zone_are_refused_not_read_as_utc() {
        let e = parse_rfc3339("2026-11-20T10:00:00").unwrap_err();
        assert!(e.contains("no time zone"), "{e}");
        let e = parse_rfc3339("2026-11-20T10:00:00+01:00").unwrap_err();
        assert!(e.contains("not in UTC"), "{e}");
        let z = parse_rfc3339("2026-11-20T10:00:00Z").unwrap();
        assert_eq!(parse_rfc3339("2026-11-20T10:00:00+00:00"), Ok(z));
        assert_eq!(
            parse_rfc3339(" 2026-11-20T10:00:00.5z "),
            Ok(z + 500_000_000)
        );
    }

    #[test]
    fn far_future_times_are_refused_not_wrapped_to_before_1970() {
        let e = parse_rfc3339("9999-12-31T23:59:59Z").unwrap_err();
        assert!(e.contains("after 2262"), "{e}");
        let last = parse_rfc3339("2262-04-11T23:47:16Z").unwrap();
        assert!(last > 0);
    }

    #[test]
    fn api_times_carry_milliseconds() {
        assert_eq!(format_rfc3339_ms(1_500_000_000), "1970-01-01T00:00:01.500Z");
    }

    #[test]
    fn formats_and_parses_utc() {
        let ns = 1_763_719_200_500_000_000; // 2025-11-21T10:00:00.5Z
        assert_eq!(format_rfc3339(ns), "2025-11-21T10:00:00Z");
        assert_eq!(format_overlay(ns), "2025-11-21 10:00:00 UTC");
        assert_eq!(format_compact(ns), "20251121T100000Z");
        assert_eq!(
            parse_rfc3339("2025-11-21T10:00:00Z").unwrap(),
            1_763_719_200 * 1_000_000_000
        );
        assert!(parse_rfc3339("yesterday")
            .unwrap_err()
            .contains("yesterday"));
        // Nanoseconds since 1970 overflow an i64 in 2262: an error, not a wrap.
        assert!(parse_rfc3339("2500-01-01T00:00:00Z")
            .unwrap_err()
            .contains("after 2262"));
    }

    #[test]
    fn adjustable_clock_offsets_wall_time_only() {
        let sim = Arc::new(SimulatedClock::new(5, 1_000));
        let c = AdjustableClock::new(sim.clone());
        c.set_offset_ns(500);
        c.set_estimated(true);
        assert_eq!(
            (c.mono_ns(), c.wall_ns(), c.system_wall_ns()),
            (5, 1_500, 1_000)
        );
        assert!(c.wall_estimated());
        sim.set_wall_ns(9_000).unwrap();
        assert_eq!(c.wall_ns(), 9_500);
        assert_eq!(boot_id_hex(&[0xab; 16]).len(), 32);
    }

    #[test]
    fn simulated_clock_wakes_sleepers() {
        let clock = SimulatedClock::new(0, 0);
        let c2 = clock.clone();
        let t = std::thread::spawn(move || {
            c2.sleep_until(5_000);
            c2.mono_ns()
        });
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(2));
            clock.advance(Duration::from_nanos(1_000));
        }
        assert!(t.join().unwrap() >= 5_000);
    }
}
