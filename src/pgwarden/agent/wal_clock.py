"""When the primary's WAL passed each position: how many seconds of writes a standby lacks.

A standby's lag in bytes says how much WAL a failover would lose, not how old those writes are:
on an idle primary 100 bytes may be an hour of work, under load 100 MB may be a second. So the
primary's agent notes its WAL position after each cycle (only when it moved, in a bounded ring)
and can tell, for any position a standby holds, since when the primary has had WAL beyond it.
The resolution is one loop cycle (``loop_wait``): the answer is the age of the oldest write the
standby is known to lack, give or take a cycle.
"""

from __future__ import annotations

import bisect
import collections
import threading
from dataclasses import dataclass

from pgwarden.model import Lsn

# At one sample per cycle (when WAL moved), with loop_wait 1 s: the last ~68 minutes of writes.
MAX_SAMPLES = 4096


@dataclass(frozen=True, slots=True)
class Behind:
    """How old the oldest write a standby lacks is: ``seconds`` exactly (to a cycle), or at least
    ``seconds`` when the standby's position is older than every sample (``at_least``)."""

    seconds: float
    at_least: bool = False


class WalClock:
    def __init__(self, size: int = MAX_SAMPLES) -> None:
        self._times: collections.deque[float] = collections.deque(maxlen=size)
        self._positions: collections.deque[int] = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def note(self, wall: float, position: Lsn) -> None:
        """The primary's WAL write position at ``wall`` (epoch seconds)."""
        with self._lock:
            if self._positions and position.value <= self._positions[-1]:
                if position.value < self._positions[-1]:  # a new timeline's primary: start again
                    self._times.clear()
                    self._positions.clear()
                else:
                    return
            self._times.append(wall)
            self._positions.append(position.value)

    def behind(self, position: Lsn, now: float) -> Behind | None:
        """How old the oldest write beyond ``position`` is; 0 when the standby has everything
        noted; None before anything was noted (this node has not been primary)."""
        with self._lock:
            if not self._positions:
                return None
            if position.value >= self._positions[-1]:
                return Behind(0.0)
            # The first sample beyond the position: by then the primary had WAL the standby lacks.
            index = bisect.bisect_right(self._positions, position.value)
            at_least = index == 0
            return Behind(max(0.0, now - self._times[index]), at_least)
