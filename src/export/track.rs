//! The GPS track of a range in a few points, for the dashboard to draw its
//! shape and a speed graph: every position counts towards the distance and
//! the top speed, and at most `points_max` points, spread evenly over the
//! track, are kept.
//!
//! The dashboard asks again every few seconds over a whole day, so each
//! segment is boiled down to a [`SegmentTrack`] (one point a second, its
//! distance and top speed), and those of closed segments are kept in a
//! [`TrackCache`]: a day's segment indexes (some 100 MB at 720p30) are read
//! once, not on every refresh. The segment being written is read from what
//! the writer keeps of it, never scanned.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::store::catalog::SegmentEntry;
use crate::store::format::PositionSample;
use crate::store::query::candidate_segments;
use crate::store::Store;

use super::ExportError;

/// Mean Earth radius (IUGG), metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;
/// Points the cache holds at most (24 bytes each) before it starts over:
/// about two days of driving at one point a second.
const CACHE_POINTS_MAX: usize = 200_000;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackPoint {
    /// When the recorder received it, ms since 1970 (the footage's clock).
    pub wall_ms: i64,
    pub lat: f64,
    pub lon: f64,
    pub speed_mps: Option<f64>,
    pub altitude_m: Option<f64>,
}

/// A position as a segment's track keeps it (24 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Point {
    wall_ns: i64,
    lat_e7: i32,
    lon_e7: i32,
    /// `u32::MAX`: unknown.
    speed_mm_s: u32,
    /// `i32::MIN`: unknown.
    altitude_mm: i32,
}

impl Point {
    fn of(p: &PositionSample) -> Option<Point> {
        let (lat_e7, lon_e7) = p.lat_lon_e7?;
        Some(Point {
            wall_ns: p.received.wall_ns,
            lat_e7,
            lon_e7,
            speed_mm_s: p.speed_mm_s.unwrap_or(u32::MAX),
            altitude_mm: p.altitude_mm.unwrap_or(i32::MIN),
        })
    }

    fn speed_mps(&self) -> Option<f64> {
        (self.speed_mm_s != u32::MAX).then(|| self.speed_mm_s as f64 / 1000.0)
    }

    fn track_point(&self) -> TrackPoint {
        TrackPoint {
            wall_ms: self.wall_ns.div_euclid(1_000_000),
            lat: self.lat_e7 as f64 / 1e7,
            lon: self.lon_e7 as f64 / 1e7,
            speed_mps: self.speed_mps(),
            altitude_m: (self.altitude_mm != i32::MIN).then(|| self.altitude_mm as f64 / 1000.0),
        }
    }

    fn distance_m(&self, to: &Point) -> f64 {
        distance_m(&self.track_point(), &to.track_point())
    }
}

/// One segment's positions, boiled down: the first of each wall-clock
/// second and the last, with the distance along all of them and the top
/// speed.
#[derive(Clone, Debug, Default)]
pub struct SegmentTrack {
    /// Positions with coordinates.
    positions: usize,
    points: Vec<Point>,
    distance_m: f64,
    max_speed_mps: Option<f64>,
}

impl SegmentTrack {
    /// The track of `positions` (in the order received) received in
    /// `[from_ns, to_ns)`, each later than `after_ns`.
    fn of(positions: &[PositionSample], from_ns: i64, to_ns: i64, after_ns: i64) -> SegmentTrack {
        let mut t = SegmentTrack::default();
        let mut previous: Option<Point> = None;
        for p in positions.iter().filter_map(Point::of) {
            let after = previous.map_or(after_ns, |q| q.wall_ns);
            if p.wall_ns < from_ns || p.wall_ns >= to_ns || p.wall_ns <= after {
                continue;
            }
            t.positions += 1;
            if let Some(q) = previous {
                t.distance_m += q.distance_m(&p);
            }
            if let Some(v) = p.speed_mps() {
                t.max_speed_mps = Some(t.max_speed_mps.map_or(v, |m: f64| m.max(v)));
            }
            let second = |q: &Point| q.wall_ns.div_euclid(1_000_000_000);
            // Within a second the first stays; the last overall is added
            // below.
            if t.points.last().is_none_or(|q| second(q) != second(&p)) {
                t.points.push(p);
            }
            previous = Some(p);
        }
        if let (Some(last), Some(kept)) = (previous, t.points.last()) {
            if *kept != last {
                t.points.push(last);
            }
        }
        t.points.shrink_to_fit();
        t
    }

    fn first_ns(&self) -> Option<i64> {
        self.points.first().map(|p| p.wall_ns)
    }

    fn last_ns(&self) -> Option<i64> {
        self.points.last().map(|p| p.wall_ns)
    }
}

/// The tracks of closed segments, whole, by path; a segment's file length
/// and the store's relabel generation say whether one still holds.
#[derive(Default)]
pub struct TrackCache {
    tracks: Mutex<CacheMap>,
}

#[derive(Default)]
struct CacheMap {
    by_path: HashMap<PathBuf, (u64, u64, Arc<SegmentTrack>)>,
    points: usize,
}

impl TrackCache {
    fn get(&self, entry: &SegmentEntry, generation: u64) -> Option<Arc<SegmentTrack>> {
        let map = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
        match map.by_path.get(&entry.path) {
            Some((len, made_at, t)) if *len == entry.len && *made_at == generation => {
                Some(t.clone())
            }
            _ => None,
        }
    }

    fn put(&self, entry: &SegmentEntry, generation: u64, track: Arc<SegmentTrack>) {
        let mut map = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: deleted segments are forgotten when it starts over.
        if map.points + track.points.len() > CACHE_POINTS_MAX {
            *map = CacheMap::default();
        }
        map.points += track.points.len();
        if let Some((_, _, old)) = map
            .by_path
            .insert(entry.path.clone(), (entry.len, generation, track))
        {
            map.points -= old.points.len();
        }
    }

    /// Segments held.
    pub fn len(&self) -> usize {
        self.tracks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_path
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Default)]
pub struct TrackSummary {
    /// Positions with coordinates in the range.
    pub positions: usize,
    /// At most `points_max` of them, oldest first, the first and last
    /// included.
    pub points: Vec<TrackPoint>,
    /// Along every position, in metres.
    pub distance_m: f64,
    pub max_speed_mps: Option<f64>,
    /// One line per segment left out because it could not be read.
    pub problems: Vec<String>,
}

/// The track of `camera` over `[from_ns, to_ns)`; an empty summary when it
/// has no positions. With a cache, closed segments wholly inside the range
/// are read once.
pub fn summarize(
    store: &Store,
    camera: &str,
    from_ns: i64,
    to_ns: i64,
    points_max: usize,
    cache: Option<&TrackCache>,
) -> Result<TrackSummary, ExportError> {
    if to_ns <= from_ns {
        return Err(ExportError::BadTimeRange {
            from: from_ns,
            to: to_ns,
        });
    }
    let segments = store.segments(camera)?.segments;
    let generation = store.relabel_generation();
    let mut summary = TrackSummary::default();
    let mut parts: Vec<Arc<SegmentTrack>> = Vec::new();
    let mut last_ns = i64::MIN;
    for i in candidate_segments(&segments, from_ns, to_ns) {
        let entry = &segments[i];
        let inside = |t: &SegmentTrack| {
            t.first_ns().is_none_or(|f| f >= from_ns && f > last_ns)
                && t.last_ns().is_none_or(|l| l < to_ns)
        };
        let part = match cache.and_then(|c| c.get(entry, generation)) {
            Some(whole) if inside(&whole) => whole,
            _ => {
                let (positions, closed) = match store.segment_positions(entry) {
                    Ok(p) => p,
                    Err(e) => {
                        log::warn!("[{camera}] skipping unreadable segment: {e}");
                        summary.problems.push(e.to_string());
                        continue;
                    }
                };
                let whole = Arc::new(SegmentTrack::of(&positions, i64::MIN, i64::MAX, i64::MIN));
                if let (Some(c), true) = (cache, closed) {
                    c.put(entry, generation, whole.clone());
                }
                if inside(&whole) {
                    whole
                } else {
                    Arc::new(SegmentTrack::of(&positions, from_ns, to_ns, last_ns))
                }
            }
        };
        if let Some(l) = part.last_ns() {
            last_ns = l;
        }
        if part.positions > 0 {
            parts.push(part);
        }
    }
    let mut previous: Option<&Point> = None;
    for part in &parts {
        summary.positions += part.positions;
        summary.distance_m += part.distance_m;
        if let (Some(p), Some(first)) = (previous, part.points.first()) {
            summary.distance_m += p.distance_m(first);
        }
        previous = part.points.last();
        if let Some(v) = part.max_speed_mps {
            summary.max_speed_mps = Some(summary.max_speed_mps.map_or(v, |m: f64| m.max(v)));
        }
    }
    summary.points = spread(&parts, points_max.max(2));
    Ok(summary)
}

/// At most `max` of the parts' points, evenly spaced, the first and the
/// last among them.
fn spread(parts: &[Arc<SegmentTrack>], max: usize) -> Vec<TrackPoint> {
    let total: usize = parts.iter().map(|p| p.points.len()).sum();
    let mut out = Vec::with_capacity(total.min(max));
    let mut last_step = None;
    for (k, point) in parts.iter().flat_map(|p| p.points.iter()).enumerate() {
        // Point k starts the step k * (max - 1) / total of max - 1 equal
        // steps; the last point is always kept.
        let step = k * (max - 1) / total;
        let last = k + 1 == total;
        if last_step != Some(step) || last {
            out.push(point.track_point());
            last_step = Some(step);
        }
    }
    out
}

/// Great-circle distance (haversine).
pub fn distance_m(a: &TrackPoint, b: &TrackPoint) -> f64 {
    let (la, lb) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = lb - la;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la.cos() * lb.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::CaptureTime;

    fn at(lat: f64, lon: f64) -> TrackPoint {
        TrackPoint {
            wall_ms: 0,
            lat,
            lon,
            speed_mps: None,
            altitude_m: None,
        }
    }

    fn sample(wall_ms: i64, speed_mm_s: u32) -> PositionSample {
        PositionSample {
            received: CaptureTime {
                mono_ns: 0,
                wall_ns: wall_ms * 1_000_000,
            },
            lat_lon_e7: Some((525_000_000 + wall_ms as i32, 134_000_000)),
            speed_mm_s: Some(speed_mm_s),
            ..PositionSample::default()
        }
    }

    #[test]
    fn a_degree_of_latitude_is_about_111_km() {
        let d = distance_m(&at(52.0, 13.0), &at(53.0, 13.0));
        assert!((d - 111_195.0).abs() < 10.0, "{d}");
        // Along a parallel it shrinks with the cosine of the latitude.
        let d = distance_m(&at(60.0, 0.0), &at(60.0, 1.0));
        assert!((d - 55_597.0).abs() < 10.0, "{d}");
    }

    #[test]
    fn a_segment_keeps_one_point_a_second_and_its_last_but_counts_all() {
        // 10 Hz for 2.5 s.
        let positions: Vec<_> = (0..25).map(|k| sample(100 * k, 1000 * k as u32)).collect();
        let t = SegmentTrack::of(&positions, i64::MIN, i64::MAX, i64::MIN);
        assert_eq!(t.positions, 25);
        let kept: Vec<i64> = t.points.iter().map(|p| p.wall_ns / 1_000_000).collect();
        assert_eq!(kept, vec![0, 1000, 2000, 2400]);
        assert_eq!(t.max_speed_mps, Some(24.0));
        // 24 steps of 1e-5 degrees of latitude, about 1.112 m each.
        assert!(
            (t.distance_m - 24.0 * 1.112).abs() < 0.01,
            "{}",
            t.distance_m
        );
        // A range, and positions not after `after_ns`, are left out.
        let t = SegmentTrack::of(&positions, 500_000_000, 2_000_000_000, 700_000_000);
        assert_eq!(t.positions, 12); // 800 ms to 1900 ms
    }

    #[test]
    fn spreading_keeps_the_first_and_the_last() {
        let positions: Vec<_> = (0..100).map(|k| sample(1000 * k, 0)).collect();
        let part = Arc::new(SegmentTrack::of(&positions, i64::MIN, i64::MAX, i64::MIN));
        let points = spread(&[part.clone(), part.clone()], 5);
        assert_eq!(points.len(), 5);
        assert_eq!(points[0].wall_ms, 0);
        assert_eq!(points[4].wall_ms, 99_000);
        assert_eq!(spread(&[part], 1000).len(), 100);
    }
}
