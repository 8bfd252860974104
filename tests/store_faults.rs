//! Retention under a tiny cap and a full or failing disk, through the
//! simulated I/O.

use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use dashvault::frame::CaptureTime;
use dashvault::status::{CameraStatus, Status};
use dashvault::store::catalog::list_all;
use dashvault::store::io::StorageIo;
use dashvault::store::reader::SegmentReader;
use dashvault::store::retention::{Retention, RetentionPolicy};
use dashvault::store::sim::SimIo;
use dashvault::store::writer::{EncodedFrame, OpenSegments, SegmentWriter, WriterSettings};

const FRAME_NS: u64 = 100_000_000;

fn data_dir() -> PathBuf {
    PathBuf::from("/data")
}

fn frame(n: u64) -> EncodedFrame {
    EncodedFrame {
        jpeg: vec![(n % 251) as u8; 10_000].into(),
        width: 64,
        height: 48,
        captured: CaptureTime {
            mono_ns: n * FRAME_NS,
            wall_ns: 1_800_000_000_000_000_000 + (n * FRAME_NS) as i64,
        },
        flags: 0,
    }
}

struct Rig {
    sim: SimIo,
    writer: SegmentWriter,
    status: Arc<Status>,
    retention: Arc<Retention>,
}

fn rig(capacity: u64, cap_bytes: u64, min_free_bytes: u64) -> Rig {
    let sim = SimIo::new(capacity);
    let io: Arc<dyn StorageIo> = Arc::new(sim.clone());
    let cam = CameraStatus::new("front");
    let status = Arc::new(Status {
        cameras: vec![cam.clone()].into(),
        ..Status::default()
    });
    let open: OpenSegments = Arc::default();
    let retention = Arc::new(Retention::new(
        io.clone(),
        &data_dir(),
        RetentionPolicy {
            cap_bytes,
            min_free_bytes,
        },
        open.clone(),
        status.store.clone(),
    ));
    let mut writer = SegmentWriter::new(
        io,
        WriterSettings {
            camera_id: "front".into(),
            camera_dir: data_dir().join("recordings/front"),
            fps_milli: 10_000,
            segment_length_ns: 1_000_000_000,
            first_segment_length_ns: 1_000_000_000,
            sync_interval_ns: 300_000_000,
            want_direct: false,
            boot_id: [0; 16],
        },
        cam.storage.clone(),
        open,
    )
    .unwrap();
    let r = retention.clone();
    writer.set_before_new_segment(Arc::new(move || {
        r.enforce();
    }));
    Rig {
        sim,
        writer,
        status,
        retention,
    }
}

fn usage(sim: &SimIo) -> u64 {
    list_all(sim, &data_dir())
        .unwrap()
        .iter()
        .map(|s| s.len)
        .sum()
}

#[test]
fn tiny_cap_keeps_the_newest_segments_and_counts_deletions() {
    let mut rig = rig(u64::MAX / 4, 400_000, 0);
    for n in 0..200 {
        rig.writer.append(&frame(n), n * FRAME_NS).unwrap();
    }
    rig.writer.close().unwrap();
    rig.retention.enforce();
    let segs = list_all(&rig.sim, &data_dir()).unwrap();
    assert!(usage(&rig.sim) <= 400_000, "usage {}", usage(&rig.sim));
    // The newest footage is kept: the last frame written is still readable.
    let newest = SegmentReader::open(&rig.sim, &segs.last().unwrap().path).unwrap();
    assert_eq!(newest.frames.last().unwrap().seq, 199);
    // Survivors are the newest, contiguous by sequence.
    let seqs: Vec<u64> = segs.iter().map(|s| s.seq).collect();
    assert_eq!(
        seqs,
        (seqs[0]..seqs[0] + seqs.len() as u64).collect::<Vec<_>>()
    );
    let deleted = rig
        .status
        .store
        .retention_deleted_segments
        .load(Ordering::Relaxed);
    assert_eq!(
        deleted,
        20 - segs.len() as u64,
        "20 segments of 10 frames were written"
    );
    assert_eq!(
        rig.status.store.retention_failures.load(Ordering::Relaxed),
        0
    );
}

#[test]
fn protected_segments_survive_and_an_unreachable_cap_is_reported() {
    let mut rig = rig(u64::MAX / 4, 1, 0);
    for n in 0..35 {
        rig.writer.append(&frame(n), n * FRAME_NS).unwrap();
    }
    let first = list_all(&rig.sim, &data_dir()).unwrap()[0].clone();
    assert_eq!(first.seq, 3, "a cap of 1 byte deletes every closed segment");
    // Protect the segment being written, close it, and enforce again.
    let open = rig.writer.current_path().unwrap().to_path_buf();
    rig.sim.put_durable(
        &PathBuf::from(format!("{}.lock", open.display())),
        Vec::new(),
    );
    rig.writer.close().unwrap();
    rig.retention.enforce();
    let left = list_all(&rig.sim, &data_dir()).unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].protected);
    assert!(rig.status.store.cap_unreachable.load(Ordering::Relaxed));
}

#[test]
fn full_disk_frees_space_through_retention_and_recording_continues() {
    // 1 MB disk, 256 KB must stay free: retention has to delete to make room.
    let mut rig = rig(1_000_000, u64::MAX, 256_000);
    let mut failures = 0;
    for n in 0..400 {
        match rig.writer.append(&frame(n), n * FRAME_NS) {
            Ok(()) => {}
            Err(e) => {
                assert!(e.is_no_space(), "unexpected error {e}");
                failures += 1;
                rig.writer.abandon();
                rig.retention.enforce();
            }
        }
    }
    rig.writer.close().unwrap();
    let segs = list_all(&rig.sim, &data_dir()).unwrap();
    let newest = SegmentReader::open(&rig.sim, &segs.last().unwrap().path).unwrap();
    assert!(
        newest.frames.last().unwrap().seq >= 390,
        "recording stopped"
    );
    assert!(
        rig.status
            .store
            .retention_deleted_segments
            .load(Ordering::Relaxed)
            > 10
    );
    println!("ENOSPC errors while filling a 1 MB disk 40 times over: {failures}");
}

#[test]
fn failing_writes_keep_synced_frames_and_recording_resumes_in_a_new_segment() {
    let mut rig = rig(u64::MAX / 4, u64::MAX, 0);
    for n in 0..5 {
        rig.writer.append(&frame(n), n * FRAME_NS).unwrap();
    }
    rig.writer.sync(5 * FRAME_NS).unwrap();
    rig.sim.fail_writes_with(Some(ErrorKind::Other));
    rig.writer.append(&frame(5), 5 * FRAME_NS).unwrap(); // buffered only
    let err = rig.writer.sync(6 * FRAME_NS).unwrap_err();
    assert!(err.to_string().contains("writing records"), "{err}");
    rig.writer.abandon();
    rig.sim.fail_writes_with(None);
    for n in 6..9 {
        rig.writer.append(&frame(n), n * FRAME_NS).unwrap();
    }
    rig.writer.close().unwrap();
    let segs = list_all(&rig.sim, &data_dir()).unwrap();
    assert_eq!(segs.len(), 2, "a fresh segment after the error");
    let old = SegmentReader::open(&rig.sim, &segs[0].path).unwrap();
    assert_eq!(
        old.frames.len(),
        5,
        "synced frames of the failed segment stay readable"
    );
    assert!(old.closed, "closed with an index once writes worked again");
    let new = SegmentReader::open(&rig.sim, &segs[1].path).unwrap();
    assert_eq!(new.frames.len(), 3);
}

// Regression tests for faults found by the disk-fault tests.

#[test]
fn segment_created_while_the_folder_cannot_be_synced_is_removed_not_left_as_zeros() {
    let mut rig = rig(u64::MAX / 4, u64::MAX, 0);
    rig.sim.fail_syncs_with(Some(ErrorKind::Other));
    let err = rig.writer.append(&frame(0), 0).unwrap_err();
    assert!(err.to_string().contains("fsync folder"), "{err}");
    assert!(
        list_all(&rig.sim, &data_dir()).unwrap().is_empty(),
        "a segment without a durable name was left behind"
    );
    rig.sim.fail_syncs_with(None);
    rig.writer.append(&frame(1), FRAME_NS).unwrap();
    rig.writer.close().unwrap();
    let segs = list_all(&rig.sim, &data_dir()).unwrap();
    assert_eq!(segs.len(), 1);
    assert!(SegmentReader::open(&rig.sim, &segs[0].path).unwrap().closed);
}

#[test]
fn segment_left_open_by_a_full_disk_is_closed_once_space_is_free_again() {
    // 200 kB disk: too small to preallocate, so segments grow as written.
    let mut rig = rig(200_000, u64::MAX, 0);
    for n in 0..5 {
        rig.writer.append(&frame(n), n * FRAME_NS).unwrap();
    }
    rig.writer.sync(5 * FRAME_NS).unwrap();
    let first = rig.writer.current_path().unwrap().to_path_buf();
    rig.writer.abandon();
    // Fill the disk: closing the abandoned segment (its index) fails when
    // the next segment opens. It must be tried again rather than forgotten
    // (start-up recovery only walks back to the newest closed segment, so
    // it would stay open for good).
    let filler = PathBuf::from("/data/filler");
    let free = rig.sim.space(&data_dir()).unwrap().free_bytes;
    rig.sim.put_durable(&filler, vec![0; free as usize]);
    rig.writer.append(&frame(5), 5 * FRAME_NS).unwrap();
    assert!(!SegmentReader::open(&rig.sim, &first).unwrap().closed);
    rig.sim.remove_file(&filler).unwrap();
    // Frame 15 starts the third segment, which retries the close first.
    for n in 6..16 {
        rig.writer.append(&frame(n), n * FRAME_NS).unwrap();
    }
    rig.writer.close().unwrap();
    let old = SegmentReader::open(&rig.sim, &first).unwrap();
    assert!(old.closed, "the abandoned segment was never closed");
    assert_eq!(old.frames.len(), 5);
    let report = dashvault::store::verify::verify(&rig.sim, &data_dir(), true).unwrap();
    assert!(report.ok, "{report:?}");
}

#[test]
fn full_disk_with_a_zero_free_space_floor_still_frees_the_oldest_segment() {
    let mut rig = rig(u64::MAX / 4, u64::MAX, 0);
    for n in 0..35 {
        rig.writer.append(&frame(n), n * FRAME_NS).unwrap();
    }
    let before = list_all(&rig.sim, &data_dir()).unwrap();
    assert_eq!(rig.retention.enforce(), 0, "the policy itself is met");
    assert_eq!(rig.retention.free_after_no_space(), 1);
    let after = list_all(&rig.sim, &data_dir()).unwrap();
    assert_eq!(after.len(), before.len() - 1);
    assert_eq!(after[0].seq, before[1].seq, "the oldest went first");
}

#[test]
fn free_space_floor_larger_than_a_small_filesystem_does_not_empty_it() {
    // 64 MB of storage with the default 256 MB floor: only a quarter of the
    // filesystem is kept free, so recorded footage stays.
    let mut rig = rig(64 << 20, u64::MAX, 256 << 20);
    for n in 0..100 {
        rig.writer.append(&frame(n), n * FRAME_NS).unwrap();
    }
    rig.writer.close().unwrap();
    rig.retention.enforce();
    let segs = list_all(&rig.sim, &data_dir()).unwrap();
    assert!(segs.len() >= 9, "only {} segments kept", segs.len());
    assert_eq!(
        rig.status
            .store
            .retention_deleted_segments
            .load(Ordering::Relaxed),
        0
    );
}

#[test]
fn deleted_data_folder_is_recreated_for_the_next_segment() {
    // Real folders: the simulated I/O has no folders to lose.
    let dir = tempfile::tempdir().unwrap();
    let io: Arc<dyn StorageIo> = Arc::new(dashvault::store::io::RealIo::new());
    let camera_dir = dir.path().join("data/recordings/front");
    let mut w = SegmentWriter::new(
        io.clone(),
        WriterSettings {
            camera_id: "front".into(),
            camera_dir: camera_dir.clone(),
            fps_milli: 10_000,
            segment_length_ns: 1_000_000_000,
            first_segment_length_ns: 1_000_000_000,
            sync_interval_ns: 300_000_000,
            want_direct: false,
            boot_id: [0; 16],
        },
        Default::default(),
        OpenSegments::default(),
    )
    .unwrap();
    for n in 0..5 {
        w.append(&frame(n), n * FRAME_NS).unwrap();
    }
    w.close().unwrap();
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    w.append(&frame(5), 5 * FRAME_NS).unwrap();
    w.close().unwrap();
    let segs = list_all(io.as_ref(), &dir.path().join("data")).unwrap();
    assert_eq!(segs.len(), 1);
    assert_eq!(
        SegmentReader::open(io.as_ref(), &segs[0].path)
            .unwrap()
            .frames[0]
            .seq,
        5
    );
}

#[test]
fn segment_deleted_while_being_written_fails_its_next_sync() {
    let mut rig = rig(u64::MAX / 4, u64::MAX, 0);
    rig.writer.append(&frame(0), 0).unwrap();
    let path = rig.writer.current_path().unwrap().to_path_buf();
    rig.sim.remove_file(&path).unwrap();
    rig.writer.append(&frame(1), FRAME_NS).unwrap();
    let err = rig.writer.sync(2 * FRAME_NS).unwrap_err();
    assert!(err.to_string().contains("disappeared"), "{err}");
}

#[test]
fn a_segment_whose_close_failed_is_closed_again_once_storage_works() {
    let mut rig = rig(u64::MAX / 4, u64::MAX, 0);
    for n in 0..5 {
        rig.writer.append(&frame(n), n * FRAME_NS).unwrap();
    }
    rig.writer.sync(5 * FRAME_NS).unwrap();
    let path = rig.writer.current_path().unwrap().to_path_buf();
    rig.sim.fail_syncs_with(Some(std::io::ErrorKind::Other));
    rig.writer.close().unwrap_err();
    rig.sim.fail_syncs_with(None);
    rig.writer.close_abandoned();
    let r = SegmentReader::open(&rig.sim, &path).unwrap();
    assert!(r.closed, "the segment whose close failed stays unclosed");
    assert_eq!(r.frames.len(), 5);
}

#[test]
fn share_clips_make_way_before_any_footage_when_space_runs_short() {
    // 2 MB disk, 300 kB kept free: the recordings (about 1 MB) alone fit,
    // a share clip of 800 kB beside them does not.
    let mut rig = rig(2_000_000, u64::MAX / 4, 300_000);
    let clip = data_dir().join("share-cache/a.mp4");
    rig.sim.put_durable(&clip, vec![0u8; 800_000]);
    let (sim, path) = (rig.sim.clone(), clip.clone());
    rig.retention.set_space_yielder(Arc::new(move |_wanted| {
        let len = sim.contents(&path).map_or(0, |c| c.len() as u64);
        if len > 0 {
            sim.remove_file(&path).unwrap();
        }
        len
    }));
    for n in 0..100 {
        rig.writer.append(&frame(n), n * FRAME_NS).unwrap();
    }
    rig.writer.close().unwrap();
    rig.retention.enforce();
    assert!(rig.sim.contents(&clip).is_none(), "the share clip was kept");
    assert_eq!(
        rig.status
            .store
            .retention_deleted_segments
            .load(Ordering::Relaxed),
        0,
        "footage was deleted while a share clip could make way"
    );
    assert_eq!(list_all(&rig.sim, &data_dir()).unwrap().len(), 10);
}
