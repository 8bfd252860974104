//! The segment store: owns the on-disk format and every durability rule.
//! [`Store`] is its front door: everything outside this module reaches
//! footage through it, and nothing outside opens a segment file or lists a
//! camera folder (a test below checks). The lower layers (format, reader,
//! recovery, verify, writer, retention) stay public for the crash, fault
//! and fuzz tests that exercise them one by one.
//!
//! Inside, imports run downwards: `format`, `io` and `sidecar` at the
//! bottom; `anchor`; `catalog` and `reader`; `spans` and `stats`; then
//! `query`, `recovery`, `verify`, `writer`, `retention` and `incidents`;
//! `handle` (the `Store`) on top.
//!
//! Layout: `<data_dir>/recordings/<camera>/<seq:012>_<YYYYMMDDTHHMMSSZ>.dvr`.
//! The per-camera sequence number comes first so names sort in recording
//! order even when the wall clock jumps. See `docs/storage.md`.

pub mod anchor;
pub mod catalog;
/// Test support: replays recorded I/O to build crash images (crash-state
/// torture, fuzzing). Not part of the store's surface.
#[doc(hidden)]
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
/// Test support: simulated storage that knows what a power cut keeps (crash
/// tests, fuzz targets, benches). Not part of the store's surface.
#[doc(hidden)]
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

/// The cause is part of each message and deliberately not a `source`: an
/// error chain printer (`{:#}`) would otherwise say it twice.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {context}: {cause}")]
    Io {
        path: PathBuf,
        context: &'static str,
        cause: std::io::Error,
    },
    #[error("{path} at byte {offset}: {cause}")]
    Format {
        path: PathBuf,
        offset: u64,
        cause: FormatError,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl StoreError {
    pub fn io(path: &Path, context: &'static str, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            context,
            cause: source,
        }
    }

    /// True when the disk is full (retention may help).
    pub fn is_no_space(&self) -> bool {
        matches!(self, StoreError::Io { cause, .. } if cause.raw_os_error() == Some(libc::ENOSPC))
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
    fn store_error_chain_says_the_os_error_once() {
        let err = StoreError::io(
            Path::new("/data/cam0"),
            "creating the folder",
            std::io::Error::from_raw_os_error(libc::EROFS),
        );
        let printed = format!("{:#}", anyhow::Error::from(err));
        assert_eq!(
            printed.matches("Read-only file system").count(),
            1,
            "{printed}"
        );
        assert!(
            printed.contains("/data/cam0: creating the folder"),
            "{printed}"
        );
    }

    /// Source files of the crate outside `store/`, with their text.
    fn sources_outside_store() -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if !path.ends_with("store") {
                        dirs.push(path);
                    }
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    out.push((path, text));
                }
            }
        }
        out
    }

    #[test]
    fn nothing_outside_the_store_lists_a_camera_folder_or_opens_a_segment() {
        // What only the store does; everyone else goes through `Store`.
        let inside_only = [
            "catalog::list_",
            "SegmentReader::open",
            "recover_camera",
            "recover_segment",
            "verify::verify",
            "query::open_range",
            "anchor::",
            "camera_dir(",
            "recordings_dir(",
            "SegmentWriter::new",
            "Retention::new",
            "RealIo::new",
        ];
        let sources = sources_outside_store();
        assert!(sources.len() > 20, "found {} source files", sources.len());
        for (path, text) in sources {
            for pattern in inside_only {
                assert!(
                    !text.contains(pattern),
                    "{} uses {pattern}: go through store::Store",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn the_store_does_not_import_the_layers_above_it() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            // Module names only, so this file does not name them as paths.
            for module in [
                "status",
                "recorder",
                "http",
                "export",
                "incident",
                "timekeeper",
                "cli",
                "camera",
                "encode",
            ] {
                let above = format!("crate::{module}");
                assert!(!text.contains(&above), "{} imports {above}", path.display());
            }
        }
    }

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
