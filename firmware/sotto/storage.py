# Files on flash under one root directory, with an atomic replace.
#
# write_atomic(name, data) writes name.tmp, flushes and closes it (fsync of the
# file and, after the rename, of its directory under CPython; os.sync where
# MicroPython has it), then renames it over name: on
# LittleFS (the ESP32's default filesystem) and POSIX a rename is atomic, so a
# reader finds either the old or the new content, never a mix. A power cut
# leaves at most a stale name.tmp, which readers ignore and the next write
# replaces.
#
# The primitives that touch the filesystem are the methods _write, _rename and
# _remove, so a test wrapper can fail the N-th one (a power cut) or raise
# ENOSPC (a full flash) without a real device.
import os
import sys

from micropython import const

_ENOENT = (2, 44)  # POSIX / LittleFS, Emscripten (the MicroPython VM)
_ENOSPC = (28, 51)  # POSIX / LittleFS, Emscripten
_EEXIST = (17, 20)
ENOSPC = const(28)
TMP = ".tmp"

_MICROPYTHON = sys.implementation.name == "micropython"


class StorageError(OSError):
    """A flash operation failed: `reason` says which ("flash-full", "io"),
    `name` which file. errno is kept (ENOSPC for a full flash)."""

    def __init__(self, errno, reason, name, detail=""):
        super().__init__(errno, "%s: %s %s" % (reason, name, detail))
        self.reason = reason
        self.name = name


def is_enospc(e):
    return isinstance(e, OSError) and e.args and e.args[0] in _ENOSPC


def _missing(e):
    return isinstance(e, OSError) and e.args and e.args[0] in _ENOENT


class Storage:
    fsync = True  # CPython: fsync each file (tests may turn it off for speed)

    def __init__(self, root):
        self.root = root.rstrip("/") or "/"
        self.makedirs("")

    def path(self, name):
        if not name:
            return self.root
        return self.root + "/" + name

    # -- reading ----------------------------------------------------------------
    def read(self, name):
        """The file's bytes, or None when it does not exist."""
        try:
            with open(self.path(name), "rb") as f:
                return f.read()
        except OSError as e:
            if _missing(e):
                return None
            raise

    def readinto(self, name, buf, offset=0):
        """Read up to len(buf) bytes from `offset` into buf; the count, or -1 when missing."""
        try:
            with open(self.path(name), "rb") as f:
                if offset:
                    f.seek(offset)
                return f.readinto(buf)
        except OSError as e:
            if _missing(e):
                return -1
            raise

    def open_read(self, name):
        """The file opened for reading (the caller closes it), or None when it
        does not exist: for reading one file in pieces with one open."""
        try:
            return open(self.path(name), "rb")
        except OSError as e:
            if _missing(e):
                return None
            raise

    def exists(self, name):
        try:
            os.stat(self.path(name))
            return True
        except OSError:
            return False

    def is_dir(self, name):
        try:
            return bool(os.stat(self.path(name))[0] & 0x4000)
        except OSError:
            return False

    def size(self, name):
        """Size in bytes, or -1 when missing."""
        try:
            return os.stat(self.path(name))[6]
        except OSError:
            return -1

    def listdir(self, sub=""):
        try:
            return os.listdir(self.path(sub))
        except OSError as e:
            if _missing(e):
                return []
            raise

    def makedirs(self, sub):
        path = self.path(sub)
        at = "/" if path.startswith("/") else ""
        for p in path.split("/"):
            if not p:
                continue
            at = at + p
            try:
                os.mkdir(at)
            except OSError:
                pass  # exists (or a real failure, which the next open reports)
            at += "/"

    def free_bytes(self):
        """Free space on the filesystem holding root, or None when unknown."""
        try:
            st = os.statvfs(self.root)
        except (OSError, AttributeError):
            return None
        return st[0] * st[4]  # f_bsize * f_bavail

    # -- writing ----------------------------------------------------------------
    def write_atomic(self, name, data):
        """Replace `name` with data (bytes-like, or a list/tuple of them written
        one after another). Raises StorageError; the old content stays intact."""
        path = self.path(name)
        tmp = path + TMP
        parts = data if isinstance(data, (list, tuple)) else (data,)
        try:
            self._write(tmp, parts)
        except OSError as e:
            self._discard(tmp)
            raise self._error(e, name, "write") from None
        self._sync()
        try:
            self._rename(tmp, path)
        except OSError as e:
            if not (e.args and e.args[0] in _EEXIST):
                self._discard(tmp)
                raise self._error(e, name, "rename") from None
            # a filesystem whose rename does not replace (FAT): not atomic, but
            # the new content is complete in tmp before the old one goes
            try:
                self._remove(path)
                self._rename(tmp, path)
            except OSError as e2:
                raise self._error(e2, name, "rename") from None

    def append(self, name, data):
        """Add data at the end of name (made when missing). Not atomic: a cut
        append leaves a shorter file, so callers that resume (sotto.otafetch)
        take the file's size as the offset they reached and check a digest
        before they use it. Raises StorageError."""
        try:
            self._append(self.path(name), data)
        except OSError as e:
            raise self._error(e, name, "append") from None

    def rename(self, src, dst):
        """Rename src over dst (atomic on LittleFS and POSIX). Raises StorageError."""
        try:
            self._rename(self.path(src), self.path(dst))
        except OSError as e:
            if not (e.args and e.args[0] in _EEXIST):
                raise self._error(e, src, "rename") from None
            try:  # FAT: no replacing rename
                self._remove(self.path(dst))
                self._rename(self.path(src), self.path(dst))
            except OSError as e2:
                raise self._error(e2, src, "rename") from None

    def remove(self, name):
        """Remove name; False when it did not exist."""
        try:
            self._remove(self.path(name))
            return True
        except OSError as e:
            if _missing(e):
                return False
            raise self._error(e, name, "remove") from None

    def _discard(self, path):
        try:
            self._remove(path)
        except OSError:
            pass

    def _error(self, e, name, what):
        if isinstance(e, StorageError):
            return e
        code = e.args[0] if e.args and isinstance(e.args[0], int) else 5
        if code in _ENOSPC:
            return StorageError(ENOSPC, "flash-full", name, what)
        return StorageError(code, "io", name, "%s (errno %d)" % (what, code))

    # -- primitives (a test wrapper overrides these) --------------------------
    def _write(self, path, parts):
        with open(path, "wb") as f:
            for p in parts:
                f.write(p)
            f.flush()
            if self.fsync and not _MICROPYTHON:
                os.fsync(f.fileno())

    def _append(self, path, data):
        with open(path, "ab") as f:
            f.write(data)
            f.flush()
            if self.fsync and not _MICROPYTHON:
                os.fsync(f.fileno())

    def _rename(self, src, dst):
        os.rename(src, dst)
        if self.fsync and not _MICROPYTHON:
            # POSIX: the rename itself is durable only once the directory is synced
            fd = os.open(dst.rsplit("/", 1)[0] or "/", 0)  # O_RDONLY (CPython only)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _remove(self, path):
        os.remove(path)

    def _sync(self):
        if _MICROPYTHON:
            sync = getattr(os, "sync", None)
            if sync is not None:
                sync()
