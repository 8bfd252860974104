//! Crash harness for the segment store: record through the simulated I/O,
//! cut the power at every append (before and after each sync, with torn
//! writes at random byte offsets and with unsynced folder changes kept or
//! lost), then recover and check what survived.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dashvault::frame::CaptureTime;
use dashvault::store::catalog::list_all;
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

/// Recovers a crash image and checks every promise the store makes.
fn check_image(image: SimIo, durable_frames: u64, written_frames: u64, what: &str) {
    let reports = recover_camera(&image, &data_dir(), "front").unwrap();
    let frames = stored_frames(&image);
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
}

/// Records `total` frames and checks crash images at two kinds of moments:
/// after each append (`check_after_append`) and in the middle of every sync,
/// after its write was issued and before `fdatasync` returned
/// (`check_mid_sync`), where torn and lost writes really exist.
/// Checks one moment: (live I/O, frames known durable, frames written, phase).
type MomentCheck = Arc<dyn Fn(&SimIo, u64, u64, &str) + Send + Sync>;

fn record(total: u64, check: MomentCheck) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let sim = SimIo::default();
    let durable = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    {
        let (durable, written, check) = (durable.clone(), written.clone(), check.clone());
        sim.on_write(Some(Arc::new(move |io: &SimIo| {
            check(
                io,
                durable.load(Ordering::SeqCst),
                written.load(Ordering::SeqCst),
                "mid-sync",
            )
        })));
    }
    let io: Arc<dyn StorageIo> = Arc::new(sim.clone());
    let mut w =
        SegmentWriter::new(io, settings(0.5), Default::default(), Default::default()).unwrap();
    let mut syncs = sim.sync_count();
    for n in 0..total {
        let f = frame(n);
        written.store(n + 1, Ordering::SeqCst);
        w.append(&f, f.captured.mono_ns).unwrap();
        // A sync after this frame was buffered leaves nothing unsynced; a
        // sync only from closing the previous segment covers earlier frames.
        if w.unsynced_bytes() == 0 && sim.unsynced_bytes() == 0 {
            durable.store(n + 1, Ordering::SeqCst);
        } else if sim.sync_count() != syncs {
            durable.store(n, Ordering::SeqCst);
        }
        syncs = sim.sync_count();
        check(&sim, durable.load(Ordering::SeqCst), n + 1, "after append");
    }
    w.close().unwrap();
    sim.on_write(None);
    check(&sim, total, total, "after close");
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
fn every_synced_frame_survives_a_cut_at_every_append_and_inside_every_sync() {
    use std::sync::Mutex;
    let counts = Arc::new(Mutex::new((0u64, 0u64, 0x9e37_79b9_7f4a_7c15u64)));
    let c = counts.clone();
    record(
        200,
        Arc::new(move |sim: &SimIo, durable, written, phase: &str| {
            let mut g = c.lock().unwrap();
            let torn = sim.unsynced_bytes() > 0;
            for cut in crash_states(sim, &mut g.2) {
                let what = format!("{phase}, frame {written}, {cut:?}");
                check_image(sim.crash_image(cut), durable, written, &what);
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
