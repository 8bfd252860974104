//! The only place segment bytes meet the operating system.
//!
//! Everything in `store` does its I/O through [`StorageIo`] and
//! [`SegmentFile`], so tests can swap the real filesystem ([`RealIo`]) for
//! [`crate::store::sim::SimIo`], which remembers which bytes were synced and
//! can build the images a power cut could leave behind.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsSpace {
    pub total_bytes: u64,
    pub free_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntryInfo {
    pub name: String,
    pub len: u64,
    pub is_dir: bool,
    /// A regular file (not a folder, symlink, device or pipe).
    pub is_file: bool,
}

/// Bytes and syncs that went to storage, for benchmarks and status.
#[derive(Debug, Default)]
pub struct IoCounters {
    pub bytes_written: AtomicU64,
    pub data_syncs: AtomicU64,
    pub dir_syncs: AtomicU64,
}

impl IoCounters {
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }
}

pub trait StorageIo: Send + Sync {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Creates a file that must not exist yet (O_CREAT|O_EXCL). With
    /// `want_direct`, writes bypass the page cache when the filesystem allows it.
    fn create_new(&self, path: &Path, want_direct: bool) -> io::Result<Box<dyn SegmentFile>>;
    /// Like [`StorageIo::create_new`], through the page cache, readable by
    /// the owner only (tokens, keys, the config).
    fn create_private(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        self.create_new(path, false)
    }
    /// Opens an existing file for reading and writing (recovery).
    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
    /// Makes created, renamed and removed entries of `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<DirEntryInfo>>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
    fn space(&self, dir: &Path) -> io::Result<FsSpace>;
    fn counters(&self) -> &IoCounters;
}

pub trait SegmentFile: Send + Sync {
    fn file_len(&self) -> io::Result<u64>;
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// fdatasync: the bytes written so far, and the file size, survive a power cut.
    fn sync_data(&mut self) -> io::Result<()>;
    /// Reserves space up to `len` bytes (zero-filled), extending the file.
    fn preallocate(&mut self, len: u64) -> io::Result<()>;
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Drops written pages from the page cache (buffered mode keeps memory flat).
    fn drop_cache(&self, offset: u64, len: u64);
    /// Whether writes currently bypass the page cache.
    fn is_direct(&self) -> bool;

    /// Reads exactly `buf.len()` bytes or fails with UnexpectedEof.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("end of file at offset {offset}"),
                    ))
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The real filesystem.
/// Folders the store creates: the owner and its group may list them, no
/// one else (footage shows where the car has been).
pub const DIR_MODE: u32 = 0o750;
/// Files the store creates (segments, sidecars): owner writes, group reads.
pub const FILE_MODE: u32 = 0o640;
/// Files with secrets in them: the owner only.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

#[derive(Default)]
pub struct RealIo {
    counters: Arc<IoCounters>,
}

impl RealIo {
    pub fn new() -> RealIo {
        RealIo::default()
    }

    fn create_with_mode(
        &self,
        path: &Path,
        mode: u32,
        want_direct: bool,
    ) -> io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)?;
        // O_DIRECT is tried on a second descriptor: some filesystems (tmpfs)
        // refuse it at open, and the file must exist either way.
        let direct = if want_direct {
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)
                .ok()
        } else {
            None
        };
        Ok(Box::new(RealSegmentFile {
            file,
            direct,
            counters: self.counters.clone(),
        }))
    }
}

impl StorageIo for RealIo {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
    }

    fn create_new(&self, path: &Path, want_direct: bool) -> io::Result<Box<dyn SegmentFile>> {
        self.create_with_mode(path, FILE_MODE, want_direct)
    }

    fn create_private(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        self.create_with_mode(path, PRIVATE_FILE_MODE, false)
    }

    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(RealSegmentFile {
            file,
            direct: None,
            counters: self.counters.clone(),
        }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let file = File::open(path)?;
        Ok(Box::new(RealSegmentFile {
            file,
            direct: None,
            counters: self.counters.clone(),
        }))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()?;
        self.counters.dir_syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<DirEntryInfo>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            // Not following symlinks: a link in place of a segment is
            // reported, never read through.
            let Ok(meta) = entry.metadata() else {
                continue; // removed while listing
            };
            out.push(DirEntryInfo {
                name: entry.file_name().to_string_lossy().into_owned(),
                len: meta.len(),
                is_dir: meta.is_dir(),
                is_file: meta.file_type().is_file(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn space(&self, dir: &Path) -> io::Result<FsSpace> {
        let st = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
        let frag = st.fragment_size() as u64;
        Ok(FsSpace {
            total_bytes: st.blocks() as u64 * frag,
            free_bytes: st.blocks_available() as u64 * frag,
        })
    }

    fn counters(&self) -> &IoCounters {
        &self.counters
    }
}

struct RealSegmentFile {
    file: File,
    /// A second descriptor opened with O_DIRECT, while the filesystem accepts it.
    direct: Option<File>,
    counters: Arc<IoCounters>,
}

impl SegmentFile for RealSegmentFile {
    fn file_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(&self.file, buf, offset)
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        if let Some(direct) = &self.direct {
            match direct.write_all_at(buf, offset) {
                Ok(()) => {
                    self.counters
                        .bytes_written
                        .fetch_add(buf.len() as u64, Ordering::Relaxed);
                    return Ok(());
                }
                // The filesystem accepted O_DIRECT at open but not for this
                // write (alignment it does not support): fall back for good.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    log::warn!("O_DIRECT write refused ({e}); using buffered writes for this file");
                    self.direct = None;
                }
                Err(e) => return Err(e),
            }
        }
        self.file.write_all_at(buf, offset)?;
        self.counters
            .bytes_written
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.counters.data_syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        nix::fcntl::fallocate(
            &self.file,
            nix::fcntl::FallocateFlags::empty(),
            0,
            len as libc::off_t,
        )
        .map_err(io::Error::from)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn drop_cache(&self, offset: u64, len: u64) {
        // Advice only: failure just leaves pages cached.
        let _ = nix::fcntl::posix_fadvise(
            &self.file,
            offset as libc::off_t,
            len as libc::off_t,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        );
    }

    fn is_direct(&self) -> bool {
        self.direct.is_some()
    }
}
