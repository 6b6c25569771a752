"""The virtual accelerometer (simulator/accel.py) and the scenario language of
issue 16: `motion`, `check_in`, `check_in_extend`, `check_in_end`, and the
expectations `trigger_kind` and `visit_states`."""

from __future__ import annotations

import pytest
from sotto import motion
from sotto.hal import lis2dh12_setup as chip

from simulator.accel import PROFILES, VirtualAccelerometer
from simulator.scenario import ScenarioError, parse

FALL, IMPACT, ACTIVE, STILL = motion.FALL, motion.IMPACT, motion.ACTIVE, motion.STILL


def edges(profile: str, for_s: float = 60, seed: int = 1) -> list[tuple[int, int, int]]:
    a = VirtualAccelerometer(seed)
    a.play(0, profile, for_s)
    return list(a.edges)


def kinds(profile: str, for_s: float = 60) -> list[int]:
    return [k for _, _, k in edges(profile, for_s)]


def test_a_fall_is_free_fall_then_impact_then_stillness():
    got = edges("fall")
    assert [k for _, _, k in got] == [FALL, IMPACT, STILL]
    (t_fall, _, _), (t_imp, _, _), (due, t_still, _) = got
    assert 0 < t_imp - t_fall <= 1000  # what sotto.motion accepts as one fall
    assert due - t_still == (chip.ACT_MS // 20) * 20 - 20 and t_still >= t_imp  # stamped at the stillness


def test_no_free_fall_in_walking_sitting_driving_or_setting_down():
    for name in ("walk", "sit", "drive", "table", "still"):
        assert FALL not in kinds(name, 300), name
        assert IMPACT not in kinds(name, 300), name


def test_walking_and_driving_keep_the_chip_awake_sitting_does_not_for_long():
    assert kinds("walk", 300) == [STILL]  # only the rest after the profile
    assert kinds("drive", 300) == [STILL]
    sit = edges("sit", 300)
    stills = [t for _, t, k in sit if k == STILL]
    gaps = [b - a for a, b in zip(stills, stills[1:], strict=False)]
    assert len(stills) >= 10 and max(gaps) <= 26000  # shifting in the seat every 25 s


def test_a_drop_is_picked_up_within_seconds():
    got = edges("drop", 60)
    ks = [k for _, _, k in got]
    assert ks[:4] == [FALL, IMPACT, STILL, ACTIVE]
    assert got[3][1] - got[1][1] < 4000


def test_a_new_motion_replaces_the_rest_and_edges_come_due_in_order():
    a = VirtualAccelerometer()
    a.play(0, "still", 100)
    a.play(10_000, "walk", 50)  # picked up: moving again at 10 s
    got = a.take(200_000)
    assert [k for _, k in got] == [STILL, ACTIVE, STILL]
    assert a.take(300_000) == [] and a.next_edge_ms() is None


def test_same_seed_same_edges():
    assert edges("drive", 120, seed=5) == edges("drive", 120, seed=5)
    assert set(PROFILES) >= {"walk", "still", "fall", "sit", "drive"}


# remind_min below minutes: the firmware refuses a reminder at or past the visit's end
BASE = {"duration_s": 100,
        "device": {"config": {"checkin": {"enabled": True, "minutes": 3, "remind_min": 1}}}}


def scenario(*events: dict, expect: dict | None = None, device: dict | None = None) -> object:
    data = dict(BASE)
    if device is not None:
        data["device"] = device
    data["events"] = list(events)
    data["expect"] = expect or {"alerts": 0}
    return parse(data)


def test_new_actions_parse():
    sc = scenario({"at_s": 1, "action": "check_in", "minutes": 3}, {"at_s": 2, "action": "check_in_extend"},
                  {"at_s": 3, "action": "check_in_end"}, {"at_s": 4, "action": "motion", "profile": "fall",
                                                          "for_s": 10},
                  expect={"trigger_kind": ["man-down"], "visit_states": ["alerted"]})
    assert [e.action for e in sc.events] == ["check_in", "check_in_extend", "check_in_end", "motion"]


@pytest.mark.parametrize(("event", "expect", "device", "says"), [
    ({"at_s": 1, "action": "check_in", "minutes": 30}, None, None, "checkin.minutes = 3"),
    ({"at_s": 1, "action": "check_in_extend", "minutes": 5}, None, None, "checkin.extend_minutes = 15"),
    ({"at_s": 1, "action": "check_in"}, None, {"config": {}}, "enabled = true"),
    ({"at_s": 1, "action": "motion", "profile": "jog", "for_s": 5}, None, None, "profile: one of walk"),
    ({"at_s": 1, "action": "motion", "profile": "walk"}, None, None, "for_s"),
    ({"at_s": 1, "action": "check_in_end", "minutes": 5}, None, None, "takes no 'minutes'"),
    ({"at_s": 1, "action": "sos"}, {"trigger_kind": ["fall"]}, None, "trigger_kind: each one of hold"),
    ({"at_s": 1, "action": "sos"}, {"visit_states": ["late"]}, None, "visit_states: each one of"),
])
def test_bad_scenarios_name_what_to_fix(event: dict, expect: dict | None, device: dict | None, says: str):
    with pytest.raises(ScenarioError) as e:
        scenario(event, expect=expect, device=device)
    assert says in str(e.value)
