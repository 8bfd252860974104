//! Files replaced whole: the small ones beside the segments (clock anchors,
//! incident records, lock marks, the saved wall time, the status file), and
//! for the rest of the crate the config, the token and exports. A power cut
//! leaves the old content or the new, never a mix: write `<name>.tmp`,
//! fdatasync, rename, fsync the folder. Everything goes through
//! [`StorageIo`] so the crash harness sees these writes too.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use super::io::{SegmentFile, StorageIo};

/// Sidecars are small; refuse to read anything bigger (a damaged file).
pub const SIDECAR_BYTES_MAX: u64 = 4 << 20;

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Paths being replaced in this process. Two threads replacing the same
/// file (every camera saves the wall time at its segment boundary, and the
/// boundaries line up) would share `<name>.tmp`, and one could rename the
/// other's half-written file into place; so one file is replaced at a time,
/// while other files (a long export, a sidecar) go on side by side.
static REPLACING: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
static REPLACED: Condvar = Condvar::new();

/// Holds `path` for one replacement; released when dropped.
struct Turn<'a>(&'a Path);

impl<'a> Turn<'a> {
    fn take(path: &'a Path) -> Turn<'a> {
        let mut busy = REPLACING.lock().unwrap_or_else(|e| e.into_inner());
        while busy.get_or_insert_with(HashSet::new).contains(path) {
            busy = REPLACED.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        busy.get_or_insert_with(HashSet::new)
            .insert(path.to_path_buf());
        Turn(path)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut busy = REPLACING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = busy.as_mut() {
            set.remove(self.0);
        }
        REPLACED.notify_all();
    }
}

/// Who may read a replaced file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readers {
    /// The owner and its group, like footage.
    Group,
    /// The owner only: the token, keys, the config.
    Owner,
}

/// Writes a file from its start, in order.
struct Sequential<'a> {
    file: &'a mut dyn SegmentFile,
    at: u64,
}

impl Write for Sequential<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all_at(buf, self.at)?;
        self.at += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Replaces `path`, atomically and durably, with what `fill` writes. On
/// any error the old content stays and no temporary file is left.
pub fn replace_with(
    io: &dyn StorageIo,
    path: &Path,
    readers: Readers,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let _turn = Turn::take(path);
    let tmp = tmp_path(path);
    if io.exists(&tmp) {
        io.remove_file(&tmp)?;
    }
    let written = (|| {
        let mut f = match readers {
            Readers::Group => io.create_new(&tmp, false)?,
            Readers::Owner => io.create_private(&tmp)?,
        };
        let mut out = Sequential {
            file: f.as_mut(),
            at: 0,
        };
        fill(&mut out)?;
        let len = out.at;
        f.set_len(len)?;
        f.sync_data()?;
        drop(f);
        io.rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = io.remove_file(&tmp);
        return written;
    }
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => io.sync_dir(dir),
        _ => io.sync_dir(Path::new(".")),
    }
}

/// [`replace_with`] on the real filesystem, for files outside the data
/// folder: the config, the token, exports.
pub fn replace_file(
    path: &Path,
    readers: Readers,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    replace_with(&super::io::RealIo::new(), path, readers, fill)
}

/// Replaces `path` with `bytes` atomically and durably, readable by the
/// group.
pub fn write_atomic(io: &dyn StorageIo, path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_with(io, path, Readers::Group, |out| out.write_all(bytes))
}

/// The whole content of a small file; `Ok(None)` if it does not exist.
pub fn read_small(io: &dyn StorageIo, path: &Path) -> io::Result<Option<Vec<u8>>> {
    if !io.exists(path) {
        return Ok(None);
    }
    let f = match io.open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = f.file_len()?;
    if len > SIDECAR_BYTES_MAX {
        return Err(io::Error::other(format!(
            "{len} bytes, more than a sidecar ever holds ({SIDECAR_BYTES_MAX})"
        )));
    }
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, 0)?;
    Ok(Some(buf))
}

/// At most the first `max` bytes of a file; `Ok(None)` if it does not exist.
pub fn read_prefix(io: &dyn StorageIo, path: &Path, max: usize) -> io::Result<Option<Vec<u8>>> {
    let f = match io.open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = (f.file_len()? as usize).min(max);
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, 0)?;
    Ok(Some(buf))
}

/// Removes `path` if it exists and fsyncs its folder.
pub fn remove_durably(io: &dyn StorageIo, path: &Path) -> io::Result<()> {
    if !io.exists(path) {
        return Ok(());
    }
    io.remove_file(path)?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => io.sync_dir(dir),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::io::RealIo;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let io = RealIo::new();
        let p = dir.path().join("a.json");
        assert_eq!(read_small(&io, &p).unwrap(), None);
        write_atomic(&io, &p, b"first, longer").unwrap();
        write_atomic(&io, &p, b"second").unwrap();
        assert_eq!(read_small(&io, &p).unwrap().unwrap(), b"second");
        assert!(!tmp_path(&p).exists());
        remove_durably(&io, &p).unwrap();
        assert!(!p.exists());
    }

    #[test]
    fn secrets_are_replaced_private_and_the_rest_group_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let io = RealIo::new();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let token = dir.path().join("token");
        replace_with(&io, &token, Readers::Owner, |o| o.write_all(b"secret")).unwrap();
        assert_eq!(mode(&token), 0o600);
        let anchor = dir.path().join("anchor");
        write_atomic(&io, &anchor, b"x").unwrap();
        assert_eq!(mode(&anchor), 0o640);
    }

    #[test]
    fn a_failed_fill_keeps_the_old_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let io = RealIo::new();
        let p = dir.path().join("export.mp4");
        write_atomic(&io, &p, b"old").unwrap();
        let r = replace_with(&io, &p, Readers::Group, |o| {
            o.write_all(b"half of the new")?;
            Err(io::Error::other("the source failed"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert!(!tmp_path(&p).exists());
    }

    #[test]
    fn a_long_replacement_does_not_hold_up_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let (long, short) = (dir.path().join("long"), dir.path().join("short"));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|scope| {
            let long = &long;
            let waiting = scope.spawn(move || {
                let mut released = false;
                replace_with(&RealIo::new(), long, Readers::Group, |o| {
                    started_tx.send(()).unwrap();
                    // Held until the other file is done; a shared lock would
                    // make this time out instead.
                    released = release_rx
                        .recv_timeout(std::time::Duration::from_secs(5))
                        .is_ok();
                    o.write_all(b"long")
                })
                .unwrap();
                released
            });
            started_rx.recv().unwrap();
            write_atomic(&RealIo::new(), &short, b"short").unwrap();
            let _ = release_tx.send(());
            assert!(
                waiting.join().unwrap(),
                "the short write waited for the long one"
            );
        });
        assert_eq!(std::fs::read(&short).unwrap(), b"short");
        assert_eq!(std::fs::read(&long).unwrap(), b"long");
    }

    #[test]
    fn threads_replacing_the_same_file_each_leave_a_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("last-wall-time");
        let contents: Vec<Vec<u8>> = (0..6u8).map(|t| vec![b'a' + t; 3000]).collect();
        std::thread::scope(|scope| {
            for c in &contents {
                let p = &p;
                scope.spawn(move || {
                    let io = RealIo::new();
                    for _ in 0..40 {
                        write_atomic(&io, p, c).unwrap();
                    }
                });
            }
        });
        let last = read_small(&RealIo::new(), &p).unwrap().unwrap();
        assert!(contents.contains(&last), "a mix of writes");
        assert!(!tmp_path(&p).exists());
    }
}
