# A release and a stand-in centre for the firmware's update tests (CPython and
# the MicroPython VM): files, a manifest signed with a release key made here,
# and answer maps for sotto.otafetch's chunk requests (requests "signed" with
# the identity, so the test reads them as plain CBOR).
import hashlib

from sotto import bootsel, cbor, cose, ed25519
from sotto.otafetch import Fetcher

SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))
_KEYS = {}


def signing_key(seed=SEED):
    if seed not in _KEYS:
        _KEYS[seed] = ed25519.SigningKey(seed)
    return _KEYS[seed]


def release_key(seed=SEED):
    return signing_key(seed).public_key


def base_files():
    return {"/sotto/a.mpy": b"A" * 700, "/sotto/b.mpy": b"B" * 1500, "/boards/x.json": b"{}"}


def new_files():
    f = base_files()
    f["/sotto/b.mpy"] = b"b" * 1500  # changed
    f["/sotto/c.mpy"] = b"C" * 300  # new
    return f


def manifest(files, version="0.2.0", seed=SEED, min_version="0.0.0", down=False, boards=None, rk=None):
    m = {"fmt": 1, "v": version, "min": min_version, "boards": boards or ["sotto-ref-s3"], "down": down,
         "files": [[p, hashlib.sha256(files[p]).digest(), len(files[p])] for p in sorted(files)],
         "made": 1}
    if rk is not None:
        m["rk"] = rk
    key = signing_key(seed)
    kid = hashlib.sha256(key.public_key).digest()[:8]
    return cose.Signer(kid, key).sign(cbor.encode(m))


def put_base(root_storage, files):
    for p, data in files.items():
        name = p[1:]
        root_storage.makedirs(name[:name.rfind("/")])
        root_storage.write_atomic(name, data)


class Centre:
    """Answers chunk requests from one release (files may be tampered after signing)."""

    def __init__(self, files, man_blob, version="0.2.0"):
        self.files = dict(files)
        self.man = man_blob
        self.version = version
        self.air = 0
        self.requests = 0

    def answer(self, body):
        self.requests += 1
        r = cbor.decode(body)
        if r["v"] != self.version:
            return 404, {"reason": "not-assigned"}
        data = self.man if r["p"] == "manifest" else self.files.get(r["p"])
        if data is None:
            return 404, {"reason": "no-such-file"}
        d = data[r["o"]:r["o"] + r["n"]]
        self.air += len(d)
        return 200, {"p": r["p"], "o": r["o"], "d": d, "z": len(data), "rel": self.version}


def fetcher(data, root, sel=None, key=None, running="0.1.0", busy=None, reports=None, chunk=512):
    sel = sel if sel is not None else bootsel.read(data)
    rep = reports if reports is not None else []
    return Fetcher(data, root, sel, key if key is not None else release_key(), "sotto-ref-s3", running,
                   chunk, lambda b: b, busy or (lambda: False), lambda u, e, p: rep.append((u, e, p)))


def run(f, centre, max_steps=500, drop_every=0):
    """Drive f against centre until staged or idle; drop_every: every N-th
    answer is lost (coverage)."""
    n = 0
    for _ in range(max_steps):
        if f.wants_network():
            body = f.request()
            n += 1
            if drop_every and n % drop_every == 0:
                f._req = None  # the answer never came
                continue
            status, ans = centre.answer(body)
            f.took(status, ans)
        elif not f.step():
            if f.phase in (0, 4):
                return
            if f.busy():
                return
    raise AssertionError("did not finish in %d steps" % max_steps)
