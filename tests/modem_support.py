"""Host-side helpers for the cellular tests: a test PKI, a small receiver double
that answers as docs/frames.md says (verifying with cbor2 + cryptography, code
nobody in the firmware wrote; its answers signed with a test centre key and
bound to each request), the real receiver as a subprocess, and a loop that runs
firmware tasks against the virtual modem on a simulated clock."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from host_tools.receiver.centre_key import CentreKey
from host_tools.receiver.sms_auth import HEADER_SIGNATURE, HEADER_TIMESTAMP, signature_for

REPO = Path(__file__).resolve().parent.parent
RECEIVER_NAME = "receiver.sotto.test"


from simulator.pki import TestPki, make_pki  # noqa: E402,F401  (re-exported for the tests)

# The test centre's answer-signing key (the seed tests/firmware/deliveryfake.py uses)
TEST_CENTRE = CentreKey(Ed25519PrivateKey.from_private_bytes(bytes(range(0xC0, 0xE0))))
SMS_SECRET = b"the test SMS gateway's secret..."


def sms_headers(body: bytes, secret: bytes = SMS_SECRET) -> dict[str, str]:
    """What a gateway adds to its post to /v1/sms (host_tools.receiver.sms_auth)."""
    stamp = str(int(time.time()))
    return {HEADER_TIMESTAMP: stamp, HEADER_SIGNATURE: signature_for(secret, stamp, body)}


# -- the receiver double ---------------------------------------------------------------
def split_sequence(body: bytes) -> list[bytes]:
    """The exact bytes of each item of a CBOR sequence (RFC 8742)."""
    fp = io.BytesIO(body)
    dec = cbor2.CBORDecoder(fp)
    out = []
    while fp.tell() < len(body):
        start = fp.tell()
        dec.decode()
        out.append(body[start:fp.tell()])
    return out


def verify(wire: bytes, keys: dict[bytes, bytes]) -> tuple[str, bytes | None, int | None, str | None]:
    """(status, kid, seq, reason) for one frame, verified with cryptography."""
    try:
        item = cbor2.loads(wire)
    except Exception:
        return "rejected", None, None, "malformed-cbor"
    audio = None
    if isinstance(item, list) and len(item) == 2:
        item, audio = item
    if not isinstance(item, cbor2.CBORTag) or item.tag != 18:
        return "rejected", None, None, "not-cose-sign1"
    protected, _unprotected, payload, signature = item.value
    header = cbor2.loads(protected)
    kid = header.get(4)
    fields = cbor2.loads(payload)
    seq = fields.get(3)
    key = keys.get(kid)
    if key is None:
        return "rejected", kid, seq, "unknown-device"
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, to_sign)
    except Exception:
        return "rejected", kid, seq, "bad-signature"
    if audio is not None:
        if hashlib.sha256(audio).digest() != fields.get(14):
            return "rejected", kid, seq, "audio-digest-mismatch"
    return "accepted", kid, seq, None


@dataclass
class ReceiverDouble:
    """POST /v1/frames and /v1/sms as docs/frames.md says, in a thread.

    Stores (kid, seq) -> frame; answers accepted / duplicate / rejected with reason.
    `hold` (a threading.Event) makes it stall before answering, `fail_status` answers
    every POST with that HTTP status instead, `pad_bytes` makes every frames answer
    that much larger (an extra "pad" entry, which the device ignores).
    """

    keys: dict[bytes, bytes]
    tls: TestPki | None = None
    closed: list[int] = field(default_factory=list)
    time_s: int = 1_790_000_000
    stored: dict[tuple[bytes, int], bytes] = field(default_factory=dict)
    requests: list[bytes] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    sms: list[dict[str, Any]] = field(default_factory=list)
    fail_status: int | None = None
    keep_alive: bool = True
    centre: CentreKey = TEST_CENTRE
    pad_bytes: int = 0

    def __post_init__(self) -> None:
        double = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if self.path == "/v1/sms":
                    msg = json.loads(body)
                    double.sms.append(msg)
                    wire = bytes.fromhex(msg["payload"])
                    status, kid, seq, reason = verify(wire, double.keys)
                    if status == "accepted" and (kid, seq) in double.stored:
                        status = "duplicate"
                    if status == "accepted":
                        double.stored[(kid, seq)] = wire
                    self._answer(200, json.dumps({"status": status, "reason": reason}).encode(),
                                 "application/json")
                    return
                double.requests.append(body)
                req = hashlib.sha256(body).digest()
                if double.fail_status:
                    self._answer(double.fail_status, cbor2.dumps({"reason": "test"}), "application/cbor")
                    return
                try:
                    frames = split_sequence(body)
                except Exception:
                    self._answer(400, double.centre.sign_answer({"req": req, "reason": "malformed-cbor"}),
                                 "application/cose")
                    return
                results = []
                for wire in frames:
                    status, kid, seq, reason = verify(wire, double.keys)
                    if status == "accepted" and kid is not None and seq is not None:
                        if (kid, seq) in double.stored:
                            status = "duplicate"
                        else:
                            double.stored[(kid, seq)] = wire
                    r: dict[str, Any] = {"status": status, "device": kid, "seq": seq}
                    if reason:
                        r["reason"] = reason
                    results.append(r)
                answer: dict[str, Any] = {"results": results, "time": double.time_s}
                if double.closed:
                    answer["closed"] = list(double.closed)
                if double.pad_bytes:
                    answer["pad"] = bytes(double.pad_bytes)
                double.answers.append(answer)
                self._answer(200, double.centre.sign_answer({"req": req, **answer}), "application/cose")

            def _answer(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if not double.keep_alive:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.tls.cert_file, self.tls.key_file)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def centre_public_key(self) -> bytes:
        return self.centre.public_key

    @property
    def sms_url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1/sms"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the real receiver ----------------------------------------------------------------------
def real_receiver_available() -> bool:
    """True once `sotto receive` exists in the tree."""
    try:
        import sotto_cli.cli as cli

        return any("receive" in m for m in cli.COMMAND_MODULES)
    except Exception:
        return False


# -- running firmware tasks against the virtual modem -------------------------------------------
def run_until(sched: Any, vm: Any, done: Callable[[], bool], limit_ms: int,
              tick: Callable[[int], None] | None = None) -> int:
    """Step the scheduler and the modem on one simulated clock until done();
    returns the time. Jumps from event to event; raises if limit_ms passes."""
    t = sched.now_ms
    end = t + limit_ms
    while not done():
        vm.advance(t)
        if tick is not None:
            tick(t)
        wait = sched.step(t)
        if done():
            break
        nxt = vm.next_event_ms()
        t_next = t + max(1, wait)
        if nxt is not None and t < nxt < t_next:
            t_next = nxt
        t = t_next
        if t > end:
            raise AssertionError(f"not done after {limit_ms} ms of simulated time")
    return t


def wait_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def tempdir() -> str:
    return tempfile.mkdtemp(prefix="sotto-modem-")



class RealReceiver:
    """`sotto receive` as a subprocess on a free loopback port, with a temporary
    database in which `devices` (kid -> public key) are registered."""

    def __init__(self, directory: str, devices: dict[bytes, bytes], tls: TestPki | None = None) -> None:
        self.db = os.path.join(directory, "receiver.db")
        for kid, key in devices.items():
            self.cli("devices", "add", kid.decode(), "--pubkey", key.hex(), "--db", self.db)
        self.cli("centre", "init", "--db", self.db)
        self.centre_public_key = bytes.fromhex(self.cli("centre", "key", "--db", self.db).strip())
        secret = os.path.join(directory, "sms.secret")
        with open(os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(SMS_SECRET)
        cmd = [sys.executable, "-m", "sotto_cli", "receive", "--db", self.db, "--host", "127.0.0.1",
               "--port", "0", "-q", "--sms-secret-file", secret]
        if tls is not None:
            cmd += ["--tls-cert", tls.cert_file, "--tls-key", tls.key_file]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("listening on "):
            self.proc.kill()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"sotto receive did not start: {line!r} {err}")
        url = line.split()[2]
        self.port = int(url.rsplit(":", 1)[1].split("/")[0])
        self.scheme = url.split(":", 1)[0]

    @property
    def sms_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/v1/sms"

    def cli(self, *args: str) -> str:
        """Run a `sotto` command; return its standard output."""
        proc = subprocess.run([sys.executable, "-m", "sotto_cli", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"sotto {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_task(sched: Any, vm: Any, gen: Any, limit_ms: int) -> Any:
    """Run one driver generator as a scheduler task on the modem's clock and
    return its value; an exception inside it is raised here, in the test."""
    box: dict[str, Any] = {}

    def task() -> Any:
        try:
            box["value"] = yield from gen
        except Exception as e:  # handed to the test, not to the scheduler
            box["error"] = e

    sched.spawn("t", task)
    run_until(sched, vm, lambda: bool(box), limit_ms)
    sched.cancel("t")
    if "error" in box:
        raise box["error"]
    return box.get("value")
