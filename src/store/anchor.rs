//! Clock anchors: how the recordings of one boot are relabelled once the
//! right wall time is known (set from a phone), without rewriting a byte of
//! video.
//!
//! Every frame carries its monotonic capture time, which is exact within a
//! boot, and the boot id is in each segment's stream header. An anchor
//! `recordings/<camera>/<boot id hex>.anchor` says "for frames of this boot,
//! wall time = monotonic time + `wall_minus_mono_ns`", and lists the
//! corrected start time of every segment of that boot that was named before
//! the clock was set, because segment names carry the start time the clock
//! said then. Readers apply the anchor when they open a segment; the catalog
//! uses the corrected start times to find segments by time. The file is
//! replaced atomically (`sidecar::write_atomic`), so a power cut leaves the
//! old labels or the new ones, and the segments themselves never change.
//!
//! The format is text with the anchor in its first lines, so that opening a
//! segment reads only a small prefix, however many labels follow:
//!
//! ```text
//! dashvault clock anchor 1
//! boot 0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b
//! wall_minus_mono_ns 1795000000000000000
//! set_at 2026-11-21T10:00:00.250Z
//! label 41 1795000012000000000
//! label 42 1795000072000000000
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::format::{IndexEntry, PositionSample, FLAG_WALL_ESTIMATED};
use super::io::StorageIo;
use super::{sidecar, StoreError};
use crate::clock::boot_id_hex;

pub const ANCHOR_SUFFIX: &str = ".anchor";

const MAGIC_LINE: &str = "dashvault clock anchor 1";
/// Enough for the magic, boot, anchor and set_at lines.
const PREFIX_BYTES: usize = 256;

#[derive(Clone, Debug, PartialEq)]
pub struct BootAnchor {
    pub boot_id: String,
    /// Wall time minus monotonic time for every frame of this boot, ns.
    pub wall_minus_mono_ns: i64,
    /// When the anchor was set (corrected wall time), for people.
    pub set_at: String,
    /// `[segment number, corrected start in ns]` of segments named before
    /// the clock was set.
    pub labels: Vec<(u64, i64)>,
}

impl BootAnchor {
    pub fn encode(&self) -> String {
        let mut s = format!(
            "{MAGIC_LINE}\nboot {}\nwall_minus_mono_ns {}\nset_at {}\n",
            self.boot_id, self.wall_minus_mono_ns, self.set_at
        );
        for (seq, start) in &self.labels {
            s.push_str(&format!("label {seq} {start}\n"));
        }
        s
    }

    /// Parses a whole anchor file; `labels: false` stops after the header
    /// (all a reader needs).
    pub fn decode(text: &str, labels: bool) -> Result<BootAnchor, String> {
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC_LINE) {
            return Err(format!("first line is not '{MAGIC_LINE}'"));
        }
        let mut field = |name: &str| -> Result<String, String> {
            let line = lines.next().unwrap_or("");
            line.strip_prefix(name)
                .and_then(|v| v.strip_prefix(' '))
                .map(str::to_string)
                .ok_or_else(|| format!("expected '{name} ...', found '{line}'"))
        };
        let boot_id = field("boot")?;
        let wall_minus_mono_ns = field("wall_minus_mono_ns")?
            .parse()
            .map_err(|e| format!("wall_minus_mono_ns: {e}"))?;
        let set_at = field("set_at")?;
        let mut out = BootAnchor {
            boot_id,
            wall_minus_mono_ns,
            set_at,
            labels: Vec::new(),
        };
        if labels {
            for line in lines {
                let mut parts = line.split(' ');
                let parsed = match (parts.next(), parts.next(), parts.next(), parts.next()) {
                    (Some("label"), Some(seq), Some(start), None) => {
                        seq.parse().ok().zip(start.parse().ok())
                    }
                    _ => None,
                };
                out.labels
                    .push(parsed.ok_or_else(|| format!("not a label line: '{line}'"))?);
            }
        }
        Ok(out)
    }
}

pub fn anchor_path(camera_dir: &Path, boot_id: &[u8; 16]) -> PathBuf {
    camera_dir.join(format!("{}{ANCHOR_SUFFIX}", boot_id_hex(boot_id)))
}

/// The anchor at `path`; a damaged one is logged and ignored (the
/// recordings then show the times they were recorded with).
pub fn read_anchor(io: &dyn StorageIo, path: &Path) -> Option<BootAnchor> {
    match sidecar::read_small(io, path) {
        Ok(Some(bytes)) => match BootAnchor::decode(&String::from_utf8_lossy(&bytes), true) {
            Ok(a) => Some(a),
            Err(e) => {
                log::warn!("ignoring clock anchor {}: {e}", path.display());
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            log::warn!("cannot read clock anchor {}: {e}", path.display());
            None
        }
    }
}

/// Rewrites the wall times of `frames` and the reception times of
/// `positions` (recorded in boot `boot_id`, in the folder `camera_dir`)
/// from the boot's anchor, if there is one. Returns whether it did;
/// relabelled times are no longer estimated.
pub fn apply(
    io: &dyn StorageIo,
    camera_dir: &Path,
    boot_id: &[u8; 16],
    frames: &mut [IndexEntry],
    positions: &mut [PositionSample],
) -> bool {
    let path = anchor_path(camera_dir, boot_id);
    if !io.exists(&path) {
        return false;
    }
    let anchor = match sidecar::read_prefix(io, &path, PREFIX_BYTES) {
        Ok(Some(bytes)) => match BootAnchor::decode(&String::from_utf8_lossy(&bytes), false) {
            Ok(a) => a,
            Err(e) => {
                log::warn!("ignoring clock anchor {}: {e}", path.display());
                return false;
            }
        },
        Ok(None) => return false,
        Err(e) => {
            log::warn!("cannot read clock anchor {}: {e}", path.display());
            return false;
        }
    };
    for f in frames {
        f.wall_ns = f.mono_ns as i64 + anchor.wall_minus_mono_ns;
        f.flags &= !FLAG_WALL_ESTIMATED;
    }
    for p in positions {
        p.received.wall_ns = p.received.mono_ns as i64 + anchor.wall_minus_mono_ns;
        p.flags &= !FLAG_WALL_ESTIMATED;
    }
    true
}

/// Corrected segment start times from every anchor in a camera folder,
/// given the folder's file names.
pub fn corrected_starts(
    io: &dyn StorageIo,
    camera_dir: &Path,
    names: &[&str],
) -> HashMap<u64, i64> {
    let mut out = HashMap::new();
    for name in names.iter().filter(|n| n.ends_with(ANCHOR_SUFFIX)) {
        if let Some(a) = read_anchor(io, &camera_dir.join(name)) {
            out.extend(a.labels);
        }
    }
    out
}

/// Writes the anchor of boot `boot_id` in `camera_dir`: wall minus
/// monotonic time, and the corrected start of each segment (by number).
pub fn write_anchor(
    io: &dyn StorageIo,
    camera_dir: &Path,
    boot_id: &[u8; 16],
    wall_minus_mono_ns: i64,
    set_at_wall_ns: i64,
    labels: Vec<(u64, i64)>,
) -> Result<(), StoreError> {
    let anchor = BootAnchor {
        boot_id: boot_id_hex(boot_id),
        wall_minus_mono_ns,
        set_at: crate::clock::format_rfc3339_ms(set_at_wall_ns),
        labels,
    };
    let path = anchor_path(camera_dir, boot_id);
    sidecar::write_atomic(io, &path, anchor.encode().as_bytes())
        .map_err(|e| StoreError::io(&path, "writing the clock anchor", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_round_trip_and_readers_need_only_the_prefix() {
        let a = BootAnchor {
            boot_id: "0b".repeat(16),
            wall_minus_mono_ns: -1_795_000_000_000_000_000,
            set_at: "2026-11-21T10:00:00.250Z".into(),
            labels: (0..2000).map(|i| (i, i as i64 * 60_000_000_000)).collect(),
        };
        let text = a.encode();
        assert_eq!(BootAnchor::decode(&text, true).unwrap(), a);
        let head = BootAnchor::decode(&text[..PREFIX_BYTES], false).unwrap();
        assert_eq!(head.wall_minus_mono_ns, a.wall_minus_mono_ns);
        assert!(head.labels.is_empty());
        for bad in [
            "",
            "dashvault clock anchor 2\n",
            &text.replace("label 7 ", "label x "),
        ] {
            assert!(BootAnchor::decode(bad, true).is_err(), "{bad:.40}");
        }
    }
}
