"""The fence's loop: hold the agent's lease deadline and stop a writable PostgreSQL once it passes.

Safety rule 1 for when the agent cannot enforce it itself (dead, frozen, stuck). The fence never
starts, promotes or configures anything beyond ``standby.signal``; it only stops. Each turn:

1. read the deadline file (channel.py); a record that cannot be trusted, or none at all, leaves
   the deadline it already holds in force (a fence that never saw one does nothing);
2. if the deadline has passed and PostgreSQL may take writes (postmaster.py's rule), read the
   file once more (a renewal written meanwhile wins), then SIGQUIT the postmaster (an immediate
   shutdown: every backend is told to exit at once), create ``standby.signal`` so that whoever
   starts it again starts a standby, and wait (bounded) for the postmaster to be gone;
3. sleep until the deadline or for ``POLL``, whichever comes first, on CLOCK_MONOTONIC with an
   absolute wake-up time (Python's sleep is ``clock_nanosleep(TIMER_ABSTIME)``): a fence frozen
   with its node and thawed past its deadline returns from that sleep at once and acts first.

The deadline keeps being enforced after the stop: if a writable PostgreSQL appears again while no
renewal came (an old agent's start, a hand-run ``pg_ctl start``), it is stopped again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from pgwarden.fence.channel import BadRecord, read_deadline
from pgwarden.fence.files import FenceFiles
from pgwarden.fence.postmaster import STANDBY_SIGNAL, Postmaster, writable_postmaster
from pgwarden.fence.proc import alive

log = logging.getLogger("pgwarden.fence")

# Re-read the deadline file this often: a renewal, or a release, is seen within it. Each look is
# one small file read; ten a second cost nothing measurable.
POLL = 0.1
# How long to wait for the postmaster to be gone after SIGQUIT before going on (it kills its
# children with SIGKILL after 5 s on its own); while it lingers, the next turns signal it again.
STOP_WAIT = 10.0

Clock = Callable[[], float]


class Fence:
    def __init__(
        self,
        data_dir: str,
        boot: str,
        clock: Clock = time.monotonic,
        signal_postmaster: Callable[[int], None] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.files = FenceFiles.beside(data_dir)
        self.boot = boot
        self.clock = clock
        self._signal = signal_postmaster or _sigquit
        self.deadline: float | None = None
        self.writer: int | None = None
        self.stops = 0
        self._problem: str | None = None

    def refresh(self) -> None:
        """Take the latest trustworthy record; keep the current deadline otherwise."""
        try:
            record = read_deadline(self.files.deadline, self.boot, self.clock())
        except BadRecord as exc:
            self._report(f"ignoring the deadline file ({exc}); keeping {self.describe()}")
            return
        if record is None:
            return
        if (record.deadline, record.writer) != (self.deadline, self.writer):
            if record.deadline is None and self.deadline is not None:
                log.info("agent (pid %d) released the lease: no deadline in force", record.writer)
            self.deadline, self.writer = record.deadline, record.writer
        self._problem = None

    def turn(self) -> float:
        """One look: act if due; returns the monotonic time of the next look."""
        self.refresh()
        now = self.clock()
        if self.deadline is not None and now >= self.deadline:
            self.enforce()
            now = self.clock()
        wake = now + POLL
        if self.deadline is not None and now < self.deadline:
            wake = min(wake, self.deadline)
        return wake

    def enforce(self) -> bool:
        """Stop PostgreSQL if it may take writes and the deadline still stands; True if stopped."""
        postmaster = writable_postmaster(self.data_dir)
        if postmaster is None:
            return False
        self.refresh()  # the agent may have renewed since the turn began
        deadline = self.deadline
        if deadline is None or self.clock() < deadline:
            return False
        self._stop(postmaster, deadline)
        return True

    def _stop(self, postmaster: Postmaster, deadline: float) -> None:
        late = self.clock() - deadline
        self._signal(postmaster.pid)
        signalled = self.clock()
        self.stops += 1
        _leave_standby_signal(self.data_dir)
        gone = _wait_gone(postmaster.pid, self.clock, signalled + STOP_WAIT)
        log.warning(
            "lease deadline passed %.0f ms ago without a renewal (last written by agent pid %s): "
            "PostgreSQL (postmaster %d, %s) stopped immediately (SIGQUIT); %s",
            late * 1000,
            self.writer,
            postmaster.pid,
            postmaster.status,
            f"gone {(gone - signalled) * 1000:.0f} ms later"
            if gone is not None
            else f"still there after {STOP_WAIT:.0f} s: signalling again at the next turn",
        )

    def describe(self) -> str:
        if self.deadline is None:
            return "no deadline"
        return f"the deadline {self.deadline - self.clock():+.3f} s from now"

    def _report(self, problem: str) -> None:
        if problem != self._problem:
            log.error("%s", problem)
            self._problem = problem


def _sigquit(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # gone already: what we wanted
        os.kill(pid, signal.SIGQUIT)


def _leave_standby_signal(data_dir: str) -> None:
    """Whoever starts this PostgreSQL next starts it as a standby (safety rule 6), owned like the
    data directory so that PostgreSQL may remove it when it is promoted one day."""
    path = Path(data_dir) / STANDBY_SIGNAL
    try:
        path.touch(mode=0o600, exist_ok=True)
        owner = os.stat(data_dir)
        os.chown(path, owner.st_uid, owner.st_gid)
    except OSError as exc:
        log.error("cannot create %s: %s", path, exc)


def _wait_gone(pid: int, clock: Clock, until: float) -> float | None:
    """When ``pid`` was seen gone (or a zombie), or None if it still ran at ``until``."""
    pause = 0.001
    while True:
        now = clock()
        if not alive(pid):
            return now
        if now >= until:
            return None
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
