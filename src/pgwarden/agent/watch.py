"""Wakes the loop the moment a key that matters changes in etcd (a vanished leader must not wait a tick)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pgwarden.agent.guard import ErrorCounts, survive
from pgwarden.dcs.keys import ClusterKeys
from pgwarden.dcs.store import Store, StoreError

log = logging.getLogger(__name__)

# How long one watch request may stay open; bounded so the thread notices a stop request.
WATCH_TIMEOUT = 5.0


class ClusterWatch:
    def __init__(
        self,
        store: Store,
        keys: ClusterKeys,
        wake: threading.Event,
        revision: Callable[[], int],
        errors: ErrorCounts | None = None,
    ):
        self._store = store
        self._errors = errors or ErrorCounts()
        self._start = 0
        self._keys = keys
        self._wake = wake
        self._revision = revision
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watch", daemon=True)
        self._urgent = frozenset({keys.leader, keys.initialize, keys.switchover, keys.config, keys.sync})

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not survive("watch", self._errors, self._once):
                self._stop.wait(0.5)

    def _once(self) -> None:
        self._start = max(self._start, self._revision() + 1)
        if self._start <= 1:
            self._stop.wait(0.2)  # no view read yet
            return
        try:
            events = self._store.watch(self._keys.root, self._start, WATCH_TIMEOUT)
        except StoreError as exc:
            log.debug("watch failed: %s", exc)
            self._stop.wait(0.5)
            return
        if events:
            self._start = max(e.mod_revision for e in events) + 1
            if any(e.key in self._urgent for e in events):
                self._wake.set()
