# The virtual device's flash, as MicroPython code run inside the VM at every
# (re)boot by tools/vm/vdev.mjs: a VFS mounted at "/" whose files live in a host
# folder. Its methods call `_vdev_flash`, a JS module backed by Node's fs that
# returns a number (a negative errno) or a string (hex data, JSON), never throws.
#
# Errors are OSError with MicroPython's errno values (ENOENT 2, EEXIST 17,
# ENOSPC 28, ...), as littlefs on an ESP32 raises them; the VM's own POSIX VFS
# would raise Emscripten's (ENOENT 44), which neither firmware code nor mpremote
# expects. vdev.mjs runs this file in a namespace of its own (nothing lands in
# the REPL's globals) and keeps `run_file`, which runs boot.py or main.py as a
# board does.
import binascii
import io
import json
import os
import sys

import _vdev_flash
import vfs

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
            _check(_vdev_flash.seek(self._fd_open(), -left, 1))
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
                    data = binascii.unhexlify(_check(_vdev_flash.read(fd, n - got)))
                    buf[got : got + len(data)] = data
                    return got + len(data)
                self._rbuf = binascii.unhexlify(_check(_vdev_flash.read(fd, _READ_AHEAD)))
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
            done += _check(_vdev_flash.write(fd, binascii.hexlify(part).decode()))
        return done

    def seek(self, offset, whence=0):
        self._sync()
        return _check(_vdev_flash.seek(self._fd_open(), offset, whence))

    def tell(self):
        return self.seek(0, 1)

    def flush(self):
        self._fd_open()

    def close(self):
        if self._fd is not None:
            fd = self._fd
            self._fd = None
            _check(_vdev_flash.close(fd))

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
        for name, mode, size in json.loads(_check(_vdev_flash.listdir(self._abs(path)))):
            yield (name, mode, 0, size)

    def stat(self, path):
        mode, size, mtime = json.loads(_check(_vdev_flash.stat(self._abs(path))))
        return (mode, 0, 0, 0, 0, 0, size, mtime, mtime, mtime)

    def statvfs(self, path):
        bsize, blocks, free = json.loads(_vdev_flash.statvfs())
        return (bsize, bsize, blocks, free, free, 0, 0, 0, 0, 255)

    def mkdir(self, path):
        _check(_vdev_flash.mkdir(self._abs(path)))

    def rmdir(self, path):
        _check(_vdev_flash.rmdir(self._abs(path)))

    def remove(self, path):
        _check(_vdev_flash.remove(self._abs(path)))

    def rename(self, old, new):
        _check(_vdev_flash.rename(self._abs(old), self._abs(new)))

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
        return _FlashFile(_check(_vdev_flash.open(self._abs(path), flags)), "b" not in mode)


def run_file(name):
    try:
        os.stat(name)
    except OSError:
        return
    try:
        with open(name) as f:
            source = f.read()
        # A board runs boot.py and main.py in __main__, so the REPL sees their names.
        exec(compile(source, name, "exec"), __import__("__main__").__dict__)
    except BaseException as e:  # a board prints what main.py raised, then starts the REPL
        sys.print_exception(e)


class _Os:
    # os as on an ESP32: the VM's own, plus urandom from the host's CSPRNG
    # (an ESP32's comes from its hardware RNG). Modules import os through
    # sys.modules, so this stands in for the built-in module everywhere.
    pass


def _urandom(n):
    return binascii.unhexlify(_vdev_flash.urandom(n))


_os = _Os()
for _name in dir(os):
    if not _name.startswith("__"):
        setattr(_os, _name, getattr(os, _name))
_os.urandom = _urandom
_os.__name__ = "os"
sys.modules["os"] = _os


# --report-version X.Y.Z: the device claims an older (or newer) MicroPython
# release, as a board flashed with it would, so that the technician tools'
# refusal of an incompatible runtime can be shown without such a board. Only
# sys.implementation changes; the VM underneath is still 1.27.
_MPY_OF = ((1, 23, 0x306), (1, 22, 0x206), (1, 20, 0x106), (1, 19, 0x006), (0, 0, 0x005))


class _Impl:
    pass


class _Sys:
    pass


def _report_version(text):
    v = tuple(int(x) for x in text.split("."))
    real = sys.implementation
    impl = _Impl()
    impl.name = real.name
    impl.version = v + ("",)
    impl._machine = real._machine
    impl._build = real._build
    impl._mpy = next(m for (a, b, m) in _MPY_OF if v[:2] >= (a, b))
    fake = _Sys()
    for name in dir(sys):
        if not name.startswith("__"):
            setattr(fake, name, getattr(sys, name))
    fake.implementation = impl
    fake.version = "3.4.0; MicroPython v%s" % text
    sys.modules["sys"] = fake


if REPORT_VERSION:  # noqa: F821 (set by vdev.mjs in this file's namespace)
    _report_version(REPORT_VERSION)  # noqa: F821

vfs.umount("/")
vfs.mount(FlashVfs(), "/")
os.chdir("/")
sys.path[:] = ["", ".frozen", "/lib"]
