//! When each exported frame is shown, and the time text shown with it,
//! worked out one frame at a time: a frame's duration is known once the
//! next frame arrives, and a text once its wall-clock second ends. Nothing
//! here holds a table per frame, so a day of footage costs no more than
//! the texts (one per second). A text also shows the GPS speed and
//! position received last before its first frame, while fresh.

use std::collections::VecDeque;
use std::ops::Range;

use crate::clock::format_overlay;
use crate::config::SpeedUnit;
use crate::store::format::{IndexEntry, PositionSample, StreamHeader, FLAG_WALL_ESTIMATED};
use crate::store::query::SkippedFrames;

use super::mp4::TIMESCALE;

const NS_PER_S: u64 = 1_000_000_000;
/// Capture times closer than this are not believed (a clock glitch); the
/// frame gets the nominal interval instead.
const DURATION_NS_MIN: u64 = 1_000_000;
/// A frame held this much longer than the nominal interval marks a gap in
/// recording (the text track says so).
const GAP_SLACK_NS: u64 = 1_000_000_000;
/// Frame interval when a segment does not state a usable rate.
const FALLBACK_INTERVAL_NS: u64 = 33_333_333;
/// A position older than this is not shown with a frame (as the burned-in
/// speed falls back to `-- km/h`).
const PLACE_FRESH_NS: i64 = 3_000_000_000;
/// Positions waiting for their frames; more means the positions run far
/// ahead of the frames (a clock step), and the oldest are let go.
const PENDING_POSITIONS_MAX: usize = 10_000;

/// A stored frame, fed to a [`Timeline`] in the order it is exported.
pub struct FrameIn<'a> {
    /// The caller's number for the frame's segment, handed back.
    pub segment: u32,
    /// The frame's place in its segment's index, handed back.
    pub index: u32,
    pub entry: &'a IndexEntry,
    pub stream: &'a StreamHeader,
}

/// A frame with its place on the export's timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedFrame {
    pub segment: u32,
    pub index: u32,
    pub wall_ns: i64,
    /// The wall time was estimated (the clock was not set).
    pub estimated: bool,
    pub size: u32,
    /// In ticks of [`TIMESCALE`].
    pub duration_ticks: u32,
    /// Part of `duration_ticks` that is a gap in recording (the frame is
    /// held through it); zero for an ordinary frame.
    pub gap_ticks: u32,
}

/// What a frame waiting for its successor keeps.
struct Pending {
    segment: u32,
    index: u32,
    wall_ns: i64,
    mono_ns: u64,
    flags: u8,
    size: u32,
    nominal_ns: u64,
    boot_id: [u8; 16],
}

impl Pending {
    fn of(f: &FrameIn) -> Pending {
        Pending {
            segment: f.segment,
            index: f.index,
            wall_ns: f.entry.wall_ns,
            mono_ns: f.entry.mono_ns,
            flags: f.entry.flags,
            size: f.entry.payload_len,
            nominal_ns: nominal_interval_ns(f.stream),
            boot_id: f.stream.boot_id,
        }
    }
}

/// Each frame's duration: it lasts until the next one was captured, by
/// monotonic times when both come from the same boot (immune to clock
/// steps), else by wall times; the last frame, and any frame whose next one
/// does not come later, gets the nominal interval.
#[derive(Default)]
pub struct Timeline {
    pending: Option<Pending>,
    pts_ns: u64,
    pts_ticks: u64,
}

impl Timeline {
    /// Adds the next frame; returns the one before it, now that its
    /// duration is known.
    pub fn push(&mut self, f: FrameIn) -> Option<TimedFrame> {
        let next = Pending::of(&f);
        let done = self.pending.take().map(|p| self.place(p, Some(&next)));
        self.pending = Some(next);
        done
    }

    /// The last frame, with the nominal interval.
    pub fn finish(&mut self) -> Option<TimedFrame> {
        self.pending.take().map(|p| self.place(p, None))
    }

    /// Length so far, in ns: every frame placed, end to end.
    pub fn duration_ns(&self) -> u64 {
        self.pts_ns
    }

    fn place(&mut self, f: Pending, next: Option<&Pending>) -> TimedFrame {
        let delta = next.and_then(|n| {
            let same_boot = n.boot_id == f.boot_id && f.boot_id != [0; 16];
            if same_boot && n.mono_ns > f.mono_ns {
                Some(n.mono_ns - f.mono_ns)
            } else if n.wall_ns > f.wall_ns {
                Some(n.wall_ns.abs_diff(f.wall_ns))
            } else {
                None
            }
        });
        let duration_ns = delta
            .filter(|d| *d >= DURATION_NS_MIN)
            .unwrap_or(f.nominal_ns);
        self.pts_ns += duration_ns;
        let end_ticks = ticks(self.pts_ns);
        // A held frame longer than 13 hours is cut to that (32-bit sample
        // durations); the timeline continues from where it was cut.
        let duration_ticks = (end_ticks - self.pts_ticks).min(u32::MAX as u64) as u32;
        self.pts_ticks += duration_ticks as u64;
        let gap_ticks = if duration_ns > f.nominal_ns + GAP_SLACK_NS {
            duration_ticks.saturating_sub(ticks(f.nominal_ns) as u32)
        } else {
            0
        };
        TimedFrame {
            segment: f.segment,
            index: f.index,
            wall_ns: f.wall_ns,
            estimated: f.flags & FLAG_WALL_ESTIMATED != 0,
            size: f.size,
            duration_ticks,
            gap_ticks,
        }
    }
}

/// Frame interval a segment's stream header promises.
fn nominal_interval_ns(stream: &StreamHeader) -> u64 {
    if stream.fps_milli == 0 {
        FALLBACK_INTERVAL_NS
    } else {
        (1_000_000_000_000 / stream.fps_milli as u64).max(DURATION_NS_MIN)
    }
}

pub fn ticks(ns: u64) -> u64 {
    ((ns as u128 * TIMESCALE as u128 + NS_PER_S as u128 / 2) / NS_PER_S as u128) as u64
}

/// A text sample: the capture time of the frames it spans, or the gap after
/// them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeText {
    /// The wall-clock second shown.
    pub second: i64,
    pub estimated: bool,
    pub duration_ticks: u32,
    /// The frames shown under it (numbered in export order), empty for the
    /// text over a gap.
    pub frames: Range<u32>,
    /// Wall time of its first frame.
    pub first_wall_ns: i64,
    /// For the text over a gap: how long, in whole seconds.
    pub gap_s: Option<u64>,
    /// Skipped frames named here.
    pub note: String,
    /// Speed and position at its first frame.
    pub place: Option<Place>,
}

impl TimeText {
    pub fn text(&self) -> String {
        let mut text = format_overlay(self.second * NS_PER_S as i64);
        if self.estimated {
            text.push_str(" (clock estimated)");
        }
        if let Some(place) = &self.place {
            text.push(' ');
            text.push_str(&place.text());
        }
        if let Some(gap_s) = self.gap_s {
            text.push_str(&format!(
                ", then nothing recorded for {}",
                human_seconds(gap_s)
            ));
        }
        text.push_str(&self.note);
        text
    }
}

/// The GPS speed and position shown in a text, as stored (fixed point).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub speed_mm_s: Option<u32>,
    pub lat_lon_e7: Option<(i32, i32)>,
    pub unit: SpeedUnit,
}

impl Place {
    fn of(p: &PositionSample, unit: SpeedUnit) -> Option<Place> {
        (p.speed_mm_s.is_some() || p.lat_lon_e7.is_some()).then_some(Place {
            speed_mm_s: p.speed_mm_s,
            lat_lon_e7: p.lat_lon_e7,
            unit,
        })
    }

    /// `50 km/h 52.52001N 13.40700E`, as the burned-in caption reads.
    pub fn text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = self.speed_mm_s {
            parts.push(self.unit.text(v as f64 / 1000.0));
        }
        if let Some((lat, lon)) = self.lat_lon_e7 {
            parts.push(lat_lon_text(lat as f64 / 1e7, lon as f64 / 1e7));
        }
        parts.join(" ")
    }
}

/// `52.52001N 13.40700E`: five decimals, about a metre.
pub fn lat_lon_text(lat: f64, lon: f64) -> String {
    let ns = if lat < 0.0 { 'S' } else { 'N' };
    let ew = if lon < 0.0 { 'W' } else { 'E' };
    format!("{:.5}{ns} {:.5}{ew}", lat.abs(), lon.abs())
}

/// Where a frame put a new text.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TextsBegun {
    /// A text began with this frame (its number).
    pub with: Option<usize>,
    /// A gap text follows this frame (its number).
    pub after: Option<usize>,
}

struct OpenText {
    second: i64,
    estimated: bool,
    first: u32,
    first_wall_ns: i64,
    ticks: u64,
    place: Option<Place>,
}

/// Texts: one per wall-clock second of footage, showing the capture time of
/// the frames under it (as the picture's burned-in time does), and one over
/// each gap saying how long nothing was recorded.
#[derive(Default)]
pub struct TimeTexts {
    pub texts: Vec<TimeText>,
    open: Option<OpenText>,
    frames: u32,
    unit: SpeedUnit,
    /// Positions not yet reached by the frames, oldest first.
    pending: VecDeque<PositionSample>,
    /// The position received last before the latest frame.
    latest: Option<PositionSample>,
}

impl TimeTexts {
    /// Texts that show speeds in `unit`.
    pub fn in_unit(unit: SpeedUnit) -> TimeTexts {
        TimeTexts {
            unit,
            ..TimeTexts::default()
        }
    }

    /// Positions to show with the frames, in the order received; added
    /// before the frames they belong to (a segment's at a time). One not
    /// later than the last added is left out (a copied segment's again).
    pub fn add_positions(&mut self, positions: &[PositionSample]) {
        for p in positions {
            let last = self.pending.back().or(self.latest.as_ref());
            if last.is_some_and(|l| p.received.wall_ns <= l.received.wall_ns) {
                continue;
            }
            if self.pending.len() == PENDING_POSITIONS_MAX {
                self.pending.pop_front();
            }
            self.pending.push_back(*p);
        }
    }

    /// The fresh position at `wall_ns`.
    fn place_at(&mut self, wall_ns: i64) -> Option<Place> {
        while self
            .pending
            .front()
            .is_some_and(|p| p.received.wall_ns <= wall_ns)
        {
            self.latest = self.pending.pop_front();
        }
        let p = self.latest.as_ref()?;
        if wall_ns - p.received.wall_ns > PLACE_FRESH_NS {
            return None;
        }
        Place::of(p, self.unit)
    }

    pub fn push(&mut self, f: &TimedFrame) -> TextsBegun {
        let second = f.wall_ns.div_euclid(NS_PER_S as i64);
        let mut begun = TextsBegun::default();
        if self
            .open
            .as_ref()
            .is_some_and(|o| o.second != second || o.estimated != f.estimated)
        {
            self.close(0);
        }
        if self.open.is_none() {
            begun.with = Some(self.texts.len());
            self.open = Some(OpenText {
                second,
                estimated: f.estimated,
                first: self.frames,
                first_wall_ns: f.wall_ns,
                ticks: 0,
                place: self.place_at(f.wall_ns),
            });
        }
        let open = self.open.as_mut().expect("opened above");
        open.ticks += f.duration_ticks as u64;
        self.frames += 1;
        if f.gap_ticks > 0 {
            let (second, estimated) = (open.second, open.estimated);
            self.close(f.gap_ticks);
            begun.after = Some(self.texts.len());
            let gap_s = (f.gap_ticks as u64 + TIMESCALE as u64 / 2) / TIMESCALE as u64;
            self.texts.push(TimeText {
                second,
                estimated,
                duration_ticks: f.gap_ticks,
                frames: self.frames..self.frames,
                first_wall_ns: f.wall_ns,
                gap_s: Some(gap_s),
                note: String::new(),
                place: None,
            });
        }
        begun
    }

    /// Ends the last text.
    pub fn finish(&mut self) {
        self.close(0);
    }

    fn close(&mut self, gap_ticks: u32) {
        if let Some(o) = self.open.take() {
            self.texts.push(TimeText {
                second: o.second,
                estimated: o.estimated,
                duration_ticks: (o.ticks - gap_ticks as u64).min(u32::MAX as u64) as u32,
                frames: o.first..self.frames,
                first_wall_ns: o.first_wall_ns,
                gap_s: None,
                note: String::new(),
                place: o.place,
            });
        }
    }
}

/// Adds each skipped span to the text shown at its time: "2 damaged frames
/// skipped in <segment> at byte <offset>".
pub fn note_skipped(texts: &mut [TimeText], skipped: &[SkippedFrames]) {
    for skip in skipped {
        let at = texts
            .iter()
            .rposition(|t| !t.frames.is_empty() && t.first_wall_ns <= skip.wall_ns)
            .unwrap_or(0);
        let what = if skip.reason.starts_with("missing") {
            "missing"
        } else {
            "damaged"
        };
        if let Some(t) = texts.get_mut(at) {
            t.note.push_str(&format!(
                " [{} {what} frame{} skipped: {} at byte {}]",
                skip.frames,
                if skip.frames == 1 { "" } else { "s" },
                skip.segment,
                skip.offset
            ));
        }
    }
}

fn human_seconds(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(wall_s: f64, duration_ticks: u32, gap_ticks: u32) -> TimedFrame {
        TimedFrame {
            segment: 0,
            index: 0,
            wall_ns: (wall_s * 1e9) as i64,
            estimated: false,
            size: 1,
            duration_ticks,
            gap_ticks,
        }
    }

    #[test]
    fn text_changes_with_the_wall_second_and_marks_gaps() {
        let frames = [
            frame(100.0, 3000, 0),
            frame(100.5, 3000, 0),
            frame(101.0, 3000, 0),
            frame(101.5, 93000, 90000), // held through a 1 s gap
            frame(103.0, 3000, 0),
        ];
        let mut t = TimeTexts::default();
        let begun: Vec<TextsBegun> = frames.iter().map(|f| t.push(f)).collect();
        t.finish();
        let texts: Vec<_> = t.texts.iter().map(|t| t.text()).collect();
        assert_eq!(
            texts,
            vec![
                "1970-01-01 00:01:40 UTC",
                "1970-01-01 00:01:41 UTC",
                "1970-01-01 00:01:41 UTC, then nothing recorded for 1 s",
                "1970-01-01 00:01:43 UTC",
            ]
        );
        let durations: Vec<_> = t.texts.iter().map(|t| t.duration_ticks).collect();
        assert_eq!(durations, vec![6000, 6000, 90000, 3000]);
        // The text track lasts exactly as long as the video.
        let video: u32 = frames.iter().map(|f| f.duration_ticks).sum();
        assert_eq!(durations.iter().sum::<u32>(), video);
        assert_eq!(t.texts[2].frames, 4..4);
        // Where each text begins, for the layout.
        let with: Vec<_> = begun.iter().map(|b| b.with).collect();
        assert_eq!(with, vec![Some(0), None, Some(1), None, Some(3)]);
        assert_eq!(begun[3].after, Some(2));
    }

    fn position(wall_s: f64, speed_m_s: u32) -> PositionSample {
        PositionSample {
            received: crate::frame::CaptureTime {
                mono_ns: 0,
                wall_ns: (wall_s * 1e9) as i64,
            },
            lat_lon_e7: Some((525_000_000, -1_000_000)),
            speed_mm_s: Some(speed_m_s * 1000),
            ..PositionSample::default()
        }
    }

    #[test]
    fn texts_show_the_last_fresh_position_and_a_copied_segments_positions_do_not_go_back() {
        let mut t = TimeTexts::in_unit(SpeedUnit::Kmh);
        let positions = [position(100.5, 10), position(101.5, 20)];
        t.add_positions(&positions);
        // The same segment's positions again (a copied file): left out.
        t.add_positions(&positions);
        t.add_positions(&[position(101.2, 30)]);
        for f in [
            frame(100.0, 3000, 0),
            frame(101.0, 3000, 0),
            frame(102.0, 3000, 0),
        ] {
            t.push(&f);
        }
        t.push(&frame(105.0, 3000, 0));
        t.finish();
        let texts: Vec<_> = t.texts.iter().map(|t| t.text()).collect();
        assert_eq!(
            texts,
            vec![
                "1970-01-01 00:01:40 UTC",
                "1970-01-01 00:01:41 UTC 36 km/h 52.50000N 0.10000W",
                "1970-01-01 00:01:42 UTC 72 km/h 52.50000N 0.10000W",
                // 3.5 s after the last fix: stale, not shown.
                "1970-01-01 00:01:45 UTC",
            ]
        );
    }

    #[test]
    fn durations_follow_capture_times_and_the_last_gets_the_nominal() {
        let stream = StreamHeader {
            codec: crate::store::format::Codec::Jpeg,
            width: 64,
            height: 48,
            fps_milli: 30_000,
            boot_id: [1; 16],
            segment_seq: 1,
            camera_id: "c".into(),
        };
        let entry = |mono_ms: u64| IndexEntry {
            offset: 0,
            payload_len: 10,
            flags: 0,
            seq: 0,
            mono_ns: mono_ms * 1_000_000,
            wall_ns: 5_000_000_000 + (mono_ms * 1_000_000) as i64,
        };
        let entries = [entry(0), entry(40), entry(70)];
        let mut timeline = Timeline::default();
        let mut out = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            out.extend(timeline.push(FrameIn {
                segment: 0,
                index: i as u32,
                entry: e,
                stream: &stream,
            }));
        }
        out.extend(timeline.finish());
        let durations: Vec<_> = out.iter().map(|f| f.duration_ticks).collect();
        assert_eq!(durations, vec![3600, 2700, 3000]);
        assert_eq!(timeline.duration_ns(), 103_333_333);
    }

    #[test]
    fn ticks_round_to_nearest() {
        assert_eq!(ticks(33_333_333), 3000);
        assert_eq!(ticks(1_000_000_000), 90_000);
        assert_eq!(ticks(5_555), 0);
        assert_eq!(ticks(5_556), 1);
    }

    #[test]
    fn gaps_read_well() {
        assert_eq!(human_seconds(30), "30 s");
        assert_eq!(human_seconds(600), "10 min 0 s");
        assert_eq!(human_seconds(7200), "2 h 0 min");
    }
}
