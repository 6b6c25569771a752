# The simulator's power cut during a flash operation, on one firmware Storage
# instance. It wraps the primitives storage.py documents for fault tests
# (_write, _rename, _remove) and counts them; the N-th from the arming dies:
#
#   done=None   a write leaves half its bytes in its .tmp file; a rename or
#               remove takes effect, then the power goes
#   done=False  the operation does not take effect (a write leaves half its
#               bytes, a rename or remove is not done)
#   done=True   the operation takes effect wholly, then the power goes
#
# The cut raises PowerLoss, a BaseException, so that no `except Exception` in
# the firmware can swallow it; whoever steps the Device catches it.
#
# This file runs under CPython (simulator/device.py, the cpython runtime) and
# inside the MicroPython VM (tools/vm/simdevice.py, the vm runtime), so that
# both runtimes cut the power at the same operation in the same way: it uses
# only what both have (no type hints, no pathlib, no f-strings).


class PowerLoss(BaseException):  # noqa: N818 - not an error: the simulated power went
    """The power died in the middle of a flash operation."""


def _name(path):
    return path.rsplit("/", 1)[-1]


class FlashCut:
    """Counts the flash operations of the Storage instances it is installed on;
    note(kind, text) hears what happened (the timeline)."""

    def __init__(self, note):
        self.note = note
        self.left = 0  # > 0: the power dies during that many-th flash operation from now
        self.done = None

    def arm(self, ops, done=None):
        self.left = ops
        self.done = done

    def cancel(self):
        self.left = 0

    def _due(self):
        if self.left <= 0:
            return False
        self.left -= 1
        return self.left == 0

    def install(self, st):
        """Wrap st's primitives (this instance only) and turn host fsync off: the
        simulated flash survives simulated power cuts by construction."""
        st.fsync = False
        write, rename, remove = st._write, st._rename, st._remove
        note = self.note

        def cut_write(path, parts):
            if self._due():
                if self.done:
                    write(path, parts)
                    note("fault", "power died just after writing %s" % _name(path))
                    raise PowerLoss
                data = b"".join(bytes(p) for p in parts)
                half = len(data) // 2
                with open(path, "wb") as f:  # what reached the flash before the power went
                    f.write(data[:half])
                note("fault", "power died writing %s (%d of %d bytes)" % (_name(path), half, len(data)))
                raise PowerLoss
            write(path, parts)

        def cut_rename(src, dst):
            cut = self._due()
            if cut and self.done is False:
                note("fault", "power died just before renaming %s" % _name(src))
                raise PowerLoss
            rename(src, dst)
            if cut:
                note("fault", "power died just after renaming %s" % _name(src))
                raise PowerLoss

        def cut_remove(path):
            cut = self._due()
            if cut and self.done is False:
                note("fault", "power died just before removing %s" % _name(path))
                raise PowerLoss
            remove(path)
            if cut:
                note("fault", "power died just after removing %s" % _name(path))
                raise PowerLoss

        st._write = cut_write
        st._rename = cut_rename
        st._remove = cut_remove
