//! A real `GpsSource` reading recorded-style receiver output through a
//! pseudo-terminal: the reader opens the pty's slave like a USB receiver's
//! tty, and a thread writes the fixture into the master at a steady pace.
//!
//! Each replay waits until every line written has been counted before it
//! looks at the state, so the assertions never race the reader.

mod gps_pty;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashvault::clock::SystemClock;
use dashvault::gps::{
    check_for_clock, FixQuality, FixRejection, GpsConfig, GpsFix, GpsSource, GpsState,
    DATE_FLOOR_DAYS,
};
use gps_pty::{open_pty, Pty};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/nmea");
const WAIT: Duration = Duration::from_secs(10);
/// Between lines: about 20 lines per 100 ms poll, far above a real 9600 baud
/// receiver's ~10 lines per second, so the tests stay short.
const LINE_PAUSE: Duration = Duration::from_millis(2);

/// 2026-12-04, the day the fixtures were "recorded".
const FIXTURE_DAY: i64 = 20_791;
const SEC_NS: i64 = 1_000_000_000;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(FIXTURES).join(name)).expect(name)
}

fn line_count(data: &[u8]) -> u64 {
    data.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Points `link` at `target` atomically, as udev does for
/// /dev/serial/by-id when a receiver comes back.
fn repoint(link: &Path, target: &Path) {
    let tmp = link.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, link).unwrap();
}

/// Writes `data` line by line from a thread, pausing between lines.
fn replay(pty: &Pty, data: &[u8]) {
    let mut master = pty.master.try_clone().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || {
        for line in data.split_inclusive(|&b| b == b'\n') {
            master.write_all(line).unwrap();
            std::thread::sleep(LINE_PAUSE);
        }
    });
    writer.join().expect("replay thread");
}

fn lines_counted(s: &GpsState) -> u64 {
    let c = &s.counters;
    c.sentences_ok + c.checksum_errors + c.garbage + c.unknown + c.malformed
}

fn wait_for(source: &GpsSource, what: &str, cond: impl Fn(&GpsState) -> bool) -> GpsState {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = source.snapshot();
        if cond(&s) {
            return s;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}; state: {s:#?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Replays a fixture and waits until the reader has counted every line.
fn replay_all(source: &GpsSource, pty: &Pty, name: &str) -> GpsState {
    let before = lines_counted(&source.snapshot());
    let data = fixture(name);
    let expected = before + line_count(&data);
    replay(pty, &data);
    wait_for(source, name, |s| lines_counted(s) >= expected)
}

fn start(device: &Path) -> (GpsSource, Receiver<GpsFix>) {
    let (tx, rx) = mpsc::channel();
    let config = GpsConfig {
        device: device.to_str().unwrap().to_string(),
        baud: Some(9600),
        ..GpsConfig::default()
    };
    let source = GpsSource::start(
        config,
        Arc::new(SystemClock),
        Box::new(move |fix| {
            let _ = tx.send(fix);
        }),
    )
    .unwrap();
    wait_for(&source, "connected", |s| s.connected);
    (source, rx)
}

/// Names of this process's threads, as `top -H` shows them.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim_end().to_string())
        .collect()
}

fn drain(rx: &Receiver<GpsFix>) -> Vec<GpsFix> {
    rx.try_iter().collect()
}

fn utc(h: i64, m: i64, s: i64) -> i64 {
    (FIXTURE_DAY * 86_400 + h * 3600 + m * 60 + s) * SEC_NS
}

fn close(a: Option<f64>, b: f64, tol: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= tol)
}

#[test]
fn drive_from_cold_start_through_a_tunnel() {
    let pty = open_pty();
    let (source, fixes) = start(&pty.path);

    // Cold start: nothing known, then time without a position.
    let s = replay_all(&source, &pty, "cold_start.nmea");
    assert!(s.connected);
    assert_eq!(s.baud, Some(9600));
    assert_eq!(s.quality, FixQuality::NoFix);
    assert_eq!((s.lat, s.lon, s.speed_mps), (None, None, None));
    assert_eq!(s.sats_used, Some(3));
    assert_eq!(s.sats_in_view, Some(6));
    assert_eq!(s.hdop, None);
    assert_eq!(s.last_fix_utc_ns, None);
    assert_eq!(s.counters.unknown, 6, "5 GLL and a TXT");
    assert_eq!(
        (
            s.counters.checksum_errors,
            s.counters.garbage,
            s.counters.malformed
        ),
        (0, 0, 0)
    );
    let cold = drain(&fixes);
    assert_eq!(cold.len(), 2, "the two epochs that had a time");
    for f in &cold {
        assert!(!f.has_position());
        assert_eq!(
            check_for_clock(f, DATE_FLOOR_DAYS),
            Err(FixRejection::StatusVoid)
        );
    }

    // First fix.
    let s = replay_all(&source, &pty, "first_fix.nmea");
    assert_eq!(s.quality, FixQuality::Fix3d);
    assert!(close(s.lat, 52.520_008, 1e-6), "{:?}", s.lat);
    assert!(close(s.lon, 13.407_822_1, 1e-6), "{:?}", s.lon);
    assert!(close(s.speed_mps, 13.89, 0.01), "{:?}", s.speed_mps);
    assert!(close(s.heading_deg, 87.5, 1e-6));
    assert!(close(s.alt_m, 34.5, 1e-6));
    assert_eq!(s.sats_used, Some(9));
    assert_eq!(s.sats_in_view, Some(15), "11 GPS + 4 GLONASS");
    assert_eq!(s.hdop, Some(0.92));
    assert_eq!(s.last_fix_utc_ns, Some(utc(10, 15, 14)));
    assert!(s.last_fix_age_ms.is_some_and(|a| a < 5_000));
    let first = drain(&fixes);
    assert_eq!(first.len(), 5);
    for (k, f) in first.iter().enumerate() {
        assert!(f.has_position());
        assert_eq!(
            check_for_clock(f, DATE_FLOOR_DAYS),
            Ok(utc(10, 15, 10 + k as i64))
        );
    }

    // Into the tunnel: two good epochs, then four without satellites.
    let s = replay_all(&source, &pty, "tunnel_loss.nmea");
    assert_eq!(s.quality, FixQuality::NoFix);
    assert_eq!(
        (s.lat, s.lon, s.speed_mps, s.hdop),
        (None, None, None, None)
    );
    assert_eq!(s.sats_in_view, Some(0));
    assert_eq!(
        s.last_fix_utc_ns,
        Some(utc(10, 15, 21)),
        "the last good epoch"
    );
    let tunnel = drain(&fixes);
    let has: Vec<bool> = tunnel.iter().map(|f| f.has_position()).collect();
    assert_eq!(has, [true, true, false, false, false, false]);
    assert_eq!(
        check_for_clock(&tunnel[5], DATE_FLOOR_DAYS),
        Err(FixRejection::StatusVoid)
    );

    // Out again, with fewer satellites.
    let s = replay_all(&source, &pty, "tunnel_regain.nmea");
    assert_eq!(s.quality, FixQuality::Fix3d);
    assert!(close(s.lon, 13.413_558_4, 1e-6), "{:?}", s.lon);
    assert_eq!(s.sats_used, Some(7));
    assert_eq!(s.hdop, Some(1.45));
    assert_eq!(s.last_fix_utc_ns, Some(utc(10, 15, 42)));
    assert_eq!(drain(&fixes).len(), 3);
    assert_eq!(
        (
            s.counters.checksum_errors,
            s.counters.garbage,
            s.counters.malformed
        ),
        (0, 0, 0),
        "a clean drive"
    );
    assert!(s.connected);
    source.stop();
}

#[test]
fn noise_and_foreign_sentences_are_counted_never_fatal() {
    let pty = open_pty();
    let (source, fixes) = start(&pty.path);

    let s = replay_all(&source, &pty, "proprietary.nmea");
    assert_eq!(
        s.counters.unknown, 6,
        "PMTK011, PMTK010, PUBX,00, PUBX,04, PSRF150, GNGLL"
    );
    assert_eq!(
        s.quality,
        FixQuality::Fix3d,
        "the epoch around them still reads"
    );
    assert_eq!(drain(&fixes).len(), 1);

    let before = s.counters.clone();
    let s = replay_all(&source, &pty, "checksum_errors.nmea");
    assert_eq!(s.counters.checksum_errors - before.checksum_errors, 3);
    assert_eq!(s.counters.garbage - before.garbage, 1, "the cut GGA");
    assert_eq!(s.counters.unknown - before.unknown, 1, "GNGLL");
    assert!(s.last_error.is_some());
    let noisy = drain(&fixes);
    assert_eq!(noisy.len(), 1, "the good RMC and GGA still pair");
    assert!(noisy[0].has_position());

    // A receiver at another baud rate: bytes without structure. Then one
    // good sentence, to know the garbage has all been read.
    let before = source.snapshot().counters;
    let garbage = fixture("baud_garbage.bin");
    replay(&pty, &garbage);
    replay(&pty, b"$GPVTG,,,,,,,,,N*30\r\n");
    let s = wait_for(&source, "the sentence after the garbage", |s| {
        s.counters.sentences_ok > before.sentences_ok
    });
    assert_eq!(s.counters.sentences_ok, before.sentences_ok + 1);
    // About one garbage line per newline in the noise (the file has 6);
    // runs longer than a sentence are one line each, not one per byte.
    let garbage = s.counters.garbage - before.garbage;
    assert!((5..=20).contains(&garbage), "{:?}", s.counters);
    assert!(s.connected);
    assert!(drain(&fixes).is_empty());
    source.stop();
}

#[test]
fn a_date_1024_weeks_old_is_refused_as_a_week_rollover() {
    let pty = open_pty();
    let (source, fixes) = start(&pty.path);
    let s = replay_all(&source, &pty, "week_rollover.nmea");
    // The position is fine; only the date is wrong.
    assert_eq!(s.quality, FixQuality::Fix3d);
    let f = drain(&fixes);
    assert_eq!(f.len(), 1);
    assert!(f[0].has_position());
    let err = check_for_clock(&f[0], DATE_FLOOR_DAYS).unwrap_err();
    assert_eq!(
        err,
        FixRejection::WeekRollover {
            reported_days: FIXTURE_DAY - 7168,
            weeks: 1024,
            likely_days: FIXTURE_DAY,
        }
    );
    assert!(err.to_string().contains("2007-04-20"), "{err}");
    assert!(err.to_string().contains("rollover"), "{err}");
    source.stop();
}

#[test]
fn unplug_and_replug_through_a_by_id_link() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir
        .path()
        .join("usb-u-blox_AG_-_www.u-blox.com_u-blox_GNSS_receiver-if00");
    let first = open_pty();
    repoint(&link, &first.path);
    let (source, _fixes) = start(&link);
    assert_eq!(source.snapshot().device, link.display().to_string());
    let s = replay_all(&source, &first, "first_fix.nmea");
    assert_eq!(s.quality, FixQuality::Fix3d);

    // Unplug: the receiver's side of the line goes away.
    let Pty { master, slave, .. } = first;
    drop(slave);
    drop(master);
    let s = wait_for(&source, "disconnected", |s| !s.connected);
    assert!(s.last_error.is_some(), "says why");
    assert_eq!(s.counters.disconnects, 1);
    assert_eq!(s.quality, FixQuality::NoFix);
    assert_eq!(s.lat, None);
    assert_eq!(
        s.last_fix_utc_ns,
        Some(utc(10, 15, 14)),
        "the last fix is kept"
    );

    // Stay unplugged for a few retries, then plug a receiver back in under
    // the same stable name.
    std::thread::sleep(Duration::from_millis(700));
    assert!(!source.snapshot().connected);
    let second = open_pty();
    repoint(&link, &second.path);
    let s = wait_for(&source, "reconnected", |s| s.connected);
    assert_eq!(s.last_error, None);
    let s = replay_all(&source, &second, "tunnel_regain.nmea");
    assert_eq!(s.quality, FixQuality::Fix3d);
    assert!(close(s.lon, 13.413_558_4, 1e-6));
    assert_eq!(s.counters.disconnects, 1);
    source.stop();
}

/// On a pty every rate reads correctly, so detection settles on the first
/// rate it tries; this checks the source's detection path end to end, not the
/// choice (serial.rs tests that against a scripted receiver).
#[test]
fn without_a_configured_rate_the_source_detects_one() {
    let pty = open_pty();
    let (tx, rx) = mpsc::channel();
    let source = GpsSource::start(
        GpsConfig {
            device: pty.path.to_str().unwrap().to_string(),
            baud: None,
            ..GpsConfig::default()
        },
        Arc::new(SystemClock),
        Box::new(move |fix| {
            let _ = tx.send(fix);
        }),
    )
    .unwrap();
    // Detection listens before the state says connected: keep talking
    // until told, a line at a time, so no write can block on a full queue
    // after the reader has gone.
    let mut master = pty.master.try_clone().unwrap();
    let quiet = Arc::new(AtomicBool::new(false));
    let talker = {
        let quiet = quiet.clone();
        std::thread::spawn(move || {
            let data = fixture("first_fix.nmea");
            let deadline = Instant::now() + WAIT;
            'talk: while Instant::now() < deadline {
                for line in data.split_inclusive(|&b| b == b'\n') {
                    if quiet.load(Ordering::Relaxed) || master.write_all(line).is_err() {
                        break 'talk;
                    }
                    std::thread::sleep(LINE_PAUSE);
                }
            }
        })
    };
    let s = wait_for(&source, "connected after detection", |s| s.connected);
    assert_eq!(s.baud, Some(9600));
    let s = wait_for(&source, "a fix", |s| s.quality == FixQuality::Fix3d);
    assert!(close(s.lat, 52.520_008, 1e-6));
    assert!(rx.recv_timeout(WAIT).is_ok());
    quiet.store(true, Ordering::Relaxed);
    talker.join().unwrap();
    source.stop();
}

#[test]
fn stops_promptly_while_reading_and_while_waiting_to_retry() {
    let pty = open_pty();
    let (source, _fixes) = start(&pty.path);
    assert!(
        thread_names().iter().any(|n| n == "gps-reader"),
        "{:?}",
        thread_names()
    );
    let t = Instant::now();
    source.stop();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("ttyACM9");
    let source = GpsSource::start(
        GpsConfig {
            device: missing.to_str().unwrap().to_string(),
            baud: None,
            ..GpsConfig::default()
        },
        Arc::new(SystemClock),
        Box::new(|_| {}),
    )
    .unwrap();
    let s = wait_for(&source, "the open error", |s| s.last_error.is_some());
    assert!(!s.connected);
    assert!(s.last_error.unwrap().contains("ttyACM9"));
    let t = Instant::now();
    source.stop();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
}
