"""`make demo`: the main job, end to end, in about ten seconds.

A real receiver (`sotto receive`, TLS on loopback) starts; a simulated device is
provisioned (it makes its own key; the public key is registered for officer
J. Smith, with the centre's CA and answer-signing key); the covert SOS
scenario runs on the real firmware; the officer's wrist says "received" when
the centre's signed answer comes back; an operator acknowledges (the wrist
says "listening") and closes the alert; the device sends its end frame. The demo
prints what the operator sees and exports the evidence bundle, then checks it
offline. The receiver also serves the operators' console: the demo makes an
operator account (its password in build/demo/console-password, readable only by
you), logs in to check it works, says where the console was and prints the
command that opens it again on the demo database. Everything lands in
build/demo/. Exit status 0 only if every step and every expectation held.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import ssl
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from host_tools.errors import SottoError
from host_tools.ids import format_device_id
from host_tools.receiver import alerts, centre_key, evidence, store
from host_tools.receiver.format import format_alert
from simulator.report import timeline_lines, write_report
from simulator.run import run_scenario
from simulator.scenario import Event, load

REPO = Path(__file__).resolve().parent.parent
SCENARIO = REPO / "scenarios" / "covert_sos.toml"
OUT = REPO / "build" / "demo"
OPERATOR = "demo-operator"
CONSOLE_ACCOUNT = "demo"
PASSWORD_FILE = OUT / "console-password"


def say(text: str = "") -> None:
    print(text, flush=True)


def main() -> int:
    """Run the demo; 0 only if every step and every expectation held."""
    try:
        return _demo()
    except SottoError as e:  # an expected failure on the path (receiver, scenario, evidence): one line
        print(f"DEMO FAILED: {e}", file=sys.stderr)
        return 1


def _demo() -> int:
    from simulator.receiver import ReceiverProcess

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    sc = load(SCENARIO)
    # the operator acknowledges, then closes once the police are there
    sc.events += [Event(60_000, "ack_alert", {"operator": OPERATOR}),
                  Event(85_000, "close_alert", {"operator": OPERATOR,
                                                "outcome": "officer safe, police attended"})]
    sc.duration_ms = 110_000
    # the scenario's clock ends now, so ages read as an operator would see them
    sc.epoch_s = int(time.time()) - sc.duration_ms // 1000
    say("Sotto demo: a covert SOS, end to end\n")
    with ReceiverProcess(OUT / "receiver", db=OUT / "receiver.db", console=True) as rx:
        say(f"1. receiver running: {rx.url} (TLS, database {rx.db.relative_to(REPO)}); "
            f"operators' console: {rx.console_url}")
        result = run_scenario(sc, OUT / "device", receiver=rx)
        dev = result.device
        say(f"2. simulated device {format_device_id(sc.device_id)} provisioned for {sc.officer}: its key was "
            f"made on the device, public key {dev.public_key.hex()[:16]}... registered")
        say(f"3. scenario '{sc.name}': {result.sim_s:.0f} s simulated in {result.wall_s:.1f} s")
        for line in timeline_lines(result):
            say("     " + line)
        conn = store.open_db(rx.db)
        try:
            mine = [a for a in alerts.list_alerts(conn, include_closed=True) if a.device_id == sc.device_id]
            if not mine:
                say("FAILED: no alert reached the receiver")
                return 1
            detail = alerts.show_alert(conn, mine[0].alert_id, operator=OPERATOR,
                                       now=sc.epoch_s + sc.duration_ms / 1000)
            say("\n4. what the operator sees (sotto alerts show " + mine[0].code + "):\n")
            for line in format_alert(detail):
                say("     " + line)
            bundle = OUT / f"{mine[0].code}-evidence"
            exported = evidence.export_alert(conn, mine[0].alert_id, bundle, operator=OPERATOR)
            sealed_by = centre_key.recorded_public_key(conn)    # given from outside the bundle
        finally:
            conn.close()
        check = evidence.verify_bundle(bundle, centre_key=sealed_by, device_key=dev.public_key)
        say(f"\n5. evidence exported to {bundle.relative_to(REPO)}: {exported.frames} frames, "
            f"{exported.audio_seconds:.1f} s of audio in audio.wav, track.geojson, report.html")
        say(f"   offline check (sotto evidence verify --centre-key): {check.verdict}, sealed by the centre: "
            f"{'yes' if check.sealed else 'NO'}; chain {check.chain}")
        for code, text in check.problems + check.missing:
            say(f"   {code}: {text}")
        write_report(result, OUT / "report")
        say(f"   simulator report: {(OUT / 'report').relative_to(REPO)}/timeline.svg")
        console_ok = _console_account(rx)
    say("\n6. expectations:")
    for c in result.checks:
        say("   " + c.line())
    alert = detail.alert
    felt = [p for _t, p in dev.haptic_patterns]
    wrist = [p for p in felt if p in ("received", "listening")]
    extra = [("the officer felt `received`, then `listening` (wrist: " + ", ".join(felt) + ")",
              wrist[:2] == ["received", "listening"]),
             ("alert closed by the centre and ended on the device", alert.end_why == 2),
             ("hash chain complete", alert.chain.state == alerts.COMPLETE),
             ("location with accuracy and age", detail.location is not None),
             ("evidence bundle verifies offline", check.ok),
             ("an operator logs in to the console and reads the queue", console_ok)]
    for name, ok in extra:
        say(f"   {'PASS' if ok else 'FAIL'}  {name}")
    failed = [c.name for c in result.failures] + [n for n, ok in extra if not ok]
    if failed:
        say(f"\nDEMO FAILED: {', '.join(failed)}")
        return 1
    say(f"\nDemo complete: everything is in {OUT.relative_to(REPO)}/")
    say("\nOpen the console on the demo database (then browse to the `console on` address it prints):")
    db = (OUT / "receiver.db").relative_to(REPO)
    say(f"   .venv/bin/sotto receive --db {db} --port 0 --console-port 8081")
    say(f"   log in as `{CONSOLE_ACCOUNT}` (operator); the password is in {PASSWORD_FILE.relative_to(REPO)}")
    return 0


def _console_account(rx: object) -> bool:
    """Make the demo's operator account and check the running console with it:
    log in, see the alert in the queue."""
    from host_tools.receiver import accounts
    from host_tools.receiver.roles import CLI, Actor

    password = secrets.token_urlsafe(12)
    fd = os.open(PASSWORD_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    conn = store.open_db(rx.db)  # type: ignore[attr-defined]
    try:
        accounts.add_operator(conn, CONSOLE_ACCOUNT, "operator", password, by=Actor(OPERATOR, CLI))
    finally:
        conn.close()
    parts = urlsplit(rx.console_url)  # type: ignore[attr-defined]
    ctx = ssl.create_default_context(cadata=rx.pki.ca_pem)  # type: ignore[attr-defined]
    ctx.check_hostname = False      # the demo certificate names 127.0.0.1 as an IP address; the CA is checked
    c = http.client.HTTPSConnection(str(parts.hostname), parts.port, context=ctx, timeout=10)
    try:
        c.request("POST", "/api/login", json.dumps({"name": CONSOLE_ACCOUNT, "password": password}),
                  {"Content-Type": "application/json"})
        resp = c.getresponse()
        cookie = (resp.getheader("set-cookie") or "").split(";")[0]
        resp.read()
        c.request("GET", "/api/alerts?closed=0", headers={"Cookie": cookie})
        queue = json.loads(c.getresponse().read())
    finally:
        c.close()
    say(f"   console {rx.console_url}: `{CONSOLE_ACCOUNT}` logged in; queue has "  # type: ignore[attr-defined]
        f"{len(queue.get('alerts', []))} open alerts (A1 was closed by the scenario)")
    return resp.status == 200 and "alerts" in queue


if __name__ == "__main__":
    sys.exit(main())
