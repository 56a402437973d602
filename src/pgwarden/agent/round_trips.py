"""How long this agent's etcd requests took lately, measured where they matter (``GET /diagnostics``).

The timing arithmetic of docs/timing.md assumes round trips to etcd that are small beside the
lease's margin; ``pgwarden doctor`` checks that against what each agent measured: the loop's
reads of the cluster (every member, once a cycle) and the leader's lease renewals (every
0.25 s). Each kind keeps its last ``SIZE`` successful round trips, and counts them all: how many
renewals the lease keeper sent over an idle hour is a fact of its own (the keeper renews only
when the loop's renewal is ``renewal_interval`` old: 3 a second at ttl 4 with loop_wait 1 s).
"""

from __future__ import annotations

import collections
import statistics
import threading
from typing import Any

SIZE = 240  # a minute of renewals, four minutes of reads at loop_wait 1 s


class RoundTrips:
    def __init__(self, size: int = SIZE) -> None:
        self._seconds: collections.deque[float] = collections.deque(maxlen=size)
        self._lock = threading.Lock()
        self.total = 0  # every successful round trip since start, kept or not

    def add(self, seconds: float) -> None:
        with self._lock:
            self._seconds.append(max(0.0, seconds))
            self.total += 1

    def summary(self) -> dict[str, Any] | None:
        """``{"count", "p50_ms", "p99_ms", "max_ms"}`` of the kept round trips and ``"total"``,
        all of them since start; None when none."""
        with self._lock:
            kept = sorted(self._seconds)
            total = self.total
        if not kept:
            return None
        p99 = kept[min(len(kept) - 1, int(len(kept) * 0.99))]
        return {
            "count": len(kept),
            "p50_ms": round(statistics.median(kept) * 1000, 2),
            "p99_ms": round(p99 * 1000, 2),
            "max_ms": round(kept[-1] * 1000, 2),
            "total": total,
        }
