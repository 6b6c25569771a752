# The virtual device's flash, as MicroPython code run inside the VM at every
# (re)boot by tools/vm/vdev.mjs: the VFS of tools/vm/hostflash.py (FlashVfs,
# whose files live in a host folder) mounted at "/", os.urandom, and the
# optional --report-version. vdev.mjs runs hostflash.py and then this file in
# one namespace of its own (nothing lands in the REPL's globals) and keeps
# `run_file`, which runs boot.py or main.py as a board does.
import binascii
import os
import sys

import _vdev_flash
import vfs


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
vfs.mount(FlashVfs(), "/")  # noqa: F821 (hostflash.py, same namespace)
os.chdir("/")
sys.path[:] = ["", ".frozen", "/lib"]
