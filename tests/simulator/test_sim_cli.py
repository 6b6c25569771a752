"""`sotto sim` as QA uses it: the working folder removed unless --keep, an outside
receiver (a real `sotto receive` already running), one clock in the evidence,
per-alert expectations, fleets held to [expect], clear errors for a bad
[device.config], the text timeline and the SVG."""

from __future__ import annotations

import json
import re
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from host_tools.receiver import alerts
from host_tools.receiver.clock_file import ClockFile, ClockWriter
from simulator import report
from simulator.receiver import ReceiverProcess
from simulator.run import run_scenario
from simulator.scenario import load
from sotto_cli.cli import main
from sotto_cli.commands import sim as sim_cmd

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

TWO_ALERTS = """\
name = "two alerts, the first acknowledged and closed"
duration_s = 200
seed = 3

[device]
id = "SOTTO-42"
officer = "J. Smith"
track = "{tracks}/bristol-walk.geojson"
ttff_s = 8
{config}

[[events]]
at_s = 20
action = "sos"

[[events]]
at_s = 40
action = "ack_alert"

[[events]]
at_s = 65
action = "close_alert"

[[events]]
at_s = 130
action = "sos"

{expect}
"""


def scenario(tmp_path: Path, expect: str = "[expect]\nalerts = 2", config: str = "", name: str = "two.toml",
             text: str = TWO_ALERTS) -> Path:
    p = tmp_path / name
    p.write_text(text.format(tracks=SCENARIOS / "tracks", expect=expect, config=config))
    return p


@pytest.fixture(scope="module")
def two_alerts(tmp_path_factory):
    """One run of the two-alert scenario, shared (its receiver is stopped; the database stays)."""
    tmp = tmp_path_factory.mktemp("two")
    sc = load(scenario(tmp, "[expect]\nalerts = 2\nalert_within_s = [3, 3]\n"
                            "location_source = [\"gnss\", \"gnss\"]"))
    return run_scenario(sc, tmp / "run")


# -- one clock ------------------------------------------------------------------------------

def test_receipts_acks_and_closes_are_on_the_simulated_clock(two_alerts):
    sc = two_alerts.scenario
    with sqlite3.connect(two_alerts.receiver.db) as conn:
        first, second = sorted(alerts.list_alerts(conn, include_closed=True), key=lambda a: a.alert_id)
    # the operator acted at 40 s and 65 s of the simulation: 25 s apart, at those times
    assert first.acked_at == pytest.approx(sc.epoch_s + 40, abs=0.01)
    assert first.closed_at - first.acked_at == pytest.approx(25, abs=0.01)
    # received as the simulation sent it, not a wall-clock "delay" later
    for a in (first, second):
        assert 0 <= a.first_received_at - a.started_at <= 3, (a.first_received_at, a.started_at)
    assert second.started_at == pytest.approx(sc.epoch_s + 130, abs=5)


def test_clock_file_reads_what_the_simulator_writes(tmp_path):
    path = tmp_path / "clock"
    clock = ClockFile(path)
    assert abs(clock() - __import__("time").time()) < 60   # no file yet: this machine's clock
    write = ClockWriter(path)
    write(1_748_854_800.25)
    assert clock() == 1_748_854_800.25
    write(1_748_854_900.5)
    assert clock() == 1_748_854_900.5
    path.write_text("garbage")   # unreadable: the last time read
    assert clock() == 1_748_854_900.5
    write(1_748_854_000.0)   # the next run of a shared receiver starts its own clock
    assert clock() == 1_748_854_000.0
    write.close()


# -- expectations ---------------------------------------------------------------------------

def test_per_alert_expectations_hold_for_each_alert(two_alerts):
    by_name = {c.name: c for c in two_alerts.checks}
    assert by_name["alert_within_s"].ok, by_name["alert_within_s"].detail
    assert "alert 1: " in by_name["alert_within_s"].detail and "alert 2: " in by_name["alert_within_s"].detail
    assert by_name["location_source"].ok and "gnss, gnss" in by_name["location_source"].detail


def test_a_per_alert_limit_that_fails_names_its_alert(two_alerts):
    from simulator.expect import evaluate

    checks = evaluate({"alert_within_s": [3, 0.001], "location_source": ["gnss", "cell"]},
                      two_alerts.device, two_alerts.receiver)
    assert not any(c.ok for c in checks)
    assert "alert 2: alert-start stored" in checks[0].detail and "(limit 0.001 s)" in checks[0].detail
    assert "(expected gnss, cell)" in checks[1].detail


@pytest.mark.parametrize("expect,why", [
    ("[expect]\nalert_within_s = []", "a list takes one float per alert"),
    ("[expect]\nlocation_source = [\"gnss\", \"moon\"]", "each one of gnss, cell, last-known, or none"),
    ("[expect]\nlocation_source = \"none\"", "one of gnss, cell, last-known"),
])
def test_bad_per_alert_expectations_are_refused(tmp_path, expect, why, capsys):
    assert main(["sim", "run", str(scenario(tmp_path, expect))]) == 2
    assert why in capsys.readouterr().err


@pytest.mark.parametrize("config,why", [
    ("heartbeat_every_s = \"often\"", "device.config.heartbeat_every_s"),
    ("[device.config.battery]\nlow_pct = 5",
     "device.config.battery: need reserve_pct < critical_pct < low_pct"),
    # the firmware checks the centre key it is provisioned with; its own words
    ("[device.config]\ncentre_key = \"zz\"",
     "device.config.centre_key: must be 64 hex digits (`sotto centre key` prints it)"),
    ("[device.config]\ncentre_key = \"" + "ff" * 32 + "\"",
     "device.config.centre_key: is not an Ed25519 public key"),
])
def test_a_bad_device_config_is_a_clear_usage_error(tmp_path, config, why, capsys):
    if config.startswith("heartbeat_every_s"):
        config = "[device.config]\n" + config
    assert main(["sim", "run", str(scenario(tmp_path, config=config))]) == 2
    err = capsys.readouterr().err
    assert why in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_a_scenario_without_expectations_says_so(tmp_path, capsys):
    text = (SCENARIOS / "covert_sos.toml").read_text().split("[expect]")[0]
    text = text.replace('track = "tracks/', f'track = "{SCENARIOS}/tracks/').replace(
        'audio = "audio/', f'audio = "{SCENARIOS}/audio/')
    p = tmp_path / "none.toml"
    p.write_text(text.replace("duration_s = 100", "duration_s = 40"))
    assert main(["sim", "run", str(p), "--report", str(tmp_path / "r")]) == 0
    assert report.NO_EXPECTATIONS in capsys.readouterr().out
    assert (tmp_path / "r" / "checks.txt").read_text().strip() == report.NO_EXPECTATIONS


# -- the text timeline and the picture ------------------------------------------------------

def test_the_text_timeline_keeps_alerts_apart(two_alerts):
    lines = report.timeline_lines(two_alerts)
    heads = [i for i, line in enumerate(lines) if "---- alert " in line]
    assert [lines[i].split("alert ", 1)[1].strip() for i in heads] == \
        ["---- alert 1 of 2 ----", "---- alert 2 of 2 ----"]
    audio = [line for line in lines if "audio chunks" in line]
    assert len(audio) == 2 and "of alert 1" in audio[0] and "of alert 2" in audio[1]
    assert heads[0] < lines.index(audio[0]) < heads[1] < lines.index(audio[1])


def test_svg_has_a_colour_per_kind_and_keeps_its_labels_inside(two_alerts):
    svg = report.svg_timeline(two_alerts)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    _, _, width, height = (float(v) for v in root.get("viewBox").split())
    fills: dict[str, set[str]] = {}
    for rect in root.iter(ns + "rect"):
        if rect.get("class"):
            fills.setdefault(rect.get("class"), set()).add(rect.get("fill"))
    assert {"alert-start", "location", "audio", "end", "acknowledged", "scenario"} <= set(fills)
    assert all(len(f) == 1 for f in fills.values()), fills
    colours = [next(iter(f)) for f in fills.values()]
    assert len(set(colours)) == len(colours), fills   # no two kinds share a colour
    every = list(report.COLOURS.values()) + list(report.EVENT_COLOURS.values())
    assert len(set(every)) == len(every)
    texts = list(root.iter(ns + "text"))
    assert len(texts) > 20
    for t in texts:
        size = float(t.get("font-size") or 11)
        x, y, w = float(t.get("x")), float(t.get("y")), len(t.text or "") * size * report.FONT_W
        lo, hi = (x - w, x) if t.get("text-anchor") == "end" else (x, x + w)
        assert 0 <= lo and hi <= width and size <= y <= height, (t.text, lo, hi, y)


# -- the working folder ---------------------------------------------------------------------

@pytest.fixture
def short(tmp_path):
    text = (SCENARIOS / "covert_sos.toml").read_text()
    text = text.replace('track = "tracks/', f'track = "{SCENARIOS}/tracks/').replace(
        'audio = "audio/', f'audio = "{SCENARIOS}/audio/').replace("duration_s = 100", "duration_s = 45")
    text = text.split("[expect]")[0] + "[expect]\nalerts = 1\nalert_within_s = 3\nprivacy = true\n"
    p = tmp_path / "short.toml"
    p.write_text(text)
    return p


def _made_dirs(monkeypatch, tmp_path) -> list[Path]:
    made: list[Path] = []
    real = sim_cmd.tempfile.mkdtemp

    def mkdtemp(prefix: str = "") -> str:
        made.append(Path(real(prefix=prefix, dir=tmp_path)))
        return str(made[-1])

    monkeypatch.setattr(sim_cmd.tempfile, "mkdtemp", mkdtemp)
    return made


def test_sim_run_removes_its_working_folder(short, tmp_path, monkeypatch, capsys):
    made = _made_dirs(monkeypatch, tmp_path)
    assert main(["sim", "run", str(short)]) == 0
    assert len(made) == 1 and not made[0].exists()
    out = capsys.readouterr().out
    assert "kept" not in out
    assert "charge used: " in out and "by state: " in out  # the power model's report (issue 16)


def test_sim_run_keep_says_where_it_kept_the_folder(short, tmp_path, monkeypatch, capsys):
    made = _made_dirs(monkeypatch, tmp_path)
    assert main(["sim", "run", str(short), "--keep"]) == 0
    out = capsys.readouterr().out
    assert f"kept the run's folder (device key, TLS key, locations): {made[0]}" in out
    assert (made[0] / "flash").is_dir() and (made[0] / "receiver").is_dir()
    assert main(["sim", "run", str(short), "--keep", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["kept"] == str(made[1]) and made[1].exists()
    charge = data["charge"]
    assert charge["charge_mah"] > 0 and charge["states"]["gnss on"]["mah"] > 0
    assert sum(s["share"] for s in charge["states"].values()) == pytest.approx(1.0, abs=0.01)


# -- an outside receiver: a real `sotto receive` already running ----------------------------

@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("outside")
    with ReceiverProcess(tmp / "centre") as rx:   # a real `sotto receive` subprocess (TLS)
        ca = tmp / "ca.pem"
        ca.write_text(rx.pki.ca_pem)
        url = "https://localhost:%d" % rx.port
        yield rx, ["--receiver", url, "--ca-cert", str(ca), "--centre-key", rx.centre_public_key.hex()]


def test_sim_run_against_an_outside_receiver_with_its_database(outside, short, capsys):
    rx, opts = outside
    assert main(["sim", "run", str(short), *opts, "--db", str(rx.db), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["receiver"].startswith("https://localhost:")
    assert {c["name"] for c in data["checks"]} == {"alerts", "alert_within_s", "privacy"}
    with sqlite3.connect(rx.db) as conn:
        stored = conn.execute("SELECT count(*) FROM frames WHERE device_id = ?", (b"SOTTO-42",)).fetchone()
    assert stored[0] > 0


def test_sim_keys_then_run_against_an_outside_receiver_without_its_database(outside, tmp_path, capsys):
    rx, opts = outside
    text = (SCENARIOS / "covert_sos.toml").read_text().replace('id = "SOTTO-42"', 'id = "SOTTO-77"')
    text = text.replace("seed = 1", "seed = 77")   # its own key (a device's key comes from its seed)
    text = text.replace('track = "tracks/', f'track = "{SCENARIOS}/tracks/').replace(
        'audio = "audio/', f'audio = "{SCENARIOS}/audio/').replace("duration_s = 100", "duration_s = 45")
    text = text.split("[expect]")[0] + "[expect]\nalert_within_s = 3\nprivacy = true\nalerts = 1\n"
    p = tmp_path / "s77.toml"
    p.write_text(text)
    assert main(["sim", "keys", str(p), "--json"]) == 0
    (key,) = json.loads(capsys.readouterr().out)
    assert key["device"] == "SOTTO-77" and len(key["public_key"]) == 64
    assert main(["devices", "add", "SOTTO-77", "--pubkey", key["public_key"], "--db", str(rx.db)]) == 0
    capsys.readouterr()
    assert main(["sim", "run", str(p), *opts, "--json"]) == 1   # `alerts` needs the database
    data = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["alert_within_s"]["ok"] and checks["privacy"]["ok"]
    assert not checks["alerts"]["ok"] and "give --db" in checks["alerts"]["detail"]
    with sqlite3.connect(rx.db) as conn:   # what the device sent was accepted with the registered key
        stored = conn.execute("SELECT count(*) FROM frames WHERE device_id = ?", (b"SOTTO-77",)).fetchone()
    assert stored[0] > 0


def test_outside_receiver_options_need_receiver_and_key(short, capsys):
    assert main(["sim", "run", str(short), "--ca-cert", "x.pem"]) == 2
    assert "give --receiver URL" in capsys.readouterr().err
    assert main(["sim", "run", str(short), "--receiver", "https://localhost:1"]) == 2
    assert "--centre-key" in capsys.readouterr().err


def test_fleet_against_an_outside_receiver_holds_every_device_to_expect(outside, short, capsys):
    rx, opts = outside
    assert main(["sim", "fleet", "--scenario", str(short), "--devices", "2", "--spread", "0", *opts,
                 "--db", str(rx.db), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["expectations_per_device"] == 3 and data["expectation_failures"] == []
    assert data["frames_stored"] == data["frames_made"] > 0


# -- fleets report failed expectations ------------------------------------------------------

def test_fleet_names_each_devices_failed_expectation(short, capsys):
    text = short.read_text().replace("alerts = 1", "alerts = 2")
    short.write_text(text)
    assert main(["sim", "fleet", "--scenario", str(short), "--devices", "2", "--spread", "0"]) == 1
    out = capsys.readouterr().out
    assert "expectations: 3 per device, held by 0 of 2 devices; 2 failed" in out
    assert re.search(r"FAIL  FLT00001: alerts: 1 alert\(s\) at the receiver \(expected 2\)", out)
    assert "FAIL  FLT00002: alerts" in out


def test_fleet_without_expectations_says_so(short, capsys):
    short.write_text(short.read_text().split("[expect]")[0])
    assert main(["sim", "fleet", "--scenario", str(short), "--devices", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["expectations_per_device"] == 0
    assert main(["sim", "fleet", "--scenario", str(short), "--devices", "1", "--spread", "0"]) == 0
    assert "expectations: none (the scenario has no [expect] table" in capsys.readouterr().out
