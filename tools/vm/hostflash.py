# A device's flash as a host folder: a VFS for the MicroPython VM whose
# methods call `_hostflash`, the JS module of tools/vm/hostflash.mjs (Node's fs;
# it returns a number, a negative errno, or a string, hex data or JSON, and
# never throws). Mount it with `vfs.mount(FlashVfs(), path)`.
#
# Errors are OSError with MicroPython's errno values (ENOENT 2, EEXIST 17,
# ENOSPC 28, ...), as littlefs on an ESP32 raises them; the VM's own POSIX VFS
# would raise Emscripten's (ENOENT 44), which neither firmware code nor mpremote
# expects. Nothing happens at import.
#
# Users: tools/vm/vdev_flash.py (the virtual device behind a pty, mounted at
# "/") and tools/vm/simdevice.py (the simulator's VM runtime, mounted at the
# simulator's flash folder).
import binascii
import io
import json

import _hostflash

_EINVAL = 22
_ENOTDIR = 20
_READ_AHEAD = 512
_WRITE_CHUNK = 4096
_MODES = {"r": "r", "w": "w", "a": "a", "x": "wx", "r+": "r+", "w+": "w+", "a+": "a+", "x+": "wx+"}


def _check(ret):
    if isinstance(ret, int) and ret < 0:
        raise OSError(-ret)
    return ret


def _utf8_missing(data):
    # How many bytes the last (incomplete) UTF-8 character of data still needs.
    for back in range(1, min(4, len(data)) + 1):
        b = data[-back]
        if b & 0xC0 == 0x80:
            continue
        need = 2 if b & 0xE0 == 0xC0 else 3 if b & 0xF0 == 0xE0 else 4 if b & 0xF8 == 0xF0 else 1
        return max(0, need - back)
    return 0


class _FlashFile(io.IOBase):
    def __init__(self, fd, text):
        self._fd = fd
        self._text = text
        self._rbuf = b""
        self._rpos = 0

    def _fd_open(self):
        if self._fd is None:
            raise OSError(_EINVAL)
        return self._fd

    def _sync(self):
        # Forget the read-ahead: put the host position back where the reader is.
        left = len(self._rbuf) - self._rpos
        if left:
            _check(_hostflash.seek(self._fd_open(), -left, 1))
        self._rbuf = b""
        self._rpos = 0

    def readinto(self, buf):
        # Fill buf as far as the file goes: a short read means end of file to
        # MicroPython's module reader (py/reader.c), as for a file on littlefs.
        fd = self._fd_open()
        n = len(buf)
        got = 0
        while got < n:
            if self._rpos >= len(self._rbuf):
                if n - got >= _READ_AHEAD:
                    data = binascii.unhexlify(_check(_hostflash.read(fd, n - got)))
                    buf[got : got + len(data)] = data
                    return got + len(data)
                self._rbuf = binascii.unhexlify(_check(_hostflash.read(fd, _READ_AHEAD)))
                self._rpos = 0
                if not self._rbuf:
                    break
            k = min(n - got, len(self._rbuf) - self._rpos)
            buf[got : got + k] = self._rbuf[self._rpos : self._rpos + k]
            self._rpos += k
            got += k
        return got

    def _read_bytes(self, n):
        out = bytearray()
        chunk = bytearray(max(1, min(n, 4096)) if n >= 0 else 4096)
        view = memoryview(chunk)
        while n < 0 or len(out) < n:
            want = len(chunk) if n < 0 else min(len(chunk), n - len(out))
            got = self.readinto(view[:want])
            if not got:
                break
            out.extend(view[:got])
        return bytes(out)

    def read(self, n=-1):
        if n is None:
            n = -1
        data = self._read_bytes(n)
        if not self._text:
            return data
        missing = _utf8_missing(data) if n >= 0 else 0
        if missing:
            data += self._read_bytes(missing)
        return data.decode()

    def readline(self):
        out = bytearray()
        one = bytearray(1)
        while self.readinto(one):
            out.extend(one)
            if one[0] == 10:
                break
        return out.decode() if self._text else bytes(out)

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def write(self, data):
        fd = self._fd_open()
        if isinstance(data, str):
            data = data.encode()
        self._sync()
        view = memoryview(data)
        done = 0
        while done < len(view):
            part = view[done : done + _WRITE_CHUNK]
            done += _check(_hostflash.write(fd, binascii.hexlify(part).decode()))
        return done

    def seek(self, offset, whence=0):
        self._sync()
        return _check(_hostflash.seek(self._fd_open(), offset, whence))

    def tell(self):
        return self.seek(0, 1)

    def flush(self):
        self._fd_open()

    def close(self):
        if self._fd is not None:
            fd = self._fd
            self._fd = None
            _check(_hostflash.close(fd))

    def ioctl(self, request, arg):
        # Only what a file on flash answers. Anything else (e.g. the module
        # reader's MP_STREAM_GET_BUFFER_SIZE) must be refused, not answered 0:
        # a buffer size of 0 made `import` of a .mpy loop forever.
        if request == 1:  # MP_STREAM_FLUSH
            return 0
        if request == 4:  # MP_STREAM_CLOSE
            self.close()
            return 0
        return -_EINVAL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FlashVfs:
    def __init__(self):
        self._cwd = "/"

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def _abs(self, path):
        if not path.startswith("/"):
            path = self._cwd + "/" + path
        parts = []
        for part in path.split("/"):
            if part == "..":
                if parts:
                    parts.pop()
            elif part and part != ".":
                parts.append(part)
        return "/" + "/".join(parts)

    def ilistdir(self, path):
        for name, mode, size in json.loads(_check(_hostflash.listdir(self._abs(path)))):
            yield (name, mode, 0, size)

    def stat(self, path):
        mode, size, mtime = json.loads(_check(_hostflash.stat(self._abs(path))))
        return (mode, 0, 0, 0, 0, 0, size, mtime, mtime, mtime)

    def statvfs(self, path):
        bsize, blocks, free = json.loads(_hostflash.statvfs())
        return (bsize, bsize, blocks, free, free, 0, 0, 0, 0, 255)

    def mkdir(self, path):
        _check(_hostflash.mkdir(self._abs(path)))

    def rmdir(self, path):
        _check(_hostflash.rmdir(self._abs(path)))

    def remove(self, path):
        _check(_hostflash.remove(self._abs(path)))

    def rename(self, old, new):
        _check(_hostflash.rename(self._abs(old), self._abs(new)))

    def chdir(self, path):
        path = self._abs(path)
        if not self.stat(path)[0] & 0x4000:
            raise OSError(_ENOTDIR)
        self._cwd = path

    def getcwd(self):
        return self._cwd

    def open(self, path, mode="r"):
        flags = _MODES.get(mode.replace("b", "").replace("t", ""))
        if flags is None:
            raise OSError(_EINVAL)
        return _FlashFile(_check(_hostflash.open(self._abs(path), flags)), "b" not in mode)
