//! The GPS track of a range in a few points, for the dashboard to draw its
//! shape and a speed graph: every position counts towards the distance and
//! the top speed, and at most `points_max` of them, spread evenly over the
//! track, are kept. Two passes over the segment indexes (count, then pick),
//! so a day at 10 Hz costs the points kept, not the positions.

use crate::store::format::PositionSample;
use crate::store::Store;

use super::ExportError;

/// Mean Earth radius (IUGG), metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackPoint {
    /// When the recorder received it, ms since 1970 (the footage's clock).
    pub wall_ms: i64,
    pub lat: f64,
    pub lon: f64,
    pub speed_mps: Option<f64>,
    pub altitude_m: Option<f64>,
}

impl TrackPoint {
    fn of(p: &PositionSample) -> Option<TrackPoint> {
        let (lat, lon) = p.lat_lon_e7?;
        Some(TrackPoint {
            wall_ms: p.received.wall_ns.div_euclid(1_000_000),
            lat: lat as f64 / 1e7,
            lon: lon as f64 / 1e7,
            speed_mps: p.speed_mm_s.map(|v| v as f64 / 1000.0),
            altitude_m: p.altitude_mm.map(|a| a as f64 / 1000.0),
        })
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
/// has no positions.
pub fn summarize(
    store: &Store,
    camera: &str,
    from_ns: i64,
    to_ns: i64,
    points_max: usize,
) -> Result<TrackSummary, ExportError> {
    if to_ns <= from_ns {
        return Err(ExportError::BadTimeRange {
            from: from_ns,
            to: to_ns,
        });
    }
    let points_max = points_max.max(2);
    let mut count = 0usize;
    let mut through_ns = from_ns;
    store.walk_positions(camera, from_ns, to_ns, &mut |batch| {
        for p in batch.iter().filter(|p| p.lat_lon_e7.is_some()) {
            count += 1;
            through_ns = p.received.wall_ns;
        }
    })?;
    if count == 0 {
        return Ok(TrackSummary::default());
    }
    // Keep position k when it starts a new one of `points_max - 1` equal
    // steps through the count; the last is always kept.
    let mut summary = TrackSummary::default();
    let mut previous: Option<TrackPoint> = None;
    let mut last_kept_step = None;
    // Positions received since the count are left for the next look.
    let walk = store.walk_positions(camera, from_ns, through_ns + 1, &mut |batch| {
        for point in batch.iter().filter_map(TrackPoint::of) {
            let k = summary.positions;
            summary.positions += 1;
            if let Some(prev) = previous {
                summary.distance_m += distance_m(&prev, &point);
            }
            if let Some(v) = point.speed_mps {
                summary.max_speed_mps = Some(summary.max_speed_mps.map_or(v, |m: f64| m.max(v)));
            }
            let step = k * (points_max - 1) / count;
            let last = k + 1 == count;
            if (last_kept_step != Some(step) || last) && summary.points.len() < points_max {
                summary.points.push(point);
                last_kept_step = Some(step);
            }
            previous = Some(point);
        }
    })?;
    summary.problems = walk.problems;
    Ok(summary)
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

    fn at(lat: f64, lon: f64) -> TrackPoint {
        TrackPoint {
            wall_ms: 0,
            lat,
            lon,
            speed_mps: None,
            altitude_m: None,
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
}
