"""Timing of the leader's right to write on the monotonic clock (safety rule 1).

etcd starts counting a lease's ttl when it *receives* a grant or keepalive, which is after we sent
it; so counting from the moment we sent it, minus a margin for stopping PostgreSQL, ends our right
to write strictly before etcd can hand the key to anyone else.

Two threads renew the lease: the loop (each cycle that decides to keep the key) and the lease
keeper (agent/lease_keeper.py, between cycles). Each success moves the deadline to the send time
of *that* request + ttl - margin, never backwards, and only for the lease it was sent for.

With failsafe_mode, a round of promises from every member (``POST /failsafe``, each promising for
ttl from when it *received* the request) extends that right by the same arithmetic, counted from
when the round was sent. ``deadline()`` is the one deadline everything enforces: the decide loop,
the lease guard, ``/primary`` and the fence process that outlives the agent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# The reserve before etcd could expire the lease lives with the rest of the lease's arithmetic.
from pgwarden.ha.lease_timing import margin


@dataclass
class LeaderLease:
    lease_id: int | None = None
    sent_at: float | None = None  # monotonic time the last successful grant/keepalive was sent
    ttl: float = 0.0
    # Until when the keeper may renew without the loop: one ttl past the loop's last renewal, so
    # a loop that stopped deciding to keep the key (stuck, or deciding otherwise) lets it go.
    keep_until: float | None = None
    # Monotonic time the last round of failsafe promises that every member confirmed was sent,
    # and the promise length it asked for.
    failsafe_sent_at: float | None = None
    failsafe_ttl: float = 0.0
    # Called after every change of deadline() by this object, before the caller goes on (and
    # outside the lock, so a listener may read deadline()): the fence must hold a new deadline
    # before PostgreSQL is made writable under it (agent/fence.py).
    listeners: list[Callable[[], None]] = field(default_factory=list, repr=False, compare=False)
    # While a watchdog device is armed: its last keepalive + its timeout - a reserve. The deadline
    # never passes it, so that PostgreSQL is stopped before the device resets the machine.
    watchdog_limit: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def renewed(self, lease_id: int, sent_at: float, ttl: float) -> None:
        """The loop granted or renewed ``lease_id`` with a request sent at ``sent_at``."""
        with self._lock:
            if lease_id == self.lease_id and self.sent_at is not None:
                sent_at = max(sent_at, self.sent_at)  # the keeper may have renewed since
                # A lease keeps the TTL it was granted with: after a live change of ttl, counting
                # the new one would put our deadline past etcd's expiry when ttl grew.
                ttl = min(ttl, self.ttl)
            self.lease_id, self.sent_at, self.ttl = lease_id, sent_at, ttl
            self.keep_until = sent_at + ttl
        self.changed()

    def extended(self, lease_id: int, sent_at: float) -> bool:
        """The keeper renewed ``lease_id`` with a request sent at ``sent_at``; False (and nothing
        changes) when the loop has let that lease go meanwhile, or a later renewal is known."""
        with self._lock:
            if lease_id != self.lease_id or self.sent_at is None or sent_at <= self.sent_at:
                return False
            self.sent_at = sent_at
        self.changed()
        return True

    def keeping(self) -> tuple[int, float] | None:
        """The lease the keeper should renew now and until when it may try, or None."""
        with self._lock:
            deadline = self._lease_deadline()
            if self.lease_id is None or deadline is None or self.keep_until is None:
                return None
            return self.lease_id, min(deadline, self.keep_until)

    def failsafe_confirmed(self, sent_at: float, ttl: float) -> None:
        """Every member promised, for ``ttl``, in a round sent at ``sent_at``."""
        with self._lock:
            self.failsafe_sent_at, self.failsafe_ttl = sent_at, ttl
        self.changed()

    def last_renewal(self) -> tuple[float, float] | None:
        """When the last successful renewal of the lease held was sent, and the lease's ttl."""
        with self._lock:
            if self.lease_id is None or self.sent_at is None:
                return None
            return self.sent_at, self.ttl

    def lease_lost(self) -> None:
        """etcd says the lease is gone; promises given to us still hold until they run out."""
        with self._lock:
            self.lease_id, self.sent_at, self.keep_until = None, None, None
        self.changed()

    def forget(self) -> None:
        """No right to write any more: the key released, or PostgreSQL stopped at the deadline."""
        with self._lock:
            self.lease_id, self.sent_at, self.keep_until = None, None, None
            self.failsafe_sent_at = None
        self.changed()

    def changed(self) -> None:
        """Tell the listeners that ``deadline()`` may have moved (whatever moved it)."""
        for listener in self.listeners:
            listener()

    def lease_deadline(self) -> float | None:
        """Until when the etcd lease is certainly ours."""
        with self._lock:
            return self._lease_deadline()

    def failsafe_deadline(self) -> float | None:
        """Until when every member's promise certainly holds."""
        with self._lock:
            if self.failsafe_sent_at is None:
                return None
            return self.failsafe_sent_at + self.failsafe_ttl - margin(self.failsafe_ttl)

    def deadline(self) -> float | None:
        """THE write deadline: PostgreSQL may run read-write until then, and not a moment longer."""
        lease, failsafe = self.lease_deadline(), self.failsafe_deadline()
        deadline = max([d for d in (lease, failsafe) if d is not None], default=None)
        if deadline is None or self.watchdog_limit is None:
            return deadline
        return min(deadline, self.watchdog_limit)

    def _lease_deadline(self) -> float | None:
        if self.sent_at is None:
            return None
        return self.sent_at + self.ttl - margin(self.ttl)


def monotonic() -> float:
    return time.monotonic()
