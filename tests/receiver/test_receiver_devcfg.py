"""Remote configuration and device health at the centre (host_tools.receiver.devcfg):
versions queued, carried as `config` commands, applied or refused with the
device's reason; health from status and heartbeat frames; config-invalid;
`sotto devices list/show/config`; a device registered but never heard, or heard but
without a heartbeat yet, is silent after the interval it runs as far as the centre knows
(configured, provisioned, else the firmware's default) plus grace."""

from __future__ import annotations

import json
import time
from pathlib import Path

import framefactory as ff
import pytest
from conftest import NOW, Clock, device

from host_tools.errors import UsageError
from host_tools.receiver import commands, devcfg
from host_tools.receiver.alerts import silent_devices
from host_tools.receiver.ingest import Receiver
from host_tools.receiver.store import open_db
from host_tools.registry import Registry
from host_tools.registry import connect as db_connect
from sotto_cli.cli import main

HEALTH = {24: "0.1.0", 25: 0, 26: 3, 27: 7, 28: 1, 29: 2, 30: 17}
HB = {24: "0.1.0", 25: 0, 29: 1, 30: 17}     # a heartbeat's share of it


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_a_version_rides_as_a_config_command_and_is_applied(receiver: Receiver, db: Path,
                                                            dev: ff.DeviceSim) -> None:
    conn = db_connect(db)
    v1 = devcfg.set_config(conn, dev.kid, {"heartbeat_every_s": 600}, operator="Ann")
    v2 = devcfg.set_config(conn, dev.kid, {"trigger.alert": {"presses": 6, "window_ms": 3000}},
                           operator="Ann")
    assert (v1.version, v2.version) == (1, 2)
    answer = receiver.ingest([dev.heartbeat(extra=HB)])
    assert answer.cmds == [{"id": v1.command_id, "op": "config", "v": 1, "set": {"heartbeat_every_s": 600}},
                           {"id": v2.command_id, "op": "config", "v": 2,
                            "set": {"trigger.alert": {"presses": 6, "window_ms": 3000}}}]
    assert [v.state for v in devcfg.config_view(conn, dev.kid).versions] == ["delivered", "delivered"]
    # the device: health status (cfgv 1), reply done; then version 2 refused with its reason
    receiver.ingest([dev.status(7, extra={**HEALTH, 25: 1}), dev.reply(v1.command_id, 1),
                     dev.status(7, extra={**HEALTH, 25: 1, 37: "trigger.no: cannot be told apart"}),
                     dev.reply(v2.command_id, 2)])
    view = devcfg.config_view(conn, dev.kid)
    assert view.reported == 1
    assert [(v.version, v.state, v.err) for v in view.versions] == [
        (2, "refused", "trigger.no: cannot be told apart"), (1, "applied", None)]
    assert view.desired == {"heartbeat_every_s": 600}          # the refused one is left out
    assert {c.op for c in map(commands._row, conn.execute(  # noqa: SLF001 - the rows as the writer sees them
        f"SELECT {commands._COLUMNS} FROM commands"))} == {"config"}  # noqa: SLF001
    assert receiver.ingest([dev.heartbeat(extra={**HB, 25: 1})]).cmds == []   # nothing left to send
    v3 = devcfg.set_config(conn, dev.kid, {"audio.clip_s": 60}, operator="Ann")
    assert v3.version == 3


def test_health_is_kept_per_device_and_config_invalid_is_shown(receiver: Receiver, db: Path,
                                                               dev: ff.DeviceSim) -> None:
    conn = db_connect(db)
    receiver.ingest([dev.status(8, flags=32, extra={**HEALTH, 37: "config.json: not valid JSON"})])
    h = devcfg.health_of(conn)[dev.kid]
    assert (h.fw, h.cfgv, h.rst, h.boots, h.faults, h.qd, h.csq) == ("0.1.0", 0, 3, 7, 1, 2, 17)
    assert h.config_invalid == "config.json: not valid JSON"
    receiver.ingest([dev.heartbeat(extra={24: "0.1.0", 29: 0, 30: 99, 10: 32})])   # still invalid
    h = devcfg.health_of(conn)[dev.kid]
    assert h.config_invalid == "config.json: not valid JSON" and h.qd == 0 and h.boots == 7
    receiver.ingest([dev.heartbeat(extra={24: "0.1.0", 29: 0, 30: 20})])           # repaired
    assert devcfg.health_of(conn)[dev.kid].config_invalid is None


def test_a_device_registered_but_never_heard_is_silent(db: Path, dev: ff.DeviceSim) -> None:
    conn = open_db(db)
    added = conn.execute("SELECT added_at FROM device_keys").fetchone()[0]
    assert silent_devices(conn, now=added + 900 + 300 - 1) == []
    late = silent_devices(conn, now=added + 900 + 300 + 60)
    assert [(s.device_id, s.never_heard, round(s.overdue_s)) for s in late] == [(dev.kid, True, 360)]
    assert late[0].to_json()["never_heard"] and late[0].to_json()["last_seen"] is None
    assert (late[0].heartbeat_from, late[0].interval_text) == ("default", "the default 15 min")


def test_a_device_heard_once_whose_first_heartbeat_never_came_is_silent(
        receiver: Receiver, db: Path, dev: ff.DeviceSim, capsys: pytest.CaptureFixture[str]) -> None:
    """It sent its `started` status (no heartbeat interval yet) and died: silent after the
    firmware's default interval + grace, like a device never heard (issue 16)."""
    receiver.ingest([dev.status(6)])
    conn = open_db(db)
    seen = conn.execute("SELECT last_seen_at, heartbeat_s FROM device_state").fetchone()
    assert seen[1] is None
    assert silent_devices(conn, now=seen[0] + 900 + 300 - 1) == []
    late = silent_devices(conn, now=seen[0] + 900 + 300 + 60)
    assert [(s.device_id, s.never_heard, s.heartbeat_s, round(s.overdue_s)) for s in late] == [
        (dev.kid, False, 900, 360)]
    assert late[0].no_heartbeat_yet and late[0].to_json()["no_heartbeat_yet"] is True
    rc, out, _ = _cli(capsys, "alerts", "list", "--db", str(db))   # the CLI's real clock: long after
    assert rc == 0 and "SOTTO-42" in out and "no heartbeat yet (expected within the default 15 min)" in out
    # once its heartbeats say 60 s, that interval counts
    receiver.ingest([dev.heartbeat(interval_s=60)])
    seen = conn.execute("SELECT last_seen_at FROM device_state").fetchone()[0]
    assert [(s.heartbeat_s, s.no_heartbeat_yet) for s in silent_devices(conn, now=seen + 60 + 300 + 1)] == [
        (60, False)]


def _silent(conn: object, now: float) -> list[tuple[bool, bool, int, str, int | None, int]]:
    """(never_heard, no_heartbeat_yet, interval, where it comes from, version, overdue s) at `now`."""
    return [(s.never_heard, s.no_heartbeat_yet, s.heartbeat_s, s.heartbeat_from, s.config_version,
             round(s.overdue_s)) for s in silent_devices(conn, now=now)]  # type: ignore[arg-type]


def test_a_device_provisioned_with_a_short_interval_and_never_heard_is_silent_after_it(
        db: Path, dev: ff.DeviceSim) -> None:
    """Issue 16: `sotto provision --set heartbeat_every_s=300`, never switched on: silent after
    5 min + grace, not the default 15 min + grace."""
    conn = open_db(db)
    added = conn.execute("SELECT added_at FROM device_keys").fetchone()[0]
    devcfg.record_provisioned(conn, dev.kid, {"heartbeat_every_s": 300, "audio.clip_s": 60},
                              by="sotto provision (tech)", now=added)
    assert silent_devices(conn, now=added + 300 + 300 - 1) == []
    late = silent_devices(conn, now=added + 300 + 300 + 60)
    assert _silent(conn, added + 300 + 300 + 60) == [(True, False, 300, "provisioned", None, 360)]
    assert late[0].interval_text == "the provisioned 5 min"
    shown = late[0].to_json()
    assert (shown["heartbeat_s"], shown["heartbeat_from"], shown["config_version"]) == (
        300, "provisioned", None)
    # provisioned again without the setting: the device runs the firmware's default again
    devcfg.record_provisioned(conn, dev.kid, {}, by="sotto provision (tech)", now=added + 10)
    assert silent_devices(conn, now=added + 900 + 300 - 1) == []
    assert _silent(conn, added + 900 + 300 + 60) == [(True, False, 900, "default", None, 360)]


def test_a_device_with_no_known_interval_falls_back_to_the_default(db: Path, dev: ff.DeviceSim) -> None:
    conn = open_db(db)
    added = conn.execute("SELECT added_at FROM device_keys").fetchone()[0]
    # a value the firmware would refuse (below its 60 s) is no interval the device runs
    devcfg.record_provisioned(conn, dev.kid, {"heartbeat_every_s": 30}, by="t", now=added)
    assert silent_devices(conn, now=added + 900 + 300 - 1) == []
    late = silent_devices(conn, now=added + 900 + 300 + 1)
    assert _silent(conn, added + 900 + 300 + 1) == [(True, False, 900, "default", None, 301)]
    assert late[0].interval_text == "the default 15 min"


def test_a_device_heard_once_is_judged_by_its_configured_interval(
        receiver: Receiver, db: Path, dev: ff.DeviceSim) -> None:
    """Provisioned with 5 min; a remote change to 20 min is pending (the longer counts), then
    applied; one to 2 min sent but not confirmed keeps 20 min; refused: 20 min as applied."""
    conn = open_db(db)
    added = conn.execute("SELECT added_at FROM device_keys").fetchone()[0]
    devcfg.record_provisioned(conn, dev.kid, {"heartbeat_every_s": 300}, by="t", now=added)
    v1 = devcfg.set_config(conn, dev.kid, {"heartbeat_every_s": 1200}, operator="Ann", now=added + 1)
    # never heard: version 1 cannot have reached it, it runs what it was provisioned with
    assert _silent(conn, added + 300 + 300 + 1) == [(True, False, 300, "provisioned", None, 301)]
    receiver.ingest([dev.status(6)])          # `started`: the answer carries version 1
    seen = conn.execute("SELECT last_seen_at FROM device_state").fetchone()[0]
    assert _silent(conn, seen + 300 + 300 + 1) == []     # it may run 20 min already
    assert _silent(conn, seen + 1200 + 300 + 1) == [(False, True, 1200, "pending", 1, 301)]
    receiver.ingest([dev.status(7, extra={**HEALTH, 25: 1}), dev.reply(v1.command_id, 1)])
    seen = conn.execute("SELECT last_seen_at FROM device_state").fetchone()[0]
    assert silent_devices(conn, now=seen + 1200 + 300 - 1) == []
    late = silent_devices(conn, now=seen + 1200 + 300 + 1)
    assert _silent(conn, seen + 1200 + 300 + 1) == [(False, True, 1200, "configured", 1, 301)]
    assert late[0].interval_text == "the configured 20 min (version 1)"
    v2 = devcfg.set_config(conn, dev.kid, {"heartbeat_every_s": 120}, operator="Ann", now=added + 2)
    receiver.ingest([dev.status(6)])          # delivered, not confirmed
    seen = conn.execute("SELECT last_seen_at FROM device_state").fetchone()[0]
    assert _silent(conn, seen + 1200 + 300 + 1) == [(False, True, 1200, "pending", 2, 301)]
    receiver.ingest([dev.status(7, extra={**HEALTH, 25: 1, 37: "no"}), dev.reply(v2.command_id, 2)])
    assert _silent(conn, seen + 1200 + 300 + 1) == [(False, True, 1200, "configured", 1, 301)]


def test_a_device_heard_once_with_a_short_configured_interval_is_silent_after_it(
        receiver: Receiver, db: Path, dev: ff.DeviceSim, capsys: pytest.CaptureFixture[str]) -> None:
    """Applied 5 min, then its `started` status and nothing: silent after 5 min + grace, and
    `sotto alerts list` / `devices show` say which interval and where it comes from."""
    conn = open_db(db)
    v1 = devcfg.set_config(conn, dev.kid, {"heartbeat_every_s": 300}, operator="Ann", now=receiver.clock())
    receiver.ingest([dev.status(6)])
    receiver.ingest([dev.status(7, extra={**HEALTH, 25: 1}), dev.reply(v1.command_id, 1)])
    seen = conn.execute("SELECT last_seen_at, heartbeat_s FROM device_state").fetchone()
    assert seen[1] is None
    assert silent_devices(conn, now=seen[0] + 300 + 300 - 1) == []
    assert _silent(conn, seen[0] + 300 + 300 + 60) == [(False, True, 300, "configured", 1, 360)]
    rc, out, _ = _cli(capsys, "alerts", "list", "--db", str(db))   # the CLI's real clock: long after
    assert rc == 0 and "no heartbeat yet (expected within the configured 5 min (version 1))" in out
    rc, out, _ = _cli(capsys, "alerts", "list", "--json", "--db", str(db))
    (row,) = json.loads(out)["silent_devices"]
    assert (row["heartbeat_s"], row["heartbeat_from"], row["config_version"]) == (300, "configured", 1)
    rc, out, _ = _cli(capsys, "devices", "show", "SOTTO-42", "--db", str(db))
    assert "none yet (expected within the configured 5 min (version 1))" in out
    rc, out, _ = _cli(capsys, "devices", "show", "SOTTO-42", "--json", "--db", str(db))
    assert json.loads(out)["expected_heartbeat"] == {"heartbeat_s": 300, "from": "configured",
                                                     "config_version": 1}


def _heartbeats_then_change(receiver: Receiver, clock: Clock, db: Path, dev: ff.DeviceSim,
                            seconds: int) -> tuple[object, devcfg.Version, float]:
    """Heartbeats every 15 min; at NOW + 10 an operator sets heartbeat_every_s=`seconds`; it
    rides in the answer to the next heartbeat (NOW + 900: delivered, not confirmed yet)."""
    conn = open_db(db)
    clock.t = NOW
    receiver.ingest([dev.heartbeat(interval_s=900, extra=HB)])
    v1 = devcfg.set_config(conn, dev.kid, {"heartbeat_every_s": seconds}, operator="Ann", now=NOW + 10)
    clock.t = NOW + 900
    assert [c["v"] for c in receiver.ingest([dev.heartbeat(interval_s=900, extra=HB)]).cmds] == [1]
    return conn, v1, NOW + 900


def test_a_longer_interval_configured_after_the_last_heartbeat_counts_at_once(
        receiver: Receiver, clock: Clock, db: Path, dev: ff.DeviceSim,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A device heartbeating every 15 min is set to 1 h: the firmware restarts its heartbeat
    timer when it applies the change, so its next heartbeat comes 1 h later, not 15 min. It is
    not listed silent on the 15 min its last heartbeat said: the longer of the two while the
    change is unconfirmed, the new one once applied (counted from the apply), the heartbeat's
    own once one arrives."""
    conn, v1, hb_at = _heartbeats_then_change(receiver, clock, db, dev, 3600)
    assert _silent(conn, hb_at + 900 + 300 + 60) == []          # sent, not confirmed: 1 h counts
    assert _silent(conn, hb_at + 3600 + 300 + 1) == [(False, False, 3600, "pending", 1, 301)]
    clock.t = applied = hb_at + 2                                # the device applies it: st 7 + reply
    receiver.ingest([dev.status(7, extra={**HEALTH, 25: 1}), dev.reply(v1.command_id, 1)])
    assert devcfg.expected_heartbeats(conn)[dev.kid].since == applied
    assert _silent(conn, applied + 900 + 300 + 60) == []
    assert _silent(conn, applied + 3600 + 300 - 1) == []
    late = silent_devices(conn, now=applied + 3600 + 300 + 1)   # type: ignore[arg-type]
    assert _silent(conn, applied + 3600 + 300 + 1) == [(False, False, 3600, "configured", 1, 301)]
    assert late[0].interval_text == "the configured 1 h 0 min (version 1)"
    rc, out, _ = _cli(capsys, "alerts", "list", "--db", str(db))   # the CLI's real clock: long after
    assert rc == 0 and ("heartbeat expected within the configured 1 h 0 min (version 1), "
                        "set since its last heartbeat") in out
    rc, out, _ = _cli(capsys, "devices", "show", "SOTTO-42", "--db", str(db))
    assert "every 15 min by its last one; expected within the configured 1 h 0 min (version 1) since" in out
    rc, out, _ = _cli(capsys, "devices", "show", "SOTTO-42", "--json", "--db", str(db))
    shown = json.loads(out)
    assert shown["heartbeat_s"] == 900 and shown["expected_heartbeat"] == {
        "heartbeat_s": 3600, "from": "configured", "config_version": 1}
    # its next heartbeat says 1 h itself: the heartbeat counts again
    clock.t = applied + 3600
    receiver.ingest([dev.heartbeat(interval_s=3600, extra={**HB, 25: 1})])
    assert _silent(conn, applied + 3600 + 3600 + 300 - 1) == []
    assert _silent(conn, applied + 3600 + 3600 + 300 + 1) == [(False, False, 3600, "heartbeat", None, 301)]
    rc, out, _ = _cli(capsys, "devices", "show", "SOTTO-42", "--json", "--db", str(db))
    assert json.loads(out)["expected_heartbeat"] is None


def test_a_shorter_interval_counts_once_the_device_applied_it(
        receiver: Receiver, clock: Clock, db: Path, dev: ff.DeviceSim) -> None:
    """15 min set to 5 min: the 15 min still count while the change is unconfirmed (it may not
    run yet); once applied, silent after 5 min + grace from the apply, not 15 min."""
    conn, v1, hb_at = _heartbeats_then_change(receiver, clock, db, dev, 300)
    assert _silent(conn, hb_at + 300 + 300 + 60) == []
    assert _silent(conn, hb_at + 900 + 300 + 1) == [(False, False, 900, "pending", 1, 301)]
    clock.t = applied = hb_at + 5
    receiver.ingest([dev.status(7, extra={**HEALTH, 25: 1}), dev.reply(v1.command_id, 1)])
    assert _silent(conn, applied + 300 + 300 - 1) == []
    assert _silent(conn, applied + 300 + 300 + 1) == [(False, False, 300, "configured", 1, 301)]


def test_a_change_sent_before_the_last_heartbeat_and_unconfirmed_still_counts(
        receiver: Receiver, clock: Clock, db: Path, dev: ff.DeviceSim) -> None:
    """The answer that carried the change was lost: the next heartbeat still says 15 min, and
    its answer carries the change again; the device may apply it from there (1 h from then)."""
    conn, _v1, hb_at = _heartbeats_then_change(receiver, clock, db, dev, 3600)
    clock.t = hb2 = hb_at + 900
    assert [c["v"] for c in receiver.ingest([dev.heartbeat(interval_s=900, extra=HB)]).cmds] == [1]
    assert _silent(conn, hb2 + 900 + 300 + 60) == []
    assert _silent(conn, hb2 + 3600 + 300 + 1) == [(False, False, 3600, "pending", 1, 301)]


def test_a_change_applied_before_the_last_heartbeat_yields_to_it(
        receiver: Receiver, clock: Clock, db: Path, dev: ff.DeviceSim) -> None:
    """What a later heartbeat says wins over an older applied version, and over a provisioning
    it predates (the device then runs what it was provisioned with)."""
    conn, v1, hb_at = _heartbeats_then_change(receiver, clock, db, dev, 300)
    clock.t = hb_at + 5
    receiver.ingest([dev.status(7, extra={**HEALTH, 25: 1}), dev.reply(v1.command_id, 1)])
    clock.t = hb2 = hb_at + 5 + 300
    receiver.ingest([dev.heartbeat(interval_s=300, extra={**HB, 25: 1})])
    assert _silent(conn, hb2 + 300 + 300 + 1) == [(False, False, 300, "heartbeat", None, 301)]
    devcfg.record_provisioned(conn, dev.kid, {}, by="sotto provision (tech)", now=hb2 + 60)
    assert _silent(conn, hb2 + 300 + 300 + 60) == []
    assert _silent(conn, hb2 + 900 + 300 + 1) == [(False, False, 900, "default", None, 301)]


def test_cli_config_set_show_and_devices_show(receiver: Receiver, db: Path, dev: ff.DeviceSim,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _cli(capsys, "devices", "config", "SOTTO-42", "set", "heartbeat_every_s=600",
                      'trigger.alert={"presses": 6, "window_ms": 3000}', "--operator", "Ann", "--db", str(db))
    assert rc == 0 and "configuration version 1 queued" in out
    rc, _, err = _cli(capsys, "devices", "config", "SOTTO-42", "set", "centre_key=00", "--db", str(db))
    assert rc == 2 and "only `sotto provision`" in err
    rc, _, err = _cli(capsys, "devices", "config", "SOTTO-42", "set", "--db", str(db))
    assert rc == 2
    cmd_id = devcfg.config_view(db_connect(db), dev.kid).versions[0].command_id
    receiver.ingest([dev.status(7, extra={**HEALTH, 25: 1}), dev.reply(cmd_id, 1)])
    rc, out, _ = _cli(capsys, "devices", "config", "SOTTO-42", "show", "--json", "--db", str(db))
    shown = json.loads(out)
    assert rc == 0 and shown["reported_version"] == 1 and shown["versions"][0]["state"] == "applied"
    assert shown["settings"] == {"heartbeat_every_s": 600, "trigger.alert": {"presses": 6, "window_ms": 3000}}
    rc, out, _ = _cli(capsys, "devices", "show", "SOTTO-42", "--db", str(db))
    assert rc == 0 and "firmware" in out and "0.1.0" in out and "watchdog" in out and "17/31" in out
    rc, out, _ = _cli(capsys, "devices", "list", "--json", "--db", str(db))
    row = json.loads(out)[0]
    # heard at the test receiver's clock (September 2026), listed by the CLI's real clock: long past its
    # heartbeat interval (the default 900 s: no heartbeat yet) + grace, so silent; but heard, not never_heard
    assert row["health"]["config_version"] == 1 and row["silent"] is True and row["never_heard"] is False
    rc, out, _ = _cli(capsys, "devices", "list", "--db", str(db))
    assert "FIRMWARE" in out and "0.1.0" in out


def test_cli_devices_list_names_a_never_heard_device_silent(db: Path, capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    d = device(b"SOTTO-77")
    with Registry(db) as reg:
        reg.add(d.kid, d.public_key)
    conn = db_connect(db)
    with conn:
        conn.execute("UPDATE device_keys SET added_at = ?", (time.time() - 3 * 3600,))
    rc, out, _ = _cli(capsys, "devices", "list", "--db", str(db))
    assert rc == 0 and "SILENT" in out and "never" in out
    rc, out, _ = _cli(capsys, "alerts", "list", "--db", str(db))
    assert "NEVER HEARD" in out and "expected within the default 15 min" in out
    devcfg.record_provisioned(conn, d.kid, {"heartbeat_every_s": 300}, by="t", now=time.time() - 3 * 3600)
    rc, out, _ = _cli(capsys, "alerts", "list", "--db", str(db))
    assert "NEVER HEARD" in out and "expected within the provisioned 5 min" in out


def test_settings_are_checked_for_shape_here_and_for_sense_on_the_device() -> None:
    assert devcfg.parse_settings(['trigger.alert={"presses": 4, "window_ms": 2000}', "officer=PC 12"]) == {
        "trigger.alert": {"presses": 4, "window_ms": 2000}, "officer": "PC 12"}
    for bad in (["x..y=1"], ["=1"], ["apn=foo"], ["a b=1"],
                ['checkin.start={"presses": 6'], ["feedback.received=[400"]):   # JSON cut short: not text
        with pytest.raises(UsageError):
            devcfg.parse_settings(bad)
    with pytest.raises(UsageError, match="bytes"):
        devcfg.parse_settings([f"officer={'x' * 3000}"])


def test_pre_trigger_audio_is_shown_as_such(receiver: Receiver, db: Path, dev: ff.DeviceSim) -> None:
    from host_tools.frames import decode_frame
    from host_tools.receiver.alerts import show_alert
    from host_tools.receiver.evidence.derive import build_audio
    from host_tools.receiver.format import format_alert

    chunk = bytes(range(256)) * 2 + bytes(488)      # 1000 bytes: 2000 samples of IMA-ADPCM
    frames = [dev.alert_start()]
    dev.flags = 16                                  # flag bit 4: from the device's RAM ring
    frames += [dev.audio(chunk, 0, 2000), dev.audio(chunk, 2000, 2000)]
    dev.flags = 0
    frames += [dev.audio(chunk, 4000, 2000)]
    receiver.ingest(frames)
    d = show_alert(db_connect(db), 1, operator="Ann")
    assert d.pre_trigger_samples == 4000 and d.to_json()["pre_trigger_audio_seconds"] == 0.5
    text = "\n".join(format_alert(d))
    assert "0.8 s received in 3 chunks, of which the first 0.5 s are PRE-TRIGGER" in text
    built = build_audio([decode_frame(w) for w in frames])
    assert built.pre_trigger_samples == 4000 and built.to_json()["pre_trigger"]["seconds"] == 0.5
    assert decode_frame(frames[1]).pre_trigger and not decode_frame(frames[3]).pre_trigger
    # the bundle's page for people (report.html) says it too, not only report.json
    from host_tools.receiver.report import render_html
    page = render_html({"audio": built.to_json()})
    assert "the first 0.5 s are <strong>PRE-TRIGGER</strong> audio" in page
    assert "PRE-TRIGGER" not in render_html({"audio": build_audio([decode_frame(frames[3])]).to_json()})
    # and the console's alert page: the audio summary and each pre-trigger chunk in the timeline
    from host_tools.receiver.access import alert_page
    from host_tools.receiver.roles import Actor
    page_json = alert_page(db_connect(db), Actor("olga", "operator"), 1)
    assert page_json["audio"]["pre_trigger_seconds"] == 0.5
    audio_rows = [f for f in page_json["timeline"] if f["type"] == "audio"]
    assert [f["pre_trigger"] for f in audio_rows] == [True, True, False]
