//! Crash-state torture: record a whole run (two cameras, segment
//! rotations, retention deletions, a restart with recovery in the middle)
//! through the simulated I/O with every operation logged, then replay the
//! log and, after every operation, build the crash images a power cut could
//! leave there (unsynced 4 KiB blocks kept in any subset, torn at a sector,
//! size changes and folder entries kept or lost). Each image is recovered
//! and checked through the reader, playback, export and `verify --deep`.
//! The front camera also records GPS positions (10 Hz, between its
//! frames); every synced position must survive as frames do.
//!
//! `DASHVAULT_TORTURE=full` (what `make torture` sets) records longer and
//! tries more states per moment.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dashvault::export::{ExportOptions, Mp4Export};
use dashvault::frame::CaptureTime;
use dashvault::status::{CameraStatus, Status};
use dashvault::store::catalog::{list_all, list_cameras};
use dashvault::store::crash_states::{CrashChoice, Replay, Unit};
use dashvault::store::format::{PositionSample, RecordHeader, RecordKind, HEADER_LEN};
use dashvault::store::io::StorageIo;
use dashvault::store::reader::SegmentReader;
use dashvault::store::recovery::recover_camera;
use dashvault::store::retention::{Retention, RetentionPolicy};
use dashvault::store::sim::SimIo;
use dashvault::store::verify::verify;
use dashvault::store::writer::{EncodedFrame, OpenSegments, SegmentWriter, WriterSettings};
use dashvault::store::Store;

const CAMERAS: [(&str, u64); 2] = [("front", 1), ("rear", 2)];
const TICK_NS: u64 = 33_333_333;
const WALL_BASE_NS: i64 = 1_800_000_000_000_000_000;
/// One image in this many also checks that recording resumes on it.
const RESUME_EVERY: u64 = 4;

struct Scale {
    /// Ticks of 1/30 s recorded.
    ticks: u64,
    /// Random subsets tried per moment (besides none, all and prefixes).
    random_subsets: usize,
    /// Moments with at most this many volatile units get every subset.
    exhaustive_units: usize,
    /// Also tear every block with the other units kept at random.
    tear_with_random_rest: bool,
    min_states: u64,
}

fn scale() -> Scale {
    if std::env::var("DASHVAULT_TORTURE").as_deref() == Ok("full") {
        Scale {
            ticks: 1500,
            random_subsets: 64,
            exhaustive_units: 8,
            tear_with_random_rest: true,
            min_states: 50_000,
        }
    } else {
        Scale {
            ticks: 420,
            random_subsets: 24,
            exhaustive_units: 6,
            tear_with_random_rest: false,
            min_states: 10_000,
        }
    }
}

fn data_dir() -> PathBuf {
    PathBuf::from("/data")
}

fn camera_index(camera: &str) -> u64 {
    CAMERAS.iter().position(|(c, _)| *c == camera).unwrap() as u64
}

/// Frame `seq` of `camera`: content and size that depend on both.
fn payload(camera: &str, seq: u64) -> Vec<u8> {
    let k = camera_index(camera);
    let len = 600 + ((seq * 7919 + k * 104_729) % 2600) as usize;
    let mut v: Vec<u8> = (0..len)
        .map(|i| (i as u64 * 31 + seq * 17 + k * 101) as u8)
        .collect();
    v[0] = 0xff;
    v[1] = 0xd8;
    v[2..10].copy_from_slice(&seq.to_le_bytes());
    v
}

fn frame(camera: &str, seq: u64, tick: u64) -> EncodedFrame {
    EncodedFrame {
        jpeg: payload(camera, seq).into(),
        width: 64,
        height: 48,
        captured: CaptureTime {
            mono_ns: 1_000_000_000 + tick * TICK_NS,
            wall_ns: WALL_BASE_NS + (tick * TICK_NS) as i64,
        },
        flags: 0,
    }
}

/// The camera that records positions, and how often (every this many ticks).
const GPS_CAMERA: &str = "front";
const GPS_EVERY_TICKS: u64 = 3;
const UTC_BASE_NS: i64 = 1_799_000_000_000_000_000;

/// Position `k`, received at `tick`; `k` is in its UTC.
fn position(k: u64, tick: u64) -> PositionSample {
    PositionSample {
        received: CaptureTime {
            mono_ns: 1_000_000_000 + tick * TICK_NS + 5_000_000,
            wall_ns: WALL_BASE_NS + (tick * TICK_NS) as i64 + 5_000_000,
        },
        flags: 0,
        utc_ns: Some(UTC_BASE_NS + k as i64),
        lat_lon_e7: Some((480_000_000 + (k * 13) as i32, 110_000_000 - (k * 7) as i32)),
        altitude_mm: Some(500_000),
        speed_mm_s: (k % 5 != 0).then_some(k as u32 * 10),
        heading_cdeg: Some((k * 90 % 36_000) as u16),
        quality: 3,
        satellites: Some(10),
        hdop_centi: Some(120),
    }
}

/// The `k` of a stored position.
fn position_id(p: &PositionSample) -> u64 {
    (p.utc_ns.unwrap_or(UTC_BASE_NS) - UTC_BASE_NS) as u64
}

struct Rig {
    writers: Vec<SegmentWriter>,
    next_seq: Vec<u64>,
}

fn start_recording(io: &Arc<dyn StorageIo>) -> Rig {
    let status = Arc::new(Status {
        cameras: CAMERAS
            .iter()
            .map(|(c, _)| CameraStatus::new(c))
            .collect::<Vec<_>>()
            .into(),
        ..Status::default()
    });
    let open: OpenSegments = Arc::default();
    // A cap of a few segments, so retention deletes all along.
    let retention = Arc::new(Retention::new(
        io.clone(),
        &data_dir(),
        RetentionPolicy {
            cap_bytes: 160_000,
            min_free_bytes: 0,
        },
        open.clone(),
        status.store.clone(),
    ));
    let mut writers = Vec::new();
    let mut next_seq = Vec::new();
    for (i, (camera, every)) in CAMERAS.iter().enumerate() {
        let mut w = SegmentWriter::new(
            io.clone(),
            WriterSettings {
                camera_id: camera.to_string(),
                camera_dir: data_dir().join("recordings").join(camera),
                fps_milli: 30_000 / *every as u32,
                segment_length_ns: 1_000_000_000,
                first_segment_length_ns: 1_000_000_000 / (i as u64 + 1),
                sync_interval_ns: 200_000_000,
                want_direct: true,
                boot_id: [7; 16],
            },
            status.cameras()[i].storage.clone(),
            open.clone(),
        )
        .unwrap();
        let r = retention.clone();
        w.set_before_new_segment(Arc::new(move || {
            r.enforce();
        }));
        next_seq.push(last_stored_seq(io.as_ref(), camera).map_or(0, |s| s + 1));
        writers.push(w);
    }
    Rig { writers, next_seq }
}

fn last_stored_seq(io: &dyn StorageIo, camera: &str) -> Option<u64> {
    let segs = list_all(io, &data_dir()).ok()?;
    let newest = segs.iter().rev().find(|s| s.camera == camera)?;
    SegmentReader::open(io, &newest.path)
        .ok()?
        .frames
        .last()
        .map(|f| f.seq)
}

/// Records the run and returns its operation log.
fn record_run(ticks: u64) -> dashvault::store::sim::IoLog {
    let sim = SimIo::default();
    sim.start_log();
    let io: Arc<dyn StorageIo> = Arc::new(sim.clone());
    let mut rig = start_recording(&io);
    // Position numbers go on across the restart (the tick says when each
    // was received, so `check_image` can rebuild it).
    let mut next_position = 0u64;
    let gps = camera_index(GPS_CAMERA) as usize;
    for tick in 0..ticks {
        if tick == ticks / 2 {
            // A power cut and a restart in the middle: buffered frames are
            // lost, recovery closes the open segments, recording goes on.
            for w in &mut rig.writers {
                w.abandon();
            }
            drop(rig);
            for (camera, _) in CAMERAS {
                recover_camera(io.as_ref(), &data_dir(), camera).unwrap();
            }
            rig = start_recording(&io);
        }
        let now = 1_000_000_000 + tick * TICK_NS;
        for (i, (camera, every)) in CAMERAS.iter().enumerate() {
            if tick % every == 0 {
                let seq = rig.next_seq[i];
                rig.writers[i]
                    .append(&frame(camera, seq, tick), now)
                    .unwrap();
                rig.next_seq[i] += 1;
            } else {
                rig.writers[i].tick(now).unwrap();
            }
        }
        if tick % GPS_EVERY_TICKS == 1 {
            rig.writers[gps]
                .append_position(&position(next_position, tick), now)
                .unwrap();
            next_position += 1;
        }
    }
    for w in &mut rig.writers {
        w.close().unwrap();
    }
    sim.take_log()
}

/// What must survive a crash: frames by (camera, number), positions by
/// (camera, k).
#[derive(Default)]
struct MustHave {
    frames: BTreeSet<(String, u64)>,
    positions: BTreeSet<(String, u64)>,
}

/// Frames and positions in the synced bytes of every file that must
/// survive: the oracle, read with the record decoder alone (no reader, no
/// recovery).
fn synced_records(replay: &Replay) -> MustHave {
    let mut out = MustHave::default();
    for (path, bytes) in replay.synced_files() {
        if path.extension().and_then(|e| e.to_str()) != Some("dvr") {
            continue;
        }
        let camera = camera_of(&path);
        let mut pos = 0usize;
        while pos + HEADER_LEN <= bytes.len() {
            let Ok(h) = RecordHeader::decode(&bytes[pos..pos + HEADER_LEN]) else {
                break;
            };
            let end = pos + HEADER_LEN + h.payload_len as usize;
            if end > bytes.len() || h.check_payload(&bytes[pos + HEADER_LEN..end]).is_err() {
                break;
            }
            let payload = &bytes[pos + HEADER_LEN..end];
            match h.kind {
                RecordKind::Frame => {
                    out.frames.insert((camera.clone(), h.seq));
                }
                RecordKind::Position => {
                    let p = PositionSample::decode_payload(payload, h.time(), h.flags)
                        .expect("a position record the writer wrote decodes");
                    out.positions.insert((camera.clone(), position_id(&p)));
                }
                _ => {}
            }
            pos = end;
        }
    }
    out
}

fn camera_of(path: &Path) -> String {
    path.parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn files(io: &SimIo) -> Vec<(PathBuf, Vec<u8>)> {
    io.live_files()
        .into_iter()
        .map(|p| {
            let c = io.contents(&p).unwrap_or_default();
            (p, c)
        })
        .collect()
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Counts bytes written, so export output needs no memory.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Recovers one crash image and checks every promise the store makes.
fn check_image(image: &SimIo, must_have: &MustHave, check_resume: bool) -> Result<(), String> {
    let cameras = list_cameras(image, &data_dir()).map_err(|e| e.to_string())?;
    for camera in &cameras {
        recover_camera(image, &data_dir(), camera).map_err(|e| format!("recovery: {e}"))?;
    }
    // Every frame through the CRC-checking reader.
    let mut stored: BTreeMap<String, BTreeMap<u64, usize>> = BTreeMap::new();
    let mut positions: BTreeSet<(String, u64)> = BTreeSet::new();
    for seg in list_all(image, &data_dir()).map_err(|e| e.to_string())? {
        let r = SegmentReader::open(image, &seg.path).map_err(|e| format!("reader: {e}"))?;
        ensure!(r.closed, "{} not closed after recovery", seg.name);
        for p in &r.positions {
            let k = position_id(p);
            // Received a few ms after the tick it was appended at.
            let tick = (p.received.mono_ns - 1_000_000_000 - 5_000_000) / TICK_NS;
            ensure!(
                seg.camera == GPS_CAMERA && *p == position(k, tick),
                "{} position {k} was never written",
                seg.camera
            );
            ensure!(
                positions.insert((seg.camera.clone(), k)),
                "{} position {k} stored twice",
                seg.camera
            );
        }
        for (i, e) in r.frames.iter().enumerate() {
            let bytes = r.read_frame(i).map_err(|e| format!("read_frame: {e}"))?;
            ensure!(
                bytes == payload(&seg.camera, e.seq),
                "{} frame {} has bytes that were never written",
                seg.camera,
                e.seq
            );
            let cam = stored.entry(seg.camera.clone()).or_default();
            ensure!(
                cam.insert(e.seq, bytes.len()).is_none(),
                "{} frame {} stored twice",
                seg.camera,
                e.seq
            );
        }
    }
    for (camera, seq) in &must_have.frames {
        ensure!(
            stored.get(camera).is_some_and(|c| c.contains_key(seq)),
            "synced frame {camera}/{seq} lost"
        );
    }
    for (camera, k) in &must_have.positions {
        ensure!(
            positions.contains(&(camera.clone(), *k)),
            "synced position {camera}/{k} lost"
        );
    }
    // Playback and export see exactly the stored frames.
    for (camera, frames) in &stored {
        let range = Store::new(Arc::new(image.clone()), data_dir())
            .range(camera, 0, i64::MAX / 2)
            .map_err(|e| format!("playback: {e}"))?;
        ensure!(range.problems.is_empty(), "playback: {:?}", range.problems);
        let mut played = 0;
        let mut buf = Vec::new();
        for seg in &range.segments {
            let run = seg
                .reader
                .read_run(seg.frames.clone(), &mut buf)
                .map_err(|e| format!("playback read: {e}"))?;
            for k in 0..run.len() {
                let e = &seg.entries()[k];
                ensure!(
                    run.payload(k) == payload(camera, e.seq).as_slice(),
                    "playback served wrong bytes for {camera}/{}",
                    e.seq
                );
            }
            played += run.len();
        }
        ensure!(
            played == frames.len(),
            "playback {played} frames, stored {}",
            frames.len()
        );
        let export = Mp4Export::open(
            &Store::new(Arc::new(image.clone()), data_dir()),
            camera,
            0,
            i64::MAX / 2,
            ExportOptions::default(),
        )
        .map_err(|e| format!("export: {e}"))?;
        ensure!(export.frame_count() == frames.len(), "export frame count");
        let mut out = Counter(0);
        export
            .write_range(0, export.len(), &mut out)
            .map_err(|e| format!("export write: {e}"))?;
        ensure!(out.0 == export.len(), "export length");
    }
    let report = verify(image, &data_dir(), true).map_err(|e| e.to_string())?;
    ensure!(report.ok, "verify --deep: {report:?}");

    // Idempotent: recovering again finds nothing and changes nothing.
    let before = files(image);
    for camera in &cameras {
        let again = recover_camera(image, &data_dir(), camera).map_err(|e| e.to_string())?;
        ensure!(again.is_empty(), "second recovery did {again:?}");
    }
    ensure!(before == files(image), "second recovery changed files");

    // Recording resumes and numbering continues. (Each resume preallocates
    // a fresh segment per camera, so it runs on a share of the images.)
    if !check_resume {
        return Ok(());
    }
    let io: Arc<dyn StorageIo> = Arc::new(image.clone());
    let mut rig = start_recording(&io);
    for (i, (camera, _)) in CAMERAS.iter().enumerate() {
        let seq = rig.next_seq[i];
        let expected = stored
            .get(*camera)
            .and_then(|c| c.keys().last())
            .map_or(0, |s| s + 1);
        ensure!(
            seq == expected,
            "{camera} would resume at {seq}, not {expected}"
        );
        rig.writers[i]
            .append(&frame(camera, seq, 100_000), 0)
            .map_err(|e| format!("resume: {e}"))?;
        rig.writers[i].close().map_err(|e| format!("resume: {e}"))?;
        ensure!(
            last_stored_seq(io.as_ref(), camera) == Some(seq),
            "{camera}: resumed frame {seq} not stored"
        );
    }
    Ok(())
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The crash choices tried at one moment: every subset when there are few
/// volatile units, else none, all, every issue-order prefix and random
/// subsets; then every block torn at every sector boundary, and random
/// subsets with one block torn.
fn choices(units: &[Unit], scale: &Scale, rng: &mut Rng) -> Vec<CrashChoice> {
    let n = units.len();
    let mut out = Vec::new();
    if n <= scale.exhaustive_units {
        for mask in 0u64..(1 << n) {
            out.push(CrashChoice {
                keep: (0..n).map(|i| mask >> i & 1 == 1).collect(),
                torn: None,
            });
        }
    } else {
        for prefix in 0..=n {
            out.push(CrashChoice {
                keep: (0..n).map(|i| i < prefix).collect(),
                torn: None,
            });
        }
        for _ in 0..scale.random_subsets {
            out.push(CrashChoice {
                keep: (0..n).map(|_| rng.next() % 2 == 0).collect(),
                torn: None,
            });
        }
    }
    let blocks: Vec<usize> = (0..n)
        .filter(|&i| matches!(units[i], Unit::Block { .. }))
        .collect();
    // Every block torn at every sector, the rest kept, then the rest lost.
    for &b in &blocks {
        for sectors in 1..8 {
            for rest in [Some(true), Some(false), None] {
                let mut keep: Vec<bool> = match rest {
                    Some(all) => vec![all; n],
                    None if scale.tear_with_random_rest => {
                        (0..n).map(|_| rng.next() % 2 == 0).collect()
                    }
                    None => continue,
                };
                keep[b] = true;
                out.push(CrashChoice {
                    keep,
                    torn: Some((b, sectors)),
                });
            }
        }
    }
    if !blocks.is_empty() {
        for _ in 0..(scale.random_subsets / 3).max(2) {
            let mut keep: Vec<bool> = (0..n).map(|_| rng.next() % 2 == 0).collect();
            let b = blocks[(rng.next() % blocks.len() as u64) as usize];
            keep[b] = true;
            out.push(CrashChoice {
                keep,
                torn: Some((b, 1 + rng.next() % 7)),
            });
        }
    }
    out
}

#[test]
fn every_crash_state_of_a_recorded_run_recovers_with_all_synced_frames_and_positions() {
    let scale = scale();
    let log = record_run(scale.ticks);
    let ops = log.ops.len();
    let mut replay = Replay::new(log);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut tried, mut failed, mut torn, mut lost_entries) = (0u64, 0u64, 0u64, 0u64);
    let mut first_failures = Vec::new();
    let mut synced_positions = BTreeSet::new();
    while replay.step() {
        let units = replay.units();
        let must_have = synced_records(&replay);
        synced_positions.extend(must_have.positions.iter().cloned());
        for choice in choices(&units, &scale, &mut rng) {
            let image = replay.image(&units, &choice);
            tried += 1;
            torn += choice.torn.is_some() as u64;
            lost_entries += units
                .iter()
                .zip(&choice.keep)
                .any(|(u, k)| matches!(u, Unit::Entry { .. }) && !k)
                as u64;
            if let Err(e) = check_image(&image, &must_have, tried % RESUME_EVERY == 0) {
                failed += 1;
                if first_failures.len() < 5 {
                    first_failures.push(format!(
                        "after op {} ({:?}), {choice:?}: {e}",
                        replay.position(),
                        replay
                            .last_op()
                            .map(|op| format!("{op:?}").chars().take(120).collect::<String>())
                    ));
                }
            }
        }
    }
    let synced_positions = synced_positions.len();
    println!(
        "crash states: {tried} tried, {failed} failed ({ops} logged operations; {torn} with a torn block, {lost_entries} with folder changes lost; {synced_positions} positions synced in all)"
    );
    assert!(first_failures.is_empty(), "{}", first_failures.join("\n"));
    assert!(
        synced_positions as u64 >= scale.ticks / GPS_EVERY_TICKS * 3 / 4,
        "only {synced_positions} positions were ever synced"
    );
    assert!(
        tried >= scale.min_states,
        "only {tried} crash states, want {}",
        scale.min_states
    );
}
