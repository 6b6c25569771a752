"""Deliver a device's queued frames for it, over its USB link (before its key changes).

    result = drain(session, "https://alerts.example.org", centre_public_key, ca_pem=PEM)
    settle_queue(session, QueuePolicy(drain=True), ...)   # refuse, drain or discard (provision, rotate-key)

Frames waiting in a device's queue are signed with its current key; once that
key is revoked (`sotto rotate-key`, `sotto provision --force`) the centre would
reject them as revoked-device. So before, a technician can deliver them: read
the queued frames over the device link (host_tools.provision_device), POST them
to the receiver exactly as the device would (docs/frames.md), check the
centre's signed answer (its key, the request it answers), and remove from the
device only the frames the centre acknowledged (accepted or duplicate). A
rejected frame stays, and the result says why.
"""

from __future__ import annotations

import http.client
import ipaddress
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from host_tools.errors import SottoError, UsageError
from host_tools.provision_device import DeviceSession, ProvisionError
from host_tools.receiver import audit
from host_tools.receiver.centre_key import AnswerNotTrusted, verify_answer

_KIND_NAMES = {1: "alert-start", 2: "location", 3: "audio", 4: "cancel", 5: "duress", 6: "end",
               7: "heartbeat", 8: "check-in", 9: "status", 10: "reply"}
BATCH_FRAMES = 16
BATCH_BYTES = 16 * 1024
TIMEOUT_S = 30.0


class DrainError(SottoError, OSError):
    """The queue could not be delivered (receiver unreachable, answer not the centre's)."""


class DeviceBusy(ProvisionError):
    """The device holds queued frames or a live alert: its key may not change now."""


@dataclass(frozen=True)
class QueuePolicy:
    """What to do with frames a device still holds when its key changes."""

    drain: bool = False                      # deliver them first (to `receiver` or the device's own)
    discard: bool = False                    # throw them away (audited)
    receiver: str | None = None              # --receiver URL for the drain
    ca_pem: str | None = None                # the CA to check that receiver's TLS with
    technician: str | None = None            # for the audit log (default $SOTTO_OPERATOR / login)


@dataclass
class DrainResult:
    sent: int = 0
    acked: int = 0
    posts: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)   # (seq, reason): still on the device
    left: int = 0


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (as sotto.config's own check: never a name that
    merely starts with 127.)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_receiver_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a receiver URL; UsageError for anything but https,
    or http to a loopback address."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(f"{url!r} is not a receiver URL: give https://HOST[:PORT]")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise UsageError(f"{url}: plain http only to a loopback address (127.0.0.1, localhost); location "
                         "and audio must not cross a network in clear: use https://")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port


def _post(url: str, body: bytes, ca_pem: str | None) -> tuple[int, bytes]:
    scheme, host, port = check_receiver_url(url)
    conn: http.client.HTTPConnection
    if scheme == "https":
        context = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
        conn = http.client.HTTPSConnection(host, port, timeout=TIMEOUT_S, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        conn.request("POST", "/v1/frames", body, {"Content-Type": "application/cbor-seq"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, ssl.SSLError, http.client.HTTPException) as e:
        raise DrainError(f"cannot deliver the device's queue to {url}: {e}") from None
    finally:
        conn.close()


def drain(session: DeviceSession, receiver_url: str, centre_public_key: bytes, *, ca_pem: str | None = None,
          batch_frames: int = BATCH_FRAMES, batch_bytes: int = BATCH_BYTES) -> DrainResult:
    """Deliver the device's queue (see module doc); stops at the first batch that
    delivered nothing. DrainError when the receiver cannot be reached or its
    answer is not the centre's (nothing is removed then)."""
    result = DrainResult()
    stuck: set[int] = set()
    while True:
        frames = [(s, w) for s, w in session.batch(batch_frames + len(stuck), batch_bytes) if s not in stuck]
        frames = frames[:batch_frames]
        if not frames:
            break
        body = b"".join(w for _, w in frames)
        status, answer = _post(receiver_url, body, ca_pem)
        result.posts += 1
        result.sent += len(frames)
        try:
            fields = verify_answer(centre_public_key, answer, body)
        except AnswerNotTrusted as e:
            raise DrainError(f"the answer from {receiver_url} (HTTP {status}) is not the centre's: {e}; "
                             "nothing was removed from the device") from None
        if status != 200 or not isinstance(fields.get("results"), list) or \
                len(fields["results"]) != len(frames):
            raise DrainError(f"{receiver_url} refused the device's frames (HTTP {status}: "
                             f"{fields.get('reason', '?')}); nothing was removed from the device")
        acked = []
        for (seq, _), r in zip(frames, fields["results"], strict=True):
            if isinstance(r, dict) and r.get("status") in ("accepted", "duplicate") and r.get("seq") == seq:
                acked.append(seq)
            else:
                stuck.add(seq)
                result.rejected.append((seq, str(r.get("reason") if isinstance(r, dict) else r)))
        if acked:
            session.ack(acked)
            result.acked += len(acked)
        elif all(s in stuck for s, _ in frames) and len(frames) < batch_frames:
            break
    result.left = session.waiting
    return result


# --------------------------------------------------------------------------
# Before a device's key changes.


def _kinds_text(kinds: dict[int, int]) -> str:
    return ", ".join(f"{n} {_KIND_NAMES.get(t, f'type {t}')}" for t, n in sorted(kinds.items()))


def settle_queue(target: DeviceSession, policy: QueuePolicy, centre: bytes | None, conn_for_audit: object,
                  kid: bytes, port: str, action: str) -> tuple[DrainResult | None, int]:
    """Refuse, drain or discard what the device still holds (see module doc). A
    drain checks the answers with the centre key the device holds (else `centre`)."""
    if not target.waiting and not target.alert_live:
        return None, 0
    what = (f"{target.waiting} frames waiting ({_kinds_text(target.kinds)})" if target.waiting
            else "no frames waiting")
    live = "; an alert is live on it" if target.alert_live else ""
    if policy.discard:
        technician = audit.operator_name(policy.technician)
        audit.record(conn_for_audit, technician, "discard-queue", device_id=kid,  # type: ignore[arg-type]
                     detail=f"{action} on {port} with --discard-queue: {what}{live}; all thrown away")
        return None, target.discard_queue()
    if not policy.drain:
        raise DeviceBusy(f"the device at {port} holds {what}{live}: its frames are signed with the key "
                         f"{action} would revoke. --drain delivers them to the centre first; --discard-queue "
                         "throws them away (recorded in the audit log)")
    url = policy.receiver or _device_receiver(target)
    check_receiver_url(url)
    ca = policy.ca_pem or _device_ca(target)
    key = _device_centre_key(target) or centre
    if key is None:
        raise UsageError("neither the device nor the registry holds a centre key to check the answers "
                         "with: give --centre-key-pub, or --discard-queue")
    result = drain(target, url, key, ca_pem=ca)
    if target.waiting or target.alert_live:
        why = "; ".join(f"seq {s}: {r}" for s, r in result.rejected[:5])
        live_now = "; the alert is still live: let the officer end it, or --discard-queue" \
            if target.alert_live else ""
        raise DeviceBusy(f"{result.acked} of the device's frames were delivered, {target.waiting} are left"
                         f"{' (' + why + ')' if why else ''}{live_now}: nothing was changed")
    return result, 0


def _device_receiver(target: DeviceSession) -> str:
    url = target.config.get("receiver")
    if not isinstance(url, str) or not url:
        raise UsageError("the device has no receiver configured: give --receiver URL for --drain")
    return url


def _device_centre_key(target: DeviceSession) -> bytes | None:
    value = target.config.get("centre_key")
    try:
        return bytes.fromhex(value) if isinstance(value, str) and len(value) == 64 else None
    except ValueError:
        return None


def _device_ca(target: DeviceSession) -> str | None:
    name = target.config.get("ca_cert")
    if not isinstance(name, str):
        return None
    raw = target.dev.read(f"/data/{name}")
    return raw.decode("ascii", "replace") if raw else None
