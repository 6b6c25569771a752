# A device booted with its tick counter anywhere on the 2**30 circle delivers
# at once: an ESP32's ticks_ms() is not reset by a soft reset, crosses 2**29
# (where "after 0" turns into "before 0") after 6.2 days and wraps after
# 12.4. Each boot here has a modem that answers (the byte-level A7670
# emulator of the end-to-end lane, tests/e2e/) and a receiver stand-in that
# verifies and acknowledges; the officer holds the button 25 s after the boot
# and the alert-start must be acknowledged within seconds.
import os
import sys

from fakehal import FakeHal, config
from fwtest import tmpdir
from sotto import frames, identity
from sotto.app import Device
from sotto.storage import Storage
from sotto.ticks import TICKS_PERIOD


def _e2e_dir():
    try:
        os.stat("/e2e")  # the VM lane copies tests/e2e there
        return "/e2e"
    except OSError:
        return __file__.rsplit("/", 1)[0] + "/../e2e"


if _e2e_dir() not in sys.path:
    sys.path.append(_e2e_dir())

from e2e_a7670 import A7670, Network  # noqa: E402
from e2e_receiver import CA_PEM, Receiver, centre_key_hex  # noqa: E402
from e2e_world import World  # noqa: E402

X_MS = 30000  # a run of 60 s from these boots crosses 2**29 and the wrap at 2**30
BOOT_TICKS = (0, (1 << 29) - X_MS, (1 << 29) + X_MS, TICKS_PERIOD - X_MS)
HOST = "receiver.sotto.test"
PRESS_MS = 25000  # the modem is up and registered by then (boot 12 s, SIM, network)
HOLD_MS = 3500  # past the default 3 s alert pattern


def _boot_and_alert(boot_ticks):
    """World ms at which the alert was raised and at which its alert-start's
    acknowledgement reached the device, and the receiver."""
    world = World(offset_ms=boot_ticks)
    root = tmpdir("ticks")
    hal = FakeHal(root)
    st = Storage(root)
    st.fsync = False
    pub = identity.create(st, hal.random_bytes)
    st.write_atomic("ca.pem", CA_PEM)
    cfg = config(receiver="https://" + HOST, ca_cert="ca.pem", centre_key=centre_key_hex())
    kid = bytes.fromhex(cfg["device_id"])
    receiver = Receiver(world, {kid: pub}, 1795444200)
    modem = A7670(world, Network({(HOST, 443): receiver}))
    hal.modem_uart = modem.uart(115200, rxbuf=4096)
    hal.modem_pwrkey = modem.pwrkey
    dev = Device(hal, cfg)
    hal.set_time(world.ticks_ms())
    assert dev.boot(world.ticks_ms())
    presses = [(PRESS_MS, True), (PRESS_MS + HOLD_MS, False)]
    alert_ms = None
    t = 0
    while t < 60000:
        world.advance_to(t * 1000)
        now = world.ticks_ms()
        while presses and presses[0][0] <= t:
            hal.edges.append((now, presses.pop(0)[1]))  # as the pin interrupt records them
        hal.set_time(now)
        wait = dev.step(now)
        if alert_ms is None and dev.session.live:
            alert_ms = t
        if alert_ms is not None:
            for _, seq, wire in _stored(receiver):
                if frames.verify(wire, pub)[1][frames.K_T] == frames.ALERT_START \
                        and seq in receiver.acked_at and not dev.queue.count(frames.ALERT_START):
                    return alert_ms, receiver.acked_at[seq], receiver
        t += max(1, min(wait, 20))
    raise AssertionError("boot at ticks %d: no alert-start acknowledged in 60 s (alert at %r, %d "
                         "requests, %d frames stored)" % (boot_ticks, alert_ms, receiver.requests,
                                                          len(receiver.stored)))


def _stored(receiver):
    return [(t, seq, wire) for t, _kid, seq, wire in receiver.arrivals]


def test_a_boot_at_any_tick_value_delivers_the_alert_at_once():
    for boot in BOOT_TICKS:
        alert_ms, acked_ms, receiver = _boot_and_alert(boot)
        assert PRESS_MS + 3000 <= alert_ms <= PRESS_MS + 3100, (boot, alert_ms)
        # the modem was up: sign, queue, one POST round trip
        assert acked_ms - alert_ms < 3000, (boot, acked_ms - alert_ms)
        # the device's started status came first, before the alert, and was delivered too
        kinds = [frames.verify(w, receiver.keys[k])[1][frames.K_T] for _t, k, _s, w in receiver.arrivals]
        assert kinds[0] == frames.STATUS and frames.ALERT_START in kinds, (boot, kinds)
        assert not receiver.rejected

