"""The lanes `make simvm` and `make powercut` run as shards side by side
(tools/pytest_shards.sh, SOTTO_TEST_SHARD in tests/simulator/conftest.py): the
shards together select every test exactly once, a bad shard is refused with a
clear error, and a failing shard fails the whole run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARDS = REPO / "tools" / "pytest_shards.sh"
TARGET = ["tests/simulator/test_vm_runtime.py", "-m", "vm_scenarios"]


def _collect(shard: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("SOTTO_TEST_SHARD", None)
    if shard is not None:
        env["SOTTO_TEST_SHARD"] = shard
    return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", *TARGET],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _ids(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line for line in proc.stdout.splitlines() if "::" in line]


def test_two_shards_select_every_test_once_and_split_them_evenly():
    everything = _ids(_collect(None))
    one, two = _ids(_collect("1/2")), _ids(_collect("2/2"))
    assert len(everything) > 4
    assert sorted(one + two) == sorted(everything) and not set(one) & set(two)
    assert abs(len(one) - len(two)) <= 1


def test_a_bad_shard_is_refused_with_what_to_give():
    for bad in ("3/2", "0/2", "half", "1/0"):
        proc = _collect(bad)
        assert proc.returncode != 0
        assert f"SOTTO_TEST_SHARD={bad!r}: give K/N with 1 <= K <= N" in proc.stdout + proc.stderr


def test_the_runner_fails_when_any_shard_fails_and_prints_every_shard():
    only_first_passes = 'echo "ran $SOTTO_TEST_SHARD"; [ "$SOTTO_TEST_SHARD" = 1/2 ]'
    proc = subprocess.run(["bash", str(SHARDS), "2", "sh", "-c", only_first_passes],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "ran 1/2" in proc.stdout and "ran 2/2" in proc.stdout
    ok = subprocess.run(["bash", str(SHARDS), "2", "true"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0
    usage = subprocess.run(["bash", str(SHARDS), "x", "true"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "usage: tools/pytest_shards.sh N COMMAND" in usage.stderr
