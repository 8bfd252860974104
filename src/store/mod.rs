//! The segment store: owns the on-disk format and every durability rule.
//! Nothing outside this module opens a segment file.
//!
//! Layout: `<data_dir>/recordings/<camera>/<seq:012>_<YYYYMMDDTHHMMSSZ>.dvr`.
//! The per-camera sequence number comes first so names sort in recording
//! order even when the wall clock jumps. See `docs/storage.md`.

pub mod anchor;
pub mod catalog;
pub mod crash_states;
pub mod format;
mod handle;
pub mod incidents;
pub mod io;
pub mod query;
pub mod reader;
pub mod recovery;
pub mod retention;
pub mod sidecar;
pub mod sim;
pub mod spans;
pub mod stats;
pub mod verify;
pub mod writer;

use std::path::{Path, PathBuf};

pub use format::FormatError;
pub use handle::{BootRelabel, Store, StoredFrame};

pub const SEGMENT_EXTENSION: &str = "dvr";
/// Suffix given to files that look like segments but cannot be read at all.
pub const QUARANTINE_SUFFIX: &str = ".bad";
/// Sidecar whose presence protects a segment from retention (incident locks).
pub const PROTECT_SUFFIX: &str = ".lock";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {context}: {source}")]
    Io {
        path: PathBuf,
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} at byte {offset}: {source}")]
    Format {
        path: PathBuf,
        offset: u64,
        #[source]
        source: FormatError,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl StoreError {
    pub fn io(path: &Path, context: &'static str, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            context,
            source,
        }
    }

    /// True when the disk is full (retention may help).
    pub fn is_no_space(&self) -> bool {
        matches!(self, StoreError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
    }
}

pub fn recordings_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("recordings")
}

pub fn camera_dir(data_dir: &Path, camera_id: &str) -> PathBuf {
    recordings_dir(data_dir).join(camera_id)
}

pub fn segment_file_name(seq: u64, wall_ns: i64) -> String {
    format!(
        "{seq:012}_{}.{SEGMENT_EXTENSION}",
        crate::clock::format_compact(wall_ns)
    )
}

/// The sequence number in a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(&format!(".{SEGMENT_EXTENSION}"))?;
    let (seq, _) = stem.split_once('_')?;
    if seq.len() != 12 {
        return None;
    }
    seq.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_by_sequence_and_parse_back() {
        let a = segment_file_name(9, 1_900_000_000_000_000_000);
        let b = segment_file_name(10, 1_000_000_000_000_000_000);
        assert!(a < b, "{a} should sort before {b}");
        assert_eq!(parse_segment_name(&a), Some(9));
        assert_eq!(parse_segment_name("000000000009_x.dvr.bad"), None);
        assert_eq!(parse_segment_name("notes.txt"), None);
    }
}
