"""Keeps the leader lease fresh between the loop's cycles, so an etcd leader election costs no stop.

The lease deadline (safety rule 1) is the last successful renewal's *send* time + ttl - margin.
The loop renews once per cycle (every ``loop_wait``), so when etcd loses its leader the lease may
already be a cycle old, and the new etcd leader must be serving before the rest of the deadline
runs out. This thread renews every RENEW_EVERY seconds instead: at any instant the lease is at
most that old, and a renewal that fails is retried on every etcd member at once
(`Store.renew_lease`) until the deadline. docs/timing.md has the arithmetic.

It only keeps what the loop decided to keep: it renews the lease the loop last granted or
renewed, for at most one ttl past the loop's last renewal (`LeaderLease.keep_until`). A loop that
stops deciding to keep the key (it demoted, released, or is stuck) lets the lease run out as
before, and the lease guard stops PostgreSQL at the deadline. No etcd read, no SQL: the key
carries our name for as long as this lease lives, and only its holder ever deletes it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pgwarden.agent.guard import ErrorCounts, survive
from pgwarden.agent.lease import LeaderLease, monotonic
from pgwarden.agent.round_trips import RoundTrips
from pgwarden.dcs.store import LeaseExpired, Store, StoreError

log = logging.getLogger(__name__)

RENEW_EVERY = 0.25


class LeaseKeeper:
    def __init__(
        self,
        store: Store,
        lease: LeaderLease,
        clock: Callable[[], float] = monotonic,
        interval: float = RENEW_EVERY,
        errors: ErrorCounts | None = None,
        round_trips: RoundTrips | None = None,
    ) -> None:
        """``round_trips``: where each successful renewal's round trip is noted (diagnostics)."""
        self._errors = errors or ErrorCounts()
        self._store = store
        self._lease = lease
        self._clock = clock
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
        self._failing_since: float | None = None  # first failed renewal of the current streak
        self.renewals = 0
        self.round_trips = round_trips or RoundTrips()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def renew_once(self) -> bool:
        """One renewal, retried until it succeeds or may no longer; True when it renewed."""
        keeping = self._lease.keeping()
        if keeping is None or self._clock() >= keeping[1]:
            self._failing_since = None
            return False
        lease_id, until = keeping
        try:
            sent = self._store.renew_lease(lease_id, until)
        except LeaseExpired:
            return False  # past the deadline already; the loop sees the key gone and decides
        except StoreError as exc:
            if self._failing_since is None:
                self._failing_since = self._clock()
                log.warning("cannot renew the leader lease: %s; retrying until the deadline", exc)
            return False
        if self._failing_since is not None:
            failed_for = self._clock() - self._failing_since
            log.info("leader lease renewed again after %.1fs of etcd errors", failed_for)
            self._failing_since = None
        self.renewals += 1
        self.round_trips.add(self._clock() - sent)
        return self._lease.extended(lease_id, sent)

    def _run(self) -> None:
        # This thread must outlive any surprise (logged and counted): the loop's renewals go on.
        while not self._stop.wait(self._interval):
            survive("lease-keeper", self._errors, self.renew_once)
