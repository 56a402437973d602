"""Safety rule 1 on a timer: PostgreSQL stops taking writes at the lease deadline, whatever the loop is doing.

``decide`` demotes a primary whose lease ran out, but only when the loop gets to call it: a cycle
stuck in etcd requests (cut from etcd right after a renewal: each request waits its timeout on
every member) can overrun the deadline by seconds, while etcd hands the key to a standby. This
thread needs no etcd and no SQL: it sleeps until the deadline of the lease the loop last renewed
(woken sooner by any change of it), compares the monotonic clock with it, and if PostgreSQL may
still be a primary it stops it at once and leaves it configured as a standby. The loop then finds it stopped
and decides as usual (take the key back if it is still ours, or follow whoever has it). It dies
with the agent: the fence, a process of its own that it feeds the same deadline, enforces it when
the agent cannot.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pgwarden.agent.guard import ErrorCounts, survive
from pgwarden.agent.lease import LeaderLease, monotonic
from pgwarden.model.deadline import holds
from pgwarden.postgres.controller import PostgresController

log = logging.getLogger(__name__)

# Every change of the deadline (a renewal, a lost lease, failsafe promises, the watchdog's limit)
# goes through LeaderLease.changed(), which wakes this thread at once (a listener); so between
# changes it sleeps until the deadline itself rather than looking every 50 ms (20 wake-ups a
# second on every leader, measured in docs/benchmarks.md). It still looks at least this often,
# with or without a deadline, in case a change ever bypasses the listeners.
_LONGEST_SLEEP = 1.0
# After a deadline passed with PostgreSQL not (yet) read-write: how often to look again, so a
# server that turns writable after its deadline is stopped within this.
_PAST_DEADLINE = 0.05


def sleep_for(deadline: float | None, now: float) -> float:
    """How long the guard may sleep before it must look again."""
    if deadline is None:
        return _LONGEST_SLEEP
    if not holds(deadline, now):
        return _PAST_DEADLINE
    return min(deadline - now, _LONGEST_SLEEP)


class LeaseGuard:
    def __init__(
        self,
        lease: LeaderLease,
        postgres: PostgresController,
        may_write: Callable[[], bool],
        clock: Callable[[], float] = monotonic,
        feed: Callable[[], None] = lambda: None,
        after_stop: Callable[[], None] = lambda: None,
        errors: ErrorCounts | None = None,
    ) -> None:
        self._errors = errors or ErrorCounts()
        self._lease = lease
        self._postgres = postgres
        self._may_write = may_write  # does the latest snapshot show PostgreSQL read-write?
        self._clock = clock
        # Hands the fence every deadline this guard enforces, so that one value feeds both: a
        # change that did not come through renewed() or forget() reaches the fence within a tick.
        self._feed = feed
        self._after_stop = after_stop  # PostgreSQL stopped: the watchdog has nothing left to guard
        self._stop = threading.Event()
        self._changed = threading.Event()  # the deadline may have moved, or stop() was called
        lease.listeners.append(self._changed.set)
        self._thread = threading.Thread(target=self._run, name="lease-guard", daemon=True)
        self.fired = 0
        self._sleep = _PAST_DEADLINE  # seconds until the next look (set by _look)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._changed.set()
        self._thread.join(2)

    def check(self) -> bool:
        """One look at the deadline; True when it stopped PostgreSQL."""
        # A fence that cannot be fed must not keep this guard from its own check.
        survive("lease-guard fence feed", self._errors, self._feed)
        deadline = self._lease.deadline()
        if deadline is None or holds(deadline, self._clock()) or not self._writable():
            return False
        log.warning("leader lease deadline passed without a renewal: stopping PostgreSQL immediately")
        try:
            self._postgres.stop("immediate")
            self._postgres.configure_standby(None, None)
        except Exception as exc:  # the loop's own demotion is the fallback; report and go on
            log.error("lease guard could not stop PostgreSQL: %s", exc)
            return False
        self._lease.forget()
        self._after_stop()
        self.fired += 1
        return True

    def _writable(self) -> bool:
        try:
            return self._may_write()
        except Exception:  # cannot tell: the safe answer for a lease that ran out is "it may write"
            log.exception("lease guard cannot tell whether PostgreSQL is read-write; assuming it is")
            return True

    def _run(self) -> None:
        # Above all the other threads this one must outlive any error: it is safety rule 1 when the
        # loop is stuck or failing.
        while not self._stop.is_set():
            self._changed.clear()  # before looking: a change from now on wakes the wait below
            self._sleep = _PAST_DEADLINE  # unless the look below says how long it may sleep
            survive("lease-guard", self._errors, self._look)
            self._changed.wait(self._sleep)

    def _look(self) -> None:
        self.check()
        self._sleep = sleep_for(self._lease.deadline(), self._clock())
