//! Storage and pipeline figures, each beside a peer measured in the same run
//! (these machines are noisy, so ratios mean more than absolute numbers):
//! - pipeline fps (camera -> encoder pool -> writer) with 1 and 2 encoder
//!   threads, against the encoder alone on one thread;
//! - bytes written per payload byte at the default 1 s sync cadence;
//! - recovery time of a torn 60 s 720p segment, against reading the same
//!   file once;
//! - peak RSS of `dashvault run` recording 720p30, against ffmpeg encoding
//!   the same size and rate to MJPEG;
//! - listing and opening a day of one-minute segments after the clock was
//!   set (a clock anchor to apply to each), against the same without one;
//! - writing 720p30 with GPS positions at 10 Hz (bytes and time), against
//!   the same frames without positions.

#[allow(dead_code)] // not every helper is for this bench
mod common;
use common::{peak_rss_kib, synthetic_jpegs, synthetic_recorder};

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashvault::camera::synthetic::SyntheticCamera;
use dashvault::camera::CameraSource;
use dashvault::clock::SystemClock;
use dashvault::config::CameraConfig;
use dashvault::encode::{EncoderSettings, JpegEncoder};
use dashvault::frame::CaptureTime;
use dashvault::store::format::PositionSample;
use dashvault::store::io::{RealIo, StorageIo};
use dashvault::store::recovery::recover_segment;
use dashvault::store::writer::{EncodedFrame, SegmentWriter, WriterSettings};
use dashvault::store::{BootRelabel, Store};

const W: u32 = 1280;
const H: u32 = 720;

fn writer(dir: &Path, io: Arc<dyn StorageIo>, segment_s: u64) -> SegmentWriter {
    SegmentWriter::new(
        io,
        WriterSettings {
            camera_id: "front".into(),
            camera_dir: dir.join("recordings/front"),
            fps_milli: 30_000,
            segment_length_ns: segment_s * 1_000_000_000,
            first_segment_length_ns: segment_s * 1_000_000_000,
            sync_interval_ns: 1_000_000_000,
            want_direct: true,
            boot_id: [0; 16],
        },
        Default::default(),
        Default::default(),
    )
    .unwrap()
}

/// Appends `count` frames at 30 fps on a simulated clock; returns payload bytes.
fn append_frames(w: &mut SegmentWriter, jpegs: &[Arc<[u8]>], count: u64) -> u64 {
    append_frames_every(w, jpegs, count, 33_333_333)
}

/// Appends `count` frames `interval_ns` apart; returns payload bytes.
fn append_frames_every(
    w: &mut SegmentWriter,
    jpegs: &[Arc<[u8]>],
    count: u64,
    interval_ns: u64,
) -> u64 {
    let mut payload = 0;
    for n in 0..count {
        let t = n * interval_ns;
        let f = frame_at(jpegs, n, t);
        payload += f.jpeg.len() as u64;
        w.append(&f, t).unwrap();
    }
    payload
}

/// Frame `n` of the bench, captured at `t` ns on both clocks.
fn frame_at(jpegs: &[Arc<[u8]>], n: u64, t: u64) -> EncodedFrame {
    EncodedFrame {
        jpeg: jpegs[n as usize % jpegs.len()].clone(),
        width: W,
        height: H,
        captured: CaptureTime {
            mono_ns: t,
            wall_ns: t as i64,
        },
        flags: 0,
    }
}

fn pipeline_fps(threads: u8) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut cam = CameraConfig::synthetic("front");
    cam.fps = 1000; // faster than the pipeline: the pipeline is the limit
    cam.encoder_threads = threads;
    (cam.res_width, cam.res_height) = (W, H);
    let rec = synthetic_recorder(dir.path(), cam, 1000);
    std::thread::sleep(Duration::from_millis(500));
    let cs = rec.status.cameras()[0].clone();
    let start = (Instant::now(), cs.storage.written.load(Ordering::Relaxed));
    std::thread::sleep(Duration::from_secs(3));
    let written = cs.storage.written.load(Ordering::Relaxed) - start.1;
    let fps = written as f64 / start.0.elapsed().as_secs_f64();
    rec.stop();
    fps
}

fn encoder_alone_fps() -> f64 {
    let mut cam = SyntheticCamera::new(W, H, 1_000_000, Arc::new(SystemClock));
    cam.open().unwrap();
    let frames: Vec<_> = (0..8).map(|_| cam.next_frame().unwrap()).collect();
    let mut enc = JpegEncoder::new(EncoderSettings {
        quality: 75,
        rotation: 0,
        embed_timestamp: true,
    });
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(2) {
        enc.encode(&frames[n % frames.len()]).unwrap();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn write_amplification(jpegs: &[Arc<[u8]>]) -> (f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let io = Arc::new(RealIo::new());
    let mut w = writer(dir.path(), io.clone(), 60);
    // 120 s of 720p30 on a simulated clock: two full segments.
    let payload = append_frames(&mut w, jpegs, 3600);
    w.close().unwrap();
    let written = io.counters().bytes_written();
    (written as f64 / payload as f64, payload / 3600)
}

fn recovery_vs_read(jpegs: &[Arc<[u8]>]) -> (Duration, Duration, u64) {
    let dir = tempfile::tempdir().unwrap();
    let io = Arc::new(RealIo::new());
    let mut w = writer(dir.path(), io.clone(), 61);
    append_frames(&mut w, jpegs, 1800);
    w.sync(u64::MAX / 2).unwrap();
    let path = w.current_path().unwrap().to_path_buf();
    w.abandon();
    drop(w);
    // A torn tail: half a block of garbage after the last sync.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    use std::os::unix::fs::FileExt;
    let end = len.min(
        dashvault::store::reader::SegmentReader::open(&RealIo::new(), &path)
            .unwrap()
            .frames
            .last()
            .map(|f| f.offset + 48 + f.payload_len as u64 + 4096)
            .unwrap(),
    );
    file.write_all_at(&[0x5a; 2048], end).unwrap();
    drop(file);
    let size = std::fs::metadata(&path).unwrap().len();
    // Peer: read the file once, warm (the first read fills the page cache,
    // which O_DIRECT writing left empty), so both sides read from memory.
    drop(std::fs::read(&path).unwrap());
    let start = Instant::now();
    let bytes = std::fs::read(&path).unwrap();
    let read = start.elapsed();
    drop(bytes);
    let start = Instant::now();
    let report = recover_segment(io.as_ref(), &path, true).unwrap().unwrap();
    let recovery = start.elapsed();
    assert_eq!(report.frames, 1800);
    (recovery, read, size)
}

/// Lists the camera and opens every segment, `rounds` times.
fn open_all(io: &dyn StorageIo, data_dir: &Path, rounds: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..rounds {
        let segs = dashvault::store::catalog::list_segments(io, data_dir, "front")
            .unwrap()
            .segments;
        for s in &segs {
            let r = dashvault::store::reader::SegmentReader::open(io, &s.path).unwrap();
            std::hint::black_box(r.frames.len());
        }
    }
    start.elapsed()
}

/// A day of one-minute segments (1440, two frames each so the files stay
/// small), opened before and after a clock anchor relabels all of them.
fn anchored_open_vs_plain(jpegs: &[Arc<[u8]>]) -> (Duration, Duration, usize) {
    let dir = tempfile::tempdir().unwrap();
    let io = Arc::new(RealIo::new());
    let mut w = writer(dir.path(), io.clone(), 60);
    let small: Arc<[u8]> = jpegs[0][..2000.min(jpegs[0].len())].into();
    append_frames_every(&mut w, &[small], 2880, 30_000_000_000);
    w.close().unwrap();
    drop(w);
    // Warm: the writer bypassed the page cache; both sides read from memory.
    open_all(io.as_ref(), dir.path(), 1);
    let plain = open_all(io.as_ref(), dir.path(), 3);
    let first = [("front".to_string(), 0u64)].into_iter().collect();
    let n = Store::new(io.clone(), dir.path())
        .relabel_boot(&BootRelabel {
            boot_id: [0; 16],
            wall_minus_mono_ns: 86_400_000_000_000,
            current_offset_ns: 0,
            first_seq: first,
            set_at_wall_ns: 0,
        })
        .unwrap();
    let anchored = open_all(io.as_ref(), dir.path(), 3);
    (anchored, plain, n)
}

/// 120 s of 720p30 written with a GPS position every third frame (10 Hz)
/// and without: (bytes written, time) for each.
fn positions_vs_none(jpegs: &[Arc<[u8]>]) -> ((u64, Duration), (u64, Duration), u64) {
    let run = |positions: bool| {
        let dir = tempfile::tempdir().unwrap();
        let io = Arc::new(RealIo::new());
        let mut w = writer(dir.path(), io.clone(), 60);
        let mut stored = 0;
        let start = Instant::now();
        for n in 0..3600u64 {
            let t = n * 33_333_333;
            if positions && n % 3 == 0 {
                let p = PositionSample {
                    received: CaptureTime {
                        mono_ns: t,
                        wall_ns: t as i64,
                    },
                    utc_ns: Some(t as i64),
                    lat_lon_e7: Some((525_000_000 + n as i32, 134_000_000)),
                    altitude_mm: Some(34_500),
                    speed_mm_s: Some(13_900),
                    heading_cdeg: Some(9_000),
                    quality: 3,
                    satellites: Some(9),
                    hdop_centi: Some(90),
                    ..PositionSample::default()
                };
                w.append_position(&p, t).unwrap();
                stored += 1;
            }
            w.append(&frame_at(jpegs, n, t), t).unwrap();
        }
        w.close().unwrap();
        (io.counters().bytes_written(), start.elapsed(), stored)
    };
    let (none_bytes, none_time, _) = run(false);
    let (with_bytes, with_time, stored) = run(true);
    ((with_bytes, with_time), (none_bytes, none_time), stored)
}

fn main() {
    println!("dashvault storage and pipeline benchmark ({W}x{H})");
    let jpegs = synthetic_jpegs(30, W, H);

    let alone = encoder_alone_fps();
    for threads in [1u8, 2] {
        let fps = pipeline_fps(threads);
        println!(
            "pipeline, {threads} encoder thread(s): {fps:7.1} fps written  \
             (encoder alone on 1 thread: {alone:.1} fps; ratio {:.2})",
            fps / alone
        );
    }

    let (amp, frame_bytes) = write_amplification(&jpegs);
    println!(
        "bytes written per payload byte at 1 s sync, 720p30 (~{} KB frames): {amp:.4} (target <= 1.05)",
        frame_bytes / 1000
    );

    let (recovery, read, size) = recovery_vs_read(&jpegs);
    println!(
        "recovery of a torn 60 s 720p segment ({} MB): {:.1} ms (target < 100 ms); \
         reading the file once: {:.1} ms; ratio {:.2}",
        size / 1_000_000,
        recovery.as_secs_f64() * 1e3,
        read.as_secs_f64() * 1e3,
        recovery.as_secs_f64() / read.as_secs_f64()
    );

    let (anchored, plain, n) = anchored_open_vs_plain(&jpegs);
    println!(
        "listing and opening {n} segments after the clock was set: {:.1} ms; \
         the same without a clock anchor: {:.1} ms; ratio {:.2}",
        anchored.as_secs_f64() * 1e3 / 3.0,
        plain.as_secs_f64() * 1e3 / 3.0,
        anchored.as_secs_f64() / plain.as_secs_f64()
    );

    let ((with_bytes, with_time), (none_bytes, none_time), stored) = positions_vs_none(&jpegs);
    println!(
        "writing 120 s of 720p30 with {stored} GPS positions (10 Hz): {:.1} MB in {:.0} ms; \
         without positions: {:.1} MB in {:.0} ms; ratio {:.4} bytes, {:.2} time",
        with_bytes as f64 / 1e6,
        with_time.as_secs_f64() * 1e3,
        none_bytes as f64 / 1e6,
        none_time.as_secs_f64() * 1e3,
        with_bytes as f64 / none_bytes as f64,
        with_time.as_secs_f64() / none_time.as_secs_f64()
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dashvault.json"),
        r#"{"cameras":[{"id":"front","res_width":1280,"res_height":720,"fps":30}]}"#,
    )
    .unwrap();
    let mut ours = Command::new(env!("CARGO_BIN_EXE_dashvault"));
    ours.current_dir(dir.path())
        .args(["run", "--clock-offset-only", "--duration-s", "10"]);
    let ours_kib = peak_rss_kib(ours);
    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg.args([
        "-nostdin",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=30",
        "-t",
        "10",
        "-c:v",
        "mjpeg",
        "-q:v",
        "5",
        "-f",
        "null",
        "-",
    ]);
    let ffmpeg_kib = peak_rss_kib(ffmpeg);
    match (ours_kib, ffmpeg_kib) {
        (Some(o), Some(f)) => println!(
            "peak RSS recording 720p30 for 10 s: {:.1} MB (target <= 24 MB); \
             ffmpeg encoding 720p30 to MJPEG: {:.1} MB; ratio {:.2}",
            o as f64 / 1024.0,
            f as f64 / 1024.0,
            o as f64 / f as f64
        ),
        (Some(o), None) => println!(
            "peak RSS recording 720p30 for 10 s: {:.1} MB (ffmpeg not available)",
            o as f64 / 1024.0
        ),
        _ => println!("peak RSS: could not run the recorder"),
    }
}
