# Files on flash: atomic replace, a power cut at any step keeps the old or the
# new content (never a mix), a full flash is a clear error that loses nothing.
from faultstorage import FaultStorage, PowerCut
from fwtest import raises, tmpdir
from sotto.storage import ENOSPC, Storage, StorageError


def fresh():
    st = Storage(tmpdir("st"))
    st.fsync = False
    return st


def test_write_read_replace_and_remove():
    st = fresh()
    assert st.read("a") is None and st.size("a") == -1 and not st.exists("a")
    st.write_atomic("a", b"first")
    assert st.read("a") == b"first" and st.size("a") == 5 and st.exists("a")
    st.write_atomic("a", [b"sec", bytearray(b"on"), memoryview(b"d!")])  # parts, any bytes-like
    assert st.read("a") == b"second!"
    assert st.listdir() == ["a"]  # no .tmp left behind
    assert st.remove("a") is True and st.remove("a") is False
    assert st.read("a") is None


def test_readinto_from_an_offset():
    st = fresh()
    st.write_atomic("f", b"0123456789")
    buf = bytearray(4)
    assert st.readinto("f", buf, 3) == 4 and buf == bytearray(b"3456")
    assert st.readinto("f", buf, 8) == 2 and buf[:2] == bytearray(b"89")
    assert st.readinto("missing", buf) == -1


def test_nested_directories_are_made_and_listed():
    st = fresh()
    st.makedirs("q/deep")
    st.write_atomic("q/deep/x", b"1")
    assert st.listdir("q") == ["deep"] and st.read("q/deep/x") == b"1"
    assert st.listdir("nothing-here") == []
    again = Storage(st.root + "/")  # a trailing slash names the same root
    assert again.read("q/deep/x") == b"1"


def test_power_cut_during_the_write_keeps_the_old_content():
    root = tmpdir("st")
    Storage(root).write_atomic("cfg", b"old content")
    st = FaultStorage(root, cut_at=1)
    e = raises(StorageError, st.write_atomic, "cfg", b"new content that is longer")
    assert e.reason == "io" and st.dead
    after = Storage(root)  # reboot
    assert after.read("cfg") == b"old content"
    # the torn .tmp is ignored by readers and replaced by the next write
    after.write_atomic("cfg", b"new")
    assert after.read("cfg") == b"new"
    assert sorted(after.listdir()) == ["cfg"]


def test_power_cut_at_the_rename_gives_old_or_new_never_a_mix():
    for cut_after in (False, True):
        root = tmpdir("st")
        Storage(root).write_atomic("cfg", b"old")
        st = FaultStorage(root, cut_at=2, cut_after=cut_after)  # op 1: write, op 2: rename
        raises(StorageError, st.write_atomic, "cfg", b"new!")
        got = Storage(root).read("cfg")
        assert got == (b"new!" if cut_after else b"old"), got


def test_flash_full_is_flash_full_and_keeps_the_old_content():
    root = tmpdir("st")
    Storage(root).write_atomic("a", b"x" * 50)
    st = FaultStorage(root, full_after_bytes=100)
    e = raises(StorageError, st.write_atomic, "b", b"y" * 80)
    assert e.reason == "flash-full" and e.name == "b"
    assert e.args[0] == ENOSPC and isinstance(e, OSError)
    assert "flash-full" in str(e)
    assert st.read("a") == b"x" * 50 and st.read("b") is None
    assert st.listdir() == ["a"]  # the failed .tmp is gone: it would hold flash


def test_a_dead_device_fails_every_operation():
    st = FaultStorage(tmpdir("st"), cut_at=1)
    raises(StorageError, st.write_atomic, "a", b"1")
    e = raises(StorageError, st.write_atomic, "b", b"2")
    assert e.reason == "io"
    assert isinstance(raises(PowerCut, st._remove, st.path("a")), OSError)
