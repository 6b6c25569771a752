"""BS 8484-style figures for one month, from the centre's own data.

An alert counts in the month its alert-start arrived (UTC). Its answer time is
from that arrival to the first acknowledgement (closing without an acknowledgement
counts as one). BS 8484 expects 80 % of alarms answered within 10 s and 98.5 %
within 40 s; an alert never acknowledged is answered within neither.
"""

from __future__ import annotations

import calendar
import datetime
import re
import sqlite3
import statistics
from dataclasses import dataclass
from typing import Any

from host_tools.errors import UsageError

TARGET_10S, TARGET_40S = 0.80, 0.985
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def month_bounds(month: str) -> tuple[float, float]:
    """Epoch seconds [start, end) of a month written YYYY-MM (UTC)."""
    m = _MONTH.match(month.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise UsageError(f"--month {month!r}: write the month as YYYY-MM, e.g. 2026-09")
    year, mon = int(m.group(1)), int(m.group(2))
    start = calendar.timegm((year, mon, 1, 0, 0, 0))
    end = calendar.timegm((year + (mon == 12), mon % 12 + 1, 1, 0, 0, 0))
    return float(start), float(end)


def _percentile(sorted_values: list[float], q: float) -> float | None:
    """The q-th percentile by linear interpolation between closest ranks (as numpy's default)."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass
class MonthStats:
    month: str
    alerts: int
    acknowledged: int
    within_10s: int
    within_40s: int
    median_s: float | None
    p95_s: float | None
    duress: int
    unacknowledged: int

    def share(self, n: int) -> float | None:
        return n / self.alerts if self.alerts else None

    def to_json(self) -> dict[str, Any]:
        def pct(n: int) -> float | None:
            s = self.share(n)
            return round(100 * s, 2) if s is not None else None

        return {
            "month": self.month,
            "alerts": self.alerts,
            "acknowledged": self.acknowledged,
            "unacknowledged": self.unacknowledged,
            "duress": self.duress,
            "within_10s": self.within_10s,
            "within_10s_pct": pct(self.within_10s),
            "within_40s": self.within_40s,
            "within_40s_pct": pct(self.within_40s),
            "median_s": None if self.median_s is None else round(self.median_s, 2),
            "p95_s": None if self.p95_s is None else round(self.p95_s, 2),
            "target_10s_pct": 100 * TARGET_10S,
            "target_40s_pct": 100 * TARGET_40S,
            "meets_10s": self.alerts == 0 or (self.share(self.within_10s) or 0) >= TARGET_10S,
            "meets_40s": self.alerts == 0 or (self.share(self.within_40s) or 0) >= TARGET_40S,
        }


def month_stats(conn: sqlite3.Connection, month: str) -> MonthStats:
    """The month's figures (see module doc)."""
    start, end = month_bounds(month)
    rows = conn.execute(
        "SELECT coalesce(start_received_at, first_received_at), coalesce(acked_at, closed_at), duress "
        "FROM alerts WHERE coalesce(start_received_at, first_received_at) >= ? "
        "AND coalesce(start_received_at, first_received_at) < ?",
        (start, end),
    ).fetchall()
    answers = sorted(max(0.0, acked - arrived) for arrived, acked, _ in rows if acked is not None)
    return MonthStats(
        month=datetime.datetime.fromtimestamp(start, datetime.timezone.utc).strftime("%Y-%m"),
        alerts=len(rows),
        acknowledged=len(answers),
        within_10s=sum(1 for s in answers if s <= 10),
        within_40s=sum(1 for s in answers if s <= 40),
        median_s=statistics.median(answers) if answers else None,
        p95_s=_percentile(answers, 0.95),
        duress=sum(1 for r in rows if r[2]),
        unacknowledged=len(rows) - len(answers),
    )
