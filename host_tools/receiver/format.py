"""Times and durations written for people (and ISO 8601 for JSON), as operators read
them in the console, the CLI and the evidence report."""

from __future__ import annotations

import datetime

# --------------------------------------------------------------------------
# Formatting for people.


def utc_text(epoch: float | None) -> str:
    """`2026-09-21 14:03:05 UTC`, or `unknown`."""
    if not epoch:
        return "unknown"
    try:
        when = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    except (OverflowError, ValueError, OSError):
        return f"epoch {epoch}"
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_utc(epoch: float | None) -> str | None:
    """ISO 8601 in UTC (`2026-09-21T14:03:05Z`) for JSON, or None."""
    if not epoch:
        return None
    try:
        return (datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
                .isoformat(timespec="seconds").replace("+00:00", "Z"))
    except (OverflowError, ValueError, OSError):
        return None


def duration_text(seconds: float) -> str:
    """`45 s`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`."""
    s = int(round(max(seconds, 0)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"
