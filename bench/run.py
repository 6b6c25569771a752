"""`make bench`: run every bench/bench_*.py, print a table, write build/bench.json.

Each benchmark module exposes `run() -> list[Row]`. A module that fails is
reported and makes the run exit non-zero; the others still run.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.common import Row  # noqa: E402


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def main(argv: list[str]) -> int:
    names = sorted(p.stem for p in (REPO_ROOT / "bench").glob("bench_*.py"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    rows: list[Row] = []
    failed: list[str] = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            rows += importlib.import_module(f"bench.{name}").run()
        except Exception:  # report and go on: one broken bench must not hide the rest
            traceback.print_exc()
            failed.append(name)
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    header = ("benchmark", "value", "unit", "baseline", "ratio", "target")
    table = [header] + [(r.name, fmt(r.value), r.unit, fmt(r.baseline),
                         (fmt(r.ratio) + "x") if r.ratio is not None else "-", r.target) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(str(c).ljust(w) if j in (0, 2, 5) else str(c).rjust(w)
                        for j, (c, w) in enumerate(zip(row, widths, strict=False))).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    out = REPO_ROOT / "build" / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({r.name: r.to_json() for r in rows}, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(REPO_ROOT)}")
    if failed:
        print(f"bench modules that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
