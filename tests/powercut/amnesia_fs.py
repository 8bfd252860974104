#!/usr/bin/python3
"""A FUSE filesystem that forgets unsynced writes, like a power cut.

Mounted over a backing folder, it passes names through but keeps every
write and truncation of a file in memory until that file is fsynced
(fsync or fdatasync); only then do they reach the backing folder, which is
itself fsynced. Killing this process (SIGKILL) and detaching the mount is
the power cut: the backing folder then holds exactly what was synced.

Directory changes (create, unlink, rename, mkdir) go straight to the
backing folder: this layer tests data durability, while folder durability
is covered by the crash-state enumeration in tests/store_torture.rs.

Usage: amnesia_fs.py BACKING MOUNTPOINT   (runs in the foreground)
"""
import errno
import os
import sys
import threading

from fusepy import FUSE, FuseOSError, Operations


class Amnesia(Operations):
    def __init__(self, root):
        self.root = root
        self.mutex = threading.Lock()
        # path -> list of ("w", offset, bytes) / ("t", length), unsynced
        self.pending = {}
        # path -> logical size while changes are pending
        self.size = {}

    def _full(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _backing_size(self, path):
        return os.lstat(self._full(path)).st_size

    def getattr(self, path, fh=None):
        try:
            st = os.lstat(self._full(path))
        except OSError as e:
            raise FuseOSError(e.errno)
        d = {k: getattr(st, k) for k in (
            "st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime",
            "st_nlink", "st_size", "st_uid")}
        with self.mutex:
            if path in self.size:
                d["st_size"] = self.size[path]
        return d

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._full(path))

    def statfs(self, path):
        st = os.statvfs(self._full(path))
        return {k: getattr(st, k) for k in (
            "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
            "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

    def mkdir(self, path, mode):
        os.mkdir(self._full(path), mode)

    def rmdir(self, path):
        os.rmdir(self._full(path))

    def unlink(self, path):
        os.unlink(self._full(path))
        with self.mutex:
            self.pending.pop(path, None)
            self.size.pop(path, None)

    def rename(self, old, new):
        os.rename(self._full(old), self._full(new))
        with self.mutex:
            if old in self.pending:
                self.pending[new] = self.pending.pop(old)
            if old in self.size:
                self.size[new] = self.size.pop(old)

    def chmod(self, path, mode):
        os.chmod(self._full(path), mode)

    def utimens(self, path, times=None):
        os.utime(self._full(path), times)

    def create(self, path, mode, fi=None):
        fd = os.open(self._full(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        os.close(fd)
        return 0

    def open(self, path, flags):
        if not os.path.exists(self._full(path)):
            raise FuseOSError(errno.ENOENT)
        return 0

    def read(self, path, size, offset, fh):
        with self.mutex:
            logical = self.size.get(path)
            ops = list(self.pending.get(path, []))
        with open(self._full(path), "rb") as f:
            f.seek(offset)
            data = bytearray(f.read(size))
        # Replay pending changes over the window [offset, offset + size).
        length = self._backing_size(path)
        for op in ops:
            if op[0] == "t":
                length = op[1]
                keep = max(0, min(len(data), length - offset))
                del data[keep:]
            else:
                _, at, chunk = op
                length = max(length, at + len(chunk))
                lo, hi = max(at, offset), min(at + len(chunk), offset + size)
                if lo < hi:
                    if len(data) < hi - offset:
                        data.extend(b"\0" * (hi - offset - len(data)))
                    data[lo - offset:hi - offset] = chunk[lo - at:hi - at]
        end = min(offset + size, logical if logical is not None else length)
        want = max(0, end - offset)
        if len(data) < want:
            data.extend(b"\0" * (want - len(data)))
        return bytes(data[:want])

    def write(self, path, data, offset, fh):
        with self.mutex:
            cur = self.size.get(path)
            if cur is None:
                cur = self._backing_size(path)
            self.pending.setdefault(path, []).append(("w", offset, bytes(data)))
            self.size[path] = max(cur, offset + len(data))
        return len(data)

    def truncate(self, path, length, fh=None):
        with self.mutex:
            self.pending.setdefault(path, []).append(("t", length))
            self.size[path] = length

    def fsync(self, path, datasync, fh):
        with self.mutex:
            ops = self.pending.pop(path, [])
            self.size.pop(path, None)
        fd = os.open(self._full(path), os.O_WRONLY)
        try:
            for op in ops:
                if op[0] == "t":
                    os.ftruncate(fd, op[1])
                else:
                    os.pwrite(fd, op[2], op[1])
            os.fsync(fd)
        finally:
            os.close(fd)
        return 0

    def fsyncdir(self, path, datasync, fh):
        return 0

    def flush(self, path, fh):
        return 0  # close() does not make anything durable

    def release(self, path, fh):
        return 0


if __name__ == "__main__":
    backing, mountpoint = sys.argv[1], sys.argv[2]
    FUSE(Amnesia(backing), mountpoint, foreground=True, nothreads=False,
         default_permissions=True, allow_other=False)
