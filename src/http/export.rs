//! `GET`/`HEAD /api/export.mp4?camera=&from=&to=`: an MP4 built on the fly
//! from stored frames, with its length known up front, byte ranges, a strong
//! ETag and a file name naming camera and range.

use std::io::Write;

use crate::export::{ExportError, ExportOptions, Mp4Export};

use super::context::{required_time_param, ApiContext, ApiError};
use super::names;
use super::server::{Body, Request, Response};

/// A byte range asked for with `Range:`, resolved against the length.
#[derive(Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// No usable range: send everything.
    Whole,
    /// `[start, end)`.
    Part(u64, u64),
    Unsatisfiable,
}

/// Parses a single `bytes=` range (`a-b`, `a-`, `-n`). Several ranges, or
/// other units, are answered with the whole body, which HTTP allows.
pub fn parse_range(header: Option<&str>, len: u64) -> ByteRange {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return ByteRange::Whole;
    };
    if spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return ByteRange::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let number = |s: &str| s.parse::<u64>().ok();
    let (start, end) = match (a.is_empty(), b.is_empty()) {
        // Suffix: the last n bytes.
        (true, false) => match number(b) {
            Some(0) => return ByteRange::Unsatisfiable,
            Some(n) => (len.saturating_sub(n), len),
            None => return ByteRange::Whole,
        },
        (false, true) => match number(a) {
            Some(s) => (s, len),
            None => return ByteRange::Whole,
        },
        (false, false) => match (number(a), number(b)) {
            // `e` may be u64::MAX: "to the end", not an overflow.
            (Some(s), Some(e)) if e >= s => (s, e.saturating_add(1).min(len)),
            _ => return ByteRange::Whole,
        },
        (true, true) => return ByteRange::Whole,
    };
    if start >= len {
        ByteRange::Unsatisfiable
    } else {
        ByteRange::Part(start, end)
    }
}

fn export_error(e: ExportError) -> ApiError {
    match e {
        ExportError::NoFootage { .. } => ApiError::NotFound(e.to_string()),
        ExportError::BadTimeRange { .. } | ExportError::TooManyFrames { .. } => {
            ApiError::BadRequest(e.to_string())
        }
        ExportError::BadByteRange { len, .. } => ApiError::RangeNotSatisfiable { len },
        other => {
            log::error!("export: {other}");
            ApiError::Internal(other.to_string())
        }
    }
}

pub fn export_mp4(ctx: &ApiContext, req: &Request) -> Result<Response, ApiError> {
    let camera = ctx.camera_param(req, false)?;
    let from = required_time_param(req, "from")?;
    let to = required_time_param(req, "to")?;
    let options = ExportOptions {
        time_track: req.param("time_track") != Some("0"),
        speed_unit: ctx.config.speed_unit(),
    };
    let export = Mp4Export::open(&ctx.store, &camera, from, to, options).map_err(export_error)?;
    let len = export.len();
    let etag = export.etag();
    let skipped: u64 = export.skipped().iter().map(|s| s.frames).sum();
    let unreadable = export.problems().len();
    let disposition = names::attachment(&export.file_name());
    if req
        .header("if-none-match")
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        return Ok(Response::new(304, "video/mp4", Body::Empty).with_header("ETag", etag));
    }
    // A resumed download whose file has changed gets the whole new file.
    let range_header = match req.header("if-range") {
        Some(v) if v.trim() != etag => None,
        _ => req.header("range"),
    };
    let mut r = mp4_answer(range_header, len, disposition, move |start, end, out| {
        export
            .write_range(start, end, out)
            .map_err(std::io::Error::other)
    })?
    .with_header("ETag", etag);
    if skipped > 0 || unreadable > 0 {
        // The text track names each span; clients can tell without parsing
        // it. (The dashboard reads these same-origin, where every header is
        // visible: no CORS header is needed, and none is ever sent.)
        r = r
            .with_header("X-Skipped-Frames", skipped.to_string())
            .with_header("X-Unreadable-Segments", unreadable.to_string());
    }
    Ok(r)
}

/// A `video/mp4` download of `len` bytes for a request's `Range` header:
/// the whole file (200), one part of it (206 with `Content-Range`) or 416.
/// `write(start, end, out)` sends bytes `[start, end)`.
pub fn mp4_answer(
    range_header: Option<&str>,
    len: u64,
    disposition: String,
    write: impl FnOnce(u64, u64, &mut dyn Write) -> std::io::Result<()> + Send + 'static,
) -> Result<Response, ApiError> {
    let (status, start, end) = match parse_range(range_header, len) {
        ByteRange::Whole => (200, 0, len),
        ByteRange::Part(s, e) => (206, s, e),
        ByteRange::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { len }),
    };
    let body = Body::Sized {
        len: end - start,
        write: Box::new(move |out| write(start, end, out)),
    };
    let r = Response::new(status, "video/mp4", body)
        .with_header("Accept-Ranges", "bytes")
        .with_header("Content-Disposition", disposition)
        .with_header("Cache-Control", "no-store, no-transform");
    Ok(if status == 206 {
        r.with_header("Content-Range", format!("bytes {start}-{}/{len}", end - 1))
    } else {
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_ending_at_u64_max_is_the_rest_of_the_body_not_an_empty_part() {
        assert_eq!(
            parse_range(Some("bytes=0-18446744073709551615"), 1000),
            ByteRange::Part(0, 1000)
        );
        assert_eq!(
            parse_range(
                Some("bytes=18446744073709551615-18446744073709551615"),
                1000
            ),
            ByteRange::Unsatisfiable
        );
    }

    #[test]
    fn ranges_resolve_against_the_length() {
        let p = |h: &str| parse_range(Some(h), 1000);
        assert_eq!(parse_range(None, 1000), ByteRange::Whole);
        assert_eq!(p("bytes=0-99"), ByteRange::Part(0, 100));
        assert_eq!(p("bytes=900-"), ByteRange::Part(900, 1000));
        assert_eq!(p("bytes=-100"), ByteRange::Part(900, 1000));
        assert_eq!(p("bytes=-5000"), ByteRange::Part(0, 1000));
        assert_eq!(p("bytes=990-5000"), ByteRange::Part(990, 1000));
        assert_eq!(p("bytes=1000-"), ByteRange::Unsatisfiable);
        assert_eq!(p("bytes=-0"), ByteRange::Unsatisfiable);
        assert_eq!(p("bytes=5-1"), ByteRange::Whole);
        assert_eq!(p("bytes=0-1,5-9"), ByteRange::Whole);
        assert_eq!(p("items=0-1"), ByteRange::Whole);
        assert_eq!(p("bytes=x-y"), ByteRange::Whole);
    }
}
