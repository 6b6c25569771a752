import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # framefactory

import os  # noqa: E402

import pytest  # noqa: E402


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """SOTTO_TEST_SHARD=K/N keeps every N-th collected test starting with the K-th
    (1-based) and deselects the rest: `make simvm` runs its scenarios as two such
    shards side by side, one per core (each scenario is one process's work)."""
    shard = os.environ.get("SOTTO_TEST_SHARD")
    if not shard:
        return
    try:
        k, n = (int(x) for x in shard.split("/"))
        if not 1 <= k <= n:
            raise ValueError
    except ValueError:
        raise pytest.UsageError(f"SOTTO_TEST_SHARD={shard!r}: give K/N with 1 <= K <= N, e.g. 1/2") from None
    keep = [item for i, item in enumerate(items) if i % n == k - 1]
    dropped = [item for i, item in enumerate(items) if i % n != k - 1]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
