"""`IN (...)` lists of bound values, in chunks both backends accept (SQLite's
limit on bound variables; one round trip per chunk on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

IN_CHUNK = 400            # values per IN (...) list, well under SQLite's variable limit


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    """`values` in slices of at most `size`, for one IN (...) list each."""
    for i in range(0, len(values), size):
        yield values[i:i + size]


def marks(n: int) -> str:
    """The placeholders of an IN list of n values: `?, ?, …`."""
    return ", ".join("?" * n)
