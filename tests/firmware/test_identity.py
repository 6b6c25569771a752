# The device key: made from the hardware RNG, stored atomically, loaded at
# boot; the seed never shows in logs, reprs or errors.
from fakehal import FakeHal
from faultstorage import FaultStorage
from fwtest import raises, tmpdir
from sotto import ed25519, identity, log
from sotto.storage import Storage

SEED = bytes(range(1, 33))
SEED_TEXTS = (SEED.hex(), SEED.hex().upper(), "0102030405", repr(SEED)[2:20])


def rng_of(seed):
    return lambda n: seed[:n]


def shows_seed(text):
    for t in SEED_TEXTS:
        if t in text:
            return True
    return False


def test_key_made_from_the_rng_and_kept():
    st = Storage(tmpdir("id"))
    hal = FakeHal(st.root)
    assert raises(identity.IdentityError, identity.load, st).reason == "missing"
    asked = []

    def rng(n):
        asked.append(n)
        return hal.random_bytes(n)

    pub = identity.create(st, rng)
    assert asked == [32] and len(pub) == 32
    assert identity.public_key(st) == pub
    key = identity.load(st)
    assert ed25519.verify(pub, b"hello", key.sign(b"hello"))
    assert raises(identity.IdentityError, identity.create, st, rng).reason == "exists"
    assert identity.public_key(st) == pub  # refused: the old key stays
    pub2 = identity.create(st, rng, force=True)
    assert pub2 != pub and identity.public_key(st) == pub2


def test_the_key_is_the_rfc8032_key_of_the_seed():
    # RFC 8032 §7.1 test 1: this seed has this public key
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    st = Storage(tmpdir("id"))
    pub = identity.create(st, rng_of(seed))
    assert pub == bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    assert st.read("identity.key")[4:36] == seed


def test_errors_logs_and_reprs_never_show_the_seed():
    lines = []
    log.set_sink(lines.append)
    try:
        st = Storage(tmpdir("id"))
        identity.create(st, rng_of(SEED))
        key = identity.load(st)
        texts = [repr(key), str(key)]
        texts.append(str(raises(identity.IdentityError, identity.create, st, rng_of(SEED))))
        raw = bytearray(st.read("identity.key"))
        raw[10] ^= 1
        st.write_atomic("identity.key", raw)
        e = raises(identity.IdentityError, identity.load, st)
        assert e.reason == "corrupt" and "--force" in str(e)
        texts += [str(e), repr(e)]
        e = raises(identity.IdentityError, identity.create, FaultStorage(tmpdir("id"), full_after_bytes=0),
                   rng_of(SEED))
        assert e.reason == "flash"
        texts += [str(e), repr(e)]
    finally:
        log.set_sink(None)
    for t in texts + lines:
        assert not shows_seed(t), t


def test_a_broken_rng_writes_no_key():
    st = Storage(tmpdir("id"))
    for rng in (lambda n: bytes(n), lambda n: b"\xff" * n, lambda n: b"\x01\x02" * (n // 2),
                lambda n: b"short"):
        e = raises(identity.IdentityError, identity.create, st, rng)
        assert e.reason == "rng"
        assert st.read("identity.key") is None


def test_a_power_cut_while_replacing_keeps_the_old_key():
    root = tmpdir("id")
    pub = identity.create(Storage(root), rng_of(SEED))
    for n in (1, 2):  # the write, the rename
        st = FaultStorage(root, cut_at=n)
        e = raises(identity.IdentityError, identity.create, st, rng_of(bytes(range(100, 132))), True)
        assert e.reason == "flash"
        assert identity.public_key(Storage(root)) == pub


def test_a_truncated_or_foreign_key_file_is_corrupt():
    st = Storage(tmpdir("id"))
    for raw in (b"", b"SID1" + SEED, b"XXXX" + SEED + b"\x00\x00\x00\x00", SEED):
        st.write_atomic("identity.key", raw)
        assert raises(identity.IdentityError, identity.load, st).reason == "corrupt"
