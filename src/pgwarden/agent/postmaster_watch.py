"""Wakes the loop the moment the local postmaster dies, so a crashed primary is restarted at once,
and the moment a starting postmaster accepts connections, so a restarted primary is announced
(``/primary`` 200, HAProxy sends writes to it) at once rather than at the next ``loop_wait``.

While a postmaster runs, the thread sleeps in poll() on a pidfd of it (Linux 5.3+), which the
kernel makes readable the instant the process exits: no CPU while PostgreSQL runs, and no delay.
While it starts (crash recovery, a standby not yet consistent: postmaster.pid's status line says
``starting``), the thread reads that line every STARTING_POLL (a file read, no SQL). Where no
pidfd can be had, and while no postmaster runs, it checks every CHECK_INTERVAL.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time

from pgwarden.agent.adoption import reap_adopted, reap_pidfd
from pgwarden.agent.guard import ErrorCounts, survive
from pgwarden.fence.postmaster import postmaster, postmaster_pid

# A tenth of a second costs one stat of /proc per check and bounds the crash detection delay.
CHECK_INTERVAL = 0.1
# While a postmaster starts: how often its status line is read. 20 ms bounds the delay between
# "ready" and the loop's wake-up; a start that takes longer than STARTING_FAST (a standby
# replaying a long way to consistency) is read every CHECK_INTERVAL * 5 instead.
STARTING_POLL = 0.02
STARTING_FAST = 10.0
SWEEP_INTERVAL = 1.0  # seconds: how often, at most, adopted zombies are looked for
# Statuses of a postmaster that is done starting (fence/postmaster.py: line 8 of postmaster.pid).
_SETTLED = ("ready", "standby", "stopping")


class PostmasterWatch:
    def __init__(self, data_dir: str, wake: threading.Event, errors: ErrorCounts | None = None) -> None:
        self._data_dir = data_dir
        self._errors = errors or ErrorCounts()
        self._seen: int | None = None
        self._swept = 0.0  # when adopted zombies were last reaped (agent/adoption.py)
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
        found = postmaster(self._data_dir)
        pid = found.pid if found is not None else None
        if self._seen is not None and pid != self._seen:
            self._wake.set()
        self._seen = pid
        self._sweep()  # after the wake-up: the loop never waits on this scan of /proc
        if found is None:
            self._stop.wait(CHECK_INTERVAL)
        elif found.status not in _SETTLED:
            if self._until_settled(found.pid):
                self._wake.set()  # it accepts connections (or streams) now: decide again
        elif not self._until_exit(found.pid):
            self._stop.wait(CHECK_INTERVAL)

    def _until_settled(self, pid: int) -> bool:
        """Read the status of starting postmaster ``pid`` until it is done starting: True then;
        False when it exits first, a stop is asked, or it cannot be watched."""
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return False
        started = time.monotonic()
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.register(self._stop_read, select.POLLIN)
            while True:
                fast = time.monotonic() - started < STARTING_FAST
                if ready := poller.poll(int(1000 * (STARTING_POLL if fast else CHECK_INTERVAL * 5))):
                    self._after(ready, pidfd, pid)
                    return False  # it exited (the next step sees that), or a stop was asked
                found = postmaster(self._data_dir)
                if found is None or found.pid != pid:
                    return False
                if found.status in _SETTLED:
                    return True
        finally:
            os.close(pidfd)

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
            self._after(poller.poll(), pidfd, pid)
            return True
        finally:
            os.close(pidfd)

    def _after(self, ready: list[tuple[int, int]], pidfd: int, pid: int) -> None:
        """After a poll: when the postmaster died, wake the loop and reap it (when it is the agent's
        child: a crashed primary restarts without waiting for init); its backends are reaped by
        the next steps' sweeps."""
        if not any(fd == pidfd for fd, _ in ready):
            return
        self._wake.set()
        reap_pidfd(pidfd)
        # Its backends die a moment later, and the loop restarts PostgreSQL now: the first sweep
        # comes a SWEEP_INTERVAL later, not competing with that cycle for the interpreter.
        self._swept = time.monotonic()

    def _sweep(self) -> None:
        """Reap adopted PostgreSQL zombies, at most once per SWEEP_INTERVAL (a scan of /proc).
        Steps are rare while PostgreSQL runs, every CHECK_INTERVAL while it is down."""
        now = time.monotonic()
        if now - self._swept < SWEEP_INTERVAL:
            return
        self._swept = now
        reap_adopted()
