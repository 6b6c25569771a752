# Frames the receiver rejected: kept on flash for the device log, never retried.
#
# An append-only file of records, each a 4-byte big-endian length and the CBOR
# array [seq, reason, frame]. A torn last record (power cut while appending) is
# ignored on reading. When the file would pass max_bytes it becomes <path>.old
# (replacing the previous one), so the log is bounded to about twice that.
import os
import struct

import sotto.cbor as cbor


class RejectLog:
    def __init__(self, path, max_bytes=16384):
        self.path = path
        self.max_bytes = max_bytes
        self.count = 0  # records added since boot

    def _size(self):
        try:
            return os.stat(self.path)[6]
        except OSError:
            return 0

    def add(self, seq, reason, wire):
        record = cbor.encode([seq, reason or "", bytes(wire)])
        if self._size() + 4 + len(record) > self.max_bytes:
            old = self.path + ".old"
            try:
                os.remove(old)
            except OSError:
                pass
            try:
                os.rename(self.path, old)
            except OSError:
                pass
        with open(self.path, "ab") as f:
            f.write(struct.pack(">I", len(record)))
            f.write(record)
        self.count += 1

    def entries(self):
        """[(seq, reason, frame)], oldest first, from <path>.old and <path>."""
        out = []
        for path in (self.path + ".old", self.path):
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            i = 0
            while i + 4 <= len(data):
                n = struct.unpack(">I", data[i:i + 4])[0]
                if i + 4 + n > len(data):
                    break  # torn last record
                try:
                    seq, reason, wire = cbor.decode(data[i + 4:i + 4 + n])
                except Exception:
                    break
                out.append((seq, reason, wire))
                i += 4 + n
        return out
