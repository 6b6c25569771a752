"""Frame verification (and answer signing) in helper processes, so ingest can use more cores.

CPython runs one thread of Python at a time, and `cryptography`'s Ed25519
verify holds that lock: a receiver in one process verifies on one core. The
writer therefore hands part of each group of frames to a helper process (the
same host_tools.frames.verify_frame, fed the frame bytes and the registry's
public key) and verifies the rest itself meanwhile.

Fail closed: the helper only ever *reports* a verdict; if it dies, hangs or
answers nonsense, the writer verifies those frames itself, so no frame is ever
stored without a verdict. The helper exits when the receiver goes away (its end
of the pipe closes), including after SIGKILL.

Answers: after a group's COMMIT the writer may hand the answers' Sig_structures to a
helper (which holds the centre's key, sent down the pipe to this child of the
receiver); without a signature back (helper dead, slow, nonsense), the answer is
signed in the receiver as before. Either way it is built only after the COMMIT.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import signal
import threading
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("sotto.receiver")

# A task: (wire, now, max_future_s). A verdict: (ok, reason code or None, detail, parts):
# ok None when the helper knows no active key for the frame's device (not verified);
# parts: the decoded frame (host_tools.frames.frame.frame_parts), None when it does not
# decode (ok False, with the reason), so that the writer need not decode it again.
Task = tuple[bytes, float, int]
Verdict = "tuple[bool | None, str | None, str, tuple[Any, ...] | None]"


def _serve(conn: multiprocessing.connection.Connection) -> None:
    """The helper process: keep the registry's active keys, verify what comes down
    the pipe, until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the receiver decides when to stop
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from host_tools.frames import FrameError, decode_frame, verify_frame
    from host_tools.frames.frame import frame_parts

    keys: dict[bytes, Ed25519PublicKey] = {}
    centre: Ed25519PrivateKey | None = None
    while True:
        try:
            kind, body = conn.recv()
        except (EOFError, OSError):
            return
        if kind == "keys":
            keys = {kid: Ed25519PublicKey.from_public_bytes(raw) for kid, raw in body.items()}
            continue
        if kind == "centre":
            centre = Ed25519PrivateKey.from_private_bytes(body)
            continue
        out: list[Any] = []
        if kind == "sign":     # answers' Sig_structures (host_tools.receiver.centre_key.answer_to_sign)
            out = [centre.sign(m) for m in body] if centre is not None else [None] * len(body)
            try:
                conn.send(out)
            except (BrokenPipeError, OSError):
                return
            continue
        for wire, now, max_future_s in body:
            try:
                frame = decode_frame(wire)
            except FrameError as e:
                out.append((False, e.reason.value, e.detail, None))
                continue
            key = keys.get(frame.kid)
            if key is None:
                out.append((None, None, "", frame_parts(frame)))
                continue
            v = verify_frame(frame, key, now=now, max_future_s=max_future_s)
            out.append((v.ok, v.reason.value if v.reason is not None else None, v.detail, frame_parts(frame)))
        try:
            conn.send(out)
        except (BrokenPipeError, OSError):
            return


class VerifyHelper:
    """One helper process; `send` a batch, do other work, then `receive` its verdicts.

    receive returns None when the helper failed (the caller verifies the batch
    itself); the helper is then restarted for the next batch.
    """

    def __init__(self, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self._proc: Any = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._outstanding = 0
        self.lock = threading.Lock()   # held from a send to its receive by a thread sharing it
        self.failures = 0
        self.batches = 0
        self.keys_generation = -1   # the registry generation whose keys the helper holds
        self.has_centre_key = False   # it holds the centre's answer-signing key

    def start(self) -> bool:
        """Start the helper; False (logged) if the system will not let us. A
        (re)started helper knows no keys until send_keys."""
        ctx = multiprocessing.get_context("spawn")   # never fork a process full of threads and sockets
        try:
            parent, child = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=_serve, args=(child,), name="sotto-verify", daemon=True)
            proc.start()
            child.close()
        except OSError as e:
            log.warning("cannot start the verification helper (%s); verifying in one process", e)
            return False
        self._proc, self._conn = proc, parent
        self.keys_generation = -1
        self.has_centre_key = False
        return True

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def send_keys(self, keys: dict[bytes, bytes]) -> bool:
        """Give the helper the active public key of every device (after a registry change)."""
        return self._post(("keys", keys), expect=None)

    def send_centre_key(self, raw: bytes) -> bool:
        """Give the helper the centre's private key, so it can sign answers (`sign`)."""
        self.has_centre_key = self._post(("centre", raw), expect=None)
        return self.has_centre_key

    def sign(self, messages: Sequence[bytes]) -> bool:
        """Hand over answers' Sig_structures to sign; receive_signatures() gets them."""
        return self._post(("sign", list(messages)), expect=len(messages))

    def receive_signatures(self) -> list[bytes] | None:
        """The signatures of the batch handed over last, or None (the caller signs itself)."""
        out = self._receive()
        if out is None:
            return None
        if not all(isinstance(v, bytes) and len(v) == 64 for v in out):
            self._broken("it signed nothing, or something unexpected")
            return None
        return out

    def send(self, tasks: Sequence[Task]) -> bool:
        """Hand over a batch; False when the helper cannot take it."""
        return self._post(("verify", list(tasks)), expect=len(tasks))

    def _post(self, message: Any, expect: int | None) -> bool:
        if self._conn is None and not self.start():
            return False
        assert self._conn is not None
        try:
            self._conn.send(message)
        except (OSError, ValueError) as e:
            self._broken(f"cannot reach it: {e}")
            return False
        if expect is not None:
            self._outstanding = expect
            self.batches += 1
        return True

    def receive(self) -> list[Any] | None:
        """The verdicts of the batch sent last, or None if the helper failed."""
        out = self._receive()
        if out is None:
            return None
        if not all(isinstance(v, tuple) and len(v) == 4 and (v[0] is True or v[0] is False or v[0] is None)
                   and (v[3] is not None or v[0] is False) for v in out):
            self._broken("it answered something unexpected")
            return None
        return out

    def _receive(self) -> list[Any] | None:
        conn = self._conn
        if conn is None:
            return None
        try:
            if not conn.poll(self.timeout_s):
                self._broken(f"no answer in {self.timeout_s:.0f} s")
                return None
            out = conn.recv()
        except (EOFError, OSError) as e:
            self._broken(f"it went away ({e or type(e).__name__})")
            return None
        if not isinstance(out, list) or len(out) != self._outstanding:
            self._broken("it answered something unexpected")
            return None
        return out

    def _broken(self, why: str) -> None:
        self.failures += 1
        log.warning("verification helper failed (%s); verifying those frames here and restarting it", why)
        self.close()

    def close(self) -> None:
        """Stop the helper (it also stops by itself when the pipe closes)."""
        conn, proc = self._conn, self._proc
        self._conn = self._proc = None
        self.keys_generation = -1
        self.has_centre_key = False
        if conn is not None:
            conn.close()
        if proc is not None:
            proc.join(2)
            if proc.is_alive():
                proc.kill()
                proc.join(2)
