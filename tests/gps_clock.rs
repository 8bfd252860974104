//! A GPS receiver on a pseudo-terminal, read by the running service: its
//! fixes set the recorder's clock (once they agree), the footage of this
//! boot is relabelled, and status shows the receiver and who set the clock.
//!
//! Stand-in: the "receiver" is a thread writing RMC and GGA sentences at
//! 10 Hz into the pty's master, times taken from the host's clock shifted
//! by an hour (so the setting is visible); a real receiver talks at 1 Hz,
//! at a real baud rate, after its own output delay.

mod common;
mod gps_pty;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{start_service_with, TOKEN};
use dashvault::config::GpsConfig;
use dashvault::http::auth::Auth;
use dashvault::http::server::Limits;
use dashvault::status::StatusSnapshot;
use dashvault::timekeeper::TimeAuthority;
use gps_pty::open_pty;

const HOUR_NS: i64 = 3_600_000_000_000;

/// `$<body>*<checksum>` with its line end.
fn sentence(body: &str) -> String {
    let sum = body.bytes().fold(0u8, |a, b| a ^ b);
    format!("${body}*{sum:02X}\r\n")
}

/// RMC and GGA for `utc_ns`: Berlin, 50 km/h east, 9 satellites.
fn epoch(utc_ns: i64) -> String {
    let secs = utc_ns.div_euclid(1_000_000_000);
    let centis = utc_ns.rem_euclid(1_000_000_000) / 10_000_000;
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    let time = format!(
        "{:02}{:02}{:02}.{centis:02}",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    );
    let date = format!("{d:02}{m:02}{:02}", y % 100);
    sentence(&format!(
        "GNRMC,{time},A,5231.20048,N,01324.42016,E,27.000,87.50,{date},,,A"
    )) + &sentence(&format!(
        "GNGGA,{time},5231.20048,N,01324.42016,E,1,09,0.92,34.5,M,39.9,M,,"
    ))
}

/// Year, month, day of a day count since 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn status(addr: std::net::SocketAddr) -> StatusSnapshot {
    let body = ureq::get(format!("http://{addr}/api/status"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

#[test]
fn gps_fixes_set_the_clock_and_relabel_this_boots_footage() {
    let pty = open_pty();
    let path = pty.path.clone();
    let service = start_service_with(10, [0x6a; 16], Limits::default(), |config, _, clock| {
        config.gps = Some(GpsConfig {
            device: path.to_str().unwrap().into(),
            baud: Some(9600),
            ..GpsConfig::default()
        });
        Auth::new(TOKEN.into(), clock)
    });
    let addr = service.http.local_addr();
    // Footage recorded before the receiver speaks, on the host's clock.
    std::thread::sleep(Duration::from_millis(2500));
    let before = status(addr);
    let gps = before.gps.as_ref().expect("status shows the receiver");
    assert!(gps.state.connected, "{gps:?}");
    assert_eq!(gps.state.last_fix_utc_ns, None);
    assert_eq!(before.clock.as_ref().unwrap().set_by, None);
    let recorded_before = service.data_dir.join("recordings/front");
    let first_segments: Vec<_> = std::fs::read_dir(&recorded_before)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".dvr"))
        .collect();
    assert!(!first_segments.is_empty());

    // The receiver: an hour ahead of the host, 10 epochs a second.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut master = pty.master;
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                let t = now_ns() + HOUR_NS;
                let _ = master.write_all(epoch(t - t.rem_euclid(100_000_000)).as_bytes());
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let after = loop {
        let s = status(addr);
        if s.clock.as_ref().and_then(|c| c.set_by) == Some(TimeAuthority::Gps) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "GPS never set the clock: {:?}",
            s.gps
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    let clock = after.clock.unwrap();
    assert!(!clock.estimated);
    // The recorder runs an hour ahead of the host, within the output delay.
    let ahead = dashvault::clock::parse_rfc3339(&after.time).unwrap() - now_ns();
    assert!(
        (ahead - HOUR_NS).abs() < 1_000_000_000,
        "recorder is {} ms ahead, want about an hour",
        ahead / 1_000_000
    );
    let gps = after.gps.unwrap();
    assert!(gps.state.last_fix_utc_ns.is_some());
    assert_eq!(gps.state.sats_used, Some(9));
    assert!((gps.speed.unwrap() - 50.0).abs() < 0.1, "{:?}", gps.speed);
    assert_eq!(gps.clock_rejection, None);

    // The footage recorded before the fix now carries GPS time: the first
    // segment's frames moved an hour on.
    let store = dashvault::store::Store::on_disk(&service.data_dir);
    let listing = store.segments("front").unwrap();
    let first = &listing.segments[0];
    let start = dashvault::store::query::label_start_ns(first).unwrap();
    let named = dashvault::store::query::label_start_ns(&dashvault::store::catalog::SegmentEntry {
        corrected_start_ns: None,
        ..first.clone()
    })
    .unwrap();
    assert!(
        (start - named - HOUR_NS).abs() < 2_000_000_000,
        "first segment relabelled by {} ms",
        (start - named) / 1_000_000
    );
    let reader = store.open_segment(first).unwrap();
    assert!(reader.relabelled);

    // Every fix was stored with the footage: the segments now hold the
    // positions the receiver gave, between their frames.
    let deadline = Instant::now() + Duration::from_secs(10);
    let stored = loop {
        let listing = store.segments("front").unwrap();
        let positions: Vec<_> = listing
            .segments
            .iter()
            .filter_map(|seg| store.open_segment(seg).ok())
            .flat_map(|r| r.positions)
            .collect();
        if positions.len() >= 5 || Instant::now() > deadline {
            break positions;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(stored.len() >= 5, "{} positions stored", stored.len());
    for p in &stored {
        let (lat, lon) = p.lat_lon_e7.expect("a position");
        assert_eq!((lat, lon), (525_200_080, 134_070_027), "{p:?}");
        let speed = p.speed_mm_s.unwrap();
        assert!((13_880..=13_900).contains(&speed), "{speed} mm/s");
        assert_eq!(
            (p.quality, p.satellites, p.hdop_centi),
            (1, Some(9), Some(92))
        );
        assert_eq!(p.heading_cdeg, Some(8750));
        assert_eq!(p.altitude_mm, Some(34_500));
    }
    let wall = reader.frames[0].wall_ns;
    assert!(
        (wall - (named + HOUR_NS)).abs() < 2_000_000_000,
        "first frame at {wall}, named {named}"
    );
}
