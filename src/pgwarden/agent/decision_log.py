"""This agent's recent decisions, as a bounded ring of runs: what it decided, why, and when (``GET /events``).

The loop decides every ``loop_wait`` seconds, mostly the same thing ("I am the leader with the
lock; primary healthy"). Keeping every cycle would bury the few decisions that matter under
thousands of identical ones, so consecutive decisions with the same reason code are one *run*:
the first one's time and actions, the latest one's sentence and time, and how many there were.
A new reason code starts a new run. At most ``MAX_RUNS`` runs are kept (the oldest go first),
so memory is bounded whatever the agent does; the ring lives only as long as the process (the
timeline history in etcd is what survives a restart).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from pgwarden.ha.decision import Decision

MAX_RUNS = 100


@dataclass(frozen=True, slots=True)
class DecisionRun:
    """Consecutive decisions with one reason code."""

    since: float  # epoch seconds of the first decision of the run
    reason_code: str
    message: str  # the latest decision's sentence (its numbers change: seconds left, progress)
    actions: tuple[str, ...]  # what the first decision of the run did (action names, in order)
    last: float  # epoch seconds of the latest decision of the run
    decisions: int = 1


class DecisionLog:
    """Thread-safe: the loop records, REST workers read."""

    def __init__(self, size: int = MAX_RUNS, clock: Callable[[], float] = time.time) -> None:
        self._runs: collections.deque[DecisionRun] = collections.deque(maxlen=size)
        self._lock = threading.Lock()
        self._clock = clock

    def record(self, decision: Decision) -> None:
        now = self._clock()
        code = decision.reason.name
        with self._lock:
            last = self._runs[-1] if self._runs else None
            if last is not None and last.reason_code == code:
                self._runs[-1] = replace(
                    last, message=decision.message, last=now, decisions=last.decisions + 1
                )
                return
            actions = tuple(type(action).__name__ for action in decision.actions)
            self._runs.append(DecisionRun(now, code, decision.message, actions, now))

    def runs(self) -> tuple[DecisionRun, ...]:
        """Oldest first."""
        with self._lock:
            return tuple(self._runs)
