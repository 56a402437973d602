"""Timing of the leader lease on the monotonic clock (safety rule 1).

etcd starts counting a lease's ttl when it *receives* a grant or keepalive, which is after we sent
it; so counting from the moment we sent it, minus a margin for stopping PostgreSQL, ends our right
to write strictly before etcd can hand the key to anyone else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Seconds kept in reserve before etcd could expire the lease: covers an immediate stop of
# PostgreSQL (~0.1-0.3 s) plus scheduling delay of the loop.
SAFETY_MARGIN = 1.0


@dataclass
class LeaderLease:
    lease_id: int | None = None
    sent_at: float | None = None  # monotonic time the last successful grant/keepalive was sent
    ttl: float = 0.0
    # Called after every renewal and release, before the caller goes on: the fence must hold a
    # new deadline before PostgreSQL is made writable under it (agent/fence.py).
    listeners: list[Callable[[], None]] = field(default_factory=list, repr=False, compare=False)
    # While a watchdog device is armed: its last keepalive + its timeout - a reserve. The deadline
    # never passes it, so that PostgreSQL is stopped before the device resets the machine.
    watchdog_limit: float | None = None

    def renewed(self, lease_id: int, sent_at: float, ttl: float) -> None:
        self.lease_id, self.sent_at, self.ttl = lease_id, sent_at, ttl
        self.changed()

    def forget(self) -> None:
        self.lease_id, self.sent_at = None, None
        self.changed()

    def changed(self) -> None:
        """Tell the listeners that ``deadline()`` may have moved (whatever moved it)."""
        for listener in self.listeners:
            listener()

    def deadline(self) -> float | None:
        if self.sent_at is None:
            return None
        deadline = self.sent_at + self.ttl - min(SAFETY_MARGIN, self.ttl / 4)
        return deadline if self.watchdog_limit is None else min(deadline, self.watchdog_limit)


def monotonic() -> float:
    return time.monotonic()
