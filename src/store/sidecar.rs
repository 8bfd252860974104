//! Small files beside the segments (clock anchors, incident records, lock
//! marks, the saved wall time), written so that a power cut leaves the old
//! content or the new, never a mix: write `<name>.tmp`, fdatasync, rename,
//! fsync the folder. Everything goes through [`StorageIo`] so the crash
//! harness sees these writes too.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::io::StorageIo;

/// Sidecars are small; refuse to read anything bigger (a damaged file).
pub const SIDECAR_BYTES_MAX: u64 = 4 << 20;

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// One replacement at a time in this process: two threads replacing the
/// same file (every camera saves the wall time at its segment boundary, and
/// the boundaries line up) would share `<name>.tmp`, and one could rename
/// the other's half-written file into place.
static REPLACING: Mutex<()> = Mutex::new(());

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_atomic(io: &dyn StorageIo, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let _one_at_a_time = REPLACING.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tmp_path(path);
    if io.exists(&tmp) {
        io.remove_file(&tmp)?;
    }
    let written = (|| {
        let mut f = io.create_new(&tmp, false)?;
        f.write_all_at(bytes, 0)?;
        f.set_len(bytes.len() as u64)?;
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
