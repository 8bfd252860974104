//! GPS positions out of the store: the export's text track shows the speed
//! and place fed in (read back by ffmpeg), the GPX file is GPX 1.1 by
//! xmllint's schema check and holds every position, and the HTTP track and
//! GPX answers and `dashvault export --gpx` give the same. Footage and
//! positions are written with the real segment writer, at 30 fps and 5 Hz,
//! with a 20 s stop in the middle.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use dashvault::camera::synthetic::SyntheticCamera;
use dashvault::camera::CameraSource;
use dashvault::clock::SystemClock;
use dashvault::config::SpeedUnit;
use dashvault::encode::{EncoderSettings, JpegEncoder};
use dashvault::export::gpx::GpxExport;
use dashvault::export::track::{self, TrackCache};
use dashvault::export::{range_timing, ExportError, ExportOptions, Mp4Export};
use dashvault::frame::CaptureTime;
use dashvault::http::server::{Body, Handler, Request};
use dashvault::http::testutil::api_context;
use dashvault::store::format::PositionSample;
use dashvault::store::writer::{EncodedFrame, WriterSettings};
use dashvault::store::Store;

const CAMERA: &str = "front";
const FRAME_NS: u64 = 33_333_333;
const POSITION_NS: u64 = 200_000_000;
/// 2026-11-20T10:00:00Z
const START_WALL_NS: i64 = 1_795_168_800_000_000_000;
const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/gpx-1.1-track.xsd");

struct Drive {
    dir: tempfile::TempDir,
    frames_wall_ns: Vec<i64>,
    positions: Vec<PositionSample>,
}

impl Drive {
    fn store(&self) -> Store {
        Store::on_disk(self.dir.path())
    }

    fn range(&self) -> (i64, i64) {
        (START_WALL_NS, *self.frames_wall_ns.last().unwrap() + 1)
    }
}

/// Position `k`: heading north at a speed rising 0.5 m/s a step from 10 m/s,
/// about 1.1 m apart.
fn position(k: u64, mono_ns: u64, wall_ns: i64) -> PositionSample {
    PositionSample {
        received: CaptureTime { mono_ns, wall_ns },
        flags: 0,
        utc_ns: Some(wall_ns),
        lat_lon_e7: Some((525_000_000 + 100 * k as i32, 134_000_000)),
        altitude_mm: Some(34_500),
        speed_mm_s: Some(10_000 + 500 * k as u32),
        heading_cdeg: Some(9_000),
        quality: 3,
        satellites: Some(9),
        hdop_centi: Some(90),
    }
}

/// 6 s of driving, a 20 s stop with nothing recorded, 2 s more.
fn record_drive() -> Drive {
    record_drive_then(true)
}

/// As [`record_drive`]; without `close`, the power goes at the end (the
/// last segment is left as a cut leaves it, synced to its last cadence).
fn record_drive_then(close: bool) -> Drive {
    let dir = tempfile::tempdir().unwrap();
    let mut cam = SyntheticCamera::new(64, 48, 1_000_000, Arc::new(SystemClock));
    cam.open().unwrap();
    let mut enc = JpegEncoder::new(EncoderSettings {
        quality: 50,
        rotation: 0,
        embed_timestamp: false,
    });
    let jpeg = enc.encode(&cam.next_frame().unwrap()).unwrap().jpeg;
    let mut writer = Store::on_disk(dir.path())
        .writer(WriterSettings {
            camera_id: CAMERA.into(),
            camera_dir: Default::default(),
            fps_milli: 30_000,
            segment_length_ns: 2_000_000_000,
            first_segment_length_ns: 2_000_000_000,
            sync_interval_ns: 500_000_000,
            want_direct: false,
            boot_id: [3; 16],
        })
        .unwrap();
    let mut drive = Drive {
        dir,
        frames_wall_ns: Vec::new(),
        positions: Vec::new(),
    };
    let mono0 = 1_000_000_000u64;
    let mut next_position = 50_000_000u64; // first fix 50 ms in
    for (from_ns, to_ns) in [(0u64, 6_000_000_000u64), (26_000_000_000, 28_000_000_000)] {
        next_position = next_position.max(from_ns + 50_000_000);
        let mut t = from_ns;
        while t < to_ns {
            while next_position <= t {
                let p = position(
                    drive.positions.len() as u64,
                    mono0 + next_position,
                    START_WALL_NS + next_position as i64,
                );
                writer.append_position(&p, mono0 + next_position).unwrap();
                drive.positions.push(p);
                next_position += POSITION_NS;
            }
            let wall_ns = START_WALL_NS + t as i64;
            writer
                .append(
                    &EncodedFrame {
                        jpeg: jpeg.clone().into(),
                        width: 64,
                        height: 48,
                        captured: CaptureTime {
                            mono_ns: mono0 + t,
                            wall_ns,
                        },
                        flags: 0,
                    },
                    mono0 + t,
                )
                .unwrap();
            drive.frames_wall_ns.push(wall_ns);
            t += FRAME_NS;
        }
    }
    if close {
        writer.close().unwrap();
    } else {
        writer.sync(u64::MAX / 2).unwrap();
        writer.abandon();
    }
    drive
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .expect("the tool is installed (make test-deps)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The text a second of footage should show: the time of its first frame,
/// then the speed and place received last before that frame.
fn expected_text(drive: &Drive, first_frame_wall_ns: i64, unit: SpeedUnit) -> String {
    let second = first_frame_wall_ns.div_euclid(1_000_000_000);
    let time = dashvault::clock::format_overlay(second * 1_000_000_000);
    let p = drive
        .positions
        .iter()
        .rev()
        .find(|p| p.received.wall_ns <= first_frame_wall_ns)
        .filter(|p| first_frame_wall_ns - p.received.wall_ns <= 3_000_000_000);
    let Some(p) = p else {
        return time;
    };
    let mps = p.speed_mm_s.unwrap() as f64 / 1000.0;
    let (speed, label) = match unit {
        SpeedUnit::Kmh => (mps * 3.6, "km/h"),
        SpeedUnit::Mph => (mps / 0.44704, "mph"),
    };
    let (lat, lon) = p.lat_lon_e7.unwrap();
    format!(
        "{time} {speed:.0} {label} {:.5}N {:.5}E",
        lat as f64 / 1e7,
        lon as f64 / 1e7
    )
}

/// Each second's first frame, in order.
fn first_frames_of_seconds(drive: &Drive) -> Vec<i64> {
    let mut firsts: Vec<i64> = Vec::new();
    for &w in &drive.frames_wall_ns {
        if firsts
            .last()
            .is_none_or(|f| f.div_euclid(1_000_000_000) != w.div_euclid(1_000_000_000))
        {
            firsts.push(w);
        }
    }
    firsts
}

fn subtitles(path: &Path) -> Vec<String> {
    let srt = run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:s", "-f", "srt", "-"]));
    // Cue blocks: number, times, text (in ffmpeg's <font> tag).
    srt.replace('\r', "")
        .split("\n\n")
        .filter_map(|block| block.lines().nth(2).map(without_tags))
        .collect()
}

fn without_tags(line: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in line.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[test]
fn an_exports_text_track_carries_the_speeds_that_were_fed_in() {
    let drive = record_drive();
    let (from, to) = drive.range();
    for unit in [SpeedUnit::Kmh, SpeedUnit::Mph] {
        let options = ExportOptions {
            time_track: true,
            speed_unit: unit,
        };
        let export = Mp4Export::open(&drive.store(), CAMERA, from, to, options).unwrap();
        let path = drive.dir.path().join(format!("drive-{unit:?}.mp4"));
        let mut body = Vec::new();
        export.write_range(0, export.len(), &mut body).unwrap();
        std::fs::write(&path, &body).unwrap();

        let texts = subtitles(&path);
        let want: Vec<String> = first_frames_of_seconds(&drive)
            .iter()
            .map(|&w| expected_text(&drive, w, unit))
            .collect();
        // The text over the stop says how long it was; the rest are the
        // seconds' texts.
        let (stop, seconds): (Vec<String>, Vec<String>) = texts
            .into_iter()
            .partition(|t| t.contains("nothing recorded"));
        assert_eq!(stop.len(), 1, "{stop:?}");
        assert!(
            stop[0].contains("then nothing recorded for 20 s"),
            "{stop:?}"
        );
        assert_eq!(seconds, want);
        // The first second starts before the first fix, and the first after
        // the stop more than 3 s after the last: neither shows a place. The
        // second second shows the fix of 0.85 s: 12 m/s.
        assert_eq!(seconds[0], "2026-11-20 10:00:00 UTC");
        assert_eq!(seconds[6], "2026-11-20 10:00:26 UTC");
        let second = match unit {
            SpeedUnit::Kmh => "10:00:01 UTC 43 km/h 52.50004N 13.40000E",
            SpeedUnit::Mph => "10:00:01 UTC 27 mph 52.50004N 13.40000E",
        };
        assert!(seconds[1].ends_with(second), "{}", seconds[1]);
    }
}

#[test]
fn a_share_clips_text_track_carries_the_same_speeds() {
    let drive = record_drive();
    let (from, to) = drive.range();
    let range = drive.store().intact_range(CAMERA, from, to).unwrap();
    let timing = range_timing(&range, SpeedUnit::Kmh);
    let seconds: Vec<String> = timing
        .texts
        .iter()
        .filter(|(_, _, frames)| !frames.is_empty())
        .map(|(text, _, _)| text.clone())
        .collect();
    let want: Vec<String> = first_frames_of_seconds(&drive)
        .iter()
        .map(|&w| expected_text(&drive, w, SpeedUnit::Kmh))
        .collect();
    assert_eq!(seconds, want);
}

#[test]
fn gpx_of_a_range_is_gpx_1_1_and_holds_every_position() {
    let drive = record_drive();
    let (from, to) = drive.range();
    let gpx = GpxExport::open(&drive.store(), CAMERA, from, to).unwrap();
    let mut body = Vec::new();
    gpx.write(&mut body).unwrap();
    assert_eq!(body.len() as u64, gpx.len());
    assert_eq!(gpx.points(), drive.positions.len());
    let path = drive.dir.path().join(gpx.file_name());
    assert_eq!(
        gpx.file_name(),
        "front_20261120T100000Z_20261120T100027.999Z.gpx"
    );
    std::fs::write(&path, &body).unwrap();

    // A real XML parser checks it against GPX 1.1's structure.
    let out = Command::new("xmllint")
        .args(["--noout", "--schema", SCHEMA])
        .arg(&path)
        .output()
        .expect("xmllint installed (make test-deps)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let xpath = |expr: &str| -> String {
        let out = run(Command::new("xmllint").args(["--xpath", expr]).arg(&path));
        out.trim_end().to_string()
    };
    let count = |name: &str| xpath(&format!("count(//*[local-name()='{name}'])"));
    assert_eq!(count("trkpt"), drive.positions.len().to_string());
    // The 20 s stop starts a second track segment.
    assert_eq!(count("trkseg"), "2");
    let p = &drive.positions[7];
    let point = "(//*[local-name()='trkpt'])[8]";
    let time = dashvault::clock::format_rfc3339_ms(p.received.wall_ns);
    for (what, want) in [
        ("/@lat", "52.5000700"),
        ("/@lon", "13.4000000"),
        ("/*[local-name()='time']", time.as_str()),
        ("//*[local-name()='speed']", "13.500"),
        ("//*[local-name()='course']", "90.00"),
        ("/*[local-name()='fix']", "3d"),
        ("/*[local-name()='hdop']", "0.90"),
        ("/*[local-name()='ele']", "34.500"),
    ] {
        assert_eq!(xpath(&format!("string({point}{what})")), want, "{what}");
    }
}

#[test]
fn verify_and_recovery_count_the_positions() {
    let drive = record_drive_then(false);
    let store = drive.store();
    let reports = store.recover().unwrap();
    let recovered = &reports[CAMERA];
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    // The last segment: 2 s of the second stretch, at 5 Hz.
    assert_eq!(recovered[0].positions, 10, "{recovered:?}");
    let report = store.verify(true).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.cameras[0].positions, drive.positions.len() as u64);
}

#[test]
fn the_track_of_closed_segments_is_read_once() {
    let drive = record_drive();
    let store = drive.store();
    let cache = TrackCache::default();
    let (from, to) = (
        START_WALL_NS - 60_000_000_000,
        START_WALL_NS + 60_000_000_000,
    );
    let first = track::summarize(&store, CAMERA, from, to, 1000, Some(&cache)).unwrap();
    assert_eq!(first.positions, drive.positions.len());
    let segments = store.segments(CAMERA).unwrap().segments;
    assert_eq!(cache.len(), segments.len());
    // Spoil every segment without changing its length: the cached tracks
    // still answer, a reader without the cache finds no position.
    for s in &segments {
        let len = std::fs::metadata(&s.path).unwrap().len();
        std::fs::write(&s.path, vec![0x5a; len as usize]).unwrap();
    }
    let again = track::summarize(&store, CAMERA, from, to, 1000, Some(&cache)).unwrap();
    assert_eq!(again.positions, first.positions);
    assert_eq!(again.points, first.points);
    assert_eq!(again.distance_m, first.distance_m);
    let uncached = track::summarize(&store, CAMERA, from, to, 1000, None).unwrap();
    assert_eq!(uncached.positions, 0);
    assert_eq!(uncached.problems.len(), segments.len());
}

#[test]
fn the_segment_being_written_shows_its_positions_before_they_reach_the_card() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::on_disk(dir.path());
    let mut writer = store
        .writer(WriterSettings {
            camera_id: CAMERA.into(),
            camera_dir: Default::default(),
            fps_milli: 30_000,
            segment_length_ns: 60_000_000_000,
            first_segment_length_ns: 60_000_000_000,
            // Nothing is synced while the test looks.
            sync_interval_ns: 3_600_000_000_000,
            want_direct: false,
            boot_id: [4; 16],
        })
        .unwrap();
    let mut cam = SyntheticCamera::new(64, 48, 1_000_000, Arc::new(SystemClock));
    cam.open().unwrap();
    let mut enc = JpegEncoder::new(EncoderSettings {
        quality: 50,
        rotation: 0,
        embed_timestamp: false,
    });
    let jpeg: Arc<[u8]> = enc.encode(&cam.next_frame().unwrap()).unwrap().jpeg.into();
    for k in 0..30u64 {
        let t = k * 100_000_000;
        let wall = START_WALL_NS + t as i64;
        writer
            .append(
                &EncodedFrame {
                    jpeg: jpeg.clone(),
                    width: 64,
                    height: 48,
                    captured: CaptureTime {
                        mono_ns: t,
                        wall_ns: wall,
                    },
                    flags: 0,
                },
                t,
            )
            .unwrap();
        writer
            .append_position(&position(k, t, wall + 1), t)
            .unwrap();
    }
    let cache = TrackCache::default();
    let range = (START_WALL_NS, START_WALL_NS + 60_000_000_000);
    let t = track::summarize(&store, CAMERA, range.0, range.1, 1000, Some(&cache)).unwrap();
    assert_eq!(t.positions, 30, "{:?}", t.problems);
    assert_eq!(t.max_speed_mps, Some(10.0 + 0.5 * 29.0));
    // The segment is still open: nothing of it is cached.
    assert!(cache.is_empty());
    // The GPX export reads the same positions.
    let gpx = GpxExport::open(&store, CAMERA, range.0, range.1).unwrap();
    assert_eq!(gpx.points(), 30);
    writer.close().unwrap();
}

#[test]
fn a_range_without_positions_has_no_gpx() {
    let drive = record_drive();
    // Before the first fix: frames, no position.
    let err = GpxExport::open(
        &drive.store(),
        CAMERA,
        START_WALL_NS,
        START_WALL_NS + 40_000_000,
    )
    .err()
    .unwrap();
    assert!(matches!(err, ExportError::NoPositions { .. }), "{err}");
    assert!(err
        .to_string()
        .starts_with("no GPS positions of camera 'front' between"));
}

fn get(ctx: &dyn Handler, path_and_query: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let query = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    let answer = ctx.handle(&Request {
        method: "GET".into(),
        path: path.into(),
        query,
        headers: vec![
            ("host".into(), "127.0.0.1".into()),
            ("authorization".into(), format!("Bearer {TOKEN}")),
        ],
        body: Vec::new(),
        peer: std::net::Ipv4Addr::LOCALHOST.into(),
        http10: false,
    });
    let body = match answer.body {
        Body::Bytes(b) => b,
        Body::Sized { len, write } => {
            let mut b = Vec::new();
            write(&mut b).unwrap();
            assert_eq!(b.len() as u64, len, "the body is as long as announced");
            b
        }
        Body::Empty => Vec::new(),
        _ => panic!("an unexpected body"),
    };
    (answer.status, answer.headers, body)
}

#[test]
fn the_dashboards_track_and_the_gpx_download_come_from_the_stored_positions() {
    let drive = record_drive();
    let ctx = api_context(drive.dir.path(), TOKEN);
    let range = "from=2026-11-20T10:00:00Z&to=2026-11-20T10:01:00Z";

    let (status, _, body) = get(&ctx, &format!("/api/track?camera=front&{range}&points=5"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let n = drive.positions.len();
    assert_eq!(v["positions"], n);
    assert_eq!(v["speed_unit"], "kmh");
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 5, "{v}");
    // First and last kept, times in order.
    let ms = |p: &PositionSample| p.received.wall_ns / 1_000_000;
    assert_eq!(points[0]["t_ms"], ms(&drive.positions[0]));
    assert_eq!(points[4]["t_ms"], ms(&drive.positions[n - 1]));
    assert!(points
        .windows(2)
        .all(|w| w[0]["t_ms"].as_i64() < w[1]["t_ms"].as_i64()));
    let top = drive.positions.last().unwrap().speed_mm_s.unwrap() as f64 / 1000.0;
    assert_eq!(v["max_speed_mps"].as_f64().unwrap(), top);
    // 1e-5 degrees of latitude a step: about 1.11 m.
    let along = v["distance_m"].as_f64().unwrap();
    let want = (n - 1) as f64 * 1.112;
    assert!((along - want).abs() < 0.01 * want, "{along} m, want {want}");

    // A range without positions is empty, not an error.
    let (status, _, body) = get(
        &ctx,
        "/api/track?camera=front&from=2026-11-20T09:00:00Z&to=2026-11-20T09:30:00Z",
    );
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["positions"], 0);
    assert_eq!(v["points"].as_array().unwrap().len(), 0);

    let (status, _, body) = get(&ctx, &format!("/api/track?camera=front&{range}&points=1"));
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("points: '1'"));

    let (status, headers, body) = get(&ctx, &format!("/api/export.gpx?camera=front&{range}"));
    assert_eq!(status, 200);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("content-type").as_deref(),
        Some("application/gpx+xml")
    );
    assert!(header("content-disposition")
        .unwrap()
        .contains("front_20261120T100000Z_20261120T100100Z.gpx"));
    let gpx = GpxExport::open(
        &drive.store(),
        CAMERA,
        START_WALL_NS,
        START_WALL_NS + 60_000_000_000,
    )
    .unwrap();
    let mut want = Vec::new();
    gpx.write(&mut want).unwrap();
    assert_eq!(body, want);

    let (status, _, body) = get(
        &ctx,
        "/api/export.gpx?camera=front&from=2026-11-20T09:00:00Z&to=2026-11-20T09:30:00Z",
    );
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("no GPS positions"));
}

#[test]
fn export_gpx_on_the_console_writes_the_same_file() {
    let drive = record_drive();
    let out = drive.dir.path().join("track.gpx");
    let config = drive.dir.path().join("no-config.json");
    let dashvault = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dashvault"));
        c.arg("--config")
            .arg(&config)
            .args(["export", "--gpx", "--data-dir"]);
        c.arg(drive.dir.path());
        c
    };
    let status = dashvault()
        .args(["--camera", "front", "--last", "1h", "-o"])
        .arg(&out)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let (from, to) = (
        *drive.frames_wall_ns.last().unwrap() + 1 - 3_600_000_000_000,
        *drive.frames_wall_ns.last().unwrap() + 1,
    );
    let gpx = GpxExport::open(&drive.store(), CAMERA, from, to).unwrap();
    let mut want = Vec::new();
    gpx.write(&mut want).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), want);

    // Before the first fix: exit status 1, and why.
    let o = dashvault()
        .args([
            "--camera",
            "front",
            "--from",
            "2026-11-20T09:00:00Z",
            "--to",
            "2026-11-20T09:10:00Z",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no GPS positions of camera 'front'"));

    let o = dashvault()
        .args(["--last", "1h", "--share"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--gpx writes the GPS track only"));
}
