"""Wakes the loop the moment the local postmaster dies, so a crashed primary is restarted at once.

While a postmaster runs, the thread sleeps in poll() on a pidfd of it (Linux 5.3+), which the
kernel makes readable the instant the process exits: no CPU while PostgreSQL runs, and no delay.
Where no pidfd can be had, and while no postmaster runs, it checks every CHECK_INTERVAL.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading

from pgwarden.agent.guard import ErrorCounts, survive
from pgwarden.fence.postmaster import postmaster_pid

# A tenth of a second costs one stat of /proc per check and bounds the crash detection delay.
CHECK_INTERVAL = 0.1


class PostmasterWatch:
    def __init__(self, data_dir: str, wake: threading.Event, errors: ErrorCounts | None = None) -> None:
        self._data_dir = data_dir
        self._errors = errors or ErrorCounts()
        self._seen: int | None = None
        self._wake = wake
        self._stop = threading.Event()
        self._stop_read, self._stop_write = os.pipe()  # wakes a thread asleep on a pidfd
        self._stop_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="postmaster-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._stop_lock:
            if self._stop.is_set():
                return
            self._stop.set()
            with contextlib.suppress(OSError):
                os.write(self._stop_write, b"x")
            os.close(self._stop_write)  # here, not in the thread: no write can follow the close

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                # One step: note a new postmaster, then sleep on its pidfd until it exits. A step
                # that raised (counted and logged by survive) or could not watch polls instead.
                if not survive("postmaster-watch", self._errors, self._step):
                    self._stop.wait(CHECK_INTERVAL)
        finally:
            os.close(self._stop_read)

    def _step(self) -> None:
        pid = postmaster_pid(self._data_dir)
        if self._seen is not None and pid != self._seen:
            self._wake.set()
        self._seen = pid
        if pid is None or not self._until_exit(pid):
            self._stop.wait(CHECK_INTERVAL)

    def _until_exit(self, pid: int) -> bool:
        """Sleep until process ``pid`` exits or a stop is asked; False when it cannot be watched."""
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # gone already, or no pidfd on this kernel
            return False
        try:
            # The PID may have been reused between reading postmaster.pid and opening it.
            if postmaster_pid(self._data_dir) != pid:
                return False
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.register(self._stop_read, select.POLLIN)
            poller.poll()
            return True
        finally:
            os.close(pidfd)
