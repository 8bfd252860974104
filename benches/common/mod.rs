//! Helpers shared by the benchmarks.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use dashvault::camera::synthetic::SyntheticCamera;
use dashvault::camera::CameraSource;
use dashvault::clock::{Clock, SystemClock};
use dashvault::config::{CameraConfig, Config};
use dashvault::encode::{EncoderSettings, JpegEncoder};
use dashvault::recorder::{Recorder, RecorderParts};
use dashvault::store::io::{RealIo, StorageIo};
use dashvault::store::writer::{SegmentWriter, WriterSettings};
use dashvault::store::Store;

/// The store's writer for camera `front` at 30 fps in one-minute segments,
/// as the recorder writes them (O_DIRECT where the filesystem allows it).
pub fn front_writer_30fps(data_dir: &Path) -> SegmentWriter {
    let io: Arc<dyn StorageIo> = Arc::new(RealIo::new());
    SegmentWriter::new(
        io,
        WriterSettings {
            camera_id: "front".into(),
            camera_dir: data_dir.join("recordings/front"),
            fps_milli: 30_000,
            segment_length_ns: 60_000_000_000,
            first_segment_length_ns: 60_000_000_000,
            sync_interval_ns: 1_000_000_000,
            want_direct: true,
            boot_id: [7; 16],
        },
        Default::default(),
        Default::default(),
    )
    .unwrap()
}

/// The real recorder on `data_dir` with one synthetic camera of `cam`'s
/// size, delivering `source_fps` frames a second.
pub fn synthetic_recorder(data_dir: &Path, cam: CameraConfig, source_fps: u32) -> Recorder {
    let config = Config {
        cameras: vec![cam.clone()],
        ..Config::default()
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let source = Box::new(SyntheticCamera::new(
        cam.res_width,
        cam.res_height,
        source_fps,
        clock.clone(),
    ));
    Recorder::start(
        &config,
        RecorderParts {
            store: Store::on_disk(data_dir),
            clock,
            sources: vec![(cam, source)],
            want_direct: true,
            boot_id: [0; 16],
            timekeeper: None,
            discovery: None,
            status_led: None,
        },
    )
    .unwrap()
}

/// `count` JPEGs of the synthetic camera at quality 75 with the timestamp.
pub fn synthetic_jpegs(count: usize, width: u32, height: u32) -> Vec<Arc<[u8]>> {
    let mut cam = SyntheticCamera::new(width, height, 1_000_000, Arc::new(SystemClock));
    cam.open().unwrap();
    let mut enc = JpegEncoder::new(EncoderSettings {
        quality: 75,
        rotation: 0,
        embed_timestamp: true,
    });
    (0..count)
        .map(|_| enc.encode(&cam.next_frame().unwrap()).unwrap().jpeg.into())
        .collect()
}

/// Runs `cmd` to the end and returns its peak resident memory (VmHWM) in KiB,
/// sampled every 20 ms.
pub fn peak_rss_kib(mut cmd: Command) -> Option<i64> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = None;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            {
                peak = Some(peak.map_or(kib, |p: i64| p.max(kib)));
            }
        }
        if child.try_wait().ok()?.is_some() {
            return peak;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
