"""docs/frames.md's CDDL checked by an implementation nobody here wrote (zcbor).

The schema is read from the page's ```cddl blocks at test time (tests/cddl_schema.py),
so the page cannot drift from what is checked. Every golden vector and real answers
of the receiver must validate; frames broken in one place each must not.
"""

from __future__ import annotations

import copy
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cbor2
import framefactory as ff
import pytest
from cddl_schema import FRAMES_MD, REPO_ROOT, Schema, cddl_blocks, cddl_source, load_schema

from host_tools.frames import Reason
from host_tools.receiver.alerts import close
from host_tools.receiver.ingest import Receiver
from host_tools.registry import Registry

VECTORS = REPO_ROOT / "tests" / "vectors"
NAMES = sorted(p.stem for p in VECTORS.glob("*.json"))
U32 = 2**32 - 1
STORE_MAX = 2**63 - 1     # SQLite and PostgreSQL integers are signed 64-bit

# docs/frames.md, written out again here: the vector's kind -> its CDDL rule, and
# the keys each kind may leave out (flags, 10, everywhere).
RULE_OF_KIND = {"alert-start": "alert-start", "location": "location-update", "audio": "audio-chunk",
                "cancel": "cancel", "duress": "duress", "end": "end", "heartbeat": "heartbeat",
                "check-in": "check-in", "status": "status", "reply": "reply"}
OPTIONAL_KEYS = {"alert-start": {6, 10, 34}, "location": {10}, "audio": {10}, "cancel": {7, 10},
                 "duress": {6, 7, 10}, "end": {7, 10}, "heartbeat": {10, 23, 24, 25, 29, 30, 34},
                 "check-in": {6, 10},
                 "status": {10, 19, 23, 24, 25, 26, 27, 28, 29, 30, 34, 35, 36, 37},
                 "reply": {2, 10}}

# The bounds of every integer field, key -> (name, lowest, highest): the contract the
# host verifier (host_tools/frames.py) and the firmware apply too. Nothing reaches 2^63.
BOUNDS = {
    0: ("v", 1, 1), 1: ("t", 1, 10),
    2: ("sid", 1, 65535), 3: ("seq", 1, U32), 4: ("time", 0, U32), 5: ("up", 0, U32),
    7: ("batt", 0, 100), 9: ("trig", 1, 5), 10: ("flags", 0, 63), 11: ("codec", 1, 1),
    12: ("rate", 1, U32), 13: ("off", 0, U32), 16: ("ns", 0, U32), 17: ("hb", 0, U32),
    18: ("st", 1, 11), 19: ("drop", 0, U32), 20: ("why", 1, 4),
    21: ("cmd", 1, 2**53), 22: ("res", 1, 7), 23: ("unauth", 0, U32),
    25: ("cfgv", 0, U32), 26: ("rst", 0, 6), 27: ("boots", 0, U32), 28: ("faults", 0, U32),
    29: ("qd", 0, U32), 30: ("csq", 0, 99),
    31: ("visit", 1, U32), 32: ("due", 0, U32), 33: ("dur", 0, 604800), 34: ("rx", 0, 1),
    36: ("upd", 1, 9),
}
# a golden vector that carries each bounded key (v and t change the frame's meaning: tested apart)
CARRIER = {2: "location", 3: "heartbeat", 4: "heartbeat", 5: "heartbeat", 7: "heartbeat",
           9: "alert-start", 10: "status", 11: "audio", 12: "audio", 13: "audio", 16: "audio",
           17: "heartbeat", 18: "status", 19: "status", 20: "end", 21: "reply", 22: "reply",
           23: "status-not-through", 25: "status-health", 26: "status-health", 27: "status-health",
           28: "status-health", 29: "heartbeat-config-invalid", 30: "heartbeat-config-invalid",
           31: "check-in-visit", 32: "check-in-visit", 33: "check-in-visit",
           34: "status-receiver-down", 36: "status-update"}


@pytest.fixture(scope="module")
def schema() -> Schema:
    return load_schema()


def _vector(name: str) -> tuple[dict[str, Any], bytes]:
    meta = json.loads((VECTORS / f"{name}.json").read_text())
    return meta, (VECTORS / f"{name}.cbor").read_bytes()


# -- frames taken apart and put together again ----------------------------------------------------


@dataclass(frozen=True)
class Parts:
    """A frame's pieces, decoded; `join` encodes them deterministically again.
    The signature does not matter to the schema, so a changed payload keeps it."""

    header: Any
    unprotected: Any
    payload: Any
    signature: Any
    audio: Any = None
    tag: int = 18
    payload_item: Any = None         # when not None: put in the payload's place as is


_DETACHED = cbor2.undefined          # a stand-in: join writes null (a detached payload) for it


def split(wire: bytes) -> Parts:
    item = cbor2.loads(wire)
    audio = None
    if isinstance(item, list):
        item, audio = item
    protected, unprotected, payload, signature = item.value
    return Parts(cbor2.loads(protected), unprotected, cbor2.loads(payload), signature, audio)


def join(parts: Parts) -> bytes:
    payload: Any
    if parts.payload_item is None:
        payload = ff.canonical(parts.payload)
    else:
        payload = None if parts.payload_item is _DETACHED else parts.payload_item
    cose = cbor2.CBORTag(parts.tag, [ff.canonical(parts.header), parts.unprotected, payload, parts.signature])
    return ff.canonical([cose, parts.audio] if parts.audio is not None else cose)


def with_payload(name: str, change: Callable[[dict[Any, Any]], None]) -> bytes:
    parts = split(_vector(name)[1])
    payload = copy.deepcopy(parts.payload)
    change(payload)
    return join(replace(parts, payload=payload))


def _set(key: Any, value: Any) -> Callable[[dict[Any, Any]], None]:
    def change(p: dict[Any, Any]) -> None:
        p[key] = value
    return change


def _drop(key: int) -> Callable[[dict[int, Any]], None]:
    def change(p: dict[int, Any]) -> None:
        del p[key]
    return change


# -- the schema comes from the page and parses ----------------------------------------------------


def test_the_schema_is_the_pages_cddl_and_zcbor_parses_it(schema: Schema) -> None:
    assert len(cddl_blocks(FRAMES_MD.read_text(encoding="utf-8"))) == 3   # envelope, payload, answer
    wanted = {"frame", "signed-frame", "audio-frame", "protected-header", "frame-payload", "response",
              *RULE_OF_KIND.values()}
    assert wanted <= schema.rules.keys()


def test_zcbors_own_command_line_takes_the_pages_cddl(tmp_path: Path) -> None:
    """What docs/frames.md tells a reader to run, run: one good frame, one broken."""
    cddl = tmp_path / "sotto.cddl"
    cddl.write_text(cddl_source())
    script = Path(sys.executable).with_name("zcbor")      # the command pip installed beside python
    zcbor = [str(script), "validate", "-c", str(cddl), "-t", "frame", "-i", "-"]
    good = _vector("audio")[1]
    bad = with_payload("audio", _set(16, U32 + 1))
    ok = subprocess.run(zcbor, input=good, capture_output=True, timeout=60)
    refused = subprocess.run(zcbor, input=bad, capture_output=True, timeout=60)
    assert ok.returncode == 0, ok.stderr.decode()[-2000:]
    assert refused.returncode != 0 and b"CddlValidationError" in refused.stderr


# -- every golden vector validates ---------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_golden_vector_validates_as_a_frame_and_as_its_own_type(schema: Schema, name: str) -> None:
    meta, wire = _vector(name)
    kind = meta["kind"]
    parts = split(wire)
    assert schema.valid_cbor("frame", wire)
    assert schema.valid_cbor("audio-frame" if kind == "audio" else "signed-frame", wire)
    assert not schema.valid_cbor("signed-frame" if kind == "audio" else "audio-frame", wire)
    assert schema.valid("protected-header", parts.header)
    assert schema.valid("frame-payload", parts.payload)
    matches = {rule for rule in RULE_OF_KIND.values() if schema.valid(rule, parts.payload)}
    assert matches == {RULE_OF_KIND[kind]}          # its own type and no other


@pytest.mark.parametrize("name", NAMES)
def test_a_required_key_left_out_fails_and_an_optional_one_does_not(schema: Schema, name: str) -> None:
    kind = _vector(name)[0]["kind"]
    verdicts = {}
    for key in split(_vector(name)[1]).payload:
        verdicts[key] = schema.valid_cbor("frame", with_payload(name, _drop(key)))
    assert verdicts == {key: key in OPTIONAL_KEYS[kind] for key in verdicts}


# -- integers: every bound, at its edges ----------------------------------------------------------


def _table_bounds() -> dict[int, tuple[str, int, int]]:
    """The `uint LO..HI` (or `uint N`) types of the payload table in docs/frames.md."""
    def number(text: str) -> int:
        return {"2³²−1": 2**32 - 1, "2⁵³": 2**53}.get(text) or int(text)
    out = {}
    for key, name, lo, hi in re.findall(r"^\| (\d+) \| `(\w+)` \| uint (\S+?)(?:\.\.(\S+))? \|",
                                        FRAMES_MD.read_text(encoding="utf-8"), re.M):
        out[int(key)] = (name, number(lo), number(hi or lo))
    return out


def test_the_pages_table_gives_every_integer_the_bounds_checked_here() -> None:
    table = _table_bounds()
    assert table == BOUNDS
    assert all(hi <= STORE_MAX for _, _, hi in table.values())


@pytest.mark.parametrize("key", sorted(CARRIER), ids=[BOUNDS[k][0] for k in sorted(CARRIER)])
def test_each_integer_field_is_accepted_at_its_edges_and_refused_one_beyond(schema: Schema, key: int) -> None:
    name, lo, hi = BOUNDS[key]

    def frame(value: Any) -> bytes:
        def change(p: dict[int, Any]) -> None:
            p[key] = value
            if key == 18 and value != 5:
                p.pop(19, None)          # drop goes only with st 5 (tested below)
        return with_payload(CARRIER[key], change)

    verdicts = {v: schema.valid_cbor("frame", frame(v))
                for v in (lo - 1, lo, hi, hi + 1, 2**63, 2**64 - 1)}
    assert verdicts == {lo - 1: False, lo: True, hi: True, hi + 1: False, 2**63: False, 2**64 - 1: False}


def test_the_adpcm_state_is_bounded_in_both_items(schema: Schema) -> None:
    verdicts = {state: schema.valid_cbor("frame", with_payload("audio", _set(15, list(state))))
                for state in ((-32768, 0), (32767, 88), (-32769, 0), (32768, 0), (0, -1), (0, 89))}
    assert verdicts == {(-32768, 0): True, (32767, 88): True, (-32769, 0): False, (32768, 0): False,
                        (0, -1): False, (0, 89): False}


def test_the_version_and_the_frame_type_are_bounded(schema: Schema) -> None:
    refused = [with_payload("heartbeat", _set(0, 2)), with_payload("heartbeat", _set(0, 0)),
               with_payload("heartbeat", _set(1, 10)), with_payload("heartbeat", _set(1, 0)),
               with_payload("heartbeat", _set(1, 8))]      # a heartbeat's keys under check-in's type
    assert [schema.valid_cbor("frame", wire) for wire in refused] == [False] * len(refused)


# -- wrong types, unknown keys --------------------------------------------------------------------


WRONG_TYPES = [
    ("heartbeat", 3, b"\x00\x01"), ("heartbeat", 4, "1790000000"), ("heartbeat", 4, 1790000000.0),
    ("heartbeat", 7, None), ("status", 10, True), ("location", 6, 515007292), ("location", 6, bytes(12)),
    ("location", 6, bytes(14)), ("location", 8, bytes(9)), ("audio", 14, bytes(31)), ("audio", 15, [0, 0, 0]),
    ("audio", 15, 0), ("audio", 15, {0: 0, 1: 0}), ("audio", 16, [2000]), ("end", 20, "1"),
    ("location", 2, -7),
]


@pytest.mark.parametrize(("name", "key", "value"), WRONG_TYPES)
def test_a_value_of_the_wrong_type_fails(schema: Schema, name: str, key: int, value: Any) -> None:
    assert schema.valid_cbor("frame", with_payload(name, lambda p: None))   # the control
    assert not schema.valid_cbor("frame", with_payload(name, _set(key, value)))


@pytest.mark.parametrize("name", NAMES)
def test_a_key_the_format_does_not_know_fails(schema: Schema, name: str) -> None:
    unknown = max(BOUNDS) + 1     # the next key nobody has defined yet
    verdicts = [schema.valid_cbor("frame", with_payload(name, _set(key, 1)))
                for key in (unknown, 100, -1, "x")]
    assert verdicts == [False] * 4


def test_a_key_of_another_frame_type_fails(schema: Schema) -> None:
    foreign = [("location", 17, 900), ("location", 9, 1), ("heartbeat", 19, 1), ("heartbeat", 2, 7),
               ("check-in", 8, bytes(8)), ("alert-start", 8, bytes(8)), ("status", 6, bytes(13)),
               ("cancel", 20, 1)]
    assert [schema.valid_cbor("frame", with_payload(n, _set(k, v))) for n, k, v in foreign] == [False] * 8


def test_drop_goes_only_with_status_queue_full(schema: Schema) -> None:
    def status(st: int, drop: int | None) -> bytes:
        def change(p: dict[int, Any]) -> None:
            p[18] = st
            p.pop(19)
            if drop is not None:
                p[19] = drop
        return with_payload("status", change)
    verdicts = {(st, drop): schema.valid_cbor("frame", status(st, drop))
                for st, drop in ((5, 12), (5, None), (3, 12), (6, 0), (3, None))}
    assert verdicts == {(5, 12): True, (5, None): True, (3, 12): False, (6, 0): False, (3, None): True}


# -- the envelope ---------------------------------------------------------------------------------


def test_alg_is_eddsa_or_ed25519_and_nothing_else(schema: Schema) -> None:
    parts = split(_vector("heartbeat")[1])
    verdicts = {alg: schema.valid_cbor("frame", join(replace(parts, header={1: alg, 4: parts.header[4]})))
                for alg in (-8, -19, -7, -35, 8, "EdDSA")}
    assert verdicts == {-8: True, -19: True, -7: False, -35: False, 8: False, "EdDSA": False}


def _envelope_breaks() -> Iterator[tuple[str, bytes]]:
    hb = split(_vector("heartbeat")[1])
    audio = split(_vector("audio")[1])
    kid = hb.header[4]
    yield "no alg", join(replace(hb, header={4: kid}))
    yield "no kid", join(replace(hb, header={1: -8}))
    yield "kid of 7 bytes", join(replace(hb, header={1: -8, 4: kid[:7]}))
    yield "kid as text", join(replace(hb, header={1: -8, 4: kid.decode()}))
    yield "an extra header parameter", join(replace(hb, header={1: -8, 3: 0, 4: kid}))
    yield "an unprotected header", join(replace(hb, unprotected={4: kid}))
    yield "a 63-byte signature", join(replace(hb, signature=hb.signature[:63]))
    yield "a detached payload", join(replace(hb, payload_item=_DETACHED))
    yield "a payload map not wrapped in a bstr", join(replace(hb, payload_item=hb.payload))
    yield "tag 98, not 18", join(replace(hb, tag=98))
    yield "untagged", ff.canonical(cbor2.loads(join(hb)).value)
    yield "an audio chunk without its audio", join(replace(audio, audio=None))
    yield "a heartbeat with audio beside it", join(replace(hb, audio=b"\x00" * 16))
    yield "audio as text", join(replace(audio, audio="audio"))
    yield "three items around the COSE_Sign1", ff.canonical([cbor2.loads(join(replace(audio, audio=None))),
                                                              audio.audio, b""])


@pytest.mark.parametrize(("what", "wire"), list(_envelope_breaks()), ids=[w for w, _ in _envelope_breaks()])
def test_a_broken_envelope_fails(schema: Schema, what: str, wire: bytes) -> None:
    assert not schema.valid_cbor("frame", wire)


def test_the_envelope_controls_differ_from_a_valid_frame_in_one_place_only(schema: Schema) -> None:
    """The parts put together unchanged validate: the breaks above fail for their one change."""
    assert schema.valid_cbor("frame", join(split(_vector("heartbeat")[1])))
    assert schema.valid_cbor("frame", join(split(_vector("audio")[1])))
    assert join(split(_vector("audio")[1])) == _vector("audio")[1]   # join re-encodes byte for byte


# -- the receiver's answer ------------------------------------------------------------------------

CLOCK_S = 1_790_100_000      # after every vector's time (none is "in the future")


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Receiver, Path]]:
    db = tmp_path / "receiver.db"
    meta = _vector(NAMES[0])[0]
    with Registry(db) as reg:
        reg.add(bytes.fromhex(meta["kid"]), bytes.fromhex(meta["public_key"]))
    r = Receiver(db, clock=lambda: CLOCK_S)
    yield r, db
    r.close()


def test_the_receivers_answers_validate(schema: Schema, receiver: tuple[Receiver, Path]) -> None:
    rx, _ = receiver
    frames = [_vector(n)[1] for n in NAMES]
    broken_sig = bytearray(_vector("heartbeat")[1])
    broken_sig[-1] ^= 1
    stranger = ff.DeviceSim(kid=b"SOTTO-77").heartbeat()
    answers = [rx.ingest(frames), rx.ingest(frames), rx.ingest([b"\x00", bytes(broken_sig), stranger])]
    bodies = [a.to_cbor() for a in answers]
    seen = [(r["status"], r["device"] is None) for body in bodies for r in cbor2.loads(body)["results"]]
    assert {("accepted", False), ("duplicate", False), ("rejected", True), ("rejected", False)} == set(seen)
    assert [schema.valid_cbor("response", body) for body in bodies] == [True] * 3


def test_an_answer_naming_closed_alerts_validates(schema: Schema, receiver: tuple[Receiver, Path]) -> None:
    rx, db = receiver
    rx.ingest([_vector("alert-start")[1]])
    close(sqlite3.connect(db), 1, operator="Bob", outcome="officer safe", now=CLOCK_S)
    answer = rx.ingest([_vector("location")[1]])
    body = answer.to_cbor()
    assert cbor2.loads(body)["closed"] == [7]
    assert schema.valid_cbor("response", body)


def test_an_answer_broken_in_one_place_fails(schema: Schema, receiver: tuple[Receiver, Path]) -> None:
    rx, _ = receiver
    good = cbor2.loads(rx.ingest([_vector("heartbeat")[1], b"\x00"]).to_cbor())
    assert schema.valid("response", good)
    stored, rejected = good["results"]

    def answer(**changes: Any) -> dict[str, Any]:
        out = copy.deepcopy(good)
        for key, value in changes.items():
            out[key] = value
        return out
    broken = {
        "reason on a stored frame": answer(results=[{**stored, "reason": "bad-field"}, rejected]),
        "no reason on a rejected frame": answer(results=[stored, {"seq": None, "device": None,
                                                                 "status": "rejected"}]),
        "a reason that is not a code": answer(results=[stored, {**rejected, "reason": "nope"}]),
        "a stored frame without its seq": answer(results=[{**stored, "seq": None}, rejected]),
        "seq 0": answer(results=[{**stored, "seq": 0}, rejected]),
        "an unknown status": answer(results=[{**stored, "status": "ok"}, rejected]),
        "an empty closed list": answer(closed=[]),
        "closed sid 0": answer(closed=[0]),
        "time beyond 2^32-1": answer(time=2**32),
        "an unknown key": answer(extra=1),
    }
    no_results = copy.deepcopy(good)
    del no_results["results"]
    broken["no results"] = no_results
    verdicts = {what: schema.valid("response", item) for what, item in broken.items()}
    assert verdicts == {what: False for what in broken}


def test_the_reason_codes_are_one_list_in_the_cddl_the_table_and_the_code() -> None:
    source = cddl_source()
    rule = re.search(r"^reason-code = (.*\n(?:[ \t]+.*\n)*)", source, re.M)   # and its indented lines
    assert rule is not None
    in_cddl = re.findall(r'"([a-z0-9-]+)"', rule.group(1))
    codes_section = FRAMES_MD.read_text(encoding="utf-8").split("### Reason codes", 1)[1]
    in_table = re.findall(r"^\| `([a-z0-9-]+)` \|", codes_section, re.M)
    assert sorted(in_cddl) == sorted(in_table) == sorted(r.value for r in Reason)


def test_the_receivers_signed_answers_over_http_validate(schema: Schema,
                                                         receiver: tuple[Receiver, Path]) -> None:
    """What `sotto receive` really sends: COSE_Sign1 answers (200 with closed and
    commands, 400) match `answer`, and their payloads the response rules."""
    import http.client

    from host_tools.receiver import commands
    from host_tools.receiver.server import ServerConfig, start_in_thread

    rx, db = receiver
    rx.close()
    rs = start_in_thread(db, ServerConfig(port=0))

    def post(body: bytes) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", rs.port, timeout=10)
        try:
            conn.request("POST", "/v1/frames", body, {"Content-Type": "application/cbor-seq"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    try:
        post(_vector("alert-start")[1])
        conn = sqlite3.connect(db)
        commands.queue(conn, 1, "ask", operator="Bob", question=1)
        commands.queue(conn, 1, "more-audio", operator="Bob", seconds=30)
        close(conn, 1, operator="Bob", outcome="officer safe")
        conn.close()
        answers = [post(_vector("location")[1]), post(b"\xd2\x84\x41")]
    finally:
        rs.stop()
    (ok_status, ok_body), (bad_status, bad_body) = answers
    payloads = [cbor2.loads(cbor2.loads(b).value[2]) for _, b in answers]
    assert (ok_status, bad_status) == (200, 400)
    assert payloads[0]["closed"] == [7] and [c["op"] for c in payloads[0]["cmds"]] == ["ask", "more-audio"]
    assert schema.valid_cbor("answer", ok_body) and schema.valid_cbor("answer", bad_body)
    assert schema.valid("signed-response", payloads[0]) and schema.valid("error-response", payloads[1])


def test_the_health_texts_are_bounded_in_bytes(schema: Schema) -> None:
    def status(key: int, text: Any) -> bool:
        return schema.valid_cbor("frame", with_payload("status", _set(key, text)))

    assert status(24, "0.1.0") and status(24, "x" * 32) and not status(24, "x" * 33)
    assert status(37, "x" * 64) and not status(37, "x" * 65) and not status(37, b"bytes")
    assert not schema.valid_cbor("frame", with_payload("heartbeat", _set(37, "no")))  # status only
