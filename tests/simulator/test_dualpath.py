"""The second path in the simulator: the scenario language (a second receiver, killing
one) and expectations across two centres that can fail (simulator.dualpath)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simulator.run import run_scenario
from simulator.scenario import ScenarioError, load, parse

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "primary_killed_mid_alert.toml"


@pytest.mark.parametrize(("data", "message"), [
    ({"secondary_receiver": "yes"}, "secondary_receiver: true or false"),
    ({"events": [{"at_s": 1, "action": "kill_receiver", "which": "tertiary"}]},
     "which: one of primary, secondary"),
    ({"events": [{"at_s": 1, "action": "kill_receiver", "which": "secondary"}]}, "no secondary receiver"),
    ({"expect": {"delivered_via_secondary": True}}, "needs a second receiver"),
    ({"secondary_receiver": True, "expect": {"receivers_down": ["backup"]}},
     "each one of primary, secondary"),
])
def test_the_scenario_language_refuses_what_cannot_run(data, message):
    with pytest.raises(ScenarioError) as e:
        parse({"duration_s": 10, **data})
    assert message in str(e.value)


def test_a_second_receiver_is_declared():
    sc = load(SCENARIO)
    assert sc.secondary and sc.config["delivery"] == {"secondary_after_s": 20, "probe_s": 60}
    assert parse({"duration_s": 10}).secondary is False


def test_without_the_kill_the_expectations_of_the_second_path_fail(tmp_path):
    # the same alert with the primary left alone: nothing goes via the secondary, and
    # the scenario's own expectations say so (they are not true by construction)
    text = re.sub(r'\[\[events\]\]\nat_s = 40\naction = "kill_receiver"\nwhich = "primary"\n', "",
                  SCENARIO.read_text())
    assert "kill_receiver" not in text
    p = tmp_path / "no_kill.toml"
    p.write_text(text.replace('track = "tracks/', f'track = "{SCENARIO.parent}/tracks/'))
    result = run_scenario(load(p), tmp_path / "run")
    failed = {c.name for c in result.failures}
    lines = [c.line() for c in result.checks]
    assert failed == {"delivered_via_secondary", "receivers_down", "statuses"}, lines
    passed = {c.name for c in result.checks if c.ok}
    assert {"every_frame_delivered", "chain_complete", "records_verify", "alerts"} <= passed


def test_both_receivers_killed_loses_delivery_and_says_so(tmp_path):
    text = SCENARIO.read_text().replace(
        '[[events]]\nat_s = 150', '[[events]]\nat_s = 60\naction = "kill_receiver"\nwhich = "secondary"\n\n'
        '[[events]]\nat_s = 150')
    p = tmp_path / "both.toml"
    p.write_text(text.replace('track = "tracks/', f'track = "{SCENARIO.parent}/tracks/'))
    result = run_scenario(load(p), tmp_path / "run")
    failed = {c.name for c in result.failures}
    lines = [c.line() for c in result.checks]
    assert "every_frame_delivered" in failed and "closed_by_centre" in failed, lines
