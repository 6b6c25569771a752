"""The second path end to end on the host: frames the firmware makes with `rx`
(key 34) and st 9 receiver-down verify on the host and are stored; an alert
split between two independent centres is, at each, a verifiable record of
what it received, and the two together are one unbroken chain; the alert view
says "delivered via secondary" where it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import Clock, loc, statuses
from sotto import ed25519
from sotto import frames as fw

from host_tools.frames import RECEIVER_NAMES, decode_frame, describe_frame, frame_to_json, verify_frame
from host_tools.receiver.alerts import get_alert, show_alert
from host_tools.receiver.evidence import analyse_chain
from host_tools.receiver.format import format_alert
from host_tools.receiver.ingest import Receiver
from host_tools.receiver.paths import delivered_via
from host_tools.registry import Registry

SEED = bytes(range(0x21, 0x41))
KID = b"SOTTO-77"


class FirmwareDevice:
    """Frames made by the firmware's own signer (sotto.frames), as a device makes them."""

    def __init__(self) -> None:
        self.key = ed25519.SigningKey(SEED)
        self.signer = fw.FrameSigner(KID, self.key)
        self.seq = 0
        self.prev: bytes | None = None

    def make(self, ftype: int, fields: dict[int, object]) -> bytes:
        self.seq += 1
        f = {fw.K_T: ftype, fw.K_SEQ: self.seq, fw.K_TIME: 1_790_000_000 + self.seq, fw.K_UP: self.seq * 1000}
        f.update(fields)
        if ftype in fw.ALERT_TYPES:
            f[fw.K_SID] = 1
            if ftype != fw.ALERT_START:
                f[fw.K_PREV] = self.prev
        wire = self.signer.sign(f, bytes(200) if ftype == fw.AUDIO else None)
        if ftype in fw.ALERT_TYPES:
            self.prev = fw.chain_link(wire)
        return wire


def _centre(tmp: Path, name: str, public_key: bytes) -> tuple[Path, Receiver]:
    db = tmp / f"{name}.db"
    with Registry(db) as reg:
        reg.add(KID, public_key, officer="J. Smith")
    return db, Receiver(db, clock=Clock())


def test_a_frame_with_rx_verifies_on_the_host() -> None:
    d = FirmwareDevice()
    for ftype, fields in ((fw.STATUS, {fw.K_BATT: 70, fw.K_ST: fw.ST_RECEIVER_DOWN, fw.K_RX: 0}),
                          (fw.HEARTBEAT, {fw.K_BATT: 70, fw.K_HB: 900, fw.K_RX: 1}),
                          (fw.ALERT_START, {fw.K_BATT: 70, fw.K_TRIG: 1, fw.K_RX: 1})):
        wire = d.make(ftype, fields)
        verdict = verify_frame(wire, d.key.public_key, now=1_790_000_100)
        assert verdict.ok, verdict.detail
        frame = decode_frame(wire)
        assert frame.rx == fields[fw.K_RX]
        assert frame_to_json(frame)["rx"] == fields[fw.K_RX]
        assert RECEIVER_NAMES[frame.rx] in "\n".join(describe_frame(frame))


def test_rx_out_of_range_or_on_a_location_frame_is_refused_by_the_host() -> None:
    import framefactory as ff

    dev = ff.DeviceSim(kid=KID)
    key = dev.key
    base = {0: 1, 1: 9, 3: 1, 4: 1_790_000_000, 5: 0, 7: 50, 18: 9}
    for extra, t in (({34: 2}, 9), ({34: 0}, 2)):
        payload = {**base, **extra}
        payload[1] = t
        if t == 2:
            del payload[7], payload[18]
            payload.update({2: 1, 6: loc(), 8: bytes(8)})
        verdict = verify_frame(ff.sign1(key, KID, payload), dev.public_key, now=1_790_000_100)
        assert not verdict.ok and verdict.reason is not None and verdict.reason.value == "bad-field"


def test_an_alert_split_between_two_centres(tmp_path: Path) -> None:
    d = FirmwareDevice()
    db_a, a = _centre(tmp_path, "primary", d.key.public_key)
    db_b, b = _centre(tmp_path, "secondary", d.key.public_key)
    try:
        first = [d.make(fw.ALERT_START, {fw.K_BATT: 80, fw.K_TRIG: 1, fw.K_RX: 0, fw.K_LOC: loc(0)}),
                 d.make(fw.LOCATION, {fw.K_LOC: loc(1)})]
        assert statuses(a.ingest(first)) == ["accepted", "accepted"]
        # the primary is killed: what follows goes to the secondary, with the report
        rest = [d.make(fw.LOCATION, {fw.K_LOC: loc(2)}),
                d.make(fw.STATUS, {fw.K_BATT: 79, fw.K_ST: fw.ST_RECEIVER_DOWN, fw.K_RX: 0}),
                d.make(fw.AUDIO, {fw.K_CODEC: 1, fw.K_RATE: 8000, fw.K_OFF: 0, fw.K_AST: [0, 0],
                                  fw.K_NS: 400}),
                d.make(fw.LOCATION, {fw.K_LOC: loc(3)}),
                d.make(fw.END, {fw.K_WHY: 1})]
        assert statuses(b.ingest(rest)) == ["accepted"] * 5
    finally:
        a.close()
        b.close()
    ca, cb = sqlite3.connect(db_a), sqlite3.connect(db_b)
    try:
        aid_a = ca.execute("SELECT alert_id FROM alerts").fetchone()[0]
        aid_b = cb.execute("SELECT alert_id FROM alerts").fetchone()[0]
        # each centre: what it received, each frame verifiable on its own
        assert get_alert(ca, aid_a).chain.state == "open"
        chain_b = get_alert(cb, aid_b).chain
        assert chain_b.state == "gap" and "alert-start" in chain_b.summary
        assert delivered_via(ca, aid_a) == "primary" and delivered_via(cb, aid_b) == "secondary"
        text = "\n".join(format_alert(show_alert(cb, aid_b, operator="qa")))
        assert "delivered via secondary" in text
        assert show_alert(cb, aid_b, operator="qa").to_json()["delivered_via"] == "secondary"
        # both records together: one unbroken chain from alert-start to end, nothing lost
        wires = [bytes(w) for (w,) in ca.execute("SELECT wire FROM frames WHERE alert_id IS NOT NULL")]
        wires += [bytes(w) for (w,) in cb.execute("SELECT wire FROM frames WHERE alert_id IS NOT NULL")]
    finally:
        ca.close()
        cb.close()
    for w in wires:
        assert verify_frame(w, d.key.public_key, now=1_790_000_100).ok
    analysis = analyse_chain([decode_frame(w) for w in wires])
    assert analysis.state == "complete" and len(analysis.order) == 6, analysis.summary


@pytest.mark.parametrize("rx", [None, 1])
def test_delivered_via_from_the_alert_start(tmp_path: Path, rx: int | None) -> None:
    d = FirmwareDevice()
    db, r = _centre(tmp_path, "c", d.key.public_key)
    fields: dict[int, object] = {fw.K_BATT: 80, fw.K_TRIG: 1}
    if rx is not None:
        fields[fw.K_RX] = rx
    try:
        assert statuses(r.ingest([d.make(fw.ALERT_START, fields)])) == ["accepted"]
    finally:
        r.close()
    conn = sqlite3.connect(db)
    try:
        assert delivered_via(conn, 1) == (None if rx is None else "secondary")
    finally:
        conn.close()
