"""`sotto receive --listen-backlog N` reaches the listening socket (its accept queue
limit, shown by the kernel as the socket's Send-Q); out-of-range values are usage errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sotto_cli.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("value", ["0", "70000"])
def test_an_out_of_range_backlog_is_a_usage_error(tmp_path: Path, value: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["receive", "--db", str(tmp_path / "r.db"), "--port", "0", "--listen-backlog", value]) == 2
    assert "--listen-backlog" in capsys.readouterr().err


def _send_q(port: int) -> int | None:
    """The accept-queue limit of the socket listening on port, as `ss` shows it
    (Send-Q of a listener), or None without `ss`."""
    if shutil.which("ss") is None:
        return None
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
    fields = out.split()
    return int(fields[2]) if len(fields) > 2 else None


def test_the_backlog_reaches_the_listening_socket(tmp_path: Path) -> None:
    with open("/proc/sys/net/core/somaxconn") as f:
        want = min(int(f.read()), 777)
    proc = subprocess.Popen([sys.executable, "-m", "sotto_cli", "receive", "--db", str(tmp_path / "r.db"),
                             "--port", "0", "-q", "--centre-key", str(tmp_path / "centre.key"),
                             "--listen-backlog", str(want)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on" in line, line
        port = int(line.split("://", 1)[1].split()[0].rsplit(":", 1)[1])
        got = _send_q(port)
        if got is None:
            pytest.skip("no `ss` to read the listening socket's backlog")
        assert got == want
    finally:
        proc.terminate()
        proc.wait(20)
