"""A man in the middle between the device and the centre (issue 11): the whole
firmware on the simulator, its modem's connections redirected to a receiver
that holds the centre's TLS certificate (the worst case: a compromised CA, or
a bench device) and answers `accepted` for every frame, and `closed` for the
live alert, but without the centre's signature over this request: unsigned,
signed with another key, or an answer the real centre gave earlier replayed.

The device acts on none of it: it keeps every frame, the alert stays live, the
officer never feels "received"; each such answer is counted (`unauth`). Once
the path to the real receiver is back, the real receiver gets every frame."""

from __future__ import annotations

import hashlib
import http.client
import http.server
import ssl
import threading
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sotto import frames as ff

from host_tools.frames import decode_frame, split_sequence
from host_tools.receiver import store
from host_tools.receiver.centre_key import CentreKey
from simulator.clock import VirtualClock
from simulator.device import DeviceSpec, VirtualDevice
from simulator.receiver import ReceiverProcess
from simulator.run import Runner
from simulator.scenario import Event
from simulator.track import load_track

REPO = Path(__file__).resolve().parents[2]
MITM_IP = "127.0.0.2"          # loopback too: the modem reaches it; the real receiver is on 127.0.0.1
SOS_S, MITM_UNTIL_S, END_S = 40, 100, 180


class Mitm:
    """POST /v1/frames on MITM_IP, on a port of its own (the real receiver's port need
    not be free on another loopback address), with the real receiver's certificate."""

    def __init__(self, rx: ReceiverProcess, mode: str) -> None:
        self.rx, self.mode = rx, mode
        self.answered = 0
        self.genuine: list[bytes] = []       # real answers seen while proxying (mode "replay")
        self.proxying = mode == "replay"
        self.other = CentreKey(Ed25519PrivateKey.generate())
        mitm = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                answer, ctype = mitm.answer(body)
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        assert rx.pki is not None
        self.server = http.server.ThreadingHTTPServer((MITM_IP, 0), Handler)
        self.address = f"{MITM_IP}:{self.server.server_address[1]}"
        self.server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(rx.pki.cert_file, rx.pki.key_file)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def _forward(self, body: bytes) -> bytes:
        assert self.rx.pki is not None
        ctx = ssl.create_default_context(cadata=self.rx.pki.ca_pem)
        conn = http.client.HTTPSConnection("127.0.0.1", self.rx.port, context=ctx, timeout=10)
        try:
            conn.request("POST", "/v1/frames", body, {"Content-Type": "application/cbor-seq"})
            return conn.getresponse().read()
        finally:
            conn.close()

    def answer(self, body: bytes) -> tuple[bytes, str]:
        if self.proxying:                      # a transparent proxy first: record real answers
            real = self._forward(body)
            self.genuine.append(real)
            return real, "application/cose"
        self.answered += 1
        frames = [decode_frame(w) for w in split_sequence(body)]
        payload = {"results": [{"status": "accepted", "device": f.kid, "seq": f.seq} for f in frames],
                   "time": 1_900_000_000, "closed": [1]}
        if self.mode == "unsigned":
            return cbor2.dumps(payload, canonical=True), "application/cbor"
        if self.mode == "wrong-key":         # bound to this very request, signed by another key
            req = hashlib.sha256(body).digest()
            return self.other.sign_answer({"req": req, **payload}), "application/cose"
        return self.genuine[-1], "application/cose"   # replay: the centre's own, for another request

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("mode", ["unsigned", "wrong-key", "replay"])
def test_a_man_in_the_middle_gets_nothing_acted_on_and_the_centre_later_gets_every_frame(tmp_path, mode):
    rx = ReceiverProcess(tmp_path / "receiver")
    mitm = Mitm(rx, mode)
    try:
        clock = VirtualClock(epoch_s=1_795_000_000)
        spec = DeviceSpec(device_id=b"MITM-001", officer="QA", seed=5,
                          config={"audio": {"clip_s": 5}, "delivery": {"sms_after_s": 600}},
                          track=load_track(REPO / "scenarios/tracks/bristol-walk.geojson"))
        dev = VirtualDevice(spec, clock, rx, tmp_path / "flash")
        dev.modem.hosts[rx.host] = mitm.address  # every connection now reaches the man in the middle
        dev.provision()
        dev.boot()
        runner = Runner(clock)
        runner.add(dev)
        takeover_ms = 0
        if mode == "replay":                    # real answers pass through first (the boot status)
            runner.run_until(SOS_S * 1000 - 5000)
            assert mitm.genuine, "the proxy saw no genuine answer to replay"
            mitm.proxying = False
            takeover_ms = clock.now_ms
        runner.schedule(dev, Event(SOS_S * 1000, "sos", {}))
        runner.run_until(MITM_UNTIL_S * 1000)
        d = dev.device
        assert d is not None
        made_since = {seq for t, seq, _f, _w in dev.made if t >= takeover_ms}
        queued = set(d.queue.seqs())
        felt = [p for _t, p in dev.haptic_patterns]
        assert mitm.answered >= 3
        assert made_since and made_since <= queued       # every frame is kept
        assert d.session.live                             # the forged `closed` ended nothing
        assert "received" not in felt                     # nor did the officer feel a false "received"
        assert d.delivery.unauth >= mitm.answered         # each answer counted, none trusted
        assert not any(ftype == ff.END for _t, _s, ftype, _w in dev.made)
        # the path to the real centre is back: everything arrives there
        dev.modem.hosts[rx.host] = "127.0.0.1"
        runner.run_until(END_S * 1000)
        conn = store.open_db(rx.db)
        try:
            stored = {s for (s,) in conn.execute("SELECT seq FROM frames WHERE device_id = ?",
                                                 (b"MITM-001",))}
        finally:
            conn.close()
        made = {seq for _t, seq, _f, _w in dev.made}
        assert made <= stored and not dev.device.queue.seqs()   # type: ignore[union-attr]
        assert "received" in [p for _t, p in dev.haptic_patterns]
        dev.modem.close()
    finally:
        mitm.stop()
        rx.stop()
