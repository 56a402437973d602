"""Timing of the leader's right to write on the monotonic clock (safety rule 1).

etcd starts counting a lease's ttl when it *receives* a grant or keepalive, which is after we sent
it; so counting from the moment we sent it, minus a margin for stopping PostgreSQL, ends our right
to write strictly before etcd can hand the key to anyone else.

With failsafe_mode, a round of promises from every member (``POST /failsafe``, each promising for
ttl from when it *received* the request) extends that right by the same arithmetic, counted from
when the round was sent. ``deadline()`` is the one deadline everything enforces: the decide loop,
the lease guard, ``/primary`` and the fence process that outlives the agent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

# Seconds kept in reserve before etcd could expire the lease: covers an immediate stop of
# PostgreSQL (~0.1-0.3 s) plus scheduling delay of the loop.
SAFETY_MARGIN = 1.0


def margin(ttl: float) -> float:
    return min(SAFETY_MARGIN, ttl / 4)


@dataclass
class LeaderLease:
    lease_id: int | None = None
    sent_at: float | None = None  # monotonic time the last successful grant/keepalive was sent
    ttl: float = 0.0
    # Monotonic time the last round of failsafe promises that every member confirmed was sent,
    # and the promise length it asked for.
    failsafe_sent_at: float | None = None
    failsafe_ttl: float = 0.0

    def renewed(self, lease_id: int, sent_at: float, ttl: float) -> None:
        self.lease_id, self.sent_at, self.ttl = lease_id, sent_at, ttl

    def failsafe_confirmed(self, sent_at: float, ttl: float) -> None:
        self.failsafe_sent_at, self.failsafe_ttl = sent_at, ttl

    def lease_lost(self) -> None:
        """etcd says the lease is gone; promises given to us still hold until they run out."""
        self.lease_id, self.sent_at = None, None

    def forget(self) -> None:
        """No right to write any more: the key released, or PostgreSQL stopped at the deadline."""
        self.lease_lost()
        self.failsafe_sent_at = None

    def lease_deadline(self) -> float | None:
        """Until when the etcd lease is certainly ours."""
        if self.sent_at is None:
            return None
        return self.sent_at + self.ttl - margin(self.ttl)

    def failsafe_deadline(self) -> float | None:
        """Until when every member's promise certainly holds."""
        if self.failsafe_sent_at is None:
            return None
        return self.failsafe_sent_at + self.failsafe_ttl - margin(self.failsafe_ttl)

    def deadline(self) -> float | None:
        """THE write deadline: PostgreSQL may run read-write until then, and not a moment longer."""
        known = [d for d in (self.lease_deadline(), self.failsafe_deadline()) if d is not None]
        return max(known, default=None)


def monotonic() -> float:
    return time.monotonic()
