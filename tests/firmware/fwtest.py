# Helpers shared by firmware tests. Runs under CPython (pytest) and inside the
# MicroPython VM (tools/vm/test.mjs), so it uses only what both have.
import os

_counter = [0]


def tmpdir(prefix="t"):
    """A fresh, empty directory: under /tmp in the VM, a tempfile dir in CPython."""
    try:
        import tempfile  # CPython only

        return tempfile.mkdtemp(prefix="sotto-" + prefix + "-")
    except ImportError:
        pass
    _counter[0] += 1
    base = "/tmp"
    try:
        os.mkdir(base)
    except OSError:
        pass
    path = "%s/%s%d" % (base, prefix, _counter[0])
    os.mkdir(path)
    return path


def raises(exc_type, func, *args, **kwargs):
    """Call func and return the exception it raised; fail if it raised nothing."""
    try:
        func(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("expected %s" % exc_type.__name__)


def unhex(text):
    """bytes.fromhex that also accepts whitespace, in both interpreters."""
    import binascii

    return binascii.unhexlify("".join(text.split()))


def data_path(relative):
    """Path of a file under tests/data/: /testdata/... in the VM (the runner
    copies tests/data there), the repository's tests/data/... under CPython."""
    try:
        os.stat("/testdata")
        return "/testdata/" + relative
    except OSError:
        pass
    here = __file__.rsplit("/", 1)[0]
    return here + "/../data/" + relative


def vector_path(relative):
    """Path of a file under tests/vectors/answers/: /testvectors/answers/... in the
    VM (the runner copies that folder there), the repository's file under CPython."""
    try:
        os.stat("/testvectors")
        return "/testvectors/answers/" + relative
    except OSError:
        pass
    here = __file__.rsplit("/", 1)[0]
    return here + "/../vectors/answers/" + relative
