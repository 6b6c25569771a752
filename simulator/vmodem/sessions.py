"""A CCH session as the virtual modem holds it, and what it notes of each TLS handshake."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field


@dataclass
class TlsOpen:
    """One TLS handshake the module made (VirtualModem.tls_log)."""

    host: str  # as AT+CCHOPEN named it
    sni: str | None  # the server name sent in the handshake (None: no SNI)
    authenticated: bool  # the server's chain was checked against the installed CA
    ok: bool  # the handshake succeeded


@dataclass(eq=False)  # hashable by identity: kept in _AWAITING
class _Conn:
    """A CCH session held by the module: "connecting" until its +CCHOPEN, "open",
    then "closed" (by the peer, the network or a failure) until AT+CCHCLOSE."""

    sock: socket.socket | None
    peer: str
    state: str = "connecting"
    tls: ssl.SSLObject | None = None
    sni: str | None = None  # the server name the handshake sent (None: no SNI)
    authenticated: bool = False  # the server's certificate was checked (authmode 1 or 2)
    incoming: ssl.MemoryBIO | None = None
    outgoing: ssl.MemoryBIO | None = None
    cache: bytearray = field(default_factory=bytearray)
    sent_plain: int = 0
    outstanding: bool = False
    expect_from: float = 0.0
    up_free: float = 0.0
    down_free: float = 0.0
    eof: bool = False
    recv_error: bool = False  # the receive side failed (not a clean close by the server)
    send_dead: bool = False  # a send failed: nothing more leaves (reported after a timeout)
    drop_response: bool = False
    proxy_bytes: int = 0  # a front end answers the request being sent with an error page this big
    last_io_ms: float = 0.0  # for the server's idle timeout
    answer: bytearray = field(default_factory=bytearray)  # plaintext since the last request
    request: bytearray = field(default_factory=bytearray)  # plaintext of the request being sent
    wait_s: float = 0.0  # not HTTP: how long to block for an answer once it is due (wall)
    sent_wall: float = 0.0  # wall time the last request's last byte went out
    ready_wall: float = 0.0  # wall time its answer was first seen waiting (stamp_ready)
    sent_ms: int = 0  # simulated time the last request's last byte went out
    answered: bool = False  # the whole answer to the request out is in (`pending`), not yet delivered
    pending: bytearray = field(default_factory=bytearray)  # plaintext read, not yet delivered
    down_raw: int = 0  # bytes read off the socket, not yet on the air log (TLS tickets, the answer)
