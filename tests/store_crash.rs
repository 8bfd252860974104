//! Crash harness for the segment store: record through the simulated I/O,
//! cut the power at every append (before and after each sync, with torn
//! writes at random byte offsets and with unsynced folder changes kept or
//! lost), then recover and check what survived. GPS positions are
//! recorded between the frames (one after every third frame) and must
//! survive exactly as frames do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dashvault::frame::CaptureTime;
use dashvault::store::catalog::list_all;
use dashvault::store::format::PositionSample;
use dashvault::store::io::StorageIo;
use dashvault::store::reader::SegmentReader;
use dashvault::store::recovery::recover_camera;
use dashvault::store::sim::{CrashCut, SimIo};
use dashvault::store::verify::verify;
use dashvault::store::writer::{EncodedFrame, SegmentWriter, WriterSettings};

const FRAME_INTERVAL_NS: u64 = 33_333_333;

fn data_dir() -> PathBuf {
    PathBuf::from("/data")
}

fn settings(first_segment_s: f64) -> WriterSettings {
    WriterSettings {
        camera_id: "front".into(),
        camera_dir: data_dir().join("recordings/front"),
        fps_milli: 30_000,
        segment_length_ns: 1_000_000_000,
        first_segment_length_ns: (first_segment_s * 1e9) as u64,
        sync_interval_ns: 200_000_000,
        want_direct: true,
        boot_id: [1; 16],
    }
}

/// Frame `n`'s bytes: distinct content and size, like real JPEGs.
fn payload(n: u64) -> Vec<u8> {
    let len = 1500 + (n * 7919 % 5000) as usize;
    let mut v: Vec<u8> = (0..len).map(|i| (i as u64 * 31 + n * 17) as u8).collect();
    v[0] = 0xff;
    v[1] = 0xd8;
    v
}

fn frame(n: u64) -> EncodedFrame {
    EncodedFrame {
        jpeg: payload(n).into(),
        width: 64,
        height: 48,
        captured: CaptureTime {
            mono_ns: 5_000_000_000 + n * FRAME_INTERVAL_NS,
            wall_ns: 1_800_000_000_000_000_000 + (n * FRAME_INTERVAL_NS) as i64,
        },
        flags: 0,
    }
}

/// Position `k`, received just after frame `3k + 2`; `k` is in its UTC.
fn position(k: u64) -> PositionSample {
    let frame = 3 * k + 2;
    PositionSample {
        received: CaptureTime {
            mono_ns: 5_000_000_000 + frame * FRAME_INTERVAL_NS + 1_000_000,
            wall_ns: 1_800_000_000_000_000_000 + (frame * FRAME_INTERVAL_NS) as i64 + 1_000_000,
        },
        flags: 0,
        utc_ns: Some(1_799_999_000_000_000_000 + k as i64),
        lat_lon_e7: Some((515_000_000 + k as i32 * 37, -1_270_000 - k as i32 * 11)),
        altitude_mm: Some(21_000 + k as i32),
        speed_mm_s: Some(13_900),
        heading_cdeg: Some((k * 250 % 36_000) as u16),
        quality: 3,
        satellites: Some(8),
        hdop_centi: Some(95),
    }
}

/// Every stored position, by `k`, read through the reader.
fn stored_positions(io: &dyn StorageIo) -> BTreeMap<u64, PositionSample> {
    let mut out = BTreeMap::new();
    for seg in list_all(io, &data_dir()).unwrap() {
        let reader = SegmentReader::open(io, &seg.path).unwrap();
        for p in reader.positions {
            let k = (p.utc_ns.unwrap() - 1_799_999_000_000_000_000) as u64;
            assert!(out.insert(k, p).is_none(), "position {k} stored twice");
        }
    }
    out
}

/// Every stored frame, by sequence number, read through the CRC-checking reader.
fn stored_frames(io: &dyn StorageIo) -> BTreeMap<u64, Vec<u8>> {
    let mut out = BTreeMap::new();
    for seg in list_all(io, &data_dir()).unwrap() {
        let reader = SegmentReader::open(io, &seg.path).unwrap();
        for (i, e) in reader.frames.iter().enumerate() {
            let bytes = reader.read_frame(i).unwrap();
            assert!(
                out.insert(e.seq, bytes).is_none(),
                "frame {} stored twice",
                e.seq
            );
        }
    }
    out
}

fn file_states(io: &SimIo) -> Vec<(PathBuf, Vec<u8>)> {
    io.live_files()
        .into_iter()
        .map(|p| {
            let c = io.contents(&p).unwrap();
            (p, c)
        })
        .collect()
}

/// How many frames and positions were written, and how many of each are
/// known durable, at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    durable_frames: u64,
    written_frames: u64,
    durable_positions: u64,
    written_positions: u64,
}

/// Recovers a crash image and checks every promise the store makes.
fn check_image(image: SimIo, n: Counts, what: &str) {
    let (durable_frames, written_frames) = (n.durable_frames, n.written_frames);
    let reports = recover_camera(&image, &data_dir(), "front").unwrap();
    let frames = stored_frames(&image);
    let positions = stored_positions(&image);
    for k in 0..n.durable_positions {
        assert!(
            positions.get(&k) == Some(&position(k)),
            "{what}: synced position {k} lost or changed ({reports:?})"
        );
    }
    for (k, p) in &positions {
        assert!(
            *k < n.written_positions,
            "{what}: position {k} was never written"
        );
        assert_eq!(p, &position(*k), "{what}: position {k} changed");
    }
    // A cut keeps a prefix of the writes: positions too come back gap-free.
    if let Some(last) = positions.keys().last() {
        assert_eq!(positions.len() as u64, last + 1, "{what}: gap in positions");
    }
    for n in 0..durable_frames {
        assert!(
            frames.get(&n) == Some(&payload(n)),
            "{what}: synced frame {n} lost or changed ({reports:?})"
        );
    }
    for (n, bytes) in &frames {
        assert!(*n < written_frames, "{what}: frame {n} was never written");
        assert!(bytes == &payload(*n), "{what}: frame {n} has wrong bytes");
    }
    // Frames come back as a contiguous run: nothing in the middle went missing.
    if let (Some(first), Some(last)) = (frames.keys().next(), frames.keys().last()) {
        assert_eq!(*first, 0, "{what}");
        assert_eq!(
            frames.len() as u64,
            last + 1,
            "{what}: gap in recovered frames"
        );
    }
    let report = verify(&image, &data_dir(), true).unwrap();
    assert!(
        report.ok,
        "{what}: verify --deep after recovery: {report:?}"
    );
    assert!(
        report.cameras.iter().all(|c| c.unclosed.is_empty()),
        "{what}"
    );

    // Idempotent: a second recovery finds nothing to do and changes nothing.
    let before = file_states(&image);
    let again = recover_camera(&image, &data_dir(), "front").unwrap();
    assert!(again.is_empty(), "{what}: second recovery did {again:?}");
    assert_eq!(
        before,
        file_states(&image),
        "{what}: second recovery changed files"
    );

    // Recording resumes into a fresh segment and numbering continues.
    let io: Arc<dyn StorageIo> = Arc::new(image.clone());
    let mut w = SegmentWriter::new(
        io.clone(),
        settings(1.0),
        Default::default(),
        Default::default(),
    )
    .unwrap();
    let next = frames.keys().last().map_or(0, |l| l + 1);
    let mut f = frame(next + 1000);
    f.jpeg = payload(next).into();
    w.append(&f, 0).unwrap();
    w.close().unwrap();
    let after = stored_frames(&image);
    assert!(after.get(&next) == Some(&payload(next)), "{what}: resume");
    assert_eq!(after.len(), frames.len() + 1, "{what}");
    assert_eq!(stored_positions(&image), positions, "{what}: resume");
}

/// Records `total` frames and checks crash images at two kinds of moments:
/// after each append (`check_after_append`) and in the middle of every sync,
/// after its write was issued and before `fdatasync` returned
/// (`check_mid_sync`), where torn and lost writes really exist.
/// Checks one moment: (live I/O, what is written and durable, phase).
type MomentCheck = Arc<dyn Fn(&SimIo, Counts, &str) + Send + Sync>;

fn record(total: u64, check: MomentCheck) {
    use std::sync::Mutex;
    let sim = SimIo::default();
    let counts = Arc::new(Mutex::new(Counts::default()));
    {
        let (counts, check) = (counts.clone(), check.clone());
        sim.on_write(Some(Arc::new(move |io: &SimIo| {
            let n = *counts.lock().unwrap();
            check(io, n, "mid-sync")
        })));
    }
    let io: Arc<dyn StorageIo> = Arc::new(sim.clone());
    let mut w =
        SegmentWriter::new(io, settings(0.5), Default::default(), Default::default()).unwrap();
    let mut syncs = sim.sync_count();
    // After a record was appended: a sync that leaves nothing unsynced
    // makes everything durable; a sync only from closing the previous
    // segment covers what was appended before this frame.
    let settle = |c: &mut Counts, w: &SegmentWriter, syncs: &mut u64, frame_appended: bool| {
        if w.unsynced_bytes() == 0 && sim.unsynced_bytes() == 0 {
            c.durable_frames = c.written_frames;
            c.durable_positions = c.written_positions;
        } else if frame_appended && sim.sync_count() != *syncs {
            c.durable_frames = c.written_frames - 1;
            c.durable_positions = c.written_positions;
        }
        *syncs = sim.sync_count();
    };
    for n in 0..total {
        let f = frame(n);
        counts.lock().unwrap().written_frames = n + 1;
        w.append(&f, f.captured.mono_ns).unwrap();
        let now = {
            let mut c = counts.lock().unwrap();
            settle(&mut c, &w, &mut syncs, true);
            *c
        };
        check(&sim, now, "after append");
        if n % 3 == 2 {
            let k = n / 3;
            counts.lock().unwrap().written_positions = k + 1;
            w.append_position(&position(k), position(k).received.mono_ns)
                .unwrap();
            let now = {
                let mut c = counts.lock().unwrap();
                settle(&mut c, &w, &mut syncs, false);
                *c
            };
            check(&sim, now, "after a position");
        }
    }
    w.close().unwrap();
    sim.on_write(None);
    let mut c = *counts.lock().unwrap();
    c.durable_frames = c.written_frames;
    c.durable_positions = c.written_positions;
    check(&sim, c, "after close");
}

/// Crash images per moment: nothing unsynced kept, all of it, a random
/// torn prefix, half of it; each with unsynced folder changes kept or lost.
fn crash_states(sim: &SimIo, rng: &mut u64) -> Vec<CrashCut> {
    let unsynced = sim.unsynced_bytes();
    let mut keeps = vec![0, unsynced, unsynced / 2 + 1];
    // Inside a sync, tear the write at many random bytes.
    let random_cuts = if unsynced > 0 { 8 } else { 1 };
    for _ in 0..random_cuts {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        keeps.push(*rng % (unsynced + 1));
    }
    let mut cuts = Vec::new();
    for keep in keeps {
        for entries in [false, true] {
            cuts.push(CrashCut {
                keep_unsynced_bytes: keep.min(unsynced),
                keep_unsynced_entries: entries,
            });
        }
    }
    cuts
}

#[test]
fn every_synced_frame_and_position_survives_a_cut_at_every_append_and_inside_every_sync() {
    use std::sync::Mutex;
    let counts = Arc::new(Mutex::new((0u64, 0u64, 0x9e37_79b9_7f4a_7c15u64)));
    let c = counts.clone();
    record(
        200,
        Arc::new(move |sim: &SimIo, n: Counts, phase: &str| {
            let mut g = c.lock().unwrap();
            let torn = sim.unsynced_bytes() > 0;
            for cut in crash_states(sim, &mut g.2) {
                let what = format!("{phase}, {n:?}, {cut:?}");
                check_image(sim.crash_image(cut), n, &what);
                g.0 += 1;
                if torn && cut.keep_unsynced_bytes > 0 {
                    g.1 += 1;
                }
            }
        }),
    );
    let (images, with_torn_writes, _) = *counts.lock().unwrap();
    println!("crash images checked: {images}, with partial unsynced writes: {with_torn_writes}");
    assert!(images >= 2000, "only {images} crash images");
    assert!(
        with_torn_writes >= 500,
        "only {with_torn_writes} images had torn writes"
    );
}

/// A segment of `frames` frames, all synced, still open.
fn synced_segment(frames: u64) -> (SimIo, SegmentWriter) {
    let sim = SimIo::default();
    let io: Arc<dyn StorageIo> = Arc::new(sim.clone());
    let mut w =
        SegmentWriter::new(io, settings(10.0), Default::default(), Default::default()).unwrap();
    for n in 0..frames {
        let f = frame(n);
        w.append(&f, f.captured.mono_ns).unwrap();
    }
    w.sync(u64::MAX / 2).unwrap();
    (sim, w)
}

#[test]
fn zero_filled_preallocated_tail_is_trimmed_not_served() {
    let (sim, _writer) = synced_segment(20);
    let image = sim.crash_image(CrashCut::default());
    let len_before = list_all(&image, &data_dir()).unwrap()[0].len;
    let reports = recover_camera(&image, &data_dir(), "front").unwrap();
    let r = &reports[0];
    assert_eq!(r.frames, 20);
    assert!(r.trimmed_bytes > 0, "{r:?}");
    assert_eq!(r.torn_bytes, 0);
    let after = list_all(&image, &data_dir()).unwrap()[0].len;
    assert!(after < len_before, "{after} >= {len_before}");
    assert_eq!(stored_frames(&image).len(), 20);
}

#[test]
fn garbage_after_the_last_record_is_cut_and_reported() {
    let (sim, mut w) = synced_segment(10);
    let path = w.current_path().unwrap().to_path_buf();
    w.abandon();
    drop(w);
    let mut bytes = sim.contents(&path).unwrap();
    let end = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
    bytes.truncate(end.next_multiple_of(4096));
    bytes.extend((0..5000).map(|i| (i * 13 % 251) as u8 | 1));
    sim.put_durable(&path, bytes);
    let reports = recover_camera(&sim, &data_dir(), "front").unwrap();
    assert_eq!(reports[0].frames, 10);
    assert_eq!(reports[0].torn_bytes, 5000);
    assert_eq!(stored_frames(&sim).len(), 10);
}

#[test]
fn a_file_that_is_not_a_segment_is_set_aside_not_served() {
    let sim = SimIo::default();
    let path = data_dir().join("recordings/front/000000000000_20260101T000000Z.dvr");
    sim.put_durable(&path, b"definitely not a segment".repeat(100));
    let reports = recover_camera(&sim, &data_dir(), "front").unwrap();
    assert!(reports[0].action.contains("moved aside"), "{reports:?}");
    assert!(stored_frames(&sim).is_empty());
    let report = verify(&sim, &data_dir(), false).unwrap();
    assert!(!report.ok, "a quarantined file must make verify fail");
    assert!(Path::new(&format!("{}.bad", path.display()))
        .file_name()
        .is_some());
}

#[test]
fn two_unclosed_segments_are_both_closed_at_start() {
    // A stop while the disk was still full can leave the segment abandoned
    // after an I/O error unclosed behind the newest one.
    let (sim, mut first) = synced_segment(10);
    first.abandon();
    drop(first);
    let io: Arc<dyn StorageIo> = Arc::new(sim.clone());
    let mut second =
        SegmentWriter::new(io, settings(10.0), Default::default(), Default::default()).unwrap();
    for n in 10..20 {
        let f = frame(n);
        second.append(&f, f.captured.mono_ns).unwrap();
    }
    second.sync(u64::MAX / 2).unwrap();
    second.abandon();
    drop(second);
    assert_eq!(list_all(&sim, &data_dir()).unwrap().len(), 2);
    let reports = recover_camera(&sim, &data_dir(), "front").unwrap();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!(stored_frames(&sim).len(), 20);
    let report = verify(&sim, &data_dir(), true).unwrap();
    assert!(report.ok, "{report:?}");
    assert!(recover_camera(&sim, &data_dir(), "front")
        .unwrap()
        .is_empty());
}
