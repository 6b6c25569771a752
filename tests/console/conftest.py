"""Shared pieces of the console tests: a database with accounts, the API client,
the browser (Debian's chromium through Playwright, never a downloaded one)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # tests/: framefactory

from host_tools.receiver import accounts  # noqa: E402
from host_tools.receiver.roles import CLI, Actor  # noqa: E402
from host_tools.receiver.store import open_db  # noqa: E402

PASSWORD = "correct horse battery"
CHROMIUM = os.environ.get("SOTTO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTEFACTS = Path(__file__).resolve().parents[2] / "build" / "console"
ADMIN = Actor("root", CLI)


def add_accounts(db: Path, **names_roles: str) -> None:
    """add_accounts(db, alice="operator", ...): accounts with PASSWORD."""
    conn = open_db(db, create=True)
    try:
        for name, role in names_roles.items():
            accounts.add_operator(conn, name, role, PASSWORD, by=ADMIN)
    finally:
        conn.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    """A fresh Chromium profile (Debian's chromium, `make chromium` installs it)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium` (apt-get install chromium); the browser "
                    "tests never download a browser")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="sotto-chromium-")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS, ignore_https_errors=True,
            viewport={"width": 1400, "height": 900})
        try:
            yield ctx
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)
