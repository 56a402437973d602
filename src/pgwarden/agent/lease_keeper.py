"""Keeps the leader lease fresh between the loop's cycles, so an etcd leader election costs no stop.

The lease deadline (safety rule 1) is the last successful renewal's *send* time + ttl - margin.
The loop renews once per cycle (every ``loop_wait``), so when etcd loses its leader the lease may
already be a cycle old, and the new etcd leader must be serving before the rest of the deadline
runs out. This thread renews the lease whenever its last renewal (its own or the loop's) is
``renewal_interval(ttl)`` old (ha/lease_timing.py: (ttl - margin) / 12, 0.25 s at ttl 4): at any
instant the lease is at most that old, and a renewal that fails is retried on every etcd member
at once (`Store.renew_lease`) until the deadline. docs/timing.md has the arithmetic.

It only keeps what the loop decided to keep: it renews the lease the loop last granted or
renewed, for at most one ttl past the loop's last renewal (`LeaderLease.keep_until`). A loop that
stops deciding to keep the key (it demoted, released, or is stuck) lets the lease run out as
before, and the lease guard stops PostgreSQL at the deadline. No etcd read, no SQL: the key
carries our name for as long as this lease lives, and only its holder ever deletes it.

Between renewals it sleeps until the next one is due, woken by every change of the lease (the
loop's renewal pushes the next one back; a new lease starts the count): a standby's keeper,
holding no lease, sleeps until the loop acquires one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pgwarden.agent.guard import ErrorCounts, survive
from pgwarden.agent.lease import LeaderLease, monotonic
from pgwarden.agent.round_trips import RoundTrips
from pgwarden.dcs.store import LeaseExpired, Store, StoreError
from pgwarden.ha.lease_timing import renewal_interval

log = logging.getLogger(__name__)

# After a renewal that did not succeed, the next try waits at least this long (the failed one
# already retried on every member until it had to give up): never a busy loop.
RETRY_WAIT = 0.25
# With no lease to keep, the thread looks again at least this often (every change of the lease
# wakes it at once anyway).
IDLE_WAIT = 5.0


class LeaseKeeper:
    def __init__(
        self,
        store: Store,
        lease: LeaderLease,
        clock: Callable[[], float] = monotonic,
        interval: Callable[[float], float] = renewal_interval,
        errors: ErrorCounts | None = None,
        round_trips: RoundTrips | None = None,
    ) -> None:
        """``interval``: how old the last renewal may get, for the lease's ttl (tests shorten it);
        ``round_trips``: where each successful renewal's round trip is noted (diagnostics)."""
        self._errors = errors or ErrorCounts()
        self._store = store
        self._lease = lease
        self._clock = clock
        self._interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by every change of the lease, and by stop()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
        self._failing_since: float | None = None  # first failed renewal of the current streak
        self._renewed = False  # whether the thread's last attempt renewed the lease
        self.renewals = 0
        self.round_trips = round_trips or RoundTrips()

    def start(self) -> None:
        self._lease.listeners.append(self._wake.set)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5)

    def wait_before_next(self, retry_at: float | None = None) -> float:
        """Seconds until a renewal is due: when the last one (the loop's or ours) is ``interval``
        old; IDLE_WAIT when there is no lease to keep (a lease change wakes the thread first);
        never before ``retry_at`` (RETRY_WAIT after an attempt that did not renew)."""
        keeping, last = self._lease.keeping(), self._lease.last_renewal()
        now = self._clock()
        if keeping is None or last is None or now >= keeping[1]:
            return IDLE_WAIT
        sent, ttl = last
        wait = sent + self._interval(ttl) - now
        if retry_at is not None:
            wait = max(wait, retry_at - now)
        return max(0.0, wait)

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
        # An attempt that did not renew (etcd failed, or the loop's renewal, sent later, landed
        # first) delays the next one by RETRY_WAIT, counted from that attempt: once, not for good.
        # (It used to be a flag kept until the next attempt, which it then postponed forever: one
        # lost race with the loop stopped the keeper for the rest of the agent's life.)
        retry_at: float | None = None
        while not self._stop.is_set():
            wait = self.wait_before_next(retry_at)
            if wait > 0:
                self._wake.wait(wait)
                self._wake.clear()  # then look again: the lease may have moved meanwhile
                continue
            self._renewed = False
            survive("lease-keeper", self._errors, self._attempt)
            retry_at = None if self._renewed else self._clock() + RETRY_WAIT

    def _attempt(self) -> None:
        self._renewed = self.renew_once()
