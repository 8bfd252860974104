//! GPX 1.1 export: the GPS track of one camera over a wall-clock range, as
//! the positions stored with its footage. Each track point carries the
//! recorder's time of reception (the footage's clock, so the track lines up
//! with the video), elevation, fix, satellites and HDOP; speed and course go
//! in Garmin's `TrackPointExtension` v2, which GPX tools read.
//!
//! The file is written twice from the segment indexes, never held: once to
//! count its bytes (an HTTP answer states its length up front), once to
//! send it. Positions received after the first pass are left out of the
//! second, so both give the same bytes. A new `trkseg` starts wherever
//! positions stop for longer than [`SEGMENT_GAP_NS`] (recording stopped,
//! the receiver lost its fix).
//!
//! `docs/gps.md` lists the elements and why.

use std::io::{self, Write};

use crate::clock::{format_rfc3339, format_rfc3339_ms};
use crate::store::format::PositionSample;
use crate::store::Store;

use super::{range_file_name, ExportError};

/// Positions further apart than this are in separate track segments.
pub const SEGMENT_GAP_NS: i64 = 10_000_000_000;

/// A GPX file of stored positions, ready to be written.
pub struct GpxExport {
    store: Store,
    camera: String,
    from_ns: i64,
    to_ns: i64,
    /// Positions after this were received after the file was sized.
    through_ns: i64,
    len: u64,
    points: usize,
    problems: Vec<String>,
}

impl GpxExport {
    /// Sizes the GPX of `camera`'s positions received in `[from_ns, to_ns)`.
    /// A range without a position with coordinates is
    /// [`ExportError::NoPositions`].
    pub fn open(
        store: &Store,
        camera: &str,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<GpxExport, ExportError> {
        if to_ns <= from_ns {
            return Err(ExportError::BadTimeRange {
                from: from_ns,
                to: to_ns,
            });
        }
        let mut export = GpxExport {
            store: store.clone(),
            camera: camera.to_string(),
            from_ns,
            to_ns,
            through_ns: to_ns - 1,
            len: 0,
            points: 0,
            problems: Vec::new(),
        };
        let mut counted = Counter(0);
        let (points, last_ns, problems) = export.write_points(&mut counted)?;
        if points == 0 {
            return Err(ExportError::NoPositions {
                camera: camera.to_string(),
                from: from_ns,
                to: to_ns,
            });
        }
        export.len = counted.0;
        export.points = points;
        export.through_ns = last_ns;
        export.problems = problems;
        Ok(export)
    }

    /// Exact size of the file in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never true: a GPX export holds at least one point.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Track points in the file.
    pub fn points(&self) -> usize {
        self.points
    }

    /// One line per segment left out because it could not be read.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// `<camera>_<from>_<to>.gpx`, as the video export names its file.
    pub fn file_name(&self) -> String {
        range_file_name(&self.camera, self.from_ns, self.to_ns, ".gpx")
    }

    /// Writes the whole file. Fails, after writing what it has, if the
    /// footage changed since [`open`](GpxExport::open) so that the bytes
    /// differ (retention deleted a segment of the range).
    pub fn write(&self, out: &mut dyn Write) -> Result<(), ExportError> {
        let mut counted = Counting { inner: out, n: 0 };
        let (points, _, _) = self.write_points(&mut counted)?;
        if counted.n != self.len || points != self.points {
            return Err(ExportError::Io(io::Error::other(format!(
                "the track changed while it was sent ({points} points, {} of {} bytes): segments of the range were deleted",
                counted.n, self.len
            ))));
        }
        Ok(())
    }

    /// The file; returns the points written, the last one's time, and the
    /// segments that could not be read.
    fn write_points(&self, out: &mut dyn Write) -> Result<(usize, i64, Vec<String>), ExportError> {
        let mut writer = TrackWriter {
            out,
            points: 0,
            last_ns: None,
            error: None,
        };
        writer.head(&self.camera, self.from_ns, self.to_ns)?;
        let through_ns = self.through_ns;
        let walk = self.store.walk_positions(
            &self.camera,
            self.from_ns,
            through_ns + 1,
            &mut |batch| {
                for p in batch {
                    writer.point(p);
                }
            },
        )?;
        if let Some(e) = writer.error.take() {
            return Err(e.into());
        }
        writer.tail()?;
        Ok((
            writer.points,
            writer.last_ns.unwrap_or(through_ns),
            walk.problems,
        ))
    }
}

/// Writes the XML, remembering the first write error (the walk's visitor
/// cannot return one).
struct TrackWriter<'a> {
    out: &'a mut dyn Write,
    points: usize,
    last_ns: Option<i64>,
    error: Option<io::Error>,
}

impl TrackWriter<'_> {
    fn head(&mut self, camera: &str, from_ns: i64, to_ns: i64) -> io::Result<()> {
        let camera = xml_text(camera);
        write!(
            self.out,
            concat!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
                "<gpx version=\"1.1\" creator=\"dashvault {version}\"",
                " xmlns=\"http://www.topografix.com/GPX/1/1\"",
                " xmlns:gpxtpx=\"http://www.garmin.com/xmlschemas/TrackPointExtension/v2\"",
                " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"",
                " xsi:schemaLocation=\"http://www.topografix.com/GPX/1/1 http://www.topografix.com/GPX/1/1/gpx.xsd",
                " http://www.garmin.com/xmlschemas/TrackPointExtension/v2 https://www8.garmin.com/xmlschemas/TrackPointExtensionv2.xsd\">\n",
                "<metadata><name>{camera} {from} to {to}</name></metadata>\n",
                "<trk><name>{camera}</name><src>dashvault</src>\n<trkseg>\n"
            ),
            version = env!("CARGO_PKG_VERSION"),
            camera = camera,
            from = format_rfc3339(from_ns),
            to = format_rfc3339(to_ns),
        )
    }

    fn point(&mut self, p: &PositionSample) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.try_point(p) {
            self.error = Some(e);
        }
    }

    fn try_point(&mut self, p: &PositionSample) -> io::Result<()> {
        let Some((lat, lon)) = p.lat_lon_e7 else {
            return Ok(()); // a point needs coordinates
        };
        let at = p.received.wall_ns;
        if self.last_ns.is_some_and(|last| at - last > SEGMENT_GAP_NS) {
            self.out.write_all(b"</trkseg>\n<trkseg>\n")?;
        }
        self.last_ns = Some(at);
        self.points += 1;
        let o = &mut self.out;
        write!(o, "<trkpt lat=\"{}\" lon=\"{}\">", e7(lat), e7(lon))?;
        if let Some(mm) = p.altitude_mm {
            write!(o, "<ele>{}</ele>", milli(mm as i64))?;
        }
        write!(o, "<time>{}</time>", format_rfc3339_ms(at))?;
        if let Some(fix) = fix_type(p.quality) {
            write!(o, "<fix>{fix}</fix>")?;
        }
        if let Some(n) = p.satellites {
            write!(o, "<sat>{n}</sat>")?;
        }
        if let Some(h) = p.hdop_centi {
            write!(o, "<hdop>{}.{:02}</hdop>", h / 100, h % 100)?;
        }
        if p.speed_mm_s.is_some() || p.heading_cdeg.is_some() {
            o.write_all(b"<extensions><gpxtpx:TrackPointExtension>")?;
            if let Some(v) = p.speed_mm_s {
                write!(o, "<gpxtpx:speed>{}</gpxtpx:speed>", milli(v as i64))?;
            }
            if let Some(c) = p.heading_cdeg {
                write!(
                    o,
                    "<gpxtpx:course>{}.{:02}</gpxtpx:course>",
                    c / 100,
                    c % 100
                )?;
            }
            o.write_all(b"</gpxtpx:TrackPointExtension></extensions>")?;
        }
        o.write_all(b"</trkpt>\n")
    }

    fn tail(&mut self) -> io::Result<()> {
        self.out.write_all(b"</trkseg>\n</trk>\n</gpx>\n")
    }
}

/// GPX's `fixType` for a stored fix quality; none for one it has no word
/// for (a fix of unknown dimension, dead reckoning, manual, simulation).
fn fix_type(quality: u8) -> Option<&'static str> {
    match quality {
        0 => Some("none"),
        2 => Some("2d"),
        3 => Some("3d"),
        4..=6 => Some("dgps"),
        _ => None,
    }
}

/// 1e-7 degrees as a decimal, exactly: `-33.8567844`.
fn e7(v: i32) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!("{sign}{}.{:07}", a / 10_000_000, a % 10_000_000)
}

/// Thousandths as a decimal, exactly: `-1.250`.
fn milli(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!("{sign}{}.{:03}", a / 1000, a % 1000)
}

/// Text as XML character data.
fn xml_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// Counts bytes and keeps none.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Passes bytes on and counts them.
struct Counting<'a> {
    inner: &'a mut dyn Write,
    n: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_values_print_exactly() {
        assert_eq!(e7(525_200_080), "52.5200080");
        assert_eq!(e7(-338_567_844), "-33.8567844");
        assert_eq!(e7(-5), "-0.0000005");
        assert_eq!(milli(34_500), "34.500");
        assert_eq!(milli(-1_250), "-1.250");
    }

    #[test]
    fn camera_names_are_escaped() {
        assert_eq!(xml_text("a&b<c>\"d\u{1}"), "a&amp;b&lt;c&gt;&quot;d?");
    }
}
