"""One persistent superuser session to the local instance, every use of it bounded in time.

The probe runs every ``loop_wait`` (and again after each cycle that acted). A new connection each
time cost a SCRAM exchange (PBKDF2 on both ends), a backend start and a timer thread for the
bound. Here one connection is kept, reconnected when it breaks or when the postmaster changed.
Each use is bounded twice, as one-shot sessions are (sql.py): statement_timeout stops a slow
statement in the server, and a deadline cuts the socket when the server does not answer at all
(a frozen backend, which statement_timeout cannot stop). The deadline is kept by one watcher
thread that lives as long as the session and sleeps while no use is under way.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg

from pgwarden.model.node import PostgresSettings
from pgwarden.postgres.commands import PostgresError
from pgwarden.postgres.settings import socket_dir
from pgwarden.postgres.sql import connect

T = TypeVar("T")
Connection = psycopg.Connection[tuple[object, ...]]


class _Lost(PostgresError):
    """The connection broke (the server ended it), as opposed to a statement failing."""


class _Deadline:
    """Shuts a socket down when an armed deadline passes; one thread for the session's life.

    The socket is a duplicate of the connection's, closed only under the lock, so a late firing
    can never touch a file descriptor that has been reused.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._sock: socket.socket | None = None
        self._at: float | None = None
        self._fired = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="pgwarden-sql-deadline", daemon=True)
        self._thread.start()

    def arm(self, sock: socket.socket, timeout: float) -> None:
        with self._cond:
            self._sock, self._at, self._fired = sock, time.monotonic() + timeout, False
            self._cond.notify()

    def disarm(self) -> bool:
        """Stop watching; True when the deadline had passed (the socket was cut)."""
        with self._cond:
            # No notify: the watcher wakes once at the old deadline, finds nothing armed, sleeps.
            self._sock, self._at = None, None
            return self._fired

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._sock, self._at = None, None
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if self._at is None:
                    self._cond.wait()
                    continue
                remaining = self._at - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._fired, self._at = True, None
                if self._sock is not None:
                    with contextlib.suppress(OSError):
                        self._sock.shutdown(socket.SHUT_RDWR)


class LocalSession:
    """The agent's session to its own PostgreSQL over the unix socket; safe to share between threads
    (uses are serialised)."""

    def __init__(self, settings: PostgresSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._sock: socket.socket | None = None  # a duplicate of the connection's, for the deadline
        self._postmaster: int | None = None  # the postmaster the connection was made to
        self._statement_timeout_ms = 0
        self._deadline: _Deadline | None = None

    def run(self, use: Callable[[Connection], T], timeout: float, postmaster: int | None = None) -> T:
        """``use(connection)`` within ``timeout`` seconds (the connection attempt has its own bound,
        as in sql.connect); any failure closes the connection (the next use reconnects) and raises
        PostgresError. ``postmaster``: the PID now serving the data directory, when known; a
        connection made to another one is replaced first.

        A kept connection the server has just ended (a restart, pg_terminate_backend) may still
        look idle; ``use`` then runs once more on a new one, so ``use`` must be idempotent.
        """
        with self._lock:
            ends = time.monotonic() + timeout
            conn, sock, kept = self._connection(timeout, postmaster)
            try:
                return self._bounded(conn, sock, use, timeout)
            except _Lost:
                if not kept:
                    raise
            conn, sock, _ = self._connection(timeout, postmaster)
            return self._bounded(conn, sock, use, max(0.1, ends - time.monotonic()))

    def _bounded(
        self, conn: Connection, sock: socket.socket, use: Callable[[Connection], T], timeout: float
    ) -> T:
        deadline = self._deadline
        assert deadline is not None
        deadline.arm(sock, timeout)
        try:
            self._set_statement_timeout(conn, timeout)
            return use(conn)
        except psycopg.Error as exc:
            cut = deadline.disarm()
            lost = conn.broken
            self._close()
            if cut:
                raise PostgresError(f"SQL did not answer within {timeout:g} s") from None
            raise (_Lost if lost else PostgresError)(f"SQL failed: {exc}") from exc
        except BaseException:
            deadline.disarm()
            self._close()
            raise
        finally:
            deadline.disarm()

    def close(self) -> None:
        """Close the connection and stop the watcher; a later use starts both again."""
        with self._lock:
            self._close()
            if self._deadline is not None:
                self._deadline.close()
                self._deadline = None

    def _connection(self, timeout: float, postmaster: int | None) -> tuple[Connection, socket.socket, bool]:
        """The connection, its socket's duplicate, and whether it was kept from an earlier use."""
        conn, sock = self._conn, self._sock
        if conn is not None and sock is not None:
            if not conn.closed and (postmaster is None or postmaster == self._postmaster) and _idle(conn):
                return conn, sock, True
            self._close()
        if self._deadline is None:
            self._deadline = _Deadline()
        conn = connect(
            host=socket_dir(self._settings),
            port=self._settings.listen.port,
            credentials=self._settings.superuser,
            timeout=timeout,
        )
        self._conn, self._postmaster = conn, postmaster
        self._sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
        self._statement_timeout_ms = _ms(timeout)  # what connect set
        return conn, self._sock, False

    def _set_statement_timeout(self, conn: Connection, timeout: float) -> None:
        wanted = _ms(timeout)
        if wanted != self._statement_timeout_ms:
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{wanted}ms",))
            self._statement_timeout_ms = wanted

    def _close(self) -> None:
        conn, sock = self._conn, self._sock
        self._conn, self._sock, self._postmaster = None, None, None
        if sock is not None:
            sock.close()
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def _ms(timeout: float) -> int:
    return max(1, int(timeout * 1000))


def _idle(conn: Connection) -> bool:
    """An idle session receives nothing; something to read means the server ended it (a stop, a
    crash, pg_terminate_backend) and the rest is its goodbye: reconnect rather than fail a use."""
    poller = select.poll()
    try:
        poller.register(conn.pgconn.socket, select.POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError, psycopg.Error):
        return False
