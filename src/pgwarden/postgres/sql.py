"""SQL sessions with hard time bounds, to the local instance over its unix socket or to a peer."""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
from collections.abc import Iterator

import psycopg

from pgwarden.model.node import Credentials, PostgresSettings
from pgwarden.postgres.commands import PostgresError
from pgwarden.postgres.settings import socket_dir

APPLICATION_NAME = "pgwarden"
# libpq (and psycopg) never wait less than 2 s for a connection.
MIN_CONNECT_TIMEOUT = 2


class _Watchdog:
    """Cuts the connection's socket when the deadline passes.

    statement_timeout cannot stop a server that does not run (SIGSTOP, a hung disk, a partition),
    so the client enforces the bound itself. The socket is duplicated up front so a late firing
    can never touch a file descriptor that has been reused.
    """

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]], timeout: float) -> None:
        self._sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
        self._lock = threading.Lock()
        self._armed = True
        self.fired = False
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._armed:
                self.fired = True
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)

    def disarm(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._armed = False
            self._sock.close()


def connect(
    *,
    host: str,
    port: int,
    credentials: Credentials,
    timeout: float,
    dbname: str = "postgres",
) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection whose server-side statement_timeout is ``timeout``."""
    try:
        return psycopg.connect(
            host=host,
            port=port,
            user=credentials.username,
            password=credentials.password or "",
            dbname=dbname,
            application_name=APPLICATION_NAME,
            connect_timeout=max(MIN_CONNECT_TIMEOUT, math.ceil(timeout)),
            options=f"-c statement_timeout={max(1, int(timeout * 1000))}",
            autocommit=True,
        )
    except psycopg.Error as exc:
        raise PostgresError(f"cannot connect to PostgreSQL at {host}:{port}: {exc}") from None


@contextlib.contextmanager
def bounded(
    conn: psycopg.Connection[tuple[object, ...]], timeout: float
) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """Use ``conn`` for at most ``timeout`` seconds, then close it; errors become PostgresError."""
    watchdog = _Watchdog(conn, timeout)
    try:
        yield conn
    except psycopg.Error as exc:
        if watchdog.fired:
            raise PostgresError(f"SQL did not answer within {timeout:g} s") from None
        raise PostgresError(f"SQL failed: {exc}") from exc
    finally:
        watchdog.disarm()
        conn.close()


@contextlib.contextmanager
def local_session(
    settings: PostgresSettings, timeout: float
) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A superuser session to the local instance over the unix socket, bounded by ``timeout``."""
    conn = connect(
        host=socket_dir(settings),
        port=settings.listen.port,
        credentials=settings.superuser,
        timeout=timeout,
    )
    with bounded(conn, timeout) as bounded_conn:
        yield bounded_conn


@contextlib.contextmanager
def remote_session(
    settings: PostgresSettings, host: str, port: int, timeout: float
) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A superuser session to a peer over TCP, bounded by ``timeout``."""
    conn = connect(host=host, port=port, credentials=settings.superuser, timeout=timeout)
    with bounded(conn, timeout) as bounded_conn:
        yield bounded_conn
