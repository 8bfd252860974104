//! Time without a real-time clock and incident locks, on the simulated
//! store with a simulated clock: restoring the saved time, relabelling one
//! boot's recordings, exporting over them, pre- and post-roll locks near
//! segment boundaries, rotation under a tiny cap, and the locked cap.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use dashvault::clock::{
    AdjustableClock, Clock, DeniedWallClockSetter, SimulatedClock, WallClockSetter,
};
use dashvault::export::{ExportOptions, Mp4Export};
use dashvault::incident::{IncidentKeeper, RollSettings, TriggerSource};
use dashvault::status::Status;
use dashvault::store::catalog::{list_all, list_segments, SegmentEntry};
use dashvault::store::format::FLAG_WALL_ESTIMATED;
use dashvault::store::incidents;
use dashvault::store::io::StorageIo;
use dashvault::store::query::label_start_ns;
use dashvault::store::reader::SegmentReader;
use dashvault::store::retention::{Retention, RetentionPolicy};
use dashvault::store::sim::SimIo;
use dashvault::store::writer::{EncodedFrame, OpenSegments, SegmentWriter, WriterSettings};
use dashvault::store::Store;
use dashvault::timekeeper::{read_saved, ClockSource, TimeAuthority, Timekeeper};

const S: u64 = 1_000_000_000;
const FRAME_NS: u64 = 100_000_000;
/// 2027-01-15T08:00:00Z, the right time in these tests.
const TRUE_WALL: i64 = 1_800_000_000 * S as i64;
const BOOT_A: [u8; 16] = [0xa; 16];
const BOOT_B: [u8; 16] = [0xb; 16];

fn data_dir() -> PathBuf {
    PathBuf::from("/data")
}

fn writer(io: Arc<dyn StorageIo>, boot_id: [u8; 16], open: OpenSegments) -> SegmentWriter {
    SegmentWriter::new(
        io,
        WriterSettings {
            camera_id: "front".into(),
            camera_dir: data_dir().join("recordings/front"),
            fps_milli: 10_000,
            segment_length_ns: 10 * S,
            first_segment_length_ns: 10 * S,
            sync_interval_ns: 500_000_000,
            want_direct: false,
            boot_id,
        },
        Default::default(),
        open,
    )
    .unwrap()
}

/// The timekeeper of a service starting on `io` with `clock`.
fn timekeeper(
    io: &Arc<dyn StorageIo>,
    clock: Arc<AdjustableClock>,
    setter: impl WallClockSetter + 'static,
    boot_id: [u8; 16],
) -> Timekeeper {
    Timekeeper::start(
        Store::new(io.clone(), data_dir()),
        clock,
        Box::new(setter),
        boot_id,
    )
}

/// Records `seconds` of 10 fps frames stamped by `clock`, advancing it.
fn record(w: &mut SegmentWriter, clock: &dyn Clock, sim: &SimulatedClock, seconds: u64) {
    for _ in 0..seconds * S / FRAME_NS {
        sim.advance(Duration::from_nanos(FRAME_NS));
        let captured = clock.now();
        let frame = EncodedFrame {
            jpeg: vec![0x5a; 2_000].into(),
            width: 64,
            height: 48,
            captured,
            flags: if clock.wall_estimated() {
                FLAG_WALL_ESTIMATED
            } else {
                0
            },
        };
        w.append(&frame, captured.mono_ns).unwrap();
    }
}

fn frames_of(io: &dyn StorageIo, seg: &SegmentEntry) -> Vec<(u64, i64, u8)> {
    SegmentReader::open(io, &seg.path)
        .unwrap()
        .frames
        .iter()
        .map(|f| (f.mono_ns, f.wall_ns, f.flags))
        .collect()
}

#[test]
fn a_restart_with_the_clock_behind_the_saved_time_lands_at_or_after_it() {
    let sim = SimIo::new(u64::MAX / 4);
    let io: Arc<dyn StorageIo> = Arc::new(sim.clone());
    // Last run: the right time, saved.
    let before = SimulatedClock::new(5 * S, TRUE_WALL);
    let tk = timekeeper(
        &io,
        Arc::new(AdjustableClock::new(Arc::new(before.clone()))),
        DeniedWallClockSetter,
        BOOT_A,
    );
    before.advance(Duration::from_secs(600));
    tk.save_now();
    let saved = read_saved(io.as_ref(), &data_dir()).unwrap();
    assert_eq!(saved, TRUE_WALL + 600 * S as i64);

    // Power cut; the board boots with a clock years behind. Not allowed to
    // set the system clock: the recorder runs from an offset.
    let stale = SimulatedClock::new(S, 1_000_000_000 * S as i64);
    let clock = Arc::new(AdjustableClock::new(Arc::new(stale.clone())));
    let tk = timekeeper(&io, clock.clone(), DeniedWallClockSetter, BOOT_B);
    assert!(clock.wall_ns() >= saved, "{} < {saved}", clock.wall_ns());
    assert!(clock.wall_estimated());
    assert_eq!(tk.report().source, ClockSource::RestoredOffset);
    assert_eq!(
        stale.wall_ns(),
        1_000_000_000 * S as i64,
        "host clock untouched"
    );

    // Allowed to set it: the system clock itself moves forward.
    let stale = SimulatedClock::new(S, 1_000_000_000 * S as i64);
    let clock = Arc::new(AdjustableClock::new(Arc::new(stale.clone())));
    let tk = timekeeper(&io, clock.clone(), stale.clone(), BOOT_B);
    assert!(stale.wall_ns() >= saved);
    assert_eq!(
        (clock.offset_ns(), tk.report().source),
        (0, ClockSource::RestoredSystem)
    );
    assert!(clock.wall_estimated());

    // A clock already ahead of the saved time is left alone.
    let ahead = SimulatedClock::new(S, saved + 3_600 * S as i64);
    let clock = Arc::new(AdjustableClock::new(Arc::new(ahead.clone())));
    let tk = timekeeper(&io, clock.clone(), ahead.clone(), BOOT_B);
    assert_eq!(clock.wall_ns(), saved + 3_600 * S as i64);
    assert!(!clock.wall_estimated());
    assert_eq!(tk.report().source, ClockSource::System);
}

#[test]
fn a_restart_within_the_same_boot_resumes_the_phone_set_time_exactly() {
    let io: Arc<dyn StorageIo> = Arc::new(SimIo::new(u64::MAX / 4));
    // The board came up a day behind and may not set its clock.
    let host = SimulatedClock::new(30 * S, TRUE_WALL - 86_400 * S as i64);
    let start = |clock: &Arc<AdjustableClock>| {
        timekeeper(&io, clock.clone(), DeniedWallClockSetter, BOOT_B)
    };
    let clock = Arc::new(AdjustableClock::new(Arc::new(host.clone())));
    let tk = start(&clock);
    tk.set_wall(TRUE_WALL, TimeAuthority::Phone).unwrap();
    // 45 s later (no minute save in between) the service restarts; the
    // boot, and its monotonic clock, go on.
    host.advance(Duration::from_secs(45));
    drop(tk);
    let clock = Arc::new(AdjustableClock::new(Arc::new(host.clone())));
    let tk = start(&clock);
    assert_eq!(clock.wall_ns(), TRUE_WALL + 45 * S as i64);
    assert!(!clock.wall_estimated());
    assert_eq!(tk.report().source, ClockSource::SetOffset);

    // An estimated time resumes exactly too, and stays an estimate.
    let io2: Arc<dyn StorageIo> = Arc::new(SimIo::new(u64::MAX / 4));
    dashvault::store::sidecar::write_atomic(
        io2.as_ref(),
        &data_dir().join("last-wall-time"),
        format!("{TRUE_WALL}\n").as_bytes(),
    )
    .unwrap();
    let host = SimulatedClock::new(30 * S, TRUE_WALL - 86_400 * S as i64);
    let clock = Arc::new(AdjustableClock::new(Arc::new(host.clone())));
    let _tk = timekeeper(&io2, clock.clone(), DeniedWallClockSetter, BOOT_B);
    host.advance(Duration::from_secs(20));
    let clock = Arc::new(AdjustableClock::new(Arc::new(host.clone())));
    timekeeper(&io2, clock.clone(), DeniedWallClockSetter, BOOT_B);
    assert_eq!(clock.wall_ns(), TRUE_WALL + 20 * S as i64);
    assert!(clock.wall_estimated());
}

#[test]
fn a_clock_the_boot_scripts_restored_from_their_own_save_is_still_estimated() {
    let io: Arc<dyn StorageIo> = Arc::new(SimIo::new(u64::MAX / 4));
    let before = SimulatedClock::new(5 * S, TRUE_WALL);
    timekeeper(
        &io,
        Arc::new(AdjustableClock::new(Arc::new(before.clone()))),
        DeniedWallClockSetter,
        BOOT_A,
    );
    // Power cut. At boot an init script set the clock to its own saved
    // time, half a minute later than ours; the service starts 8 s in.
    let host = SimulatedClock::new(8 * S, TRUE_WALL + 38 * S as i64);
    let clock = Arc::new(AdjustableClock::new(Arc::new(host.clone())));
    let tk = timekeeper(&io, clock.clone(), host.clone(), BOOT_B);
    assert_eq!(clock.wall_ns(), TRUE_WALL + 38 * S as i64, "left alone");
    assert!(clock.wall_estimated());
    assert_eq!(tk.report().source, ClockSource::RestoredSystem);
}

#[test]
fn setting_the_time_relabels_this_boots_segments_and_nothing_else_and_exports_use_it() {
    let sim = SimIo::new(u64::MAX / 4);
    let io: Arc<dyn StorageIo> = Arc::new(sim.clone());
    // Boot A recorded with the right time.
    let clock_a = SimulatedClock::new(S, TRUE_WALL - 7_200 * S as i64);
    let mut w = writer(io.clone(), BOOT_A, Arc::default());
    record(&mut w, &clock_a, &clock_a, 25);
    w.close().unwrap();
    drop(w);
    let old_boot = list_segments(io.as_ref(), &data_dir(), "front")
        .unwrap()
        .segments;
    let old_frames: Vec<_> = old_boot.iter().map(|s| frames_of(io.as_ref(), s)).collect();

    // Boot B: the clock restarts a day behind; the saved time is older still.
    let host = SimulatedClock::new(S, TRUE_WALL - 86_400 * S as i64);
    let clock = Arc::new(AdjustableClock::new(Arc::new(host.clone())));
    let tk = timekeeper(&io, clock.clone(), host.clone(), BOOT_B);
    clock.set_estimated(true); // as after a restore
    let mut w = writer(io.clone(), BOOT_B, Arc::default());
    record(&mut w, clock.as_ref(), &host, 25); // two closed segments and an open one
    let segs = list_segments(io.as_ref(), &data_dir(), "front")
        .unwrap()
        .segments;
    let boot_b: Vec<&SegmentEntry> = segs.iter().skip(old_boot.len()).collect();
    assert_eq!(boot_b.len(), 3);
    assert!(frames_of(io.as_ref(), boot_b[0])
        .iter()
        .all(|f| f.2 & FLAG_WALL_ESTIMATED != 0));

    // The phone says the true time is a day later than the clock.
    let phone = host.wall_ns() + 86_400 * S as i64;
    let result = tk.set_wall(phone, TimeAuthority::Phone).unwrap();
    assert_eq!(result.relabelled_segments, 3);
    assert_eq!(result.source, ClockSource::SetSystem);
    assert!(!clock.wall_estimated());
    let anchor = phone - clock.mono_ns() as i64;

    let after = list_segments(io.as_ref(), &data_dir(), "front")
        .unwrap()
        .segments;
    // Boot A: same frames, same labels, no correction.
    for (seg, frames) in after.iter().zip(&old_frames) {
        assert_eq!(&frames_of(io.as_ref(), seg), frames, "{}", seg.name);
        assert_eq!(seg.corrected_start_ns, None);
    }
    // Boot B: every frame at monotonic time + anchor, no longer estimated;
    // segment starts corrected in the catalog.
    for seg in after.iter().skip(old_boot.len()) {
        let frames = frames_of(io.as_ref(), seg);
        assert!(!frames.is_empty());
        for (mono, wall, flags) in &frames {
            assert_eq!(*wall, *mono as i64 + anchor);
            assert_eq!(flags & FLAG_WALL_ESTIMATED, 0);
        }
        let start = label_start_ns(seg).unwrap();
        assert!((start - frames[0].1).abs() < S as i64, "{}", seg.name);
    }
    // New footage is stamped with the set clock and continues seamlessly.
    record(&mut w, clock.as_ref(), &host, 12);
    w.close().unwrap();
    let all = list_segments(io.as_ref(), &data_dir(), "front")
        .unwrap()
        .segments;
    let newest = frames_of(io.as_ref(), all.last().unwrap());
    assert!(newest
        .iter()
        .all(|(m, wl, _)| (*wl - (*m as i64 + anchor)).abs() < 1_000));

    // An export over the corrected span finds boot B's footage by its
    // corrected times, across the relabelled segments.
    let b_first = frames_of(io.as_ref(), &all[old_boot.len()])[0].1;
    let from = b_first + 5 * S as i64;
    let to = from + 20 * S as i64;
    let export = Mp4Export::open(
        &Store::new(io.clone(), data_dir()),
        "front",
        from,
        to,
        ExportOptions::default(),
    )
    .unwrap();
    let (first, last) = export.first_last_wall_ns();
    assert!(
        first >= from && first < from + S as i64,
        "{first} vs {from}"
    );
    assert!(last < to && last >= to - S as i64);
    let range = Store::new(io.clone(), data_dir())
        .range("front", from, to)
        .unwrap();
    assert_eq!(range.frame_count(), 200);
    // Under the old (uncorrected) times nothing of boot B is found any more.
    let stale_from = from - 86_400 * S as i64;
    let stale = Store::new(io.clone(), data_dir())
        .range("front", stale_from, stale_from + 20 * S as i64)
        .unwrap();
    assert_eq!(stale.frame_count(), 0);

    // Set again (the first phone was 5 s fast): the new anchor replaces the
    // old one for the whole boot, footage from before and after the first
    // setting alike; the older boot is still untouched.
    let second = tk
        .set_wall(clock.wall_ns() - 5 * S as i64, TimeAuthority::Phone)
        .unwrap();
    let anchor2 = second.new_wall_minus_mono_ns;
    assert_eq!(anchor2, anchor - 5 * S as i64);
    let all = list_segments(io.as_ref(), &data_dir(), "front")
        .unwrap()
        .segments;
    for (i, seg) in all.iter().enumerate() {
        let frames = frames_of(io.as_ref(), seg);
        if i < old_boot.len() {
            assert_eq!(frames, old_frames[i], "{} changed", seg.name);
            continue;
        }
        assert!(frames.iter().all(|(m, wl, _)| *wl == *m as i64 + anchor2));
        let start = label_start_ns(seg).unwrap();
        assert!((start - frames[0].1).abs() < S as i64, "{}", seg.name);
    }
}

struct LockRig {
    io: Arc<dyn StorageIo>,
    clock: SimulatedClock,
    writer: SegmentWriter,
    keeper: Arc<IncidentKeeper>,
    retention: Arc<Retention>,
    status: Arc<Status>,
}

fn lock_rig(cap_bytes: u64, locked_cap: Option<u64>, roll_s: u64) -> LockRig {
    let sim = SimIo::new(u64::MAX / 4);
    let io: Arc<dyn StorageIo> = Arc::new(sim.clone());
    let clock = SimulatedClock::new(100 * S, TRUE_WALL);
    let store = Store::new(io.clone(), data_dir());
    let status = Arc::new(Status {
        store: store.stats().clone(),
        ..Status::default()
    });
    let retention = Arc::new(store.retention(RetentionPolicy {
        cap_bytes,
        min_free_bytes: 0,
    }));
    retention.set_locked_cap(locked_cap);
    let keeper = Arc::new(IncidentKeeper::new(
        store.clone(),
        Arc::new(clock.clone()),
        BOOT_B,
        RollSettings {
            pre_roll_ns: roll_s * S,
            post_roll_ns: roll_s * S,
        },
    ));
    let k = keeper.clone();
    retention.set_before_plan(Arc::new(move || k.lock_pending()));
    let mut w = writer(io.clone(), BOOT_B, store.open_segments().clone());
    let r = retention.clone();
    w.set_before_new_segment(Arc::new(move || {
        r.enforce();
    }));
    LockRig {
        io,
        clock,
        writer: w,
        keeper,
        retention,
        status,
    }
}

impl LockRig {
    fn record(&mut self, seconds: u64) {
        record(&mut self.writer, &self.clock, &self.clock, seconds);
    }

    /// Records in steps, with a housekeeping pass after each.
    fn drive(&mut self, seconds: u64) {
        for _ in 0..seconds {
            self.record(1);
            self.retention.enforce();
        }
    }

    /// Monotonic spans `[first, last]` of every locked segment.
    fn locked_spans(&self) -> Vec<(u64, u64)> {
        list_all(self.io.as_ref(), &data_dir())
            .unwrap()
            .iter()
            .filter(|s| s.protected)
            .map(|s| {
                let f = SegmentReader::open(self.io.as_ref(), &s.path)
                    .unwrap()
                    .frames;
                (f[0].mono_ns, f.last().unwrap().mono_ns)
            })
            .collect()
    }
}

#[test]
fn pre_and_post_roll_are_locked_when_the_trigger_lands_near_a_segment_boundary() {
    // Segments hold 10 s (mono 100.1..110.0, 110.1..120.0, ...); 3 s rolls.
    let mut rig = lock_rig(u64::MAX, None, 3);
    rig.drive(20);
    // 0.1 s after the boundary at 120 s: the pre-roll reaches back into the
    // previous segment, the post-roll stays in this one.
    let early = rig.keeper.trigger(TriggerSource::Api).unwrap();
    assert_eq!(early.from_mono_ns, 117 * S);
    rig.drive(29); // to 149 s: the next boundary is 1 s away
    let late = rig.keeper.trigger(TriggerSource::Button).unwrap();
    assert_ne!(late.id, early.id);
    // Its post-roll runs into a segment that does not exist yet.
    rig.drive(21);
    rig.clock.advance(Duration::from_secs(5));
    rig.keeper.tick();
    assert!(!rig.keeper.has_pending());
    rig.writer.close().unwrap();

    let spans = rig.locked_spans();
    let covered = |t: u64| spans.iter().any(|(a, b)| *a <= t && t <= *b);
    // Every frame of both windows is in a locked segment...
    for t in (1171..=1230).chain(1461..=1520) {
        assert!(
            covered(t * S / 10),
            "t = {} s not locked: {spans:?}",
            t as f64 / 10.0
        );
    }
    // ...and nothing else is locked: the segments before, between and after.
    assert_eq!(spans.len(), 4, "{spans:?}");
    assert!(!covered(105 * S) && !covered(135 * S) && !covered(165 * S));
    let recs = incidents::list(rig.io.as_ref(), &data_dir()).unwrap();
    assert_eq!(recs.len(), 2);
    assert!(
        recs.iter().all(|r| r.complete && r.segments.len() == 2),
        "{recs:?}"
    );
    assert_eq!(recs[1].triggers, vec!["button"]);
}

#[test]
fn a_second_trigger_during_the_post_roll_extends_the_incident() {
    let mut rig = lock_rig(u64::MAX, None, 3);
    rig.drive(5);
    let first = rig.keeper.trigger(TriggerSource::GSensor).unwrap();
    rig.drive(2);
    let again = rig.keeper.trigger(TriggerSource::Dashboard).unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(again.to_mono_ns, first.to_mono_ns + 2 * S);
    assert_eq!(again.triggers, vec!["g-sensor", "dashboard"]);
}

#[test]
fn rotation_under_a_tiny_cap_never_deletes_locked_footage() {
    // A cap of about two segments; 3 s rolls around a trigger at 130 s.
    let mut rig = lock_rig(450_000, None, 3);
    rig.drive(30);
    let rec = rig.keeper.trigger(TriggerSource::Console).unwrap();
    rig.drive(90);
    rig.writer.close().unwrap();
    rig.retention.enforce();
    let segs = list_segments(rig.io.as_ref(), &data_dir(), "front")
        .unwrap()
        .segments;
    assert!(
        rig.status
            .store
            .retention_deleted_segments
            .load(Ordering::Relaxed)
            >= 8
    );
    // Every frame of the incident window is still there and readable.
    let range = Store::new(rig.io.clone(), data_dir())
        .range("front", rec.from_ns, rec.to_ns + 1)
        .unwrap();
    assert_eq!(range.frame_count(), 61);
    for (seg, i, _) in range.frames() {
        seg.reader.read_frame(i).unwrap();
    }
    // Only the locked segments and the newest footage are left.
    let unlocked: Vec<_> = segs.iter().filter(|s| !s.protected).collect();
    assert!(unlocked.len() <= 3, "{unlocked:?}");
    // The trigger came on the last frame of a segment: that one and the next.
    assert_eq!(segs.iter().filter(|s| s.protected).count(), 2);
}

#[test]
fn the_locked_cap_releases_the_oldest_incidents_first_with_a_message() {
    // Three incidents, each locking one 10 s segment (about 250 kB); the
    // locked cap holds two of them.
    let mut rig = lock_rig(u64::MAX, Some(600_000), 2);
    let mut ids = Vec::new();
    for _ in 0..3 {
        rig.drive(5);
        ids.push(rig.keeper.trigger(TriggerSource::Api).unwrap().id);
        rig.drive(25);
    }
    rig.clock.advance(Duration::from_secs(5));
    rig.keeper.tick();
    rig.retention.enforce();
    let recs = incidents::list(rig.io.as_ref(), &data_dir()).unwrap();
    let released: Vec<&str> = recs
        .iter()
        .filter(|r| r.released.is_some())
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(released, vec![ids[0].as_str()]);
    let message = rig
        .status
        .store
        .locked_message
        .lock()
        .unwrap()
        .clone()
        .unwrap();
    assert!(
        message.contains("released the oldest incident") && message.contains(&ids[0]),
        "{message}"
    );
    let snapshot = rig.status.snapshot(0, 0).storage;
    assert!(snapshot.locked_bytes <= 600_000 && snapshot.locked_bytes > 400_000);
    // Records carry the sizes their segments closed with.
    let sizes = segs_sizes(&rig);
    for r in &recs {
        for s in &r.segments {
            assert_eq!(Some(&s.bytes), sizes.get(&s.name), "{}", s.name);
        }
    }
    assert_eq!(snapshot.locked_message, Some(message));
    // The released incident's segment is ordinary footage again; the newer
    // incidents keep theirs.
    let segs = list_all(rig.io.as_ref(), &data_dir()).unwrap();
    let locked_names: Vec<&str> = segs
        .iter()
        .filter(|s| s.protected)
        .map(|s| s.name.as_str())
        .collect();
    for r in &recs {
        for s in &r.segments {
            assert_eq!(
                locked_names.contains(&s.name.as_str()),
                r.released.is_none(),
                "{}",
                s.name
            );
        }
    }
    let _ = DeniedWallClockSetter.set_wall_ns(0).unwrap_err();
}

fn segs_sizes(rig: &LockRig) -> HashMap<String, u64> {
    list_all(rig.io.as_ref(), &data_dir())
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.len))
        .collect()
}

#[test]
fn a_power_cut_while_relabelling_leaves_old_or_new_labels_never_a_mix() {
    use dashvault::store::sim::CrashCut;
    use std::sync::Mutex;
    let sim = SimIo::new(u64::MAX / 4);
    let io: Arc<dyn StorageIo> = Arc::new(sim.clone());
    let host = SimulatedClock::new(S, TRUE_WALL - 86_400 * S as i64);
    let clock = Arc::new(AdjustableClock::new(Arc::new(host.clone())));
    let tk = timekeeper(&io, clock.clone(), host.clone(), BOOT_B);
    let mut w = writer(io.clone(), BOOT_B, Arc::default());
    record(&mut w, clock.as_ref(), &host, 25);
    w.close().unwrap();
    let segs = list_segments(io.as_ref(), &data_dir(), "front")
        .unwrap()
        .segments;
    let original: Vec<Vec<(u64, i64, u8)>> =
        segs.iter().map(|s| frames_of(io.as_ref(), s)).collect();
    let saved_before = read_saved(io.as_ref(), &data_dir()).unwrap();
    let phone = host.wall_ns() + 86_400 * S as i64;
    let anchor = phone - host.mono_ns() as i64;

    // Every crash image taken at each write of the relabelling.
    let images: Arc<Mutex<Vec<(SimIo, String)>>> = Arc::default();
    {
        let images = images.clone();
        sim.on_write(Some(Arc::new(move |s: &SimIo| {
            let pending = s.unsynced_bytes();
            for keep in [0, pending / 2, pending] {
                for entries in [false, true] {
                    let cut = CrashCut {
                        keep_unsynced_bytes: keep,
                        keep_unsynced_entries: entries,
                    };
                    images
                        .lock()
                        .unwrap()
                        .push((s.crash_image(cut), format!("{cut:?}")));
                }
            }
        })));
    }
    tk.set_wall(phone, TimeAuthority::Phone).unwrap();
    sim.on_write(None);
    images
        .lock()
        .unwrap()
        .push((sim.crash_image(CrashCut::default()), "after the set".into()));
    let images = images.lock().unwrap();
    assert!(images.len() >= 12, "{} images", images.len());
    let (mut old, mut new) = (0, 0);
    for (image, what) in images.iter() {
        let segs = list_segments(image, &data_dir(), "front").unwrap().segments;
        let now: Vec<Vec<(u64, i64, u8)>> = segs.iter().map(|s| frames_of(image, s)).collect();
        let relabelled = original
            .iter()
            .map(|f| {
                f.iter()
                    .map(|(m, _, _)| (*m, *m as i64 + anchor, 0))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>();
        if now == original {
            old += 1;
            assert!(
                segs.iter().all(|s| s.corrected_start_ns.is_none()),
                "{what}"
            );
        } else {
            assert_eq!(now, relabelled, "{what}: a mix of old and new times");
            assert!(
                segs.iter().all(|s| s.corrected_start_ns.is_some()),
                "{what}"
            );
            new += 1;
        }
        // The saved time is always whole: the old one or the new one.
        let saved = read_saved(image, &data_dir()).expect(what);
        assert!(
            saved == saved_before || saved >= phone,
            "{what}: saved {saved}"
        );
    }
    assert!(old > 0 && new > 0, "old {old}, new {new}");
}

#[test]
fn an_incident_cut_short_by_the_power_is_finished_at_the_next_start() {
    let mut rig = lock_rig(u64::MAX, None, 30);
    rig.drive(12);
    let rec = rig.keeper.trigger(TriggerSource::Button).unwrap();
    rig.drive(3); // the power goes off 3 s into the post-roll
    drop(rig.writer);
    let locked_before: Vec<String> = list_all(rig.io.as_ref(), &data_dir())
        .unwrap()
        .into_iter()
        .filter(|s| s.protected)
        .map(|s| s.name)
        .collect();
    assert!(!locked_before.is_empty());
    // The next boot.
    let keeper = IncidentKeeper::new(
        Store::new(rig.io.clone(), data_dir()),
        Arc::new(SimulatedClock::new(S, TRUE_WALL + 600 * S as i64)),
        BOOT_A,
        RollSettings {
            pre_roll_ns: 30 * S,
            post_roll_ns: 30 * S,
        },
    );
    let list = keeper.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, rec.id);
    assert!(list[0].complete && list[0].cut_short);
    assert!(!keeper.has_pending());
    // Its locks stay, and the locked cap may now release it.
    let segs = list_all(rig.io.as_ref(), &data_dir()).unwrap();
    let locked_after: Vec<String> = segs
        .iter()
        .filter(|s| s.protected)
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(locked_after, locked_before);
    let plan = incidents::plan_locked_cap(&list, &segs, 1);
    assert_eq!(plan.release, vec![rec.id]);
}

#[test]
fn a_g_sensor_going_off_all_along_a_rough_road_makes_incidents_the_cap_can_release() {
    // Rolls of 5 s: one incident spans at most 10 × (5 + 5) = 100 s.
    let mut rig = lock_rig(u64::MAX, None, 5);
    rig.drive(10);
    let first = rig.keeper.trigger(TriggerSource::GSensor).unwrap();
    for _ in 0..50 {
        rig.drive(3);
        rig.keeper.trigger(TriggerSource::GSensor).unwrap();
    }
    rig.drive(20);
    let list = rig.keeper.list().unwrap();
    assert!(list.len() >= 2, "{} incidents", list.len());
    let oldest = list.last().unwrap();
    assert_eq!(oldest.id, first.id);
    assert!(oldest.to_mono_ns - oldest.from_mono_ns <= 100 * S);
    assert!(list.iter().all(|r| r.complete), "every window is over");
    let segs = list_all(rig.io.as_ref(), &data_dir()).unwrap();
    let plan = incidents::plan_locked_cap(&list, &segs, 1);
    assert!(plan.release.contains(&first.id));
}

fn restart_keeper(rig: &LockRig, clock: SimulatedClock, boot_id: [u8; 16]) -> IncidentKeeper {
    IncidentKeeper::new(
        Store::new(rig.io.clone(), data_dir()),
        Arc::new(clock),
        boot_id,
        RollSettings {
            pre_roll_ns: 30 * S,
            post_roll_ns: 30 * S,
        },
    )
}

#[test]
fn an_incident_in_its_post_roll_when_the_service_restarts_finishes_in_the_same_boot() {
    let mut rig = lock_rig(u64::MAX, None, 30);
    rig.drive(12);
    let rec = rig.keeper.trigger(TriggerSource::Button).unwrap();
    rig.drive(3);
    rig.writer.close().unwrap();
    // The service restarts; the boot goes on.
    let keeper = restart_keeper(&rig, rig.clock.clone(), BOOT_B);
    assert!(keeper.has_pending());
    rig.clock.advance(Duration::from_secs(40));
    keeper.tick();
    let list = keeper.list().unwrap();
    assert_eq!(list[0].id, rec.id);
    assert!(list[0].complete && !list[0].cut_short, "{:?}", list[0]);
    assert!(!keeper.has_pending());
}

#[test]
fn a_lock_lost_between_saving_the_record_and_writing_it_is_restored_at_the_next_start() {
    let mut rig = lock_rig(u64::MAX, None, 30);
    rig.drive(12);
    let rec = rig.keeper.trigger(TriggerSource::Button).unwrap();
    rig.drive(3);
    rig.writer.close().unwrap();
    // The cut came after the record named its newest segment, before that
    // segment's lock was written.
    let newest = &rig.keeper.list().unwrap()[0]
        .segments
        .last()
        .unwrap()
        .clone();
    let seg = data_dir()
        .join("recordings")
        .join(&newest.camera)
        .join(&newest.name);
    let lock = incidents::lock_path(&seg);
    rig.io.remove_file(&lock).unwrap();
    let keeper = restart_keeper(
        &rig,
        SimulatedClock::new(S, TRUE_WALL + 600 * S as i64),
        BOOT_A,
    );
    assert!(rig.io.exists(&lock), "the lock is back");
    assert_eq!(keeper.list().unwrap()[0].id, rec.id);
}

#[test]
fn the_locked_cap_message_goes_once_locked_footage_fits_again() {
    let mut rig = lock_rig(u64::MAX, Some(1), 30);
    rig.drive(12);
    rig.keeper.trigger(TriggerSource::Dashboard).unwrap();
    rig.drive(12); // closed locked segments, the incident still pending
    let message = || rig.status.store.locked_message.lock().unwrap().clone();
    assert!(
        message().is_some_and(|m| m.contains("nothing more can be released")),
        "{:?}",
        message()
    );
    rig.retention.set_locked_cap(Some(u64::MAX / 2));
    rig.retention.enforce();
    assert_eq!(message(), None);
}
