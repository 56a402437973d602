"""A small bounded pool of daemon threads for the REST calls that may block (operations, documents).

Not ``concurrent.futures.ThreadPoolExecutor``: its threads are joined at interpreter exit, so a
switchover call waiting up to ten minutes for its new primary would hold up the agent's exit; and
its queue has no bound. Here threads start on first use (an idle agent has none), the queue is
bounded, and a full pool says so at once so the caller can answer 503 instead of queueing work
nobody will wait for.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], None]


class WorkerPool:
    """Up to ``threads`` threads running jobs, with at most ``backlog`` jobs waiting for one."""

    def __init__(self, name: str, threads: int, backlog: int) -> None:
        self.name = name
        self._max_threads = threads
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=backlog)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # Counted under the lock at submit time (not read off the queue), so a job that a thread
        # has taken but not yet started is never mistaken for a free thread.
        self._pending = 0
        self._busy = 0
        self._closed = False

    @property
    def thread_count(self) -> int:
        return len(self._threads)

    def submit(self, job: Job) -> bool:
        """Run ``job`` on a worker; False (and nothing run) when the pool and its queue are full."""
        with self._lock:
            if self._closed:
                return False
            try:
                self._jobs.put_nowait(job)
            except queue.Full:
                return False
            self._pending += 1
            # A new thread only when every existing one has a job already.
            if self._pending + self._busy > len(self._threads) < self._max_threads:
                thread = threading.Thread(
                    target=self._work, name=f"api-{self.name}-{len(self._threads) + 1}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return True

    def close(self) -> None:
        """Start no new job; idle threads end, busy ones after their job (they are daemons)."""
        with self._lock:
            self._closed = True
            threads = len(self._threads)
        for _ in range(threads):
            try:
                self._jobs.put_nowait(None)
            except queue.Full:
                break  # threads still busy with queued jobs; as daemons they end with the process

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            with self._lock:
                self._pending -= 1
                self._busy += 1
            try:
                job()
            except Exception:  # a job reports its own failures; this only keeps the thread alive
                log.exception("REST worker %s: job failed", self.name)
            finally:
                with self._lock:
                    self._busy -= 1
