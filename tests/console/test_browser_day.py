"""An operator's day in the browser (Debian's chromium, Playwright; `make browser`).

A simulated officer raises an alert on the real firmware against the real
receiver while the operator has the console open: the alert arrives without a
reload, the alarm sounds and the title flashes, the operator acknowledges, opens
the alert, plays the audio received, sees the track on the map; at the end of
the shift an auditor finds every access in the audit log under the operator's
name. Screenshots go to build/console/.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from console_support import ARTEFACTS, PASSWORD, add_accounts

from host_tools.receiver import audit
from host_tools.receiver.store import open_db
from simulator.receiver import ReceiverProcess
from simulator.run import run_scenario
from simulator.scenario import load

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
WAIT_MS = 60_000


def log_in(page: Any, url: str, name: str) -> None:
    page.goto(url)
    page.fill("#login-name", name)
    page.fill("#login-password", PASSWORD)
    page.click("#login button[type=submit]")
    page.wait_for_selector("#who", state="visible")


def log_out(page: Any) -> None:
    page.click("#logout")
    page.wait_for_selector("#login", state="visible")


def test_an_operators_day(tmp_path: Path, browser: Any) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    sc = load(REPO / "scenarios" / "covert_sos.toml")
    sc.epoch_s = int(time.time()) - sc.duration_ms // 1000  # the scenario's clock ends about now
    with ReceiverProcess(tmp_path / "rx", console=True) as rx:
        assert rx.console_url and rx.console_url.startswith("https://")
        add_accounts(rx.db, alice="operator", audra="auditor")
        page = browser.new_page()
        log_in(page, rx.console_url, "alice")
        page.wait_for_selector("#queue-empty")
        page.evaluate("window.__sameDocument = true")  # gone if the page reloads

        # the officer presses the hidden button while the console is open
        sim: dict[str, Any] = {}
        worker = threading.Thread(
            target=lambda: sim.update(result=run_scenario(sc, tmp_path / "sim", receiver=rx))
        )
        worker.start()
        page.wait_for_selector('tr.alert-row[data-state="open"]', timeout=WAIT_MS)
        assert page.evaluate("window.__sameDocument") is True
        assert page.inner_text("tr.alert-row td:nth-child(3)") == "J. Smith"
        # the alarm sounds and the title flashes until someone acknowledges
        page.wait_for_function("() => window.sottoConsole.alarm.beeps >= 2", timeout=10_000)
        assert page.evaluate("window.sottoConsole.alarm.active") is True
        assert page.evaluate("window.sottoConsole.alarm.audioState") == "running"
        page.wait_for_function("() => document.title.includes('ALERT')", timeout=5_000)
        assert page.is_visible("#alarm-banner")
        page.screenshot(path=str(ARTEFACTS / "queue.png"), full_page=True)

        worker.join(120)
        assert not worker.is_alive() and sim["result"].ok, [c.line() for c in sim["result"].failures]
        page.wait_for_function(
            "() => document.querySelector('tr.alert-row').innerText.includes('30')", timeout=10_000
        )  # 30 s of audio arrived, shown live

        # the alert page: acknowledge, listen, look at the map
        page.click("tr.alert-row")
        page.wait_for_selector("#map[data-mode=plot] svg polyline.track")
        page.click("#ack")
        page.wait_for_selector("#alert-title .badge.acknowledged")
        page.wait_for_function(
            "() => !window.sottoConsole.alarm.active && document.title === 'Sotto console'"
        )
        assert page.is_hidden("#alarm-banner")
        points = int(page.get_attribute("#map", "data-points") or 0)
        assert points >= 3, points  # alert-start, then a location every 15 s
        assert page.locator("#map circle.acc").count() == points
        assert page.locator("#map text.scale-label").text_content().endswith("m")
        assert page.locator("#map text.latest-label").text_content().startswith("latest 51.")
        page.evaluate("document.getElementById('audio').play()")
        page.wait_for_function("() => document.getElementById('audio').currentTime > 0.3", timeout=15_000)
        duration = page.evaluate("document.getElementById('audio').duration")
        assert 29.5 <= duration <= 31, duration
        page.screenshot(path=str(ARTEFACTS / "alert.png"), full_page=True)
        log_out(page)

        # the auditor: every access names the operator who made it
        log_in(page, rx.console_url, "audra")
        page.wait_for_selector("#audit-log tr.audit-row")
        rows = page.locator("#audit-log tr.audit-row")
        seen = {
            (rows.nth(i).locator("td").nth(1).inner_text(), rows.nth(i).get_attribute("data-action"))
            for i in range(rows.count())
        }
        assert {("alice", "login"), ("alice", "acknowledge"), ("alice", "view"), ("alice", "listen")} <= seen
        page.click("#verify")
        page.wait_for_selector("#audit-result:has-text('chain intact')")
        page.screenshot(path=str(ARTEFACTS / "audit.png"), full_page=True)
        conn = open_db(rx.db)
        try:
            mine = [e for e in audit.entries(conn) if e.operator == "alice"]
            assert {e.role for e in mine} == {"operator"}
            assert audit.verify_chain(conn).ok
        finally:
            conn.close()


def test_the_map_uses_leaflet_over_a_configured_tile_server(centre: dict[str, Any], browser: Any) -> None:
    """With --console-tiles the track is drawn by Leaflet (served from node_modules) over the
    tiles; here a local tile server answers every tile with one grey PNG."""
    import http.server
    import struct
    import zlib

    from host_tools.receiver.console import ConsoleConfig
    from host_tools.receiver.console.server import start_console

    def png() -> bytes:
        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        raw = b"".join(b"\x00" + b"\xc8" * 256 for _ in range(256))
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 256, 256, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

    tile = png()
    asked: list[str] = []

    class Tiles(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(tile)))
            self.end_headers()
            self.wfile.write(tile)

        def log_message(self, *args: Any) -> None:
            pass

    tiles = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    threading.Thread(target=tiles.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{tiles.server_address[1]}/{{z}}/{{x}}/{{y}}.png"
    console = start_console(centre["db"], ConsoleConfig(port=0, tile_url=url, tile_attribution="test tiles"))
    try:
        page = browser.new_page()
        log_in(page, console.url, "olga")
        page.goto(console.url + "/#/alerts/A1")
        page.wait_for_selector("#map[data-mode=leaflet] path.track-line")
        page.wait_for_selector("#map img.leaflet-tile-loaded")
        assert page.locator("#map path.acc-circle").count() == 3
        assert page.locator("#map .leaflet-control-scale-line").count() == 1
        assert "test tiles" in page.inner_text("#map .leaflet-control-attribution")
        assert asked and all(p.endswith(".png") for p in asked)
        circle = page.locator("#map path.acc-circle").last.bounding_box()
        frame = page.locator("#map").bounding_box()
        assert circle and frame and circle["width"] > frame["width"] / 10     # zoomed in on the latest fix
        page.screenshot(path=str(ARTEFACTS / "alert-leaflet.png"))
    finally:
        console.stop()
        tiles.shutdown()
        tiles.server_close()
