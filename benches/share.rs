//! Share clip figures on 20 s of synthetic 720p30 footage, each beside a
//! peer measured in the same run (ratios mean more than absolute numbers on
//! noisy machines):
//! - frames per second of a share clip at 720p and 480p, and of its
//!   decode+scale step alone, against ffmpeg encoding the lossless export
//!   with libx264 `-preset ultrafast` and `-preset veryfast` on one thread;
//! - size of the share clip against the lossless export;
//! - SSIM of the share clip against the lossless frames (ffmpeg's ssim
//!   filter, the lossless frames scaled to the clip's size).
//!
//! - recording (a 720p30 synthetic camera through the real recorder) while
//!   a share job runs, against the same recorder with no job: frames
//!   stored per second and frames dropped.
//!
//! Targets: the 720p clip at most 1/10 of the lossless size at SSIM 0.95 or
//! more; about 150 frames/s for 720p footage to a 480p clip (five minutes in
//! under a minute).

#[allow(dead_code)] // not every helper is for this bench
mod common;
use common::{front_writer_30fps, synthetic_jpegs, synthetic_recorder};

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashvault::config::CameraConfig;
use dashvault::export::{ExportOptions, Mp4Export};
use dashvault::frame::CaptureTime;
use dashvault::share::cache::ShareCache;
use dashvault::share::clip::{software_encoder, write_clip, Quality, ShareOptions};
use dashvault::share::jobs::{JobState, ShareJobs, ShareRequest};
use dashvault::share::picture::{PictureScaler, ShareSize};
use dashvault::store::writer::EncodedFrame;
use dashvault::store::Store;

const FPS: u64 = 30;
const SECONDS: u64 = 20;
const INTERVAL_NS: u64 = 1_000_000_000 / FPS;
/// 2026-11-20T10:00:00Z
const START_WALL_NS: i64 = 1_795_168_800_000_000_000;
const END_WALL_NS: i64 = START_WALL_NS + (SECONDS * 1_000_000_000) as i64;

fn record(data_dir: &Path, jpegs: &[Arc<[u8]>]) {
    let mut w = front_writer_30fps(data_dir);
    for n in 0..SECONDS * FPS {
        let t = n * INTERVAL_NS;
        let f = EncodedFrame {
            jpeg: jpegs[n as usize % jpegs.len()].clone(),
            width: 1280,
            height: 720,
            captured: CaptureTime {
                mono_ns: t,
                wall_ns: START_WALL_NS + t as i64,
            },
            flags: 0,
        };
        w.append(&f, t).unwrap();
    }
    w.close().unwrap();
}

fn ffmpeg(args: &[&str]) -> (Duration, String) {
    let start = Instant::now();
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg installed (make test-deps)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (start.elapsed(), String::from_utf8_lossy(&out.stderr).into())
}

/// Mean SSIM ("All:") of `clip` against `reference` scaled to `height`.
fn ssim(clip: &Path, reference: &Path, height: u32) -> f64 {
    let filter = format!("[1:v]scale=-2:{height}:flags=bicubic[r];[0:v][r]ssim");
    let (_, log) = ffmpeg(&[
        "-i",
        clip.to_str().unwrap(),
        "-i",
        reference.to_str().unwrap(),
        "-lavfi",
        &filter,
        "-f",
        "null",
        "-",
    ]);
    log.lines()
        .filter_map(|l| l.split("All:").nth(1))
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .next_back()
        .unwrap_or(0.0)
}

fn main() {
    println!("dashvault share clip benchmark ({SECONDS} s of synthetic 720p30)");
    let dir = tempfile::tempdir().unwrap();
    let jpegs = synthetic_jpegs(60, 1280, 720);
    record(dir.path(), &jpegs);
    let frames = (SECONDS * FPS) as f64;

    let lossless = dir.path().join("lossless.mp4");
    let e = Mp4Export::open(
        &Store::on_disk(dir.path()),
        "front",
        START_WALL_NS,
        END_WALL_NS,
        ExportOptions::default(),
    )
    .unwrap();
    let mut w = BufWriter::new(File::create(&lossless).unwrap());
    e.write_range(0, e.len(), &mut w).unwrap();
    w.flush().unwrap();
    drop(w);
    let lossless_bytes = e.len();
    println!("lossless export: {:.1} MB", lossless_bytes as f64 / 1e6);

    for size in [ShareSize::P480, ShareSize::P720] {
        let lines = size.lines();
        let (w, h) = size.picture_size(1280, 720);
        let mut scaler = PictureScaler::new(w, h);
        let start = Instant::now();
        for n in 0..SECONDS * FPS {
            scaler.decode(&jpegs[n as usize % jpegs.len()]).unwrap();
        }
        let decode_fps = frames / start.elapsed().as_secs_f64();

        let out = dir.path().join(format!("share{lines}.mp4"));
        let start = Instant::now();
        let report = write_clip(
            &Store::on_disk(dir.path()),
            "front",
            START_WALL_NS,
            END_WALL_NS,
            ShareOptions {
                size,
                quality: Quality::Standard,
                ..ShareOptions::default()
            },
            &out,
            &software_encoder,
            &mut |_| true,
        )
        .unwrap();
        let share_fps = frames / start.elapsed().as_secs_f64();

        let mut peers = Vec::new();
        for preset in ["ultrafast", "veryfast"] {
            let peer = dir.path().join(format!("x264-{preset}-{lines}.mp4"));
            let scale = format!("scale=-2:{lines}");
            let (t, _) = ffmpeg(&[
                "-v",
                "error",
                "-i",
                lossless.to_str().unwrap(),
                "-map",
                "0:v",
                "-vf",
                &scale,
                "-c:v",
                "libx264",
                "-preset",
                preset,
                "-threads",
                "1",
                "-pix_fmt",
                "yuv420p",
                peer.to_str().unwrap(),
            ]);
            peers.push((preset, frames / t.as_secs_f64()));
        }
        let quality = ssim(&out, &lossless, h);
        println!(
            "share clip {lines}p ({}x{}, {} kbit/s, standard): {share_fps:.0} frames/s \
             (decode+scale alone {decode_fps:.0} frames/s), {:.2} MB = 1/{:.1} of lossless, SSIM {quality:.4}",
            report.width,
            report.height,
            Quality::Standard.bitrate_bps(w, h, FPS as u32) / 1000,
            report.bytes as f64 / 1e6,
            lossless_bytes as f64 / report.bytes as f64,
        );
        for (preset, fps) in peers {
            println!(
                "  vs ffmpeg libx264 -preset {preset} -threads 1: {fps:.0} frames/s, ratio share/x264 {:.2}",
                share_fps / fps
            );
        }
    }
    recording_during_a_job(dir.path());
}

/// Frames stored per second and frames dropped by a recorder of one 720p30
/// synthetic camera over `window`, while `during` runs (or idles).
fn recording_over(window: Duration, during: impl FnOnce()) -> (f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut cam = CameraConfig::synthetic("rec");
    (cam.res_width, cam.res_height, cam.fps) = (1280, 720, 30);
    let rec = synthetic_recorder(dir.path(), cam, 30);
    std::thread::sleep(Duration::from_secs(1));
    let cs = rec.status.cameras()[0].clone();
    let dropped = || {
        let s = &cs;
        [
            &s.dropped_encoder_busy,
            &s.dropped_writer_busy,
            &s.dropped_encode_error,
            &s.dropped_storage_error,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum::<u64>()
    };
    let start = (
        Instant::now(),
        cs.storage.written.load(Ordering::Relaxed),
        dropped(),
    );
    let deadline = start.0 + window;
    during();
    if let Some(left) = deadline.checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
    let written = cs.storage.written.load(Ordering::Relaxed) - start.1;
    let fps = written as f64 / start.0.elapsed().as_secs_f64();
    let drops = dropped() - start.2;
    rec.stop();
    (fps, drops)
}

/// Recording while the 20 s of footage become a 720p share clip through the
/// HTTP job (niced thread, the best encoder here), against recording alone.
fn recording_during_a_job(footage: &Path) {
    let cache_dir = tempfile::tempdir().unwrap();
    let jobs = ShareJobs::new(
        Store::on_disk(footage),
        Arc::new(ShareCache::open(cache_dir.path(), 1_000_000_000).unwrap()),
        Arc::new(dashvault::share::clip::best_encoder),
        Arc::new(dashvault::share::clip::share_encoder_description),
        0,
    );
    let mut job_s = 0.0;
    let (busy_fps, busy_drops) = recording_over(Duration::from_secs(1), || {
        let started = Instant::now();
        jobs.start(ShareRequest {
            camera: "front".into(),
            from_ns: START_WALL_NS,
            to_ns: END_WALL_NS,
            options: ShareOptions::default(),
        })
        .unwrap();
        while jobs.snapshot().unwrap().state == JobState::Running {
            std::thread::sleep(Duration::from_millis(20));
        }
        job_s = started.elapsed().as_secs_f64();
    });
    let (idle_fps, idle_drops) = recording_over(Duration::from_secs_f64(job_s), || {});
    println!(
        "recording 720p30 while a 720p share job runs ({job_s:.1} s): {busy_fps:.1} frames/s stored, \
         {busy_drops} dropped; alone over the same time: {idle_fps:.1} frames/s, {idle_drops} dropped; \
         ratio {:.3}",
        busy_fps / idle_fps
    );
}
