# Release manifests on the device (docs/ota.md): the signature against the
# release key, the shape, and whether this device may install it.
#
# A manifest is a COSE_Sign1 (EdDSA, kid = SHA-256(release key)[:8]) over a
# CBOR map: fmt 1, v (version), min (lowest version it may replace), boards,
# down (downgrade allowed), files [[path, SHA-256, size], ...], made, and
# optionally rk (a new release key, a rotation signed with the old one).
# open_manifest() fails closed with an OtaError whose code is an UPD_* value.
import hashlib

from micropython import const

from sotto import cbor, cose, ed25519, frames

KID_BYTES = const(8)
MAX_FILES = const(200)
MAX_FILE_BYTES = const(262144)


class OtaError(ValueError):
    """A release the device refuses: `code` is a frames.UPD_* value."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def parse_version(v):
    """(major, minor, patch) of "M.m.p", or None."""
    if not isinstance(v, str):
        return None
    parts = v.split(".")
    if len(parts) != 3:
        return None
    out = []
    for p in parts:
        if not p.isdigit() or len(p) > 5 or (len(p) > 1 and p[0] == "0"):
            return None
        out.append(int(p))
    return tuple(out)


def release_key(cfg, storage):
    """The release key the device trusts: a rotated one on flash, else the
    configuration's (None: no updates)."""
    from sotto.bootsel import RKEY

    raw = storage.read(RKEY)
    if raw is not None and len(raw) == 32:
        return raw
    return cfg.get("release_key")


def open_manifest(blob, key, idle=None):
    """The manifest map of a manifest signed by `key` (32 bytes); OtaError otherwise."""
    try:
        item = cbor.decode(blob)
        kid, _alg, protected, payload, signature = cose.parse(item)
    except (cbor.CBORError, cose.COSEError) as e:
        raise OtaError(frames.UPD_BAD_SIGNATURE, "manifest: %s" % e) from None
    if kid != hashlib.sha256(bytes(key)).digest()[:KID_BYTES]:
        raise OtaError(frames.UPD_BAD_SIGNATURE, "manifest signed by another key")
    if not ed25519.VerifyKey(key).verify(cose.sig_structure_parts(protected, payload), signature, idle):
        raise OtaError(frames.UPD_BAD_SIGNATURE, "manifest signature does not verify")
    try:
        m = cbor.decode(payload)
    except cbor.CBORError:
        raise OtaError(frames.UPD_BAD_SIGNATURE, "manifest payload is not CBOR") from None
    _check(m)
    return m


def _check(m):
    bad = frames.UPD_BAD_SIGNATURE  # signed but not a manifest this firmware reads
    if not isinstance(m, dict) or m.get("fmt") != 1 or parse_version(m.get("v")) is None \
            or parse_version(m.get("min")) is None:
        raise OtaError(bad, "not a format-1 manifest")
    files = m.get("files")
    if not isinstance(files, list) or not 0 < len(files) <= MAX_FILES:
        raise OtaError(bad, "manifest files")
    for f in files:
        if not (isinstance(f, list) and len(f) == 3 and isinstance(f[0], str) and _path_ok(f[0])
                and isinstance(f[1], bytes) and len(f[1]) == 32 and type(f[2]) is int
                and 0 <= f[2] <= MAX_FILE_BYTES):
            raise OtaError(bad, "manifest file entry")
    if not isinstance(m.get("boards"), list) or not isinstance(m.get("down"), bool):
        raise OtaError(bad, "manifest boards/down")
    rk = m.get("rk")
    if rk is not None and not (isinstance(rk, bytes) and len(rk) == 32):
        raise OtaError(bad, "manifest rk")


def _path_ok(p):
    if not (p.startswith("/sotto/") or p.startswith("/boards/")) or ".." in p or "//" in p:
        return False
    for c in p:
        if not (c.isalpha() or c.isdigit() or c in "_./-"):
            return False
    return True


def check_applicable(m, running, board):
    """OtaError unless this device (running version, board) may install m."""
    if board not in m["boards"]:
        raise OtaError(frames.UPD_BAD_BOARD, "not built for board %s" % board)
    v = parse_version(m["v"])
    rv = parse_version(running)
    if rv is None:
        return
    if rv < parse_version(m["min"]):
        raise OtaError(frames.UPD_BAD_VERSION, "%s needs at least %s" % (m["v"], m["min"]))
    if v == rv:
        raise OtaError(frames.UPD_BAD_VERSION, "%s already runs" % m["v"])
    if v < rv and not m["down"]:
        raise OtaError(frames.UPD_BAD_VERSION, "downgrade %s -> %s not allowed" % (running, m["v"]))
