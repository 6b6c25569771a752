"""Device commands in the browser (Debian's chromium, Playwright; `make browser`):
an operator asks the officer a silent question from the alert page and watches
the command go from queued to delivered to answered without reloading, as the
device's next request and then its reply frame reach the receiver (fed through
the receiver's own ingest, as in the other console tests)."""

from __future__ import annotations

from typing import Any

import pytest
from console_support import ARTEFACTS
from test_browser_day import log_in

from host_tools.receiver.console import ConsoleConfig
from host_tools.receiver.console.server import start_console
from host_tools.receiver.ingest import Receiver

pytestmark = pytest.mark.browser
WAIT_MS = 10_000


def test_an_operator_asks_and_sees_the_officers_answer_arrive(centre: dict[str, Any], browser: Any) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    dev = centre["dev"]
    dev.sid, dev.seq = 1, 5                  # the fixture's device, after A1's five frames
    dev.flags = 8                            # it runs TLS without authenticating the centre
    console = start_console(centre["db"], ConsoleConfig(port=0))
    try:
        page = browser.new_page()
        log_in(page, console.url, "olga")
        page.goto(console.url + "/#/alerts/A1")
        page.wait_for_selector("#cmd-ask")
        page.evaluate("window.__sameDocument = true")  # gone if the page reloads
        page.select_option("#cmd-question", "can-you-talk")
        page.click("#cmd-ask")
        page.wait_for_selector('tr.command-row[data-state="queued"]', timeout=WAIT_MS)
        command_id = int(page.get_attribute("tr.command-row", "data-command") or 0)
        assert "ask can-you-talk" in page.inner_text("tr.command-row")
        assert page.inner_text("tr.command-row td.command-answer") == "–"

        with Receiver(centre["db"]) as rx:
            answer = rx.ingest([dev.heartbeat()])          # the device's next request carries it
            assert [c["id"] for c in answer.cmds] == [command_id]
            page.wait_for_selector('tr.command-row[data-state="delivered"]', timeout=WAIT_MS)
            rx.ingest([dev.reply(command_id, 3, sid=1)])   # the officer pressed "yes"
        page.wait_for_selector('tr.command-row[data-state="answered"]', timeout=WAIT_MS)
        assert page.inner_text("tr.command-row td.command-answer") == "yes"
        assert page.evaluate("window.__sameDocument") is True
        assert "INSECURE-TLS" in page.inner_text("#facts")
        page.screenshot(path=str(ARTEFACTS / "alert-commands.png"), full_page=True)
        page.goto(console.url + "/#/queue")
        page.wait_for_selector("tr.alert-row .badge.insecure")
    finally:
        console.stop()
