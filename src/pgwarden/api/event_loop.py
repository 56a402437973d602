"""The REST API's event loop: one thread, non-blocking sockets (``selectors``), every limit enforced.

Health checks and ``/patroni`` are answered on this thread from bytes rendered once per snapshot
(``HealthAnswers``), so they cost microseconds and never wait behind anything. Calls that may block
(operations, documents) run on two small bounded ``WorkerPool``s and come back here to be written.
A connection's life: [TLS handshake] -> reading a request -> answering (here, or waiting for a
worker) -> writing -> reading the next one (keep-alive) or closing; after a refusal the server
stops writing and drops what the client still sends for a moment ("lingering close"), so the
client reads the answer instead of a reset.

Limits (docs/rest-api.md): at most ``max_connections`` open connections; when full, a new
connection takes the place of the one that has waited longest for its request to arrive (a slow
or idle client), so a flood of slow clients cannot lock HAProxy's checks out. A request (TLS
handshake, line, headers and body) must arrive within ``request_timeout`` of its first byte (or
of the connection), an idle keep-alive connection is closed after ``idle_timeout``, an answer
must be taken by the client within ``request_timeout``. The thread count never depends on the
number of clients: this thread plus at most the two pools' threads.

Measured against asyncio (stdlib and uvloop) on the same minimal answer: selectors 7-9k req/s,
asyncio 3.5-6.7k, uvloop 9-11k, with asyncio's import costing 8 MB more RSS than selectors
(issue 16 wants the agent under 40 MB); uvloop would add a compiled dependency for ~15 %.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import selectors
import socket
import ssl
import time
from collections.abc import Callable

from pgwarden.api import wire
from pgwarden.api.connection import EVICTABLE, After, Connection, Limits, Phase, render, then
from pgwarden.api.facts import endpoint_of
from pgwarden.api.routes import READ_METHODS, WRITE_METHODS, Request, RestApi, Work
from pgwarden.api.workers import WorkerPool

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_SWEEP = 0.25  # seconds between deadline checks while connections are open
_LINGER = 2.0  # seconds a refused client may keep sending before the connection is dropped
_ACCEPT_BATCH = 64  # connections accepted per wake-up, so one burst cannot starve the others
_ACCEPT_PAUSE = 0.1  # seconds without accepting after the process ran out of file descriptors


class EventLoop:
    """Serves ``api`` on ``listener`` until ``stop``; ``run`` is the thread's body."""

    def __init__(
        self, listener: socket.socket, api: RestApi, tls: ssl.SSLContext | None, limits: Limits
    ) -> None:
        self._listener = listener
        self._api = api
        self._tls = tls
        self._limits = limits
        self._selector = selectors.DefaultSelector()
        self._connections: dict[int, Connection] = {}
        self._pools = {
            Work.OPERATION: WorkerPool("operations", limits.operation_threads, limits.operation_backlog),
            Work.DOCUMENT: WorkerPool("documents", limits.document_threads, limits.document_backlog),
        }
        # Workers hand answers back through this queue and wake the loop through the socket pair.
        self._done: collections.deque[tuple[Connection, int, bytes, bool]] = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = False
        self._ready: collections.deque[Connection] = collections.deque()  # to read on after an answer
        self._accept_paused_until = 0.0
        self._last_sweep = 0.0

    def use_tls(self, context: ssl.SSLContext) -> None:
        """Serve every connection accepted from now on with ``context`` (a reloaded certificate);
        connections already open keep theirs. One assignment: safe from another thread."""
        self._tls = context

    @property
    def thread_count(self) -> int:
        """Worker threads started so far (the loop's own thread not counted)."""
        return sum(pool.thread_count for pool in self._pools.values())

    def stop(self) -> None:
        self._stopping = True
        self._wake()

    def run(self) -> None:
        self._listener.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ, self._accept)
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._collect)
        try:
            while not self._stopping:
                try:
                    self._turn()
                except Exception:  # a bug outside any one connection: log it, keep serving
                    log.exception("the REST API's event loop hit an internal error; going on")
                    time.sleep(0.1)
        finally:
            self._close_all()

    def _turn(self) -> None:
        timeout = _SWEEP if self._connections or self._accept_paused_until else None
        for key, events in self._selector.select(timeout):
            handler: Callable[..., None] = key.data
            if key.fileobj is self._listener or key.fileobj is self._wake_r:
                handler()
                continue
            conn = self._connections.get(key.fd)
            if conn is not None:
                self._guarded(conn, handler, conn, events)
        while self._ready:
            conn = self._ready.popleft()
            if self._connections.get(conn.sock.fileno()) is conn:
                self._guarded(conn, self._advance, conn)
        now = time.monotonic()
        if now - self._last_sweep >= _SWEEP:
            self._last_sweep = now
            self._sweep(now)

    def _guarded(self, conn: Connection, step: Callable[..., None], *args: object) -> None:
        """Run one step of one connection; a bug costs that connection, never the loop."""
        try:
            step(*args)
        except Exception:
            log.exception("REST connection from %s failed; closing it", conn.peer)
            self._close(conn)

    # --- accepting -------------------------------------------------------------------------------
    def _accept(self) -> None:
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # The listener stays readable: without a pause this would spin at 100 % CPU.
                    log.warning("REST API cannot accept a connection: %s; pausing accepts", exc)
                    self._selector.unregister(self._listener)
                    self._accept_paused_until = time.monotonic() + _ACCEPT_PAUSE
                return  # ECONNABORTED and the like: the client is gone already
            self._admit(sock, str(address[0]))

    def _admit(self, sock: socket.socket, peer: str) -> None:
        now = time.monotonic()
        if len(self._connections) >= self._limits.max_connections and not self._evict():
            sock.close()  # every connection is being answered: the newest waits in no queue
            return
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError) as exc:
            log.debug("REST connection from %s dropped at once: %s", peer, exc)
            sock.close()
            return
        conn = Connection(sock, peer, now, self._limits, self._tls is not None)
        self._connections[sock.fileno()] = conn
        if conn.phase is Phase.HANDSHAKE:
            self._watch(conn, selectors.EVENT_READ)
            self._handshake(conn)
        else:
            # A health check's request has usually arrived with the connection: read it now, and
            # register with the selector only if it has not (an answered check then costs no
            # epoll_ctl and no wake-up of its own: ~12 checks a second per agent from HAProxy).
            self._guarded(conn, self._read, conn)

    def _evict(self) -> bool:
        """Close the connection that has waited longest for its client; False if none may go."""
        waiting = [c for c in self._connections.values() if c.phase in EVICTABLE]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda c: c.since)
        log.debug("REST API full (%d connections): closing %s's", len(self._connections), oldest.peer)
        self._close(oldest)
        return True

    # --- reading -------------------------------------------------------------------------------
    def _on_event(self, conn: Connection, events: int) -> None:
        if conn.phase is Phase.HANDSHAKE:
            self._handshake(conn)
        elif conn.phase is Phase.WRITING:
            self._flush(conn)
        elif conn.phase is Phase.LINGER:
            self._linger(conn)
        elif conn.phase is Phase.READING:
            self._read(conn)

    def _handshake(self, conn: Connection) -> None:
        sock = conn.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(conn, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._watch(conn, selectors.EVENT_WRITE)
            return
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            log.debug("TLS handshake with %s failed: %s", conn.peer, exc)
            self._close(conn)
            return
        conn.phase = Phase.READING
        if sock.context.verify_mode is not ssl.CERT_NONE:
            # A certificate presented was verified by the handshake (CERT_OPTIONAL fails it
            # otherwise), so any certificate here is a verified one (access.py needs to know).
            conn.client_cert = bool(sock.getpeercert(binary_form=True))  # DER: no decoding
        self._watch(conn, selectors.EVENT_READ)
        self._read(conn)  # the client's request may have come with the handshake's last flight

    def _read(self, conn: Connection) -> None:
        was_idle = conn.http.idle
        while True:
            try:
                data = conn.sock.recv(_CHUNK)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                self._watch(conn, selectors.EVENT_READ)
                break
            except ssl.SSLWantWriteError:
                self._watch(conn, selectors.EVENT_WRITE)  # TLS renegotiation; rare
                break
            except (OSError, ValueError):
                self._close(conn)
                return
            conn.http.receive(data)
            if not data or not isinstance(conn.sock, ssl.SSLSocket) or not conn.sock.pending():
                break
        if was_idle and not conn.http.idle:  # the first byte of a request: its deadline starts
            conn.deadline = time.monotonic() + self._limits.request_timeout
        self._advance(conn)

    def _advance(self, conn: Connection) -> None:
        """Act on what the connection has read: wait for more, answer, refuse or close."""
        while conn.phase is Phase.READING:
            event = conn.http.next_event()
            if event is wire.Need.DATA:
                self._watch(conn, selectors.EVENT_READ)  # the rest of the request, when it comes
                return
            if event is wire.Need.CLOSE:
                self._close(conn)
                return
            if isinstance(event, wire.Interim):
                self._send_now(conn, event.data)
            elif isinstance(event, wire.Refuse):
                self._write(conn, event.data, After.NEXT if event.keep_alive else After.LINGER)
                return
            elif isinstance(event, wire.Ready):
                self._answer(conn, event)
                return

    # --- answering -----------------------------------------------------------------------------
    def _answer(self, conn: Connection, ready: wire.Ready) -> None:
        head = ready.head
        api = self._api
        if head.method in READ_METHODS and api.from_snapshot(head.method, endpoint_of(head.target)):
            data = api.health.wire(head.method, head.target, head.keep_alive, time.monotonic())
            self._write(conn, data, then(head.keep_alive))
            return
        request = Request(
            head.method, head.target, ready.body, head.authorization, head.content_type,
            if_match=head.if_match, peer=conn.peer, client_cert=conn.client_cert,
        )  # fmt: skip
        work = api.work_of(request)
        if work is None:
            self._write(conn, render(api.answer(request), head.keep_alive), then(head.keep_alive))
            return
        conn.generation += 1
        generation = conn.generation
        conn.phase = Phase.WAITING
        self._unwatch(conn)  # read nothing more until answered: pipelined bytes stay bounded

        def job() -> None:
            response = api.answer(request)
            if request.method in WRITE_METHODS:
                log.info("%s %s from %s: %d", request.method, request.target, conn.peer, response.status)
            self._done.append((conn, generation, render(response, head.keep_alive), head.keep_alive))
            self._wake()

        if not self._pools[work].submit(job):
            busy = wire.error_bytes(503, f"the REST API's {work.value} workers are all busy; retry shortly")
            self._write(conn, busy, After.CLOSE)

    def _collect(self) -> None:
        """Answers from the workers: write each to its connection, if it is still open."""
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        while self._done:
            conn, generation, data, keep_alive = self._done.popleft()
            if conn.generation == generation and self._connections.get(conn.sock.fileno()) is conn:
                self._write(conn, data, then(keep_alive))

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # already full of wake-ups: the loop will look
        except OSError:
            pass  # closed: the loop is gone

    # --- writing -------------------------------------------------------------------------------
    def _write(self, conn: Connection, data: bytes, next_step: After) -> None:
        conn.phase = Phase.WRITING
        conn.out = memoryview(data)
        conn.after = next_step
        conn.deadline = time.monotonic() + self._limits.request_timeout
        self._flush(conn)

    def _send_now(self, conn: Connection, data: bytes) -> None:
        """A few bytes (100 Continue) that fit any socket buffer; lost only if the client is gone."""
        with contextlib.suppress(OSError, ValueError):
            conn.sock.send(data)

    def _flush(self, conn: Connection) -> None:
        try:
            while conn.out:
                sent = conn.sock.send(conn.out)
                conn.out = conn.out[sent:]
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
            self._watch(conn, selectors.EVENT_WRITE)
            return
        except ssl.SSLWantReadError:
            self._watch(conn, selectors.EVENT_READ)
            return
        except (OSError, ValueError) as exc:
            log.debug("cannot answer %s: %s", conn.peer, exc)
            self._close(conn)
            return
        self._written(conn)

    def _written(self, conn: Connection) -> None:
        now = time.monotonic()
        if conn.after is After.NEXT:
            conn.http.answered(keep_alive=True)
            conn.phase = Phase.READING
            conn.since = now
            conn.deadline = now + self._limits.idle_timeout
            self._watch(conn, selectors.EVENT_READ)
            self._ready.append(conn)  # a pipelined request may be buffered already
            return
        conn.http.answered(keep_alive=False)
        if conn.after is After.LINGER:
            # A refusal before the whole request was read: let the client read it before the
            # close, instead of a reset (for unread bytes) that may destroy it on the way.
            try:
                conn.sock.shutdown(socket.SHUT_WR)
            except (OSError, ValueError):
                self._close(conn)
                return
            conn.phase = Phase.LINGER
            conn.since = now
            conn.deadline = now + _LINGER
            self._watch(conn, selectors.EVENT_READ)
            return
        self._close(conn)

    def _linger(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            return
        except (OSError, ValueError):
            data = b""
        if not data:
            self._close(conn)

    # --- bookkeeping -------------------------------------------------------------------------------
    def _watch(self, conn: Connection, events: int) -> None:
        if conn.interest == events:
            return
        if conn.interest:
            self._selector.modify(conn.sock, events, self._on_event)
        else:
            self._selector.register(conn.sock, events, self._on_event)
        conn.interest = events

    def _unwatch(self, conn: Connection) -> None:
        if conn.interest:
            self._selector.unregister(conn.sock)
            conn.interest = 0

    def _close(self, conn: Connection) -> None:
        fd = conn.sock.fileno()
        if fd < 0 or self._connections.get(fd) is not conn:
            return
        self._unwatch(conn)
        del self._connections[fd]
        conn.generation += 1  # a worker's late answer finds nobody
        with contextlib.suppress(OSError):
            conn.sock.close()

    def _sweep(self, now: float) -> None:
        if self._accept_paused_until and now >= self._accept_paused_until:
            self._accept_paused_until = 0.0
            self._selector.register(self._listener, selectors.EVENT_READ, self._accept)
        late = [c for c in self._connections.values() if c.deadline <= now and c.phase is not Phase.WAITING]
        for conn in late:
            if conn.phase is Phase.READING and not conn.http.idle:
                log.debug("request from %s incomplete after %.1fs", conn.peer, self._limits.request_timeout)
                self._send_now(conn, wire.error_bytes(408, "the request did not arrive in time"))
            self._close(conn)

    def _close_all(self) -> None:
        for pool in self._pools.values():
            pool.close()
        for conn in list(self._connections.values()):
            self._close(conn)
        for sock in (self._wake_r, self._wake_w):
            sock.close()
        self._selector.close()
