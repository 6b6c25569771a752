"""Cellular transport: bytes on the air for a standard alert, and the time from
trigger to the receiver's acknowledgement of the alert-start frame.

The firmware's delivery task and SIMCom driver run under CPython against the
virtual modem with its nominal delays (simulator/vmodem Timing: 80 ms round
trip, 1 Mbit/s up, 115 200 baud UART, 350 ms TLS crypto in the module), with
real TLS to a receiver on loopback. Nominal case: at the trigger the modem is
already on, registered and its PDP context active, with no connection open (it
was closed after the idle linger); the time includes opening the TLS connection.
The trigger is when the alert-start frame is queued: the frame's signing time is
measured by the firmware benchmarks, not here.

Standard alert: alert-start, 30 one-second IMA-ADPCM chunks (4000 bytes each),
4 location frames. Bytes on the air are TCP payload bytes both ways (TLS records
including the handshake; IP/TCP headers not counted), against the sum of the
frames' own sizes. The receiver's answers are signed (about 124 bytes each) and
opened by the firmware's sotto.answer.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.common import Row, lower_is_better

REPO = Path(__file__).resolve().parent.parent


def _setup_paths() -> None:
    for p in (REPO / "tests", REPO / "tests" / "firmware"):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))


def run() -> list[Row]:
    _setup_paths()
    from deliveryfake import FakeQueue, seeded_random
    from framefactory import ALERT_START, AUDIO, LOCATION, DeviceSim, pack_location
    from modem_support import RECEIVER_NAME, RealReceiver, make_pki, run_until
    from sotto import log
    from sotto import modem as modem_pkg
    from sotto.answer import Opener
    from sotto.sched import Scheduler

    from simulator.vmodem import Timing, VirtualModem

    log.set_sink(lambda line: None)
    tmp = tempfile.mkdtemp(prefix="sotto-bench-modem-")
    pki = make_pki(tmp)
    device = DeviceSim()
    receiver = RealReceiver(tmp, {device.kid: device.public_key}, tls=pki)
    vm = VirtualModem(timing=Timing(), seed=1, hosts={RECEIVER_NAME: "127.0.0.1"}, powered=True,
                      certs={"sotto_ca.pem": pki.ca_pem})

    class Hal:
        modem_uart = vm.stream
        modem_pwrkey = vm.pwrkey
        storage_root = tmp
        random_bytes = staticmethod(seeded_random(1))

    sched = Scheduler()
    queue = FakeQueue()
    live = [False]
    settings = {"host": RECEIVER_NAME, "port": receiver.port, "ca_cert": "sotto_ca.pem", "apn": "internet"}
    delivery = modem_pkg.build(Hal(), sched, queue, settings, alert_live=lambda: live[0],
                               opener=Opener(receiver.centre_public_key))
    sched.spawn("delivery", delivery.task)
    m = delivery.modem
    try:
        # warm: up, registered, PDP active; no connection open
        run_until(sched, vm, lambda: m.ready and m.started and m.is_registered(), 60000)
        run_until(sched, vm, lambda: False if sched.now_ms < 15000 else True, 60000)
        assert not m.connected
        air_before = len(vm.air)
        t0 = sched.now_ms
        start = device.alert_start(loc=pack_location(515000000, -1000000, 8, 1, 1))
        queue.push(start, ALERT_START, device.seq)
        live[0] = True
        start_seq = device.seq
        run_until(sched, vm, lambda: start_seq in queue.acked, 30000)
        ack_ms = sched.now_ms - t0

        plan = [(t0 + 1000 * (i + 1), "audio") for i in range(30)]
        plan += [(t0 + 7500 * (i + 1), "loc") for i in range(4)]
        plan.sort()
        sizes = [len(start)]
        chunk = bytes((i * 7) & 0xFF for i in range(4000))

        def tick(t: int) -> None:
            while plan and plan[0][0] <= t:
                _, what = plan.pop(0)
                if what == "audio":
                    wire = device.audio(chunk, 8000 * (len(sizes) - 1), 8000)
                    queue.push(wire, AUDIO, device.seq)
                else:
                    wire = device.location(pack_location(515000000, -1000000, 8, 1, 1))
                    queue.push(wire, LOCATION, device.seq)
                sizes.append(len(wire))

        run_until(sched, vm, lambda: not plan and not len(queue), 300000, tick=tick)
        records = vm.air[air_before:]
        air = sum(r.air_bytes for r in records)
        frames = sum(sizes)
        assert sorted(queue.acked) == sorted(range(1, len(sizes) + 1)) and delivery.duplicates == 0
    finally:
        vm.close()
        receiver.stop()
        log.set_sink(None)
    return [
        lower_is_better("modem: bytes on the air, standard alert", air, "B", frames,
                        target="overhead as low as TLS+HTTP allow",
                        note=f"{len(sizes)} frames, {delivery.posts} POSTs; baseline = frames' own bytes"),
        lower_is_better("modem: trigger to alert-start acknowledged", ack_ms, "ms (sim)", 3000,
                        target="<= 3000 ms", note="registered and idle modem, TLS connection opened"),
    ]


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    for row in run():
        print(row)
