//! Damage at rest: a worn card flips bits, zeroes blocks, loses the end of a
//! file; a person renames files or leaves a folder or a link where a
//! segment was. Each case starts from the same closed recording on the real
//! filesystem, applies one fault, and checks, through the store's front
//! door:
//! - `verify --deep` names the file and the kind of damage (or, for what a
//!   cut leaves, says "pending recovery" and stays ok);
//! - an export serves no damaged byte and loses no intact frame;
//! - a restart (recovery) deletes nothing intact;
//! - recording resumes with frame numbers above every frame number a
//!   readable segment still holds (numbers of frames lost with the end of
//!   a truncated file are gone with it).
//!
//! "Intact" is judged from outside the store: a frame is intact when its
//! record's bytes are still where the writer put them, in a regular file.
//! The recording carries GPS positions too (5 Hz, between the frames); a
//! damaged position record must cost that position at most, never a frame.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dashvault::camera::synthetic::SyntheticCamera;
use dashvault::camera::CameraSource;
use dashvault::clock::SystemClock;
use dashvault::encode::{EncoderSettings, JpegEncoder};
use dashvault::export::{ExportOptions, Mp4Export};
use dashvault::frame::CaptureTime;
use dashvault::store::format::{
    PositionSample, RecordHeader, RecordKind, BLOCK_BYTES, HEADER_LEN, INDEX_POSITION_LEN,
    POSITION_PAYLOAD_LEN,
};
use dashvault::store::verify::{DamageKind, VerifyReport};
use dashvault::store::writer::{EncodedFrame, WriterSettings};
use dashvault::store::Store;

const FPS: u64 = 10;
const FRAME_NS: u64 = 1_000_000_000 / FPS;
/// Four segments of 2 s; the last one is the newest.
const FRAMES: u64 = 80;
const WALL_BASE_NS: i64 = 1_800_000_000_000_000_000;

/// One stored frame as the writer put it.
#[derive(Clone, Debug)]
struct Placed {
    seq: u64,
    /// The segment's file name at recording time.
    segment: String,
    offset: u64,
    /// The whole record: header and JPEG.
    record: Vec<u8>,
    jpeg: Vec<u8>,
}

/// One stored position record as the writer put it.
#[derive(Clone, Debug)]
struct PlacedPosition {
    segment: String,
    offset: u64,
    sample: PositionSample,
}

struct Pristine {
    dir: tempfile::TempDir,
    frames: Vec<Placed>,
    positions: Vec<PlacedPosition>,
    /// Segment names, oldest first.
    segments: Vec<String>,
}

fn camera_dir(data: &Path) -> PathBuf {
    data.join("recordings/front")
}

fn settings() -> WriterSettings {
    WriterSettings {
        camera_id: "front".into(),
        camera_dir: PathBuf::new(),
        fps_milli: (FPS * 1000) as u32,
        segment_length_ns: 2_000_000_000,
        first_segment_length_ns: 2_000_000_000,
        sync_interval_ns: 300_000_000,
        want_direct: false,
        boot_id: [5; 16],
    }
}

fn jpegs(count: u64) -> Vec<Vec<u8>> {
    let mut cam = SyntheticCamera::new(160, 120, 1_000_000, Arc::new(SystemClock));
    cam.open().unwrap();
    let mut enc = JpegEncoder::new(EncoderSettings {
        quality: 60,
        rotation: 0,
        embed_timestamp: true,
    });
    (0..count)
        .map(|_| enc.encode(&cam.next_frame().unwrap()).unwrap().jpeg)
        .collect()
}

/// Position `k`, received just after frame `2k + 1`.
fn position(k: u64) -> PositionSample {
    let t = (2 * k + 1) * FRAME_NS + 20_000_000;
    PositionSample {
        received: CaptureTime {
            mono_ns: 1_000_000_000 + t,
            wall_ns: WALL_BASE_NS + t as i64,
        },
        flags: 0,
        utc_ns: Some(WALL_BASE_NS - 2_000_000_000 + t as i64),
        lat_lon_e7: Some((453_000_000 + k as i32 * 50, 75_000_000 + k as i32 * 80)),
        altitude_mm: Some(240_000),
        speed_mm_s: Some(16_000 + k as u32),
        heading_cdeg: Some(9_000),
        quality: 3,
        satellites: Some(12),
        hdop_centi: Some(70),
    }
}

/// The position records of a segment file, found with the record decoder
/// alone (from offset 0 to the first record that does not check).
fn position_records(segment: &str, bytes: &[u8]) -> Vec<PlacedPosition> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Ok(h) = RecordHeader::decode(&bytes[pos..(pos + HEADER_LEN).min(bytes.len())]) {
        let end = pos + h.record_len() as usize;
        if end > bytes.len() || h.check_payload(&bytes[pos + HEADER_LEN..end]).is_err() {
            break;
        }
        if h.kind == RecordKind::Position {
            out.push(PlacedPosition {
                segment: segment.to_string(),
                offset: pos as u64,
                sample: PositionSample::decode_payload(
                    &bytes[pos + HEADER_LEN..end],
                    h.time(),
                    h.flags,
                )
                .unwrap(),
            });
        }
        pos = end;
    }
    out
}

/// Records the pristine store once; each case copies it.
fn pristine() -> &'static Pristine {
    static P: std::sync::OnceLock<Pristine> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::on_disk(dir.path());
        let mut w = store.writer(settings()).unwrap();
        for (n, jpeg) in jpegs(FRAMES).into_iter().enumerate() {
            let t = n as u64 * FRAME_NS;
            let frame = EncodedFrame {
                jpeg: jpeg.into(),
                width: 160,
                height: 120,
                captured: CaptureTime {
                    mono_ns: 1_000_000_000 + t,
                    wall_ns: WALL_BASE_NS + t as i64,
                },
                flags: 0,
            };
            w.append(&frame, frame.captured.mono_ns).unwrap();
            if n % 2 == 1 {
                let p = position(n as u64 / 2);
                w.append_position(&p, p.received.mono_ns).unwrap();
            }
        }
        w.close().unwrap();
        drop(w);
        let mut frames = Vec::new();
        let mut positions = Vec::new();
        let mut segments = Vec::new();
        for seg in store.segments("front").unwrap().segments {
            let bytes = std::fs::read(&seg.path).unwrap();
            let r = store.open_segment(&seg).unwrap();
            assert!(r.closed);
            let placed = position_records(&seg.name, &bytes);
            let samples: Vec<PositionSample> = placed.iter().map(|p| p.sample).collect();
            assert_eq!(r.positions, samples, "{}", seg.name);
            positions.extend(placed);
            for (i, e) in r.frames.iter().enumerate() {
                let at = e.offset as usize;
                frames.push(Placed {
                    seq: e.seq,
                    segment: seg.name.clone(),
                    offset: e.offset,
                    record: bytes[at..at + HEADER_LEN + e.payload_len as usize].to_vec(),
                    jpeg: r.read_frame(i).unwrap(),
                });
            }
            segments.push(seg.name.clone());
        }
        assert_eq!(frames.len() as u64, FRAMES);
        assert_eq!(positions.len() as u64, FRAMES / 2);
        assert_eq!(segments.len(), 4, "{segments:?}");
        Pristine {
            dir,
            frames,
            positions,
            segments,
        }
    })
}

/// A fresh copy of the pristine store.
fn copy() -> (tempfile::TempDir, PathBuf) {
    let p = pristine();
    let dir = tempfile::tempdir().unwrap();
    let from = camera_dir(p.dir.path());
    let to = camera_dir(dir.path());
    std::fs::create_dir_all(&to).unwrap();
    for name in &p.segments {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
    (dir, to)
}

fn path_of(cam: &Path, k: usize) -> PathBuf {
    cam.join(&pristine().segments[k])
}

/// Cuts the file to `len(old)` bytes.
fn shorten(path: &Path, len: impl Fn(u64) -> u64) {
    let old = std::fs::metadata(path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len(old)).unwrap();
}

/// The frame a restarted recorder writes, 100 s after the recording.
fn resumed_frame() -> EncodedFrame {
    EncodedFrame {
        jpeg: pristine().frames[0].jpeg.clone().into(),
        width: 160,
        height: 120,
        captured: CaptureTime {
            mono_ns: 100_000_000_000,
            wall_ns: WALL_BASE_NS + 100_000_000_000,
        },
        flags: 0,
    }
}

fn flip(path: &Path, at: u64, mask: u8) {
    let mut b = std::fs::read(path).unwrap();
    b[at as usize] ^= mask;
    std::fs::write(path, b).unwrap();
}

/// Frames of `segment` in the pristine recording.
fn frames_of(k: usize) -> Vec<&'static Placed> {
    let name = &pristine().segments[k];
    pristine()
        .frames
        .iter()
        .filter(|f| &f.segment == name)
        .collect()
}

/// Positions of `segment` in the pristine recording.
fn positions_of(k: usize) -> Vec<&'static PlacedPosition> {
    let name = &pristine().segments[k];
    pristine()
        .positions
        .iter()
        .filter(|p| &p.segment == name)
        .collect()
}

/// The positions a reader of segment `k` of `data` gives.
fn positions_read(data: &Path, k: usize) -> Vec<PositionSample> {
    let store = Store::on_disk(data);
    let seg = store.segments("front").unwrap().segments[k].clone();
    store.open_segment(&seg).unwrap().positions
}

/// The file offset of the index record of a closed segment's file.
fn index_offset(path: &Path) -> u64 {
    let b = std::fs::read(path).unwrap();
    let t = &b[b.len() - 32..];
    u64::from_le_bytes(t[8..16].try_into().unwrap())
}

/// The frames still intact in `data`, judged from outside: the record's
/// bytes are where they were, in a regular file. `renamed` maps an old
/// segment name to where its bytes are now.
fn intact_frames(data: &Path, renamed: &BTreeMap<String, String>) -> BTreeSet<u64> {
    let cam = camera_dir(data);
    let mut out = BTreeSet::new();
    for f in &pristine().frames {
        let name = renamed.get(&f.segment).unwrap_or(&f.segment);
        let path = cam.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.file_type().is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let at = f.offset as usize;
        if bytes.get(at..at + f.record.len()) == Some(f.record.as_slice()) {
            out.insert(f.seq);
        }
    }
    out
}

/// Every frame an export of everything serves, with its bytes checked
/// against what was recorded. Also builds the MP4 and writes it whole.
fn exported(store: &Store) -> BTreeSet<u64> {
    let range = store.intact_range("front", 0, i64::MAX / 2).unwrap();
    let mut seen = BTreeSet::new();
    let mut buf = Vec::new();
    for seg in &range.segments {
        let run = seg
            .reader
            .read_run(seg.frames.clone(), &mut buf)
            .expect("an intact range reads whole");
        for k in 0..run.len() {
            let e = &seg.entries()[k];
            let original = pristine().frames.iter().find(|f| f.seq == e.seq).unwrap();
            assert_eq!(
                run.payload(k),
                original.jpeg.as_slice(),
                "frame {} served with bytes that were never recorded",
                e.seq
            );
            assert!(seen.insert(e.seq), "frame {} served twice", e.seq);
        }
    }
    let export = Mp4Export::open(store, "front", 0, i64::MAX / 2, ExportOptions::default());
    if let Ok(export) = export {
        assert_eq!(export.frame_count(), seen.len());
        let mut out = Vec::new();
        export.write_range(0, export.len(), &mut out).unwrap();
        assert_eq!(out.len() as u64, export.len());
    }
    seen
}

/// What every case checks after its fault. `expect` is the file and kind
/// verify must name, or `None` when the fault is a state a cut leaves.
fn check_case(
    what: &str,
    data: &Path,
    renamed: &BTreeMap<String, String>,
    expect: Option<(&str, DamageKind)>,
) -> VerifyReport {
    let store = Store::on_disk(data);
    let intact = intact_frames(data, renamed);
    // Every frame number a readable segment still lists, damaged or not.
    let listed = store
        .range("front", 0, i64::MAX / 2)
        .unwrap()
        .frames()
        .map(|f| f.2.seq)
        .max();
    let report = store.verify(true).unwrap();
    match expect {
        Some((file, kind)) => {
            assert!(!report.ok, "{what}: verify found nothing: {report:#?}");
            let problems = &report.cameras[0].problems;
            assert!(
                problems.iter().any(|p| p.segment == file && p.kind == kind),
                "{what}: verify does not name {file} as {kind:?}: {problems:#?}"
            );
        }
        None => {
            assert!(
                report.ok,
                "{what}: a cut's state called damage: {report:#?}"
            );
            assert!(report.pending_recovery, "{what}: {report:#?}");
        }
    }
    // Export and playback: exactly the intact frames.
    let served = exported(&store);
    let lost: Vec<_> = intact.difference(&served).collect();
    assert!(
        lost.is_empty(),
        "{what}: intact frames not served: {lost:?}"
    );
    assert!(
        served.is_subset(&intact),
        "{what}: damaged frames served: {:?}",
        served.difference(&intact).collect::<Vec<_>>()
    );
    // A restart deletes nothing intact.
    store.recover().unwrap();
    let reserved = exported(&Store::on_disk(data));
    assert!(
        intact.is_subset(&reserved),
        "{what}: recovery lost intact frames: {:?}",
        intact.difference(&reserved).collect::<Vec<_>>()
    );
    // Recording resumes above every stored frame number.
    let mut w = store.writer(settings()).unwrap();
    let f = resumed_frame();
    w.append(&f, f.captured.mono_ns).unwrap();
    w.close().unwrap();
    let newest = store.range("front", WALL_BASE_NS + 99_000_000_000, i64::MAX / 2);
    let seq = newest.unwrap().frames().last().unwrap().2.seq;
    let highest = listed.max(intact.last().copied()).unwrap();
    assert!(
        seq > highest,
        "{what}: resumed at frame {seq}, not above {highest}"
    );
    report
}

fn none() -> BTreeMap<String, String> {
    BTreeMap::new()
}

#[test]
fn recovery_kept_the_newest_closed_segment_whose_stream_header_had_a_flipped_bit() {
    let (dir, cam) = copy();
    let newest = &pristine().segments[3];
    flip(&path_of(&cam, 3), 60, 0x04); // inside the stream-header payload
    check_case(
        "stream header of the newest",
        dir.path(),
        &none(),
        Some((newest, DamageKind::StreamHeader)),
    );
    assert!(cam.join(newest).exists(), "the segment was deleted");
    assert!(!cam.join(format!("{newest}.bad")).exists());
}

#[test]
fn export_kept_every_intact_segment_when_a_stream_header_was_damaged() {
    for k in 0..4 {
        let (dir, cam) = copy();
        flip(&path_of(&cam, k), 5, 0x01); // the stream header's flags byte
        let store = Store::on_disk(dir.path());
        assert_eq!(exported(&store).len() as u64, FRAMES, "segment {k}");
        check_case(
            "stream header",
            dir.path(),
            &none(),
            Some((&pristine().segments[k], DamageKind::StreamHeader)),
        );
    }
}

#[test]
fn a_damaged_frame_costs_that_frame_and_is_named_by_verify_and_export() {
    let (dir, cam) = copy();
    let victim = frames_of(1)[4];
    flip(
        &path_of(&cam, 1),
        victim.offset + HEADER_LEN as u64 + 200,
        0x80,
    );
    let report = check_case(
        "frame payload",
        dir.path(),
        &none(),
        Some((&pristine().segments[1], DamageKind::BadRecord)),
    );
    assert_eq!(report.cameras[0].bad_records, 1);
    let store = Store::on_disk(dir.path());
    let range = store.intact_range("front", 0, i64::MAX / 2).unwrap();
    assert_eq!(range.skipped.len(), 1, "{:?}", range.skipped);
    let s = &range.skipped[0];
    assert_eq!(
        (s.segment.as_str(), s.offset, s.frames),
        (pristine().segments[1].as_str(), victim.offset, 1)
    );
}

#[test]
fn a_zeroed_block_costs_only_the_frames_in_it() {
    let (dir, cam) = copy();
    let path = path_of(&cam, 2);
    let mut b = std::fs::read(&path).unwrap();
    let block = BLOCK_BYTES * 2;
    b[block..block + BLOCK_BYTES].fill(0);
    std::fs::write(&path, b).unwrap();
    let hit = FRAMES as usize - intact_frames(dir.path(), &none()).len();
    assert!(hit >= 1);
    // The frames it hit are one span, named once.
    let range = Store::on_disk(dir.path())
        .intact_range("front", 0, i64::MAX / 2)
        .unwrap();
    assert_eq!(range.skipped.len(), 1, "{:?}", range.skipped);
    assert_eq!(range.skipped[0].frames as usize, hit);
    check_case(
        "zeroed block",
        dir.path(),
        &none(),
        Some((&pristine().segments[2], DamageKind::BadRecord)),
    );
}

#[test]
fn a_damaged_index_leaves_every_frame_readable() {
    let (dir, cam) = copy();
    let path = path_of(&cam, 1);
    let len = std::fs::metadata(&path).unwrap().len();
    flip(&path, len - 32 - 40, 0x10); // inside the index entries
    check_case(
        "index of an older segment",
        dir.path(),
        &none(),
        Some((&pristine().segments[1], DamageKind::DamagedIndex)),
    );
}

#[test]
fn verify_found_a_truncated_newest_segment() {
    let (dir, cam) = copy();
    shorten(&path_of(&cam, 3), |len| len / 2 + 17);
    check_case(
        "truncated newest",
        dir.path(),
        &none(),
        Some((&pristine().segments[3], DamageKind::Truncated)),
    );
}

#[test]
fn verify_found_a_truncated_older_segment() {
    let (dir, cam) = copy();
    shorten(&path_of(&cam, 1), |len| len / 2 + 3);
    check_case(
        "truncated older",
        dir.path(),
        &none(),
        Some((&pristine().segments[1], DamageKind::Truncated)),
    );
}

#[test]
fn verify_found_the_trailer_removed_from_the_newest_segment() {
    let (dir, cam) = copy();
    shorten(&path_of(&cam, 3), |len| len - 32);
    check_case(
        "trailer removed",
        dir.path(),
        &none(),
        Some((&pristine().segments[3], DamageKind::TrailerRemoved)),
    );
}

#[test]
fn verify_found_garbage_appended_to_the_newest_segment() {
    for garbage in [100usize, BLOCK_BYTES] {
        let (dir, cam) = copy();
        let path = path_of(&cam, 3);
        let mut b = std::fs::read(&path).unwrap();
        b.extend((0..garbage).map(|i| (i * 7 + 1) as u8));
        std::fs::write(&path, b).unwrap();
        check_case(
            "garbage appended",
            dir.path(),
            &none(),
            Some((&pristine().segments[3], DamageKind::AfterTrailer)),
        );
    }
}

#[test]
fn verify_found_two_segment_files_with_swapped_names() {
    let (dir, cam) = copy();
    let (a, b) = (&pristine().segments[1], &pristine().segments[2]);
    let tmp = cam.join("swap");
    std::fs::rename(cam.join(a), &tmp).unwrap();
    std::fs::rename(cam.join(b), cam.join(a)).unwrap();
    std::fs::rename(&tmp, cam.join(b)).unwrap();
    let renamed: BTreeMap<String, String> = [(a.clone(), b.clone()), (b.clone(), a.clone())]
        .into_iter()
        .collect();
    let report = check_case(
        "swapped names",
        dir.path(),
        &renamed,
        Some((a, DamageKind::NameMismatch)),
    );
    let problems = &report.cameras[0].problems;
    assert!(problems
        .iter()
        .any(|p| &p.segment == b && p.kind == DamageKind::NameMismatch));
    // The export still runs forward in time.
    let store = Store::on_disk(dir.path());
    let range = store.intact_range("front", 0, i64::MAX / 2).unwrap();
    let walls: Vec<i64> = range.frames().map(|f| f.2.wall_ns).collect();
    assert!(
        walls.windows(2).all(|w| w[0] < w[1]),
        "export goes back in time"
    );
}

#[test]
fn verify_found_a_folder_in_place_of_a_segment() {
    let (dir, cam) = copy();
    let name = &pristine().segments[1];
    std::fs::remove_file(cam.join(name)).unwrap();
    std::fs::create_dir(cam.join(name)).unwrap();
    check_case(
        "folder",
        dir.path(),
        &none(),
        Some((name, DamageKind::NotAFile)),
    );
}

#[test]
fn a_symlink_in_place_of_a_segment_is_reported_and_never_read() {
    let (dir, cam) = copy();
    let name = &pristine().segments[2];
    // A link to a real segment elsewhere: reading through it would serve
    // footage that is not this camera's file.
    let elsewhere = dir.path().join("elsewhere.dvr");
    std::fs::rename(cam.join(name), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, cam.join(name)).unwrap();
    check_case(
        "symlink",
        dir.path(),
        &none(),
        Some((name, DamageKind::NotAFile)),
    );
}

#[test]
fn a_zero_length_older_segment_is_damage_and_kept_for_inspection() {
    let (dir, cam) = copy();
    let name = &pristine().segments[1];
    std::fs::write(cam.join(name), b"").unwrap();
    check_case(
        "zero-length older",
        dir.path(),
        &none(),
        Some((name, DamageKind::UnclosedNotNewest)),
    );
    // Recovery set it aside rather than deleting the evidence.
    assert!(cam.join(format!("{name}.bad")).exists());
    let report = Store::on_disk(dir.path()).verify(false).unwrap();
    assert!(!report.ok);
}

#[test]
fn verify_called_a_created_but_never_synced_segment_pending_not_damage() {
    for len in [0usize, 1 << 20] {
        let (dir, cam) = copy();
        // What a cut right after the create (and preallocation) leaves.
        std::fs::write(
            cam.join("000000000004_20270115T080008Z.dvr"),
            vec![0u8; len],
        )
        .unwrap();
        let report = check_case("created, never synced", dir.path(), &none(), None);
        assert_eq!(
            report.cameras[0].pending[0].segment,
            "000000000004_20270115T080008Z.dvr"
        );
        // Recovery removed it; nothing is pending any more.
        let report = Store::on_disk(dir.path()).verify(true).unwrap();
        assert!(report.ok && !report.pending_recovery, "{report:#?}");
    }
}

#[test]
fn random_bit_flips_in_older_segments_cost_only_what_they_hit() {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let cases = 40;
    for case in 0..cases {
        let (dir, cam) = copy();
        let k = (next() % 3) as usize; // not the newest: a cut explains nothing there
        let path = path_of(&cam, k);
        let len = std::fs::metadata(&path).unwrap().len();
        let at = next() % len;
        flip(&path, at, 1 << (next() % 8));
        let store = Store::on_disk(dir.path());
        let report = store.verify(true).unwrap();
        let name = &pristine().segments[k];
        let named: Vec<_> = report.cameras[0]
            .problems
            .iter()
            .filter(|p| &p.segment == name)
            .collect();
        // A flip in padding is damage too; every flip is found.
        assert!(
            !report.ok && !named.is_empty(),
            "case {case}: flip at byte {at} of {name} not found: {report:#?}"
        );
        for p in named {
            *kinds.entry(format!("{:?}", p.kind)).or_default() += 1;
        }
        let kind = report.cameras[0].problems[0].kind;
        check_case(
            &format!("flip {case} at byte {at} of {name}"),
            dir.path(),
            &none(),
            Some((name, kind)),
        );
    }
    println!("random bit flips: {cases} cases, kinds named: {kinds:?}");
}

#[test]
fn every_bit_flip_in_the_index_or_trailer_of_an_older_segment_costs_no_frame() {
    let name = &pristine().segments[1];
    let len = std::fs::metadata(camera_dir(pristine().dir.path()).join(name))
        .unwrap()
        .len();
    let index_len = len - 32 - index_offset(&camera_dir(pristine().dir.path()).join(name));
    // The trailer, the index record's header, and every 29th byte of its
    // entries and stream-header copy.
    let mut spots: Vec<u64> = (len - 32..len).collect();
    let index_at = len - 32 - index_len.min(len - 32);
    spots.extend(
        (0..index_len)
            .filter(|i| *i < 48 || i % 29 == 0)
            .map(|i| index_at + i),
    );
    let mut kinds = BTreeSet::new();
    for at in &spots {
        let (dir, cam) = copy();
        flip(&path_of(&cam, 1), *at, 0x08);
        let report = Store::on_disk(dir.path()).verify(true).unwrap();
        let Some(p) = report.cameras[0]
            .problems
            .iter()
            .find(|p| &p.segment == name)
        else {
            // Only a flip in the padding before the index can go unseen
            // by the quick checks; the deep scan sees it as damaged bytes.
            panic!("flip at byte {at} not found: {report:#?}");
        };
        kinds.insert(format!("{:?}", p.kind));
        let kind = p.kind;
        assert_eq!(
            exported(&Store::on_disk(dir.path())).len() as u64,
            FRAMES,
            "byte {at}: a frame was lost"
        );
        check_case(
            &format!("index/trailer flip at byte {at}"),
            dir.path(),
            &none(),
            Some((name, kind)),
        );
    }
    println!(
        "index and trailer flips: {} spots, kinds named: {kinds:?}",
        spots.len()
    );
}

#[test]
fn verify_found_a_copied_segment_whose_frame_numbers_go_backwards_and_export_serves_each_once() {
    let (dir, cam) = copy();
    // An older segment copied under the next number: its frames repeat.
    let copied = "000000000004_20270115T080008Z.dvr";
    std::fs::copy(path_of(&cam, 1), cam.join(copied)).unwrap();
    let report = check_case(
        "copied segment",
        dir.path(),
        &none(),
        Some((copied, DamageKind::FramesBackwards)),
    );
    let problems = &report.cameras[0].problems;
    assert!(problems
        .iter()
        .any(|p| p.segment == copied && p.kind == DamageKind::NameMismatch));
}

#[test]
fn verify_found_two_files_with_one_segment_number() {
    let (dir, cam) = copy();
    let twin = "000000000002_20270115T090000Z.dvr";
    std::fs::copy(path_of(&cam, 2), cam.join(twin)).unwrap();
    check_case(
        "duplicate number",
        dir.path(),
        &none(),
        Some((twin, DamageKind::DuplicateNumber)),
    );
}

/// The pristine recording on simulated storage, for faults the real
/// filesystem cannot make (read errors).
fn simulated() -> (dashvault::store::sim::SimIo, Store) {
    let sim = dashvault::store::sim::SimIo::default();
    let cam = camera_dir(Path::new("/data"));
    for name in &pristine().segments {
        let bytes = std::fs::read(camera_dir(pristine().dir.path()).join(name)).unwrap();
        sim.put_durable(&cam.join(name), bytes);
    }
    let store = Store::new(Arc::new(sim.clone()), "/data");
    (sim, store)
}

#[test]
fn a_segment_that_cannot_be_read_does_not_stop_recovery_or_recording() {
    let (sim, store) = simulated();
    let cam = camera_dir(Path::new("/data"));
    sim.fail_reads_of(Some(cam.join(&pristine().segments[0])));
    let reports = store.recover().expect("recovery goes on past a bad sector");
    let r = &reports["front"];
    assert!(
        r.iter()
            .any(|r| r.segment == pristine().segments[0] && r.action.contains("cannot be read")),
        "{r:?}"
    );
    // Recording resumes above what the other segments hold.
    let mut w = store.writer(settings()).unwrap();
    let f = resumed_frame();
    w.append(&f, f.captured.mono_ns).unwrap();
    w.close().unwrap();
    let report = store.verify(true).unwrap();
    let problems = &report.cameras[0].problems;
    assert!(problems
        .iter()
        .any(|p| p.segment == pristine().segments[0] && p.kind == DamageKind::Unreadable));
    // Every other frame still exports.
    let range = store.intact_range("front", 0, i64::MAX / 2).unwrap();
    assert_eq!(
        range.frame_count(),
        FRAMES as usize - frames_of(0).len() + 1
    );
}

#[test]
fn verify_calls_a_newest_segment_whose_close_was_not_trimmed_pending() {
    // A cut during close: index and trailer landed, the trim of the
    // preallocation did not, so zeros follow the trailer.
    let (dir, cam) = copy();
    let path = path_of(&cam, 3);
    let mut b = std::fs::read(&path).unwrap();
    b.extend(vec![0u8; 3 * BLOCK_BYTES]);
    std::fs::write(&path, b).unwrap();
    check_case("untrimmed close", dir.path(), &none(), None);
    let report = Store::on_disk(dir.path()).verify(true).unwrap();
    assert!(report.ok && !report.pending_recovery, "{report:#?}");
}

#[test]
fn verify_and_recovery_agree_on_a_damaged_index_before_a_segment_being_created() {
    let (dir, cam) = copy();
    let path = path_of(&cam, 3);
    let len = std::fs::metadata(&path).unwrap().len();
    flip(&path, len - 32 - 40, 0x10); // the newest closed segment's index
                                      // ... and a newer segment, created but not yet synced.
    std::fs::write(
        cam.join("000000000004_20270115T080008Z.dvr"),
        vec![0u8; 8192],
    )
    .unwrap();
    let store = Store::on_disk(dir.path());
    let before = store.verify(true).unwrap();
    assert!(!before.ok, "{before:#?}");
    let damaged = |r: &VerifyReport| {
        r.cameras[0]
            .problems
            .iter()
            .any(|p| p.segment == pristine().segments[3] && p.kind == DamageKind::DamagedIndex)
    };
    assert!(damaged(&before), "{before:#?}");
    // Recovery removes the empty newest file; the damaged index is then the
    // newest one, which recovery writes again (verify says so after).
    store.recover().unwrap();
    let after = store.verify(true).unwrap();
    assert!(after.ok && !after.pending_recovery, "{after:#?}");
    assert!(after.cameras[0]
        .recovered
        .iter()
        .any(|n| n.segment == pristine().segments[3]));
    assert_eq!(exported(&store).len() as u64, FRAMES);
}

#[test]
fn torn_padding_before_the_newest_segments_index_is_not_damage() {
    let (dir, cam) = copy();
    let store = Store::on_disk(dir.path());
    let seg = store.segments("front").unwrap().segments[3].clone();
    let last = *store.open_segment(&seg).unwrap().frames.last().unwrap();
    // The padding follows the last frame or a position after it.
    let position_end = positions_of(3)
        .last()
        .map_or(0, |p| p.offset + (HEADER_LEN + POSITION_PAYLOAD_LEN) as u64);
    let padding_at = (last.offset + HEADER_LEN as u64 + last.payload_len as u64).max(position_end);
    flip(&path_of(&cam, 3), padding_at + 60, 0x01);
    let report = store.verify(true).unwrap();
    assert!(report.ok, "{report:#?}");
    assert!(report.cameras[0]
        .recovered
        .iter()
        .any(|n| n.segment == seg.name && n.note.contains("padding")));
}

#[test]
fn recovery_keeps_the_stream_header_copy_of_an_index_whose_trailer_was_lost() {
    let (dir, cam) = copy();
    let path = path_of(&cam, 3);
    flip(&path, 60, 0x04); // offset 0's stream header
    shorten(&path, |len| len - 32);
    let store = Store::on_disk(dir.path());
    store.recover().unwrap();
    let seg = store.segments("front").unwrap().segments[3].clone();
    let r = store.open_segment(&seg).unwrap();
    assert!(r.closed);
    assert_eq!(
        r.stream_origin,
        dashvault::store::reader::StreamOrigin::IndexCopy
    );
    assert_eq!(r.stream.boot_id, [5; 16]);
    assert_eq!(r.frames.len(), frames_of(3).len());
}

#[test]
fn a_flipped_bit_in_a_position_record_costs_that_record_only() {
    // An older, closed segment: the index's copy of the position stands in.
    let (dir, cam) = copy();
    let victim = positions_of(1)[2];
    flip(
        &path_of(&cam, 1),
        victim.offset + HEADER_LEN as u64 + 14,
        0x02,
    );
    let report = check_case(
        "position record",
        dir.path(),
        &none(),
        Some((&pristine().segments[1], DamageKind::BadRecord)),
    );
    let c = &report.cameras[0];
    assert_eq!(c.bad_records, 1, "{c:#?}");
    assert!(
        c.problems
            .iter()
            .any(|p| p.segment == pristine().segments[1]
                && p.problem.contains("position 2")
                && p.problem.contains(&format!("byte {}", victim.offset))),
        "{c:#?}"
    );
    let all: Vec<PositionSample> = positions_of(1).iter().map(|p| p.sample).collect();
    assert_eq!(positions_read(dir.path(), 1), all);

    // The newest segment without its trailer is scanned: the damaged
    // position is stepped over, every frame and other position is kept,
    // and recovery closes the segment around it.
    let (dir, cam) = copy();
    let victim = positions_of(3)[1];
    flip(
        &path_of(&cam, 3),
        victim.offset + HEADER_LEN as u64 + 3,
        0x40,
    );
    shorten(&path_of(&cam, 3), |len| len - 32);
    let kept: Vec<PositionSample> = positions_of(3)
        .iter()
        .filter(|p| p.offset != victim.offset)
        .map(|p| p.sample)
        .collect();
    assert_eq!(positions_read(dir.path(), 3), kept);
    check_case(
        "position record, newest without trailer",
        dir.path(),
        &none(),
        Some((&pristine().segments[3], DamageKind::TrailerRemoved)),
    );
    assert_eq!(positions_read(dir.path(), 3), kept);
    let report = Store::on_disk(dir.path()).verify(true).unwrap();
    assert!(report.ok, "{report:#?}");
}

#[test]
fn a_flipped_bit_in_the_position_table_of_an_index_costs_nothing() {
    for k in [1, 3] {
        let (dir, cam) = copy();
        let path = path_of(&cam, k);
        // Position 1's latitude in the table after the frame entries.
        let table = index_offset(&path) + HEADER_LEN as u64 + 12 + 32 * frames_of(k).len() as u64;
        flip(&path, table + 4 + INDEX_POSITION_LEN as u64 + 28 + 13, 0x01);
        let all: Vec<PositionSample> = positions_of(k).iter().map(|p| p.sample).collect();
        // Readers scan instead: every frame and every position.
        assert_eq!(positions_read(dir.path(), k), all, "segment {k}");
        let expect = (k == 1).then(|| (pristine().segments[1].as_str(), DamageKind::DamagedIndex));
        check_case("position table", dir.path(), &none(), expect);
        // The newest segment's index was written again by recovery.
        assert_eq!(positions_read(dir.path(), k), all, "segment {k}");
        if k == 3 {
            let report = Store::on_disk(dir.path()).verify(true).unwrap();
            assert!(report.ok && !report.pending_recovery, "{report:#?}");
        }
    }
}

#[test]
fn verify_names_a_position_record_whose_crcs_check_but_that_we_did_not_write() {
    let (dir, cam) = copy();
    let path = path_of(&cam, 2);
    let victim = positions_of(2)[0];
    let mut b = std::fs::read(&path).unwrap();
    let at = victim.offset as usize;
    let end = at + HEADER_LEN + POSITION_PAYLOAD_LEN;
    // A latitude beyond the pole, with both CRCs made valid again.
    b[at + HEADER_LEN + 12..at + HEADER_LEN + 16].copy_from_slice(&i32::MAX.to_le_bytes());
    let mut h = RecordHeader::decode(&b[at..at + HEADER_LEN]).unwrap();
    h.payload_crc = crc32fast::hash(&b[at + HEADER_LEN..end]);
    b[at..at + HEADER_LEN].copy_from_slice(&h.encode());
    std::fs::write(&path, b).unwrap();
    let report = check_case(
        "position payload out of range",
        dir.path(),
        &none(),
        Some((&pristine().segments[2], DamageKind::BadRecord)),
    );
    let c = &report.cameras[0];
    assert_eq!(c.bad_records, 1, "{c:#?}");
    assert!(
        c.problems.iter().any(|p| p
            .problem
            .contains(&format!("position 0 (byte {})", victim.offset))
            && p.problem.contains("latitude")),
        "{c:#?}"
    );
}
