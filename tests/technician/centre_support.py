"""A centre database for the provisioning tests."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from host_tools.receiver import centre_key
from host_tools.receiver.store import open_db


def centre_db(path: Path) -> Path:
    """A registry database whose centre has its key (`sotto centre init`); returns the path."""
    with closing(open_db(path, create=True)) as conn:
        centre_key.ensure(conn, centre_key.default_path(path))
    return path

