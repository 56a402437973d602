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
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from pgwarden.ha.decision import Decision

MAX_RUNS = 100
# Bounds of a run read back from another agent's GET /events (read_run).
_MAX_CODE = 100
_MAX_MESSAGE = 1000
_MAX_ACTIONS = 20
_CODE = re.compile(r"[A-Z][A-Z0-9_]*")


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


def read_run(data: object) -> DecisionRun | None:
    """A run from a ``GET /events`` answer (another agent's, over the network), typed and bounded;
    None when it is not one (a field missing, of the wrong type, out of its bounds). Readers
    (``/cluster/events``, ``pgwarden events``) drop such entries rather than pass them on."""
    if not isinstance(data, dict):
        return None
    since, last = data.get("timestamp"), data.get("last_timestamp", data.get("timestamp"))
    code, message = data.get("reason_code"), data.get("message")
    actions, count = data.get("actions", []), data.get("decisions", 1)
    if not (_epoch(since) and _epoch(last)) or not isinstance(count, int) or isinstance(count, bool):
        return None
    if not isinstance(code, str) or len(code) > _MAX_CODE or not _CODE.fullmatch(code):
        return None
    if not isinstance(message, str) or not isinstance(actions, list) or len(actions) > _MAX_ACTIONS:
        return None
    if not all(isinstance(a, str) and len(a) <= _MAX_CODE for a in actions) or count < 1:
        return None
    assert isinstance(since, int | float) and isinstance(last, int | float)  # _epoch said so
    return DecisionRun(float(since), code, message[:_MAX_MESSAGE], tuple(actions), float(last), count)


def _epoch(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value >= 0
