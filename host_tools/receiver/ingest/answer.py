"""What a request gets back: a Result per frame and the Answer (docs/frames.md);
StorageUnavailable when nothing could be committed."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import cbor2

from host_tools.errors import SottoError

if TYPE_CHECKING:
    from host_tools.receiver.centre_key import CentreKey

ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"


class StorageUnavailable(SottoError, OSError):
    """The frames were not acknowledged (HTTP 503 storage-unavailable).

    maybe_stored False: nothing was stored (the transaction failed before its
    COMMIT and rolled back, or the request timed out while still queued and the
    writer will never take it). True: the request timed out while its frames
    were in a transaction that may yet commit, or their COMMIT itself failed
    (the connection may have been lost after the server committed); `detail`
    then says so instead of "nothing was stored" (a frame sent again is
    answered `duplicate` if it was)."""

    def __init__(self, message: str, *, maybe_stored: bool = False) -> None:
        super().__init__(message)
        self.maybe_stored = maybe_stored

    @property
    def detail(self) -> str:
        """The 503's detail: what happened and what is (or may be) stored."""
        return unavailable_detail(str(self), self.maybe_stored)


MAYBE_STORED = "may have been stored"   # in the detail of a 503 that cannot say "nothing was stored"


def unavailable_detail(why: str, maybe_stored: bool) -> str:
    """The detail of a 503 storage-unavailable (both HTTP paths and SMS say the same)."""
    if maybe_stored:
        return (f"{why}; the frames {MAYBE_STORED}: send them again "
                "(a frame already stored is answered duplicate)")
    return f"{why}; nothing was stored, send again later"


def answer_payload(req: bytes, payload: Mapping[str, Any]) -> dict[str, Any]:
    """What the centre signs: the answer's map with `req` (SHA-256 of the request body)."""
    return {"req": req, **payload}


def signed_answer(centre: CentreKey, request_body: bytes, payload: Mapping[str, Any]) -> bytes:
    """The centre's signed answer (COSE_Sign1, docs/frames.md) to a request whose body
    was `request_body`: `payload` with `req` added (answer_payload). The one place both
    HTTP paths (fastpath, http_handler) turn an answer into bytes; the writer's helpers
    sign the same answer_payload (ingest.writer._sign_answers)."""
    return centre.sign_answer(answer_payload(hashlib.sha256(request_body).digest(), payload))


class Result(NamedTuple):
    """The outcome for one frame of a request."""

    status: str
    device: bytes | None
    seq: int | None
    reason: str | None = None
    detail: str = ""
    alert_id: int | None = None

    def to_wire(self) -> dict[str, Any]:
        """The result map of docs/frames.md."""
        out: dict[str, Any] = {"status": self.status, "device": self.device, "seq": self.seq}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Answer:
    """The answer to one request: a result per frame, the receiver's clock and
    the sessions of the requesting device(s) the centre has closed."""

    results: list[Result]
    time: int
    closed: list[int] = field(default_factory=list)
    cmds: list[dict[str, Any]] = field(default_factory=list)   # the device's commands (docs/frames.md)
    rel: str | None = None   # the release the device is assigned (docs/ota.md)

    def to_wire(self) -> dict[str, Any]:
        """The response map; the HTTP answer is it with `req` added, signed by the
        centre (host_tools.receiver.centre_key, http_handler)."""
        out: dict[str, Any] = {"results": [r.to_wire() for r in self.results], "time": self.time}
        if self.closed:
            out["closed"] = list(self.closed)
        if self.cmds:
            out["cmds"] = list(self.cmds)
        if self.rel is not None:
            out["rel"] = self.rel
        return out

    def signed(self, centre: CentreKey, request_body: bytes) -> bytes:
        """The body of the HTTP answer: this answer signed by the centre, bound to the request."""
        return signed_answer(centre, request_body, self.to_wire())

    def to_cbor(self) -> bytes:
        """The response map, deterministically encoded and not signed (what the
        signed answer's payload holds, less `req`)."""
        return cbor2.dumps(self.to_wire(), canonical=True)
