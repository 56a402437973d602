"""The REST API's server: binds ``api.listen`` (HTTPS when ``api.tls`` is set) and runs the event loop.

One thread runs a ``selectors`` event loop (``event_loop.py``) that answers health checks from
pre-rendered bytes and hands operations and documents to two small worker pools, so a switchover
call waiting for its new primary never delays an HAProxy check, and slow or numerous clients
cannot multiply threads. The HTTP protocol itself is in ``wire.py``, routing in ``routes.py``.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time

from pgwarden.agent.snapshot import SnapshotHolder
from pgwarden.api.connection import Limits
from pgwarden.api.contract import Inspection, Operations
from pgwarden.api.event_loop import EventLoop
from pgwarden.api.routes import RestApi
from pgwarden.api.tls_watch import CertificateWatch
from pgwarden.api.wire import MAX_BODY
from pgwarden.model import ApiSettings
from pgwarden.tls import server_context, server_files, tls_context

__all__ = ["MAX_BODY", "ApiServer", "exposure_warning", "limits_of", "tls_context"]

log = logging.getLogger(__name__)

# The kernel's queue of connections not yet accepted. The old default of 5 dropped SYNs when
# HAProxy instances and monitoring opened a burst of checks at once (the client then retries
# after a second); the loop accepts quickly, so this only absorbs bursts.
LISTEN_BACKLOG = 512
_STOP_WAIT = 5.0  # seconds stop() waits for the loop thread
# How long a busy api.listen is waited for before the agent gives up. The address is busy while the
# previous owner exits: Patroni's API during a migration (docs/migrating-from-patroni.md: start
# pgwarden, then stop Patroni, and the API changes hands within a poll), an agent restarting.
BIND_WAIT = 30.0
_BIND_POLL = 0.05


def exposure_warning(settings: ApiSettings) -> str | None:
    """What to warn about at every start when writes are open to the network (the config only
    allows that with api.allow_unauthenticated_writes: true)."""
    if not settings.open_writes:
        return None
    return (
        f"the REST API listens on {settings.listen} without api.auth: anyone who reaches it can "
        "switch over, restart or reconfigure the cluster (api.allow_unauthenticated_writes is true)"
    )


def limits_of(settings: ApiSettings) -> Limits:
    return Limits(
        max_connections=settings.max_connections,
        request_timeout=settings.request_timeout,
        idle_timeout=settings.idle_timeout,
    )


class ApiServer:
    """Listens on ``settings.listen`` once constructed; answers once started."""

    def __init__(
        self,
        settings: ApiSettings,
        snapshots: SnapshotHolder,
        operations: Operations,
        bind_wait: float = BIND_WAIT,
        inspection: Inspection | None = None,
    ) -> None:
        self.api = RestApi(settings, snapshots, operations, inspection)
        self._settings = settings
        # Reloads the certificate when its files change or on SIGHUP (``request_reload``); the
        # agent adds the certificate it presents to its peers.
        self.certificates = CertificateWatch()
        if settings.certfile:
            self.certificates.add("the REST API's certificate", server_files(settings), self._reload_tls)
        # Load the certificate before binding, so a bad file leaves no socket behind.
        tls = server_context(settings) if settings.certfile else None
        host = settings.listen.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = _bind((host, settings.listen.port), family, bind_wait)
        self._loop = EventLoop(self._listener, self.api, tls, limits_of(settings))
        self._thread = threading.Thread(target=self._loop.run, name="api", daemon=True)

    def _reload_tls(self) -> None:
        self._loop.use_tls(server_context(self._settings))

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def worker_threads(self) -> int:
        """Worker threads started so far; with the loop's own, every thread the API ever uses."""
        return self._loop.thread_count

    def start(self) -> None:
        warning = exposure_warning(self._settings)
        if warning:
            log.warning("%s", warning)
        self._thread.start()
        self.certificates.start()

    def request_reload(self) -> None:
        """Reload the certificates now (SIGHUP); returns at once, safe in a signal handler."""
        self.certificates.request()

    def stop(self) -> None:
        self.certificates.stop()
        if self._thread.is_alive():
            self._loop.stop()
            self._thread.join(_STOP_WAIT)
        self._listener.close()


def _bind(address: tuple[str, int], family: socket.AddressFamily, wait: float) -> socket.socket:
    """The listening socket; an address in use is tried again every 50 ms for ``wait`` seconds
    (said once in the log), any other failure raises at once."""
    deadline = time.monotonic() + wait
    said = False
    while True:
        try:
            return socket.create_server(address, family=family, backlog=LISTEN_BACKLOG)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                raise
            if not said:
                log.warning(
                    "the API's address %s:%d is in use; waiting up to %.0f s for its owner to exit "
                    "(a Patroni being stopped, an agent still exiting)",
                    *address,
                    wait,
                )
                said = True
            time.sleep(_BIND_POLL)
