"""Runs one slow action (initdb, clone, rewind) at a time in a thread, and reports its progress.

The loop must keep renewing its member lease and the API must keep answering while a base backup
of a large database runs for minutes; the decision sees the job through ``LocalState.job``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pgwarden.model import Job, JobKind

log = logging.getLogger(__name__)

Work = Callable[[Callable[[str], None]], None]  # receives a progress callback


class JobRunner:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._job: Job | None = None
        self._thread: threading.Thread | None = None

    def status(self) -> Job | None:
        with self._lock:
            return self._job

    def start(self, kind: JobKind, work: Work) -> None:
        with self._lock:
            if self._job is not None and self._job.running:
                raise RuntimeError(f"a {self._job.kind.value} job is already running")
            self._job = Job(kind=kind, running=True)
        self._thread = threading.Thread(
            target=self._run, args=(kind, work), name=f"job-{kind.value}", daemon=True
        )
        self._thread.start()

    def _run(self, kind: JobKind, work: Work) -> None:
        def progress(text: str) -> None:
            with self._lock:
                self._job = Job(kind=kind, running=True, progress=text)

        try:
            work(progress)
        except Exception as exc:  # any failure of the job is reported, never raised into the loop
            log.error("%s failed: %s", kind.value, exc)
            with self._lock:
                self._job = Job(kind=kind, running=False, ok=False, error=str(exc)[-500:])
        else:
            log.info("%s finished", kind.value)
            with self._lock:
                self._job = Job(kind=kind, running=False, ok=True)
