"""Every shipped scenario runs against the real firmware, virtual modem and a
real `sotto receive`, and every expectation it states holds."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from simulator.report import svg_timeline, timeline_lines, write_report
from simulator.run import run_scenario
from simulator.scenario import load

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.toml"))


def test_the_nine_scenarios_of_the_issue_ship():
    names = {p.stem for p in SCENARIOS}
    assert {"covert_sos", "false_alarm_cancelled", "duress_cancel", "coverage_lost_mid_alert",
            "sms_fallback", "power_cut_mid_alert", "low_battery", "indoors_last_known",
            "heartbeats_day"} <= names


def test_the_scenarios_of_issue_16_ship():
    names = {p.stem for p in SCENARIOS}
    assert {"check_in_ended_in_time", "check_in_overrun", "check_in_device_silent", "man_down_no_cancel",
            "no_motion_cancelled", "false_alarm_sitting_down", "false_alarm_device_on_table",
            "false_alarm_drop_without_fall", "false_alarm_walking", "false_alarm_driving",
            "pre_trigger_audio", "remote_config_applied", "remote_config_refused",
            "corrupt_config_still_alerts"} <= names


def test_every_shipped_scenario_checks_privacy():
    """Issue 16: the privacy expectation holds in every scenario, so every one states it
    (the update scenarios under scenarios/ota/ too)."""
    top = SCENARIOS[0].parent
    every = sorted(top.rglob("*.toml"))
    assert len(every) > len(SCENARIOS)
    missing = [str(p.relative_to(top)) for p in every if load(p).expect.get("privacy") is not True]
    assert not missing, f"scenarios without privacy = true: {missing}"


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_meets_its_expectations(path, tmp_path):
    sc = load(path)
    assert sc.expect, "a scenario without expectations proves nothing"
    result = run_scenario(sc, tmp_path)
    failures = [c.line() for c in result.failures]
    assert not failures, "\n".join(failures)
    assert len(result.checks) == len(sc.expect)


def test_same_scenario_same_timeline(tmp_path):
    sc = load(SCENARIOS[0].parent / "false_alarm_cancelled.toml")
    a = run_scenario(sc, tmp_path / "a")
    b = run_scenario(sc, tmp_path / "b")
    assert timeline_lines(a, verbose=True) == timeline_lines(b, verbose=True)
    assert [(t, s, ty) for t, s, ty, _ in a.device.made] == [(t, s, ty) for t, s, ty, _ in b.device.made]


def test_report_has_a_picture_frames_and_the_receivers_view(tmp_path):
    sc = load(SCENARIOS[0].parent / "false_alarm_cancelled.toml")
    result = run_scenario(sc, tmp_path / "run")
    out = write_report(result, tmp_path / "report")
    root = ET.fromstring((out / "timeline.svg").read_text())
    assert root.tag.endswith("svg")
    assert "alert-start" in svg_timeline(result)
    frames = (out / "frames.jsonl").read_text().splitlines()
    assert len(frames) == len(result.device.made)
    view = (out / "receiver.json").read_text()
    assert '"cancelled by the officer (false alarm)"' in view


def test_a_failing_expectation_is_named(tmp_path):
    text = (SCENARIOS[0].parent / "false_alarm_cancelled.toml").read_text()
    text = text.replace("alerts = 1", "alerts = 2")
    p = tmp_path / "wrong.toml"
    p.write_text(text)
    result = run_scenario(load(p), tmp_path / "run")
    assert [c.name for c in result.failures] == ["alerts"]
    assert "1 alert(s) at the receiver (expected 2)" in result.failures[0].detail
