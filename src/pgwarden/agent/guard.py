"""Keeps the agent's loop and threads alive through internal errors: logged, counted, retried.

An exception in the HA loop or in one of its threads (etcd watch, postmaster watch, lease guard,
callbacks) is a bug or an input nobody foresaw. Ending the thread over it would be worse than the
bug: a dead lease guard no longer stops a primary whose lease ran out, a dead watch delays every
failover by a loop_wait, a dead loop used to stop PostgreSQL on its way out. So each iteration
runs under `survive`: the exception is logged with its traceback (again only when it changes, so
a crash loop does not flood the log), counted per thread (``/patroni``, ``/metrics``), and the
thread carries on after a short backoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

LOOP = "loop"  # the HA loop's name in the counts; threads count under their thread name
# Waits after 1, 2, 3, ... failures in a row: quick for a passing error, at most a few seconds
# for one that repeats (and never longer than the loop's own cadence, see `backoff`).
_BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0)


def backoff(consecutive: int, ceiling: float) -> float:
    """How long to wait after ``consecutive`` failures in a row (>= 1), at most ``ceiling``."""
    step = _BACKOFF[min(max(consecutive, 1), len(_BACKOFF)) - 1]
    return max(0.05, min(step, ceiling))


def describe(exc: BaseException) -> str:
    """One line naming the error: ``KeyError: 'xlog'``."""
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ErrorCounts:
    """How many internal errors each thread (and the loop) survived since the agent started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._last: dict[str, str] = {}

    def record(self, source: str, exc: BaseException) -> tuple[int, bool]:
        """Count one error of ``source``; its total, and whether it differs from the last one."""
        text = describe(exc)
        with self._lock:
            self._counts[source] = self._counts.get(source, 0) + 1
            changed = self._last.get(source) != text
            self._last[source] = text
            return self._counts[source], changed

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def _worth_repeating(total: int) -> bool:
    """The same error again is logged at the 10th, 100th, 1000th... time: a thread that fails every
    50 ms must not flood the log, and the counter metric has every one."""
    return total >= 10 and str(total).rstrip("0") == "1"


def survive(source: str, errors: ErrorCounts, step: Callable[[], object]) -> bool:
    """Run one iteration of a background thread; False when it raised (logged and counted)."""
    try:
        step()
    except Exception as exc:  # the point of this module: no exception ends a thread of the agent
        total, changed = errors.record(source, exc)
        if changed:
            log.error("%s thread: internal error (%d so far); carrying on", source, total, exc_info=exc)
        elif _worth_repeating(total):
            log.error("%s thread: internal error again (%d so far): %s", source, total, describe(exc))
        return False
    return True
