"""One client connection's state on the REST API's event loop, the server's limits, and answer bytes.

``event_loop.py`` moves each ``Connection`` through its ``Phase``s; what is here holds no socket
logic of its own.
"""

from __future__ import annotations

import enum
import socket
from dataclasses import dataclass

from pgwarden.api import wire
from pgwarden.api.routes import Response


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client may hold (api.max_connections, request_timeout, idle_timeout) and the
    worker pools' sizes (docs/rest-api.md, "Limits")."""

    max_connections: int = 256
    request_timeout: float = 5.0
    idle_timeout: float = 10.0
    # Worker threads and how many calls may wait for one before the answer is 503 "busy".
    operation_threads: int = 4
    operation_backlog: int = 16
    document_threads: int = 2
    document_backlog: int = 32


class Phase(enum.Enum):
    """Where a connection is in its life; only the first three may be evicted (EVICTABLE)."""

    HANDSHAKE = "TLS handshake"
    READING = "reading a request"
    WAITING = "waiting for a worker's answer"
    WRITING = "writing an answer"
    LINGER = "answered with a refusal; dropping what the client still sends"


EVICTABLE = (Phase.HANDSHAKE, Phase.READING, Phase.LINGER)


class After(enum.Enum):
    """What follows a written answer."""

    NEXT = "read the next request (keep-alive)"
    CLOSE = "close"
    LINGER = "stop writing, drop what the client still sends for a moment, then close"


class Connection:
    __slots__ = (
        "after", "client_cert", "deadline", "generation", "http", "interest", "out", "peer", "phase",
        "since", "sock",
    )  # fmt: skip

    def __init__(self, sock: socket.socket, peer: str, now: float, limits: Limits, tls: bool) -> None:
        self.sock = sock
        self.peer = peer
        self.http = wire.HttpConnection()
        self.phase = Phase.HANDSHAKE if tls else Phase.READING
        self.since = now  # when the current wait for the client began: for eviction
        self.deadline = now + limits.request_timeout
        self.out = memoryview(b"")
        self.after = After.NEXT
        self.generation = 0  # which request a worker's answer belongs to
        self.interest = 0
        self.client_cert = False  # a client certificate verified during the TLS handshake


def then(keep_alive: bool) -> After:
    """What follows an answer to a request that asked (or not) to keep its connection."""
    return After.NEXT if keep_alive else After.CLOSE


def render(response: Response, keep_alive: bool) -> bytes:
    """The whole HTTP answer for a ``Response`` from ``RestApi.answer``."""
    tail = wire.response_tail(response.content_type, response.body, keep_alive, response.headers)
    return wire.status_line(response.status) + wire.date_line() + tail
