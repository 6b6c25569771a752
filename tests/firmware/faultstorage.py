# A Storage that fails on demand: a power cut at the N-th write or rename
# (everything after it fails until "reboot"), or a full flash.
import os

from sotto.storage import Storage


class PowerCut(OSError):
    pass


class FaultStorage(Storage):
    fsync = False

    def __init__(self, root, cut_at=0, full_after_bytes=-1):
        self.ops = 0  # writes and renames so far
        self.cut_at = cut_at  # 0: never
        self.dead = False
        self.full_after_bytes = full_after_bytes  # -1: unlimited
        self.written = 0  # bytes in files under real names (approximately the flash in use)
        Storage.__init__(self, root)

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
        if self.full_after_bytes >= 0 and self.written + n > self.full_after_bytes:
            raise OSError(28, "no space")
        if self._op():
            # the cut lands mid-write: half of the bytes reach the flash
            data = b"".join(bytes(p) for p in parts)
            with open(path, "wb") as f:
                f.write(data[:len(data) // 2])
            raise PowerCut(5, "power cut during write")
        Storage._write(self, path, parts)
        self.written += n

    def _rename(self, src, dst):
        if self._op():
            raise PowerCut(5, "power cut before rename")
        try:
            self.written -= os.stat(dst)[6]  # replaced
        except OSError:
            pass
        Storage._rename(self, src, dst)

    def _remove(self, path):
        if self.dead:
            raise PowerCut(5, "power is off")
        if not path.endswith(".tmp"):
            self.written -= os.stat(path)[6]
        os.remove(path)
