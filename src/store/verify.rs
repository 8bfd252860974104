//! `verify`: checks what is stored without changing anything.
//! Shallow: every segment is present, non-empty and either closed (valid
//! trailer and index) or the newest of its camera (still being written or
//! awaiting recovery). Deep: additionally every record's CRCs, and that a
//! closed segment's index agrees with a full scan.

use std::path::Path;

use serde::Serialize;

use super::catalog::{list_cameras, list_segments};
use super::io::StorageIo;
use super::reader::{read_closed_index, scan, SegmentReader};
use super::StoreError;

#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub deep: bool,
    pub cameras: Vec<CameraReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CameraReport {
    pub camera: String,
    pub segments: u64,
    pub frames: u64,
    pub bytes: u64,
    pub bad_records: u64,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    pub unclosed: Vec<String>,
    pub problems: Vec<SegmentProblem>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SegmentProblem {
    pub segment: String,
    pub problem: String,
}

pub fn verify(io: &dyn StorageIo, data_dir: &Path, deep: bool) -> Result<VerifyReport, StoreError> {
    let mut cameras = Vec::new();
    for camera in list_cameras(io, data_dir)? {
        cameras.push(verify_camera(io, data_dir, &camera, deep)?);
    }
    let ok = cameras
        .iter()
        .all(|c| c.problems.is_empty() && c.bad_records == 0);
    Ok(VerifyReport { ok, deep, cameras })
}

fn verify_camera(
    io: &dyn StorageIo,
    data_dir: &Path,
    camera: &str,
    deep: bool,
) -> Result<CameraReport, StoreError> {
    let (segments, quarantined) = list_segments(io, data_dir, camera)?;
    let mut r = CameraReport {
        camera: camera.to_string(),
        segments: segments.len() as u64,
        frames: 0,
        bytes: 0,
        bad_records: 0,
        first_time: None,
        last_time: None,
        unclosed: Vec::new(),
        problems: quarantined
            .into_iter()
            .map(|q| SegmentProblem {
                segment: q,
                problem: "unreadable file set aside by recovery".into(),
            })
            .collect(),
    };
    let mut first_wall = None;
    let mut last_wall = None;
    for (i, seg) in segments.iter().enumerate() {
        let newest = i + 1 == segments.len();
        let mut problem = |p: String| {
            r.problems.push(SegmentProblem {
                segment: seg.name.clone(),
                problem: p,
            })
        };
        r.bytes += seg.len;
        if seg.len == 0 {
            problem("empty file".into());
            continue;
        }
        let file = match io.open_read(&seg.path) {
            Ok(f) => f,
            Err(e) => {
                problem(format!("cannot open: {e}"));
                continue;
            }
        };
        let closed = read_closed_index(file.as_ref(), &seg.path)?;
        if closed.is_none() {
            if newest {
                r.unclosed.push(seg.name.clone());
            } else {
                problem("not closed (no valid trailer) and not the newest segment".into());
            }
        }
        let frames = match &closed {
            Some((_, frames, _)) => frames.clone(),
            None => scan(file.as_ref(), &seg.path)?.frames,
        };
        if deep {
            if closed.is_some() {
                let scanned = scan(file.as_ref(), &seg.path)?;
                if !scanned.reached_index {
                    r.bad_records += 1;
                    problem(format!(
                        "scan stopped before the index: {}",
                        scanned.stop.unwrap_or_default()
                    ));
                } else if scanned.frames != frames {
                    problem("index does not match the frames found by a scan".into());
                }
            }
            match SegmentReader::open(io, &seg.path) {
                Ok(reader) => {
                    for (n, _) in reader.frames.iter().enumerate() {
                        if let Err(e) = reader.read_frame(n) {
                            r.bad_records += 1;
                            problem(format!("frame {n}: {e}"));
                        }
                    }
                }
                Err(e) => problem(format!("cannot read: {e}")),
            }
        }
        r.frames += frames.len() as u64;
        if let (Some(a), Some(b)) = (frames.first(), frames.last()) {
            first_wall = Some(first_wall.map_or(a.wall_ns, |w: i64| w.min(a.wall_ns)));
            last_wall = Some(last_wall.map_or(b.wall_ns, |w: i64| w.max(b.wall_ns)));
        }
    }
    r.first_time = first_wall.map(crate::clock::format_rfc3339);
    r.last_time = last_wall.map(crate::clock::format_rfc3339);
    Ok(r)
}
