"""Live ingest at scale on PostgreSQL (issue 17): bench_live_ingest's rows with two
`sotto receive` ingest nodes on one database of a real PostgreSQL server started
for the run; the devices are spread over both nodes. Rows "[postgresql, 2 nodes]".

No PostgreSQL server binaries, or a server that does not start, fails this module
(and `make bench`): never skipped. `make bench` runs `make postgres` first.
"""

from __future__ import annotations

from bench.bench_live_ingest import measure
from bench.common import Row

NODES = 2


def run() -> list[Row]:
    return measure("postgresql", nodes=NODES)
