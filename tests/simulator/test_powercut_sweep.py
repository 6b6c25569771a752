"""A power cut at every storage operation of a whole alert (tests/simulator/powercut.py
says what each run does and checks): nothing acknowledged or queued lost, nothing
duplicated, exactly the officer's alert, one unbroken chain at a real receiver.

The full sweep (every cut point of both alerts, just before and just after each
operation: about 200 runs) is marked `powercut_sweep` and runs in its own lane,
`make powercut`, which `make test` calls. The ordinary lane runs a representative
part: every cut point from the pattern to the alert-start's acknowledgement, then
every 8th (a different one for each kind of cut)."""

from __future__ import annotations

import pytest
from powercut import PLANS, sweep, tally

from simulator.receiver import ReceiverProcess

FIRST_POINTS = 10  # the intent, the alert id, the alert-start, its record and its ack


@pytest.fixture(scope="module")
def rx(tmp_path_factory):
    r = ReceiverProcess(tmp_path_factory.mktemp("receiver"))
    yield r
    r.stop()


def failures(outs) -> list[str]:
    return [f"{o.label()}: {'; '.join(o.problems)}" for o in outs if not o.clean]


def run_sweep(rx, tmp_path, plan, done, pick=None):
    outs = sweep(rx, tmp_path, PLANS[plan], done, pick)
    assert not outs[-1].happened and outs[-1].clean  # the run past the alert's last operation
    assert failures(outs) == []
    return outs


@pytest.mark.parametrize("done", [False, True], ids=["before", "after"])
def test_cuts_from_the_pattern_to_the_alert_starts_ack_then_a_stride(rx, tmp_path, done):
    offset = 3 if done else 7
    outs = run_sweep(rx, tmp_path, "end", done, lambda n: n <= FIRST_POINTS or n % 8 == offset)
    assert tally(outs)["cut points"] >= FIRST_POINTS + 5


def test_cuts_around_the_officers_cancel(rx, tmp_path):
    # the cancel's own operations come late in the alert: every 4th point of that plan
    outs = run_sweep(rx, tmp_path, "cancel", False, lambda n: n % 4 == 2)
    assert tally(outs)["cut points"] >= 10


@pytest.mark.powercut_sweep
@pytest.mark.parametrize("plan", sorted(PLANS))
@pytest.mark.parametrize("done", [False, True], ids=["before", "after"])
def test_every_cut_point_of_a_whole_alert(rx, tmp_path, plan, done):
    outs = run_sweep(rx, tmp_path, plan, done)
    assert tally(outs)["cut points"] >= 40  # every write, rename and remove of the alert
