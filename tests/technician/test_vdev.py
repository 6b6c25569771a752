"""The virtual device behaves like a USB-attached MicroPython board for the real mpremote."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from conftest import MPREMOTE, VirtualDevice, start_vdev

from host_tools import vdev
from host_tools.firmware_build import compile_file


def test_start_prints_port_first_and_mpremote_works_unchanged(tmp_path):
    dir = tmp_path / "dev"
    proc = subprocess.run([sys.executable, "-m", "sotto_cli", "vdev", "start", "--detach",
                           "--dir", str(dir)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    port = proc.stdout.splitlines()[0]
    assert port.startswith("/dev/pts/")
    dev = VirtualDevice(port, dir)
    try:
        out = dev.mpremote("exec", "import sys; i = sys.implementation; print(i.name, i.version[:2])")
        assert out.stdout.strip() == "micropython (1, 27)"
        assert dev.mpremote("eval", "6 * 7").stdout.strip() == "42"
        payload = bytes(range(256)) * 40  # several read-ahead blocks
        (tmp_path / "blob.bin").write_bytes(payload)
        dev.mpremote("fs", "mkdir", ":lib")
        dev.mpremote("fs", "cp", str(tmp_path / "blob.bin"), ":lib/blob.bin")
        assert (dev.flash / "lib" / "blob.bin").read_bytes() == payload  # flash lives in DIR
        digest = dev.mpremote("fs", "sha256sum", ":lib/blob.bin").stdout.split()[-1]
        assert digest == hashlib.sha256(payload).hexdigest()
        assert "blob.bin" in dev.mpremote("fs", "ls", ":lib").stdout
        (tmp_path / "hello.py").write_text("print('hello from', __name__)\n")
        assert dev.mpremote("run", str(tmp_path / "hello.py")).stdout.strip() == "hello from __main__"
        dev.mpremote("fs", "rm", ":lib/blob.bin")
        assert not (dev.flash / "lib" / "blob.bin").exists()
        # an unknown file fails with MicroPython's ENOENT (2), as on littlefs
        out = dev.mpremote("exec", "try:\n open('/nope')\nexcept OSError as e:\n print(e.args[0])")
        assert out.stdout.strip() == "2"
    finally:
        stop = subprocess.run([sys.executable, "-m", "sotto_cli", "vdev", "stop", "--dir", str(dir)],
                              capture_output=True, text=True, timeout=30)
    assert stop.returncode == 0, stop.stderr
    assert vdev.running_pid(dir) is None


def test_flash_survives_soft_reset_and_restart(make_vdev, tmp_path):
    dev = make_vdev("persist")
    dev.mpremote("exec", "x = 1\nwith open('/note.txt', 'w') as f: f.write('kept')")
    # soft reset (Ctrl-D) restarts the interpreter, as a board reboots: globals gone, files kept
    out = dev.mpremote("soft-reset", "exec", "print('x' in globals(), open('/note.txt').read())")
    assert out.stdout.split()[-2:] == ["False", "kept"]
    vdev.stop(dev.dir)
    again = start_vdev(dev.dir)
    try:
        assert again.mpremote("exec", "print(open('/note.txt').read())").stdout.strip() == "kept"
    finally:
        vdev.stop(again.dir)


def test_second_device_in_the_same_dir_is_refused(make_vdev):
    dev = make_vdev("one")
    with pytest.raises(vdev.VdevAlreadyRunning) as err:
        start_vdev(dev.dir)
    assert "already running" in str(err.value)
    assert "sotto vdev stop" in str(err.value)


def test_mpy_module_larger_than_one_read_imports(make_vdev, tmp_path):
    # The module reader takes a short read for the end of the file: a multi-block
    # .mpy must come back whole (this once hung the virtual device).
    src = tmp_path / "big.py"
    src.write_text("".join(f"def f{i}(x):\n    return x * {i} + {i * 7}\n" for i in range(120))
                   + "TOTAL = sum(globals()['f%d' % i](1) for i in range(120))\n")
    compile_file(src, tmp_path / "big.mpy")
    assert (tmp_path / "big.mpy").stat().st_size > 2048
    dev = make_vdev("mpy")
    dev.mpremote("fs", "cp", str(tmp_path / "big.mpy"), ":big.mpy")
    out = dev.mpremote("exec", "import big; print(big.TOTAL)")
    assert out.stdout.strip() == str(sum(i + i * 7 for i in range(120)))


def test_urandom_like_a_board(make_vdev):
    dev = make_vdev("rng")
    out = dev.mpremote("exec", "import os; a = os.urandom(32); b = os.urandom(32); "
                               "print(len(a), a != b, len(set(a)) > 12)")
    assert out.stdout.split() == ["32", "True", "True"]


def test_ctrl_c_interrupts_a_running_program(make_vdev):
    from mpremote.transport_serial import SerialTransport

    dev = make_vdev("intr")
    t = SerialTransport(dev.port)
    try:
        t.enter_raw_repl()
        t.exec_raw_no_follow("import time\nwhile True:\n    time.sleep_ms(10)\n")
        t.serial.write(b"\x03")
        out, err = t.follow(timeout=5)
        assert b"KeyboardInterrupt" in err
    finally:
        t.close()


def test_mpremote_cli_alone_against_a_fresh_device(make_vdev):
    dev = make_vdev("plain")
    proc = subprocess.run([*MPREMOTE, "connect", dev.port, "fs", "ls", ":"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
