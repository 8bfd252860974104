//! Finished share clips, kept in one folder of the data partition so the
//! same clip is not encoded twice and a phone can fetch it again.
//!
//! The folder has its own cap, and the oldest clip goes first. It is not
//! footage: retention never counts it against the recordings' cap, and when
//! recording needs space the clips are removed before any segment
//! ([`ShareCache::yield_space`]). A clip is written under a temporary
//! name and renamed when whole, and only `.mp4` names are ever served, so a restart mid-job cannot leave a half clip that is; the
//! leftovers are removed when the cache opens.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// One finished clip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedClip {
    pub name: String,
    pub bytes: u64,
    modified: SystemTime,
}

pub struct ShareCache {
    dir: PathBuf,
    cap_bytes: u64,
    /// One removal pass at a time (the job and retention both remove).
    removing: Mutex<()>,
}

impl ShareCache {
    /// Opens (and creates) the folder, removing what a stopped job left.
    pub fn open(dir: &Path, cap_bytes: u64) -> std::io::Result<ShareCache> {
        std::fs::create_dir_all(dir)?;
        let cache = ShareCache {
            dir: dir.to_path_buf(),
            cap_bytes,
            removing: Mutex::new(()),
        };
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.ends_with(".tmp") {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => log::info!("share cache: removed {name}, left by a stopped job"),
                    Err(e) => log::warn!("share cache: could not remove {name}: {e}"),
                }
            }
        }
        Ok(cache)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn cap_bytes(&self) -> u64 {
        self.cap_bytes
    }

    /// Where a clip of this name is (or will be) kept.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A finished clip by name; `None` for names that are not a clip's
    /// (hidden, nested, not `.mp4`) and for clips not there.
    pub fn finished(&self, name: &str) -> Option<(PathBuf, u64)> {
        if !is_clip_name(name) {
            return None;
        }
        let path = self.path(name);
        let meta = std::fs::symlink_metadata(&path).ok()?;
        meta.is_file().then_some((path, meta.len()))
    }

    /// Every finished clip, oldest first.
    pub fn clips(&self) -> Vec<CachedClip> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut clips: Vec<CachedClip> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let meta = e.metadata().ok()?;
                (is_clip_name(&name) && meta.is_file()).then(|| CachedClip {
                    name,
                    bytes: meta.len(),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                })
            })
            .collect();
        clips.sort_by(|a, b| a.modified.cmp(&b.modified).then(a.name.cmp(&b.name)));
        clips
    }

    pub fn used_bytes(&self) -> u64 {
        self.clips().iter().map(|c| c.bytes).sum()
    }

    /// Removes the oldest clips (never `keep`) until the cache holds at most
    /// its cap with `incoming` more bytes. False when that cannot be done:
    /// `incoming` alone is over the cap.
    pub fn make_room(&self, incoming: u64, keep: Option<&str>) -> bool {
        if incoming > self.cap_bytes {
            return false;
        }
        let _one = self.removing.lock().unwrap_or_else(|e| e.into_inner());
        let clips = self.clips();
        let mut used: u64 = clips.iter().map(|c| c.bytes).sum();
        for clip in clips {
            if used + incoming <= self.cap_bytes {
                break;
            }
            if Some(clip.name.as_str()) == keep {
                continue;
            }
            if self.remove(&clip, "over the share cache's cap") {
                used -= clip.bytes;
            }
        }
        used + incoming <= self.cap_bytes
    }

    /// Recording needs `bytes` of space: removes the oldest clips until that
    /// much is freed or none is left. Returns the bytes freed.
    pub fn yield_space(&self, bytes: u64) -> u64 {
        let _one = self.removing.lock().unwrap_or_else(|e| e.into_inner());
        let mut freed = 0;
        for clip in self.clips() {
            if freed >= bytes {
                break;
            }
            if self.remove(&clip, "recording needs the space") {
                freed += clip.bytes;
            }
        }
        freed
    }

    fn remove(&self, clip: &CachedClip, why: &str) -> bool {
        match std::fs::remove_file(self.path(&clip.name)) {
            Ok(()) => {
                log::info!(
                    "share cache: removed {} ({} bytes): {why}",
                    clip.name,
                    clip.bytes
                );
                true
            }
            Err(e) => {
                log::warn!("share cache: could not remove {}: {e}", clip.name);
                false
            }
        }
    }
}

/// A finished clip's name: one plain `.mp4` file name, not hidden.
pub fn is_clip_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.ends_with(".mp4")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: usize, age_s: u64) {
        let path = dir.join(name);
        std::fs::write(&path, vec![0u8; bytes]).unwrap();
        let when = SystemTime::now() - std::time::Duration::from_secs(age_s);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    fn names(cache: &ShareCache) -> Vec<String> {
        cache.clips().into_iter().map(|c| c.name).collect()
    }

    #[test]
    fn opening_removes_half_written_clips_and_never_serves_hidden_names() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), ".a.mp4.tmp", 10, 0);
        write(dir.path(), ".a.mp4.body.tmp", 10, 0);
        write(dir.path(), "a.mp4.tmp", 10, 0);
        write(dir.path(), "b.mp4", 10, 0);
        let cache = ShareCache::open(dir.path(), 1000).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["b.mp4"]);
        assert!(cache.finished("b.mp4").is_some());
        for bad in [".b.mp4", "../b.mp4", "b.mp4/", "b.txt", "", "a b.mp4"] {
            assert!(cache.finished(bad).is_none(), "{bad:?} was served");
        }
    }

    #[test]
    fn room_is_made_oldest_first_and_the_new_clip_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "old.mp4", 400, 300);
        write(dir.path(), "mid.mp4", 400, 200);
        write(dir.path(), "new.mp4", 400, 100);
        let cache = ShareCache::open(dir.path(), 1000).unwrap();
        assert_eq!(names(&cache), ["old.mp4", "mid.mp4", "new.mp4"]);
        assert!(cache.make_room(0, None));
        assert_eq!(names(&cache), ["mid.mp4", "new.mp4"]);
        // 800 held and 300 coming: the oldest goes, but never the one kept.
        assert!(cache.make_room(300, Some("mid.mp4")));
        assert_eq!(names(&cache), ["mid.mp4"]);
        assert!(
            !cache.make_room(1001, None),
            "a clip over the cap fits nowhere"
        );
    }

    #[test]
    fn recording_takes_space_from_the_oldest_clips_first() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.mp4", 100, 300);
        write(dir.path(), "b.mp4", 100, 200);
        write(dir.path(), "c.mp4", 100, 100);
        let cache = ShareCache::open(dir.path(), 1000).unwrap();
        assert_eq!(cache.yield_space(150), 200);
        assert_eq!(names(&cache), ["c.mp4"]);
        assert_eq!(cache.yield_space(1_000_000), 100);
        assert_eq!(cache.used_bytes(), 0);
    }
}
