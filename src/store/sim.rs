//! An in-memory [`StorageIo`] that knows which bytes a power cut would keep.
//!
//! It follows the model in `docs/storage.md`: a write is volatile until
//! `sync_data` of its file; a created, renamed or removed directory entry is
//! volatile until `sync_dir` of its folder. [`SimIo::crash_image`] builds
//! the state a power cut could leave: everything synced, plus any prefix of
//! the later writes in the order they were issued, the last of them torn at
//! any byte, with unsynced directory changes kept or lost.
//!
//! Faults can be injected (`fail_writes_with`) to test full or failing disks.
//!
//! [`SimIo::start_log`] records every operation as issued ([`IoOp`]), so
//! [`crate::store::crash_states`] can replay a whole recording and build the
//! crash images of every moment of it afterwards.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use super::io::{DirEntryInfo, FsSpace, IoCounters, SegmentFile, StorageIo};

#[derive(Clone, Debug, Default)]
struct SimFile {
    /// What a reader sees now.
    live: Vec<u8>,
    /// What survives a power cut.
    durable: Vec<u8>,
    /// The directory entry exists now / survives a power cut.
    entry_live: bool,
    entry_durable: bool,
}

#[derive(Clone, Debug)]
struct PendingWrite {
    path: PathBuf,
    offset: u64,
    data: Vec<u8>,
}

/// One storage operation as it was issued, for crash-state enumeration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoOp {
    Create {
        path: PathBuf,
    },
    Write {
        path: PathBuf,
        offset: u64,
        data: Arc<[u8]>,
    },
    /// `set_len`, or a `preallocate` that grew the file.
    SetLen {
        path: PathBuf,
        len: u64,
    },
    SyncData {
        path: PathBuf,
    },
    SyncDir {
        dir: PathBuf,
    },
    Remove {
        path: PathBuf,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
    },
}

/// Operations recorded since [`SimIo::start_log`], with the durable files
/// that existed when it started.
#[derive(Clone, Debug, Default)]
pub struct IoLog {
    pub start: Vec<(PathBuf, Vec<u8>)>,
    pub ops: Vec<IoOp>,
}

#[derive(Default)]
struct SimState {
    files: BTreeMap<PathBuf, SimFile>,
    /// Writes not yet covered by a sync, in issue order.
    pending: Vec<PendingWrite>,
    capacity_bytes: u64,
    fail_writes: Option<io::ErrorKind>,
    fail_folders: Option<io::ErrorKind>,
    fail_syncs: Option<io::ErrorKind>,
    /// Reads of this file fail with EIO (a bad sector).
    unreadable: Option<PathBuf>,
    /// Number of `sync_data` calls so far (crash points for tests).
    syncs: u64,
    /// Called after every write, before any sync covers it: the moment a
    /// power cut can tear that write.
    on_write: Option<WriteObserver>,
    /// Recording of operations, while a log is being kept.
    log: Option<IoLog>,
}

impl SimState {
    fn record(&mut self, op: impl FnOnce() -> IoOp) {
        if let Some(log) = &mut self.log {
            log.ops.push(op());
        }
    }
}

/// See [`SimIo::on_write`].
pub type WriteObserver = Arc<dyn Fn(&SimIo) + Send + Sync>;

/// How much of the volatile state a simulated power cut keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashCut {
    /// Bytes of unsynced writes kept, counted through the writes in issue
    /// order; the write this count ends inside is torn at that byte.
    pub keep_unsynced_bytes: u64,
    /// Whether unsynced directory changes (creations, removals) survived.
    pub keep_unsynced_entries: bool,
}

#[derive(Clone)]
pub struct SimIo {
    state: Arc<Mutex<SimState>>,
    counters: Arc<IoCounters>,
}

impl Default for SimIo {
    fn default() -> SimIo {
        SimIo::new(u64::MAX / 4)
    }
}

impl SimIo {
    pub fn new(capacity_bytes: u64) -> SimIo {
        SimIo {
            state: Arc::new(Mutex::new(SimState {
                capacity_bytes,
                ..SimState::default()
            })),
            counters: Arc::new(IoCounters::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes every later write fail with `kind` (None: writes work again).
    pub fn fail_writes_with(&self, kind: Option<io::ErrorKind>) {
        self.lock().fail_writes = kind;
    }

    /// Makes every later folder creation fail with `kind` (None: works).
    pub fn fail_folders_with(&self, kind: Option<io::ErrorKind>) {
        self.lock().fail_folders = kind;
    }

    pub fn fail_syncs_with(&self, kind: Option<io::ErrorKind>) {
        self.lock().fail_syncs = kind;
    }

    /// Makes every read of `path` fail as a bad sector does (None: none).
    pub fn fail_reads_of(&self, path: Option<PathBuf>) {
        self.lock().unreadable = path;
    }

    /// Calls `observer` after every write (while it is still unsynced), so
    /// tests can cut the power in the middle of a sync.
    pub fn on_write(&self, observer: Option<WriteObserver>) {
        self.lock().on_write = observer;
    }

    /// Starts recording every operation (see [`IoLog`]). Unsynced state at
    /// this moment is not part of the log: start from a synced store.
    pub fn start_log(&self) {
        let mut st = self.lock();
        let start = st
            .files
            .iter()
            .filter(|(_, f)| f.entry_durable)
            .map(|(p, f)| (p.clone(), f.durable.clone()))
            .collect();
        st.log = Some(IoLog {
            start,
            ops: Vec::new(),
        });
    }

    /// Stops recording and returns what was recorded.
    pub fn take_log(&self) -> IoLog {
        self.lock().log.take().unwrap_or_default()
    }

    pub fn sync_count(&self) -> u64 {
        self.lock().syncs
    }

    /// Total bytes of writes not yet covered by a sync.
    pub fn unsynced_bytes(&self) -> u64 {
        self.lock()
            .pending
            .iter()
            .map(|w| w.data.len() as u64)
            .sum()
    }

    /// The live content of a file, if it exists.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.lock();
        st.files
            .get(path)
            .filter(|f| f.entry_live)
            .map(|f| f.live.clone())
    }

    /// Replaces a file's content as if it had been written and synced
    /// (fixtures: corrupted files, files from elsewhere).
    pub fn put_durable(&self, path: &Path, content: Vec<u8>) {
        let mut st = self.lock();
        st.files.insert(
            path.to_path_buf(),
            SimFile {
                live: content.clone(),
                durable: content,
                entry_live: true,
                entry_durable: true,
            },
        );
    }

    /// Paths of live files, sorted.
    pub fn live_files(&self) -> Vec<PathBuf> {
        let st = self.lock();
        st.files
            .iter()
            .filter(|(_, f)| f.entry_live)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// The storage a power cut at this instant could leave, per `cut`.
    pub fn crash_image(&self, cut: CrashCut) -> SimIo {
        let st = self.lock();
        let mut files: BTreeMap<PathBuf, SimFile> = BTreeMap::new();
        for (path, f) in &st.files {
            let exists = if cut.keep_unsynced_entries {
                f.entry_live
            } else {
                f.entry_durable
            };
            if exists {
                files.insert(
                    path.clone(),
                    SimFile {
                        live: f.durable.clone(),
                        durable: f.durable.clone(),
                        entry_live: true,
                        entry_durable: true,
                    },
                );
            }
        }
        let mut budget = cut.keep_unsynced_bytes;
        for w in &st.pending {
            if budget == 0 {
                break;
            }
            let take = (w.data.len() as u64).min(budget) as usize;
            budget -= take as u64;
            if let Some(f) = files.get_mut(&w.path) {
                write_into(&mut f.live, w.offset, &w.data[..take]);
                f.durable = f.live.clone();
            }
        }
        SimIo {
            state: Arc::new(Mutex::new(SimState {
                files,
                capacity_bytes: st.capacity_bytes,
                ..SimState::default()
            })),
            counters: Arc::new(IoCounters::default()),
        }
    }

    fn used_bytes(st: &SimState) -> u64 {
        st.files
            .values()
            .filter(|f| f.entry_live)
            .map(|f| f.live.len() as u64)
            .sum()
    }
}

fn write_into(dst: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if dst.len() < end {
        dst.resize(end, 0);
    }
    dst[offset as usize..end].copy_from_slice(data);
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

impl StorageIo for SimIo {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        // Folders are implicit in paths; only an injected fault fails here.
        match self.lock().fail_folders {
            Some(kind) => Err(io::Error::new(
                kind,
                format!("{}: injected fault on creating the folder", dir.display()),
            )),
            None => Ok(()),
        }
    }

    fn create_new(&self, path: &Path, _want_direct: bool) -> io::Result<Box<dyn SegmentFile>> {
        let mut st = self.lock();
        if let Some(kind) = st.fail_writes {
            return Err(io::Error::new(kind, "injected fault on create"));
        }
        let f = st.files.entry(path.to_path_buf()).or_default();
        if f.entry_live {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        *f = SimFile {
            entry_live: true,
            entry_durable: f.entry_durable,
            durable: if f.entry_durable {
                std::mem::take(&mut f.durable)
            } else {
                Vec::new()
            },
            live: Vec::new(),
        };
        st.record(|| IoOp::Create {
            path: path.to_path_buf(),
        });
        Ok(Box::new(SimHandle {
            io: self.clone(),
            path: path.to_path_buf(),
        }))
    }

    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        self.open_read(path)
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let st = self.lock();
        match st.files.get(path) {
            Some(f) if f.entry_live => Ok(Box::new(SimHandle {
                io: self.clone(),
                path: path.to_path_buf(),
            })),
            _ => Err(not_found(path)),
        }
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if let Some(kind) = st.fail_syncs {
            return Err(io::Error::new(kind, "injected fault on directory sync"));
        }
        st.record(|| IoOp::SyncDir {
            dir: dir.to_path_buf(),
        });
        st.files.retain(|p, f| {
            if p.parent() == Some(dir) {
                f.entry_durable = f.entry_live;
            }
            f.entry_live || f.entry_durable
        });
        self.counters.dir_syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<DirEntryInfo>> {
        let st = self.lock();
        let mut names: BTreeMap<String, DirEntryInfo> = BTreeMap::new();
        for (p, f) in &st.files {
            if !f.entry_live {
                continue;
            }
            let Ok(rest) = p.strip_prefix(dir) else {
                continue;
            };
            let mut parts = rest.components();
            let Some(first) = parts.next() else { continue };
            let name = first.as_os_str().to_string_lossy().into_owned();
            let is_dir = parts.next().is_some();
            names.entry(name.clone()).or_insert(DirEntryInfo {
                name,
                len: if is_dir { 0 } else { f.live.len() as u64 },
                is_dir,
                is_file: !is_dir,
            });
        }
        Ok(names.into_values().collect())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        match st.files.get_mut(path) {
            Some(f) if f.entry_live => {
                f.entry_live = false;
                st.record(|| IoOp::Remove {
                    path: path.to_path_buf(),
                });
                Ok(())
            }
            _ => Err(not_found(path)),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let Some(src) = st.files.get_mut(from).filter(|f| f.entry_live) else {
            return Err(not_found(from));
        };
        src.entry_live = false;
        let moved = SimFile {
            live: src.live.clone(),
            // A rename moves the inode: its synced data goes with it, but the
            // new name itself is durable only after the folder is synced.
            durable: src.durable.clone(),
            entry_live: true,
            entry_durable: false,
        };
        st.files.insert(to.to_path_buf(), moved);
        st.record(|| IoOp::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        });
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let st = self.lock();
        st.files.get(path).is_some_and(|f| f.entry_live)
            || st
                .files
                .iter()
                .any(|(p, f)| f.entry_live && p.starts_with(path) && p != path)
    }

    fn space(&self, _dir: &Path) -> io::Result<FsSpace> {
        let st = self.lock();
        let used = SimIo::used_bytes(&st);
        Ok(FsSpace {
            total_bytes: st.capacity_bytes,
            free_bytes: st.capacity_bytes.saturating_sub(used),
        })
    }

    fn counters(&self) -> &IoCounters {
        &self.counters
    }
}

/// An open file of a [`SimIo`].
struct SimHandle {
    io: SimIo,
    path: PathBuf,
}

impl SimHandle {
    fn with_file<T>(&self, f: impl FnOnce(&mut SimState) -> io::Result<T>) -> io::Result<T> {
        let mut st = self.io.lock();
        if !st.files.contains_key(&self.path) {
            return Err(not_found(&self.path));
        }
        f(&mut st)
    }
}

impl SegmentFile for SimHandle {
    fn file_len(&self) -> io::Result<u64> {
        self.with_file(|st| Ok(st.files[&self.path].live.len() as u64))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.with_file(|st| {
            if st.unreadable.as_deref() == Some(self.path.as_path()) {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            let live = &st.files[&self.path].live;
            if offset >= live.len() as u64 {
                return Ok(0);
            }
            let n = buf.len().min(live.len() - offset as usize);
            buf[..n].copy_from_slice(&live[offset as usize..offset as usize + n]);
            Ok(n)
        })
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let path = self.path.clone();
        self.with_file(|st| {
            if let Some(kind) = st.fail_writes {
                return Err(io::Error::new(kind, "injected fault on write"));
            }
            let current = st.files[&path].live.len() as u64;
            let grows = (offset + buf.len() as u64).saturating_sub(current);
            if grows > 0 && SimIo::used_bytes(st) + grows > st.capacity_bytes {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            if let Some(f) = st.files.get_mut(&path) {
                write_into(&mut f.live, offset, buf);
            }
            st.pending.push(PendingWrite {
                path: path.clone(),
                offset,
                data: buf.to_vec(),
            });
            st.record(|| IoOp::Write {
                path: path.clone(),
                offset,
                data: buf.into(),
            });
            Ok(())
        })?;
        self.io
            .counters
            .bytes_written
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        let observer = self.io.lock().on_write.clone();
        if let Some(observe) = observer {
            observe(&self.io);
        }
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let path = self.path.clone();
        self.with_file(|st| {
            if let Some(kind) = st.fail_syncs {
                return Err(io::Error::new(kind, "injected fault on sync"));
            }
            if let Some(f) = st.files.get_mut(&path) {
                f.durable = f.live.clone();
            }
            st.pending.retain(|w| w.path != path);
            st.syncs += 1;
            st.record(|| IoOp::SyncData { path: path.clone() });
            Ok(())
        })?;
        self.io.counters.data_syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        let path = self.path.clone();
        self.with_file(|st| {
            let current = st.files[&path].live.len() as u64;
            if len > current && SimIo::used_bytes(st) + (len - current) > st.capacity_bytes {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let mut grew = false;
            if let Some(f) = st.files.get_mut(&path) {
                if f.live.len() < len as usize {
                    f.live.resize(len as usize, 0);
                    grew = true;
                }
            }
            if grew {
                st.record(|| IoOp::SetLen { path, len });
            }
            Ok(())
        })
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let path = self.path.clone();
        self.with_file(|st| {
            if let Some(f) = st.files.get_mut(&path) {
                f.live.resize(len as usize, 0);
            }
            st.record(|| IoOp::SetLen { path, len });
            Ok(())
        })
    }

    fn drop_cache(&self, _offset: u64, _len: u64) {}

    fn is_direct(&self) -> bool {
        true
    }
}
