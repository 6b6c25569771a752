"""The traffic the virtual modem watches on its sockets: where an HTTP message ends
(so that it knows when an answer is due and whole), when answers become readable
(stamp_ready, for fleets), and the error page of a front end (the proxy fault)."""

from __future__ import annotations

import select
import socket
import time
from typing import TYPE_CHECKING

from simulator.vmodem.sessions import _Conn

if TYPE_CHECKING:
    from simulator.vmodem.modem import VirtualModem


def _readable(sock: socket.socket, timeout_s: float) -> bool:
    """select() for one socket, with poll (select fails above fd 1024, which a fleet passes)."""
    p = select.poll()
    p.register(sock.fileno(), select.POLLIN)
    return bool(p.poll(int(timeout_s * 1000 + 0.999)))


_AWAITING: set[_Conn] = set()  # connections with a request out and no answer seen yet


def stamp_ready(modems: list[VirtualModem] | None = None) -> None:
    """Note the wall time at which answers become readable on connections that
    await one, without reading them. A simulator stepping many devices in turn
    calls this often, so a device's measured answer time is the receiver's,
    not the time the simulator took to get round to that device. (`modems` is
    accepted for clarity; every waiting connection is checked.)"""
    waiting = {}
    poller = select.poll()  # poll, not select: a fleet has more than 1024 sockets
    for conn in list(_AWAITING):
        if not conn.outstanding or conn.ready_wall or conn.state != "open" or conn.sock is None:
            _AWAITING.discard(conn)
            continue
        try:
            fd = conn.sock.fileno()
        except OSError:
            _AWAITING.discard(conn)
            continue
        waiting[fd] = conn
        poller.register(fd, select.POLLIN)
    if not waiting:
        return
    now = time.monotonic()
    for fd, _ev in poller.poll(0):
        waiting[fd].ready_wall = now
        _AWAITING.discard(waiting[fd])


def _http_complete(data: bytearray, start: bytes) -> bool | None:
    """True when `data` holds a whole HTTP message beginning with `start` (a
    request or a response, by its Content-Length), False when a part is still
    missing, None when it is not HTTP."""
    if not data.startswith(start):
        return None if len(data) >= len(start) or not start.startswith(bytes(data)) else False
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = 0
    for line in bytes(data[:end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return True
    return len(data) >= end + 4 + length


def _wants_close(data: bytearray) -> bool:
    """An HTTP message whose head says `Connection: close` (its sender closes after it)."""
    end = data.find(b"\r\n\r\n")
    for line in bytes(data[:max(0, end)]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"connection" and b"close" in value.lower():
            return True
    return False


def _error_page(size: int) -> bytes:
    """What a TLS-terminating front end (a proxy or a load balancer) answers when the
    centre behind it is down: HTTP 502 with an HTML page, `size` bytes in all."""
    head = "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n"
    body = b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1><p>"
    tail = b"</p></body></html>\n"
    fill = max(0, size - len(head.format(size)) - len(body) - len(tail))
    content = body + b"The upstream server did not answer. " * (fill // 37 + 1)
    content = content[:len(body) + fill] + tail
    return head.format(len(content)).encode() + content
