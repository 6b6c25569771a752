"""The update fields of status frames (fw 24, pend 35, upd 36, err 37; st 11): the
firmware signs them, the host decoder and the CDDL read them, and both refuse
them out of bounds or in the wrong frame type."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sotto import ed25519, frames  # noqa: E402

from host_tools.frames import FrameError, decode_frame, frame_to_json
from tests.cddl_schema import load_schema
from tests.framefactory import sign1

KID = bytes.fromhex("00000000000000a7")


def _payload(extra):
    p = {0: 1, 1: 9, 3: 7, 4: 1700000000, 5: 1000, 7: 80, 18: 11}
    p.update(extra)
    return p


def test_firmware_signs_and_host_reads_update_status():
    signer = frames.FrameSigner(KID, ed25519.SigningKey(bytes(32)))
    wire = signer.sign({frames.K_T: frames.STATUS, frames.K_SEQ: 7, frames.K_TIME: 1700000000,
                        frames.K_UP: 1, frames.K_BATT: 80, frames.K_ST: frames.ST_UPDATE,
                        frames.K_UPD: frames.UPD_ROLLED_BACK,
                        frames.K_FW: "0.1.0", frames.K_ERR: "no authenticated answer in 600 s",
                        frames.K_PEND: "0.2.0"})
    f = decode_frame(wire)
    assert f.firmware_version == "0.1.0"
    assert f.update == (2, "no authenticated answer in 600 s", "0.2.0")
    j = frame_to_json(f)
    assert j["fw"] == "0.1.0" and j["upd"] == 2 and j["status"] == 11
    assert load_schema().valid_cbor("frame", wire)


@pytest.mark.parametrize("extra", [{36: 0}, {36: 10}, {37: "x" * 65}, {24: ""}, {35: 5}])
def test_out_of_bounds_refused_by_both(extra):
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    wire = sign1(key, KID, _payload(extra))
    with pytest.raises(FrameError):
        decode_frame(wire)
    assert not load_schema().valid_cbor("frame", wire)
    with pytest.raises(frames.FrameError):
        frames.check_fields(_payload(extra))


def test_update_keys_only_in_status():
    fields = {0: 1, 1: frames.HEARTBEAT, 3: 1, 4: 0, 5: 0, 7: 50, 17: 900, 36: 1}
    with pytest.raises(frames.FrameError):
        frames.check_fields(fields)
    del fields[36]
    fields[24] = "0.1.0"
    frames.check_fields(fields)  # fw is allowed in heartbeats
