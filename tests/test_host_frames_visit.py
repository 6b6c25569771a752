"""The host decoder on timed check-ins (keys 31 visit, 32 due, 33 dur) and the
automatic triggers (trig 3 check-in overdue, 4 no-motion, 5 man-down)."""

from __future__ import annotations

import framefactory as ff
import pytest

from host_tools import frames as F
from host_tools.frames import FrameType, Reason


def _dev() -> ff.DeviceSim:
    return ff.DeviceSim()


def test_a_visit_decodes_describes_and_goes_to_json() -> None:
    dev = _dev()
    wire = ff.check_in(dev, visit=(7, 1_790_001_800, 1800))
    v = F.verify_frame(wire, dev.public_key)
    assert v.ok and v.frame is not None and v.frame.type == FrameType.CHECK_IN
    f = v.frame
    assert (f.visit, f.due, f.duration_s) == (7, 1_790_001_800, 1800)
    text = "\n".join(F.describe_frame(f))
    assert "visit" in text and "ends in 1800 s (at 2026-09-21T" in text
    out = F.frame_to_json(f)
    assert (out["visit"], out["due"], out["dur"]) == (7, 1_790_001_800, 1800)
    ended = F.verify_frame(ff.check_in(dev, visit=(7, 1_790_001_000, 0)), dev.public_key).frame
    assert ended is not None and "7: ended" in "\n".join(F.describe_frame(ended))
    unknown = F.verify_frame(ff.check_in(dev, visit=(8, 0, 60)), dev.public_key).frame
    assert unknown is not None and "device time unknown" in "\n".join(F.describe_frame(unknown))


def test_a_plain_check_in_has_no_visit() -> None:
    dev = _dev()
    f = F.verify_frame(ff.check_in(dev), dev.public_key).frame
    assert f is not None and f.visit is None and "visit" not in F.frame_to_json(f)


@pytest.mark.parametrize("keys", [{31: 1}, {31: 1, 32: 5}, {32: 5, 33: 1}, {33: 0}])
def test_a_visit_needs_its_three_keys(keys: dict[int, int]) -> None:
    dev = _dev()
    payload = dev._common(8, False)
    payload.update({0: 1, 7: 80, **keys})
    v = F.verify_frame(ff.resign(dev, payload), dev.public_key)
    assert not v.ok and v.reason == Reason.MISSING_FIELD and "visit (31)" in v.detail


@pytest.mark.parametrize(("key", "value"), [(31, 0), (33, 604_801), (32, 2**32), (31, "7")])
def test_visit_values_out_of_range_are_bad_field(key: int, value: object) -> None:
    dev = _dev()
    payload = dev._common(8, False)
    payload.update({0: 1, 7: 80, 31: 1, 32: 1, 33: 1})
    payload[key] = value
    v = F.verify_frame(ff.resign(dev, payload), dev.public_key)
    assert not v.ok and v.reason == Reason.BAD_FIELD


def test_visit_keys_only_in_check_ins() -> None:
    dev = _dev()
    payload = dev._common(7, False)
    payload.update({0: 1, 7: 80, 17: 900, 31: 1, 32: 1, 33: 1})
    v = F.verify_frame(ff.resign(dev, payload), dev.public_key)
    assert not v.ok and v.reason == Reason.BAD_FIELD and "not allowed in a heartbeat" in v.detail


@pytest.mark.parametrize(("trig", "name"), [(3, "check-in-overdue"), (4, "no-motion"), (5, "man-down")])
def test_automatic_triggers_are_named(trig: int, name: str) -> None:
    dev = _dev()
    f = F.verify_frame(dev.alert_start(trig=trig), dev.public_key).frame
    assert f is not None and f.trigger == trig
    rows = [line.split(None, 1) for line in F.describe_frame(f)]
    assert ["trigger", name] in rows
