"""Shared pieces of the console tests (a module of its own: tests/receiver has a conftest too): a
database with accounts, the API client, the browser (Debian's chromium through Playwright, never a
downloaded one). conftest.py makes the fixtures here available."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: framefactory

import pg_support  # noqa: E402

from host_tools.receiver import accounts  # noqa: E402
from host_tools.receiver.roles import CLI, Actor  # noqa: E402
from host_tools.receiver.store import open_db  # noqa: E402
from host_tools.registry import connect as db_connect  # noqa: E402

PASSWORD = "correct horse battery"
CHROMIUM = os.environ.get("SOTTO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
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
        pytest.fail(
            f"{CHROMIUM} is missing: run `make chromium` (apt-get install chromium); the browser "
            "tests never download a browser"
        )
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="sotto-chromium-")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            ignore_https_errors=True,
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield ctx
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)


# ---- a centre with one live alert and one account per role -------------------

T0 = 1_790_000_000  # the devices' clock
NOW = 1_790_000_500  # the receiver's clock in tests


class Clock:
    """A clock tests move by hand."""

    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_device(name: bytes = b"SOTTO-42", t0: int = T0) -> Any:
    import hashlib

    import framefactory as ff

    return ff.DeviceSim(kid=name, seed=hashlib.sha256(b"seed " + name).digest(), time=t0)


def loc(i: int = 0, acc_m: int = 8) -> bytes:
    import framefactory as ff

    return ff.pack_location(515007292 + 150 * i, -1246254 + 230 * i, acc_m, 1, ff.SRC_GNSS)


ROLE_ACCOUNTS = {"olga": "operator", "sam": "supervisor", "aud": "auditor", "adam": "admin"}


@pytest.fixture(scope="session")
def centre_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once (argon2id hashing is slow on purpose), copied for each test."""

    from host_tools.receiver.ingest import Receiver
    from host_tools.registry import Registry

    db = tmp_path_factory.mktemp("centre") / "receiver.db"
    if pg_support.PG:
        db = pg_support.server().create_database(f"centre_template_{os.getpid()}")
    dev = make_device()
    with Registry(db) as reg:
        reg.add(dev.kid, dev.public_key, officer="J. Smith")
    with Receiver(db, clock=Clock()) as rx:
        rx.ingest(
            [
                dev.alert_start(loc=loc(0, 30)),
                dev.audio(b"\x33" * 4000, 0, 8000),
                dev.location(loc(1, 12)),
                dev.audio(b"\x33" * 2000, 8000, 4000),
                dev.location(loc(2, 9)),
            ]
        )
    add_accounts(db, **ROLE_ACCOUNTS)
    from host_tools.receiver import centre_key

    conn = db_connect(db)
    centre_key.ensure(conn, centre_key.default_path(db))       # seals the console's exports
    if not pg_support.PG:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return db


@pytest.fixture
def centre(tmp_path: Path, centre_template: Path) -> dict[str, Any]:
    """A database with A1 (SOTTO-42: audio, a track), accounts for every role."""
    from host_tools.receiver import centre_key

    if pg_support.PG:    # a copy of the template database (CREATE DATABASE … TEMPLATE)
        db: Any = pg_support.new_db(tmp_path, template=pg_support.dbname_of(str(centre_template)))
    else:
        db = tmp_path / "receiver.db"
        shutil.copyfile(centre_template, db)
    key = centre_key.default_path(db)      # the template's key, where the copy looks for it
    key.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(centre_key.default_path(centre_template), key)
    return {"db": db, "dev": make_device(), "clock": Clock(), "dir": tmp_path}


@pytest.fixture
def client(centre: dict[str, Any]) -> Iterator[Any]:
    """Starlette's TestClient on the console app (lifespan: the event feed runs)."""
    from starlette.testclient import TestClient

    from host_tools.receiver.console import ConsoleConfig
    from host_tools.receiver.console.app import create_app

    cfg = ConsoleConfig(clock=centre["clock"], export_dir=str(centre["dir"] / "exports"))
    with TestClient(create_app(centre["db"], cfg), base_url="http://127.0.0.1") as c:
        c.config = cfg
        yield c


def login(client: Any, name: str, password: str = PASSWORD) -> str:
    """Log in; returns the CSRF token (the cookie stays in the client)."""
    r = client.post("/api/login", json={"name": name, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])
