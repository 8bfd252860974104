//! Crash states of a recorded run, built the way ALICE and CrashMonkey
//! build them: replay an [`IoLog`] operation by operation and, at any moment
//! of it, produce the images a power cut at that moment could leave.
//!
//! The persistence model is the one `docs/storage.md` argues from, and is
//! deliberately weaker than ext4 so that recovery is not tested only
//! against the orders a kind filesystem happens to choose:
//! - bytes written to a file are durable once `sync_data` of that file
//!   returns. Before that, each 4 KiB block of an unsynced write may or may
//!   not have reached the medium, in any order, and one block may be torn
//!   at a 512-byte sector boundary;
//! - a size change (`set_len`, preallocation) is durable with the next
//!   `sync_data`; before that it may or may not have happened (a kept
//!   preallocation reads back as zeros);
//! - a created, removed or renamed directory entry is durable once its
//!   folder is synced; before that each change may or may not have happened
//!   on its own (a rename as a whole: old name or new name, never neither).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::sim::{IoLog, IoOp, SimIo};

/// Granularity at which unsynced writes reach the medium.
pub const CRASH_BLOCK_BYTES: u64 = 4096;
/// Granularity at which one block can be torn.
pub const SECTOR_BYTES: u64 = 512;

type Inode = usize;

#[derive(Clone, Debug)]
enum FileChange {
    Write { offset: u64, data: Arc<[u8]> },
    SetLen(u64),
}

#[derive(Clone, Debug, Default)]
struct FileState {
    durable: Vec<u8>,
    live: Vec<u8>,
    /// Changes since the last `sync_data`, in issue order.
    pending: Vec<FileChange>,
}

#[derive(Clone, Debug)]
enum DirChange {
    Create { path: PathBuf, inode: Inode },
    Remove { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf },
}

impl DirChange {
    fn dir(&self) -> Option<&Path> {
        match self {
            DirChange::Create { path, .. } | DirChange::Remove { path } => path.parent(),
            DirChange::Rename { to, .. } => to.parent(),
        }
    }
}

/// One volatile change that a power cut may keep or lose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unit {
    /// File bytes `range` of pending change `change` of the file.
    Block {
        inode: usize,
        change: usize,
        range: Range<u64>,
    },
    /// A pending size change of the file.
    Size { inode: usize, change: usize },
    /// Pending directory change number `change`.
    Entry { change: usize },
}

/// Which units a crash image keeps (`keep[i]` for `units()[i]`), and
/// optionally one kept block torn after this many sectors.
#[derive(Clone, Debug, Default)]
pub struct CrashChoice {
    pub keep: Vec<bool>,
    pub torn: Option<(usize, u64)>,
}

/// A recorded run being replayed; see the module documentation.
pub struct Replay {
    ops: Vec<IoOp>,
    next: usize,
    inodes: Vec<FileState>,
    live: BTreeMap<PathBuf, Inode>,
    durable: BTreeMap<PathBuf, Inode>,
    /// The inode a path named last, for operations on open handles whose
    /// name has gone.
    last_inode: BTreeMap<PathBuf, Inode>,
    dir_pending: Vec<DirChange>,
}

impl Replay {
    pub fn new(log: IoLog) -> Replay {
        let mut r = Replay {
            ops: log.ops,
            next: 0,
            inodes: Vec::new(),
            live: BTreeMap::new(),
            durable: BTreeMap::new(),
            last_inode: BTreeMap::new(),
            dir_pending: Vec::new(),
        };
        for (path, bytes) in log.start {
            let inode = r.inodes.len();
            r.inodes.push(FileState {
                durable: bytes.clone(),
                live: bytes,
                pending: Vec::new(),
            });
            r.live.insert(path.clone(), inode);
            r.durable.insert(path.clone(), inode);
            r.last_inode.insert(path, inode);
        }
        r
    }

    /// Operations applied so far.
    pub fn position(&self) -> usize {
        self.next
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operation applied last, if any.
    pub fn last_op(&self) -> Option<&IoOp> {
        self.next.checked_sub(1).map(|i| &self.ops[i])
    }

    fn inode_of(&self, path: &Path) -> Option<Inode> {
        self.live
            .get(path)
            .or_else(|| self.last_inode.get(path))
            .copied()
    }

    /// Applies the next operation; false once the log is exhausted.
    pub fn step(&mut self) -> bool {
        let Some(op) = self.ops.get(self.next).cloned() else {
            return false;
        };
        self.next += 1;
        match op {
            IoOp::Create { path } => {
                let inode = self.inodes.len();
                self.inodes.push(FileState::default());
                self.live.insert(path.clone(), inode);
                self.last_inode.insert(path.clone(), inode);
                self.dir_pending.push(DirChange::Create { path, inode });
            }
            IoOp::Write { path, offset, data } => {
                if let Some(i) = self.inode_of(&path) {
                    let f = &mut self.inodes[i];
                    write_into(&mut f.live, offset, &data);
                    f.pending.push(FileChange::Write { offset, data });
                }
            }
            IoOp::SetLen { path, len } => {
                if let Some(i) = self.inode_of(&path) {
                    let f = &mut self.inodes[i];
                    f.live.resize(len as usize, 0);
                    f.pending.push(FileChange::SetLen(len));
                }
            }
            IoOp::SyncData { path } => {
                if let Some(i) = self.inode_of(&path) {
                    let f = &mut self.inodes[i];
                    f.durable = f.live.clone();
                    f.pending.clear();
                }
            }
            IoOp::SyncDir { dir } => {
                let in_dir: Vec<PathBuf> = self
                    .live
                    .keys()
                    .chain(self.durable.keys())
                    .filter(|p| p.parent() == Some(dir.as_path()))
                    .cloned()
                    .collect();
                for p in in_dir {
                    match self.live.get(&p) {
                        Some(&i) => self.durable.insert(p, i),
                        None => self.durable.remove(&p),
                    };
                }
                self.dir_pending.retain(|c| c.dir() != Some(dir.as_path()));
            }
            IoOp::Remove { path } => {
                self.live.remove(&path);
                self.dir_pending.push(DirChange::Remove { path });
            }
            IoOp::Rename { from, to } => {
                if let Some(i) = self.live.remove(&from) {
                    self.live.insert(to.clone(), i);
                    self.last_inode.insert(to.clone(), i);
                }
                self.dir_pending.push(DirChange::Rename { from, to });
            }
        }
        true
    }

    /// The volatile changes a cut at this moment may keep or lose.
    pub fn units(&self) -> Vec<Unit> {
        let mut units = Vec::new();
        for (inode, f) in self.inodes.iter().enumerate() {
            for (change, c) in f.pending.iter().enumerate() {
                match c {
                    FileChange::SetLen(_) => units.push(Unit::Size { inode, change }),
                    FileChange::Write { offset, data } => {
                        let end = offset + data.len() as u64;
                        let mut at = *offset;
                        while at < end {
                            let block_end = ((at / CRASH_BLOCK_BYTES) + 1) * CRASH_BLOCK_BYTES;
                            let piece_end = block_end.min(end);
                            units.push(Unit::Block {
                                inode,
                                change,
                                range: at..piece_end,
                            });
                            at = piece_end;
                        }
                    }
                }
            }
        }
        for change in 0..self.dir_pending.len() {
            units.push(Unit::Entry { change });
        }
        units
    }

    /// Files whose name is durable and still in place, with their synced
    /// bytes: what no power cut at this moment may take away.
    pub fn synced_files(&self) -> Vec<(PathBuf, &[u8])> {
        self.durable
            .iter()
            .filter(|(p, i)| self.live.get(*p) == Some(*i))
            .map(|(p, &i)| (p.clone(), self.inodes[i].durable.as_slice()))
            .collect()
    }

    /// The storage left by a power cut at this moment that kept `choice`.
    pub fn image(&self, units: &[Unit], choice: &CrashChoice) -> SimIo {
        let kept = |u: usize| choice.keep.get(u).copied().unwrap_or(false);
        let mut entries = self.durable.clone();
        for (u, unit) in units.iter().enumerate() {
            let Unit::Entry { change } = unit else {
                continue;
            };
            if !kept(u) {
                continue;
            }
            match &self.dir_pending[*change] {
                DirChange::Create { path, inode } => {
                    entries.insert(path.clone(), *inode);
                }
                DirChange::Remove { path } => {
                    entries.remove(path);
                }
                DirChange::Rename { from, to } => {
                    if let Some(i) = entries.remove(from) {
                        entries.insert(to.clone(), i);
                    }
                }
            }
        }
        let mut contents: BTreeMap<Inode, Vec<u8>> = BTreeMap::new();
        for &inode in entries.values() {
            contents
                .entry(inode)
                .or_insert_with(|| self.inodes[inode].durable.clone());
        }
        for (u, unit) in units.iter().enumerate() {
            if !kept(u) {
                continue;
            }
            match unit {
                Unit::Size { inode, change } => {
                    if let (Some(bytes), FileChange::SetLen(len)) = (
                        contents.get_mut(inode),
                        &self.inodes[*inode].pending[*change],
                    ) {
                        bytes.resize(*len as usize, 0);
                    }
                }
                Unit::Block {
                    inode,
                    change,
                    range,
                } => {
                    let (Some(bytes), FileChange::Write { offset, data }) = (
                        contents.get_mut(inode),
                        &self.inodes[*inode].pending[*change],
                    ) else {
                        continue;
                    };
                    let mut end = range.end;
                    if let Some((torn_unit, sectors)) = choice.torn {
                        if torn_unit == u {
                            let block_start = range.start / CRASH_BLOCK_BYTES * CRASH_BLOCK_BYTES;
                            end = end
                                .min(block_start + sectors * SECTOR_BYTES)
                                .max(range.start);
                        }
                    }
                    let from = (range.start - offset) as usize;
                    let to = (end - offset) as usize;
                    write_into(bytes, range.start, &data[from..to]);
                }
                Unit::Entry { .. } => {}
            }
        }
        let image = SimIo::default();
        for (path, inode) in entries {
            image.put_durable(&path, contents[&inode].clone());
        }
        image
    }
}

fn write_into(dst: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if dst.len() < end {
        dst.resize(end, 0);
    }
    dst[offset as usize..end].copy_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::io::StorageIo;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn unsynced_blocks_are_kept_or_lost_one_by_one_and_synced_ones_always_stay() {
        let sim = SimIo::default();
        sim.start_log();
        let mut f = sim.create_new(&p("/d/a"), false).unwrap();
        sim.sync_dir(&p("/d")).unwrap();
        f.write_all_at(&[1; 4096], 0).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(&[2; 6000], 4096).unwrap();
        let mut r = Replay::new(sim.take_log());
        while r.step() {}
        let units = r.units();
        assert_eq!(units.len(), 2, "6000 bytes from a block boundary: 2 blocks");
        // Keep only the second block: out of order, a hole of zeros.
        let image = r.image(
            &units,
            &CrashChoice {
                keep: vec![false, true],
                torn: None,
            },
        );
        let bytes = image.contents(&p("/d/a")).unwrap();
        assert_eq!(bytes.len(), 4096 + 6000);
        assert!(bytes[..4096].iter().all(|b| *b == 1));
        assert!(bytes[4096..8192].iter().all(|b| *b == 0));
        assert!(bytes[8192..].iter().all(|b| *b == 2));
        // Torn after one sector.
        let image = r.image(
            &units,
            &CrashChoice {
                keep: vec![true, false],
                torn: Some((0, 1)),
            },
        );
        assert_eq!(image.contents(&p("/d/a")).unwrap().len(), 4096 + 512);
        assert_eq!(r.synced_files(), vec![(p("/d/a"), &[1u8; 4096][..])]);
    }

    #[test]
    fn unsynced_entries_may_vanish_and_renames_are_whole() {
        let sim = SimIo::default();
        sim.start_log();
        drop(sim.create_new(&p("/d/a"), false).unwrap());
        sim.sync_dir(&p("/d")).unwrap();
        drop(sim.create_new(&p("/d/b"), false).unwrap());
        sim.rename(&p("/d/a"), &p("/d/a.bad")).unwrap();
        let mut r = Replay::new(sim.take_log());
        while r.step() {}
        let units = r.units();
        assert_eq!(units.len(), 2);
        let none = r.image(&units, &CrashChoice::default());
        assert_eq!(none.live_files(), vec![p("/d/a")]);
        let rename_only = r.image(
            &units,
            &CrashChoice {
                keep: vec![false, true],
                torn: None,
            },
        );
        assert_eq!(rename_only.live_files(), vec![p("/d/a.bad")]);
    }
}
