"""A virtual SMS centre: takes SMS-SUBMIT PDUs from virtual modems and delivers
their 8-bit user data to the receiver's SMS gateway webhook (POST /v1/sms).

The PDU is decoded here independently of the firmware's encoder (3GPP TS 23.040
§9.2.2.2), so a test that goes firmware -> virtual modem -> this centre checks
the firmware's PDUs against a second implementation. Delivery happens on the
simulator's clock: `submit()` stamps a message, `advance(now_ms)` posts the ones
that are due (a real HTTP request to the real receiver on loopback), signed
as a gateway signs its posts (X-Sotto-Timestamp, X-Sotto-Signature: the HMAC
of host_tools.receiver.sms_auth over the wall-clock time of the post, since
the receiver judges it by its own clock) when the centre has a `secret`.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from host_tools.receiver.sms_auth import HEADER_SIGNATURE, HEADER_TIMESTAMP, signature_for
from simulator.clock import HostStall


class PduDecodeError(ValueError):
    """The bytes are not an SMS-SUBMIT PDU this centre can read."""


@dataclass
class Submit:
    """The fields of one SMS-SUBMIT TPDU."""

    number: str
    dcs: int
    user_data: bytes
    validity: int | None
    mr: int


def _digits(raw: bytes, count: int) -> str:
    alphabet = "0123456789*#abc"
    out = []
    for i in range(count):
        octet = raw[i // 2]
        nibble = octet >> 4 if i % 2 else octet & 0x0F
        if nibble > 14:
            raise PduDecodeError("bad semi-octet in address")
        out.append(alphabet[nibble])
    return "".join(out)


def decode_submit(tpdu: bytes) -> Submit:
    """Decode an SMS-SUBMIT TPDU (without the SMSC part)."""
    try:
        first = tpdu[0]
        if first & 0x03 != 0x01:
            raise PduDecodeError(f"TP-MTI {first & 3} is not SMS-SUBMIT")
        if first & 0x40:
            raise PduDecodeError("user data headers (concatenated SMS) are not supported")
        mr = tpdu[1]
        ndigits, toa = tpdu[2], tpdu[3]
        nbytes = (ndigits + 1) // 2
        number = _digits(tpdu[4:4 + nbytes], ndigits)
        if toa & 0x70 == 0x10:
            number = "+" + number
        i = 4 + nbytes
        dcs = tpdu[i + 1]
        i += 2
        vpf = (first >> 3) & 3
        validity = None
        if vpf == 2:
            validity = tpdu[i]
            i += 1
        elif vpf in (1, 3):
            i += 7
        udl = tpdu[i]
        ud = bytes(tpdu[i + 1:])
    except IndexError:
        raise PduDecodeError("PDU too short") from None
    eight_bit = (dcs & 0xCC) == 0x04 or (dcs & 0xF4) == 0xF4
    if not eight_bit:
        raise PduDecodeError(f"TP-DCS 0x{dcs:02X} is not 8-bit data")
    if len(ud) != udl:
        raise PduDecodeError(f"TP-UDL says {udl} octets, {len(ud)} present")
    return Submit(number, dcs, ud, validity, mr)


@dataclass
class SmsRecord:
    """One message through the centre."""

    submitted_ms: int
    sender: str
    number: str
    payload: bytes
    due_ms: int
    delivered_ms: int | None = None
    http_status: int | None = None
    answer: bytes = b""
    error: str = ""


@dataclass
class VirtualSmsc:
    """Delivers submitted messages to `webhook_url` after `delay_ms` of sim time.

    webhook_url None keeps messages (for tests that only look at the records).
    `epoch_s` is the wall-clock time the simulator's t = 0 stands for.
    """

    webhook_url: str | None = None
    delay_ms: int = 3000
    epoch_s: int = 1_790_000_000
    encoding: str = "hex"  # the webhook's payload encoding: "hex" or "base64"
    ca_pem: str | None = None  # trust this CA for an https webhook
    records: list[SmsRecord] = field(default_factory=list)
    secret: bytes | None = field(default=None, repr=False)  # the gateway's HMAC secret; None: unsigned
    wait_s: float = 120.0  # wall time a webhook post may take before the run stops (HostStall): a safety net

    def submit(self, now_ms: int, sender: str, tpdu: bytes) -> SmsRecord:
        """Accept one TPDU from `sender`; raises PduDecodeError for a bad PDU."""
        sms = decode_submit(tpdu)
        record = SmsRecord(now_ms, sender, sms.number, sms.user_data, now_ms + self.delay_ms)
        self.records.append(record)
        return record

    def next_event_ms(self) -> int | None:
        due = [r.due_ms for r in self.records if r.delivered_ms is None and not r.error]
        return min(due) if due and self.webhook_url else None

    def advance(self, now_ms: int) -> None:
        """POST every message that is due to the webhook (a real HTTP request)."""
        if not self.webhook_url:
            return
        for r in self.records:
            if r.delivered_ms is None and not r.error and r.due_ms <= now_ms:
                self._deliver(r, now_ms)

    def _deliver(self, r: SmsRecord, now_ms: int) -> None:
        import base64

        payload = r.payload.hex() if self.encoding == "hex" else base64.b64encode(r.payload).decode()
        body = json.dumps({"sender": r.sender, "time": self.epoch_s + r.due_ms // 1000,
                           "payload": payload}).encode()
        headers = {"Content-Type": "application/json"}
        if self.secret is not None:
            stamp = str(int(time.time()))
            headers[HEADER_TIMESTAMP] = stamp
            headers[HEADER_SIGNATURE] = signature_for(self.secret, stamp, body)
        req = urllib.request.Request(str(self.webhook_url), data=body, method="POST", headers=headers)
        context = None
        if self.ca_pem is not None:
            import ssl

            context = ssl.create_default_context(cadata=self.ca_pem)
        try:  # the simulation stands still meanwhile: however slow the receiver, the same outcome
            with urllib.request.urlopen(req, timeout=self.wait_s, context=context) as resp:
                r.http_status = resp.status
                r.answer = resp.read()
        except urllib.error.HTTPError as e:
            r.http_status = e.code
            r.answer = e.read()
        except OSError as e:
            if isinstance(e, TimeoutError) or isinstance(getattr(e, "reason", None), TimeoutError):
                raise HostStall(f"the SMS centre waited {self.wait_s:g} s of wall time for the webhook "
                                f"{self.webhook_url} at {now_ms} ms (simulated) and gave up: the receiver is "
                                "stuck or this machine is overloaded; the run stops rather than let the "
                                "wall clock decide whether the SMS arrived") from None
            r.error = f"webhook unreachable: {e}"
        r.delivered_ms = now_ms
