# A Storage that fails on demand, for power-loss and full-flash tests (CPython
# and the MicroPython VM):
#
#   FaultStorage(root, cut_at=N)        power cut at the N-th write, rename (or,
#                                       with count_removes, remove); every
#                                       operation after it fails until "reboot"
#                                       (a new Storage over the same root)
#   cut_after=True                      a cut rename/remove happens, then the
#                                       power dies (the caller never learns it)
#   whole_writes=True                   with cut_after: a cut write completes
#                                       too (its .tmp is whole), then the power dies
#   full_after_bytes=B                  ENOSPC once the files hold more than B bytes
#
# A cut write leaves half of its bytes in the .tmp file, as a real power cut
# mid-write can.
import os

from sotto.storage import Storage


class PowerCut(OSError):
    pass


class FaultStorage(Storage):
    fsync = False

    def __init__(self, root, cut_at=0, full_after_bytes=-1, count_removes=False, cut_after=False,
                 whole_writes=False):
        self.ops = 0  # writes and renames (and removes, with count_removes) so far
        self.cut_at = cut_at  # 0: never
        self.cut_after = cut_after
        self.whole_writes = whole_writes
        self.count_removes = count_removes
        self.dead = False
        self.full_after_bytes = full_after_bytes  # -1: unlimited
        self.written = 0  # bytes in files under real names (approximately the flash in use)
        self.log = []  # (op, path) of every operation that took effect
        Storage.__init__(self, root)
        if full_after_bytes >= 0:
            self.written = self._bytes_on_disk(self.root)

    def _bytes_on_disk(self, path):
        n = 0
        for fn in os.listdir(path):
            st = os.stat(path + "/" + fn)
            n += self._bytes_on_disk(path + "/" + fn) if st[0] & 0x4000 else st[6]
        return n

    def _op(self):
        if self.dead:
            raise PowerCut(5, "power is off")
        self.ops += 1
        if self.cut_at and self.ops >= self.cut_at:
            self.dead = True
            return True
        return False

    def _write(self, path, parts):
        n = 0
        for p in parts:
            n += len(p)
        if self.dead:
            raise PowerCut(5, "power is off")
        if self.full_after_bytes >= 0 and self.written + n > self.full_after_bytes:
            # like LittleFS: the file was created, the data did not fit
            with open(path, "wb") as f:
                f.write(b"")
            raise OSError(28, "no space")
        if self._op():
            if self.cut_after and self.whole_writes:
                Storage._write(self, path, parts)
                raise PowerCut(5, "power cut after write")
            # the cut lands mid-write: half of the bytes reach the flash
            data = b"".join(bytes(p) for p in parts)
            with open(path, "wb") as f:
                f.write(data[:len(data) // 2])
            raise PowerCut(5, "power cut during write")
        Storage._write(self, path, parts)
        self.written += n

    def _append(self, path, data):
        # counted like a write; a cut append lands half of its bytes
        if self.dead:
            raise PowerCut(5, "power is off")
        if self.full_after_bytes >= 0 and self.written + len(data) > self.full_after_bytes:
            raise OSError(28, "no space")
        if self._op():
            if self.cut_after and self.whole_writes:
                Storage._append(self, path, data)
                raise PowerCut(5, "power cut after append")
            Storage._append(self, path, bytes(data[:len(data) // 2]))
            raise PowerCut(5, "power cut during append")
        Storage._append(self, path, data)
        self.written += len(data)
        self.log.append(("append", path))

    def _rename(self, src, dst):
        if self._op():
            if not self.cut_after:
                raise PowerCut(5, "power cut before rename")
            self._do_rename(src, dst)
            raise PowerCut(5, "power cut after rename")
        self._do_rename(src, dst)

    def _do_rename(self, src, dst):
        try:
            self.written -= os.stat(dst)[6]  # replaced
        except OSError:
            pass
        Storage._rename(self, src, dst)
        self.log.append(("rename", dst))

    def _remove(self, path):
        if self.dead:
            raise PowerCut(5, "power is off")
        if self.count_removes and self._op():
            if not self.cut_after:
                raise PowerCut(5, "power cut before remove")
            self._do_remove(path)
            raise PowerCut(5, "power cut after remove")
        self._do_remove(path)

    def _do_remove(self, path):
        size = os.stat(path)[6]
        os.remove(path)
        if not path.endswith(".tmp"):
            self.written -= size
        self.log.append(("remove", path))
