# Downloading and staging a release (docs/ota.md).
#
# The centre names the release a device should run in its authenticated
# answer (`rel`). The Fetcher then fetches the signed manifest and the files
# that changed, in chunks, through the delivery task (POST /v1/release-chunk:
# a request signed by the device, an answer signed by the centre and bound to
# it), into the slot that does not run (sotto.bootsel). Files the running
# copy already has with the same SHA-256 are copied on the device instead:
# only changed files travel.
#
# Resumable: a file grows as NAME.part by appends, and the part's size is
# where the next chunk starts, after a drop or a restart alike (a cut append
# leaves a shorter part; the digest is checked before the part is renamed).
# The manifest comes the same way (ota.man.part -> ota.man) and is checked
# against the release key before any file is fetched.
#
# Never in the way of an alert: the delivery task asks for a chunk only when
# its frame queue is empty and no alert or check-in is live (busy()); local
# work (hashing, copying) is one piece per Device.step.
#
# When every file is in place and checked again, together with the manifest's
# signature, PEND names the slot and the device restarts when it is idle: the
# switch happens at boot (sotto.bootsel).
import hashlib
import json

from micropython import const

from sotto import bootsel, cbor, frames, ota
from sotto.log import Logger

MAN = "ota.man"
PART = ".part"
COPY_BYTES = const(1024)
_IDLE = const(0)
_MANIFEST = const(1)
_FILES = const(2)
_CHECK = const(3)
_STAGED = const(4)

_log = Logger("ota")


class Fetcher:
    def __init__(self, data, root, sel, key, board, running, chunk_bytes, signer, busy, report):
        """data: the data Storage; root: a Storage at the flash root; sel: the
        selector record; key: the release key (32 bytes); signer: signs a
        request body (FrameSigner.sign_request); busy(): an alert or check-in
        is live; report(upd, err, pend): queue a status frame."""
        self.data = data
        self.root = root
        self.sel = sel
        self.key = key
        self.board = board
        self.running = running
        self.chunk = chunk_bytes
        self.sign = signer
        self.busy = busy
        self.report = report
        self.phase = _IDLE
        self.target = None
        self.man = {}  # the verified manifest (empty: none)
        self.slot = bootsel.other_slot(sel["run"])
        self.idx = 0  # the file being worked on
        self.need = False  # the file at idx must come over the air
        self.refused = []  # versions refused since boot (sel["bad"] is the rolled-back one)
        self.restart = False  # staged: the device should restart when idle
        self.buf = bytearray(COPY_BYTES)
        self.air_bytes = 0  # release bytes received (chunk data)
        self.local_bytes = 0  # release bytes copied from the running copy
        self._req = None  # (path, offset) of the request in flight

    # -- at boot ------------------------------------------------------------------
    def resume(self):
        """Pick up a staging a restart interrupted, or a staged release."""
        pend = bootsel._read_json(self.data, bootsel.PEND)
        if pend is not None and pend.get("slot") == self.slot:
            self.target = pend.get("v")
            self.phase = _STAGED
            self.restart = True
            return
        blob = self.data.read(MAN)
        if blob is None or self.key is None:
            return
        try:
            m = ota.open_manifest(blob, self.key)
            ota.check_applicable(m, self.running, self.board)
        except ota.OtaError as e:
            _log.w("staged manifest dropped: %s", e)
            self.data.remove(MAN)
            return
        self._start_files(m)

    # -- what the centre says ---------------------------------------------------------
    def assign(self, version):
        """The release the centre's authenticated answer names (or None)."""
        if not isinstance(version, str) or self.key is None or version == self.running \
                or version == self.target or version in self.refused or version == self.sel["bad"]:
            return
        if ota.parse_version(version) is None:
            return
        _log.i("release %s assigned", version)
        self._clear()
        self._req = None  # an answer still to come is for the old release
        self.target = version
        self.phase = _MANIFEST

    def _clear(self):
        self.data.remove(MAN)
        self.data.remove(MAN + PART)
        self.data.remove(bootsel.PEND)
        self.man = {}  # the verified manifest (empty: none)
        self.idx = 0
        self.need = False
        self.restart = False

    # -- the network side (the delivery task) -----------------------------------------------
    def wants_network(self):
        return (self.phase == _MANIFEST or (self.phase == _FILES and self.need)) and not self.busy()

    def request(self):
        """The signed body of the next POST /v1/release-chunk."""
        if self.phase == _MANIFEST:
            path, part = "manifest", MAN + PART
            off = self.data.size(part)
        else:
            path = self.man["files"][self.idx][0]
            off = self.root.size(self._slot_name(path) + PART)
        off = off if off > 0 else 0
        self._req = (path, off)
        body = cbor.encode({"op": "get", "v": self.target, "p": path, "o": off, "n": self.chunk})
        return self.sign(body)

    def took(self, status, answer):
        """An authenticated answer to request() (status 200, or 400/404 with a reason)."""
        req = self._req
        self._req = None
        if req is None:
            return
        if status != 200:
            why = answer.get("reason")
            self._refuse(frames.UPD_CENTRE, "centre: %s" % (why if isinstance(why, str) else status))
            return
        d, z = answer.get("d"), answer.get("z")
        if answer.get("p") != req[0] or answer.get("o") != req[1] or not isinstance(d, bytes) \
                or type(z) is not int or req[1] + len(d) > z or (not d and req[1] < z):
            _log.w("chunk answer does not match the request")
            return  # asked again
        self.air_bytes += len(d)
        try:
            if req[0] == "manifest":
                self._manifest_chunk(d, req[1], z)
            else:
                self._file_chunk(req[0], d, req[1], z)
        except OSError as e:
            self._refuse(frames.UPD_FLASH, "flash: %s" % e)

    def _manifest_chunk(self, d, off, z):
        part = MAN + PART
        if off == 0:
            self.data.remove(part)
        self.data.append(part, d)
        if off + len(d) < z:
            return
        blob = self.data.read(part)
        try:
            m = ota.open_manifest(blob, self.key)
            if m["v"] != self.target:
                raise ota.OtaError(frames.UPD_CENTRE, "manifest is %s, not %s" % (m["v"], self.target))
            ota.check_applicable(m, self.running, self.board)
        except ota.OtaError as e:
            self.data.remove(part)
            self._refuse(e.code, str(e))
            return
        self.data.rename(part, MAN)
        self._start_files(m)

    def _file_chunk(self, path, d, off, z):
        entry = self.man["files"][self.idx]
        if z != entry[2]:
            self._refuse(frames.UPD_BAD_FILE, "size of %s" % path)
            return
        name = self._slot_name(path)
        if off == 0:
            self.root.remove(name + PART)
            self._mkdirs(name)
        self.root.append(name + PART, d)
        if off + len(d) >= z:
            self._finish_file(name, entry)

    # -- local work (Device.step) ---------------------------------------------------------------
    def step(self):
        """One piece of local work; True while there is more."""
        try:
            if self.phase == _FILES and not self.need:
                self._next_file()
                return True
            if self.phase == _CHECK:
                self._check_next()
                return True
        except OSError as e:
            self._refuse(frames.UPD_FLASH, "flash: %s" % e)
        return False

    def _start_files(self, m):
        self.man = m
        self.target = m["v"]
        self.idx = 0
        self.need = False
        self.phase = _FILES

    def _slot_name(self, path):
        return bootsel.slot_path(self.slot) + path

    def _running_name(self, path):
        run = self.sel["run"]
        return (bootsel.slot_path(run) + path) if run else path[1:]

    def _mkdirs(self, name):
        self.root.makedirs(name[:name.rfind("/")])

    def _digest(self, st, name):
        f = st.open_read(name)
        if f is None:
            return None
        h = hashlib.sha256()
        buf = self.buf
        try:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(memoryview(buf)[:n])
        finally:
            f.close()
        return h.digest()

    def _next_file(self):
        files = self.man["files"]
        if self.idx >= len(files):
            self.phase = _CHECK
            self.idx = 0
            self._remove_stale()
            return
        path, digest, size = files[self.idx]
        name = self._slot_name(path)
        if self.root.size(name) == size and self._digest(self.root, name) == digest:
            self.idx += 1  # already here (staged before, or an earlier release had it)
            return
        part = name + PART
        if self.root.size(part) > 0:
            self.need = True  # a download to resume
            return
        here = self._running_name(path)
        if self.root.size(here) == size and self._digest(self.root, here) == digest:
            self._copy(here, name)
            self.local_bytes += size
            self._finish_file(name, files[self.idx])
            return
        self.need = True

    def _copy(self, src, dst):
        self._mkdirs(dst)
        self.root.remove(dst + PART)
        f = self.root.open_read(src)
        try:
            while True:
                n = f.readinto(self.buf)
                if not n:
                    break
                self.root.append(dst + PART, memoryview(self.buf)[:n])
        finally:
            f.close()

    def _finish_file(self, name, entry):
        part = name + PART
        if self.root.size(part) != entry[2] or self._digest(self.root, part) != entry[1]:
            self.root.remove(part)
            self._refuse(frames.UPD_BAD_FILE, "%s does not match the manifest" % entry[0])
            return
        self.root.rename(part, name)
        self.idx += 1
        self.need = False

    def _remove_stale(self):
        keep = {}
        for path, _d, _n in self.man["files"]:
            keep[self._slot_name(path)] = True
        for top in ("/sotto", "/boards"):
            self._walk(self._slot_name(top), keep)

    def _walk(self, d, keep):
        for n in self.root.listdir(d):
            name = d + "/" + n
            if self.root.is_dir(name):
                self._walk(name, keep)
            elif name not in keep:
                self.root.remove(name)

    def _check_next(self):
        files = self.man["files"]
        if self.idx == 0:
            # the manifest once more, from flash, before anything is switched
            try:
                ota.open_manifest(self.data.read(MAN) or b"", self.key)
            except ota.OtaError as e:
                self._refuse(e.code, str(e))
                return
        if self.idx < len(files):
            path, digest, size = files[self.idx]
            name = self._slot_name(path)
            if self.root.size(name) != size or self._digest(self.root, name) != digest:
                self.root.remove(name)
                self._refuse(frames.UPD_BAD_FILE, "%s changed on flash" % path)
                return
            self.idx += 1
            return
        rk = self.man.get("rk")
        pend = {"slot": self.slot, "v": self.target, "rk": rk.hex() if rk else None}
        self.data.write_atomic(bootsel.PEND, json.dumps(pend).encode())
        self.data.remove(MAN)
        self.phase = _STAGED
        self.restart = True
        _log.i("release %s staged in slot %s", self.target, self.slot)
        self.report(frames.UPD_STAGED, None, self.target)

    def _refuse(self, code, why):
        _log.e("release %s refused: %s", self.target, why)
        if self.target is not None:
            self.refused.append(self.target)
        self.phase = _IDLE
        try:
            self._clear()
        except OSError:
            pass
        self.report(code, why[:64], None)
        self.target = None

    def pending(self):
        return self.target if self.phase == _STAGED else None
