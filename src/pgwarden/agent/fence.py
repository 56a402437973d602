"""The agent's side of its fence: start it or adopt the running one, and feed it the lease deadline.

The fence (pgwarden.fence) outlives the agent: started in a session of its own, it keeps the last
deadline the agent wrote and stops a writable PostgreSQL once that passes, whether the agent is
dead, frozen or stuck. A restarted agent finds it by its pid file and command line and adopts it,
as it adopts the running PostgreSQL; until that agent's first renewal the fence keeps the
deadline of the agent before it.

The deadline goes in place (fence/channel.py version 2: one ``pwrite`` per renewal, 4 a second
on a leader) to a fence that says it reads that; to an older fence (adopted after an upgrade),
or with none running, as a version-1 record replacing the file.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from pgwarden import own_children
from pgwarden.fence.channel import InPlaceWriter, boot_id, write_deadline
from pgwarden.fence.files import FenceFiles, fence_command, reads_checked_records, running_fence

log = logging.getLogger(__name__)

_START_WAIT = 5.0  # a new fence writes its pid file within ~0.1 s (Python's start-up)
_STOP_WAIT = 2.0


class FenceLink:
    def __init__(
        self,
        data_dir: str,
        name: str,
        deadline: Callable[[], float | None],
        config_path: str | None = None,
        log_format: str = "text",
    ) -> None:
        self.data_dir = data_dir
        self._log_format = log_format
        self._deadline = deadline  # the value the lease guard enforces: LeaderLease.deadline
        self.files = FenceFiles.beside(data_dir)
        self._name = name
        self._config_path = config_path
        self._boot = boot_id()
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # publish() is called from the loop and the lease guard
        self._published: float | None = None
        self._has_published = False  # nothing published yet by this agent
        # Set while the running fence reads version-2 records (written in place by it).
        self._in_place: InPlaceWriter | None = None
        self.pid: int | None = None

    def ensure_running(self) -> int | None:
        """The running fence's PID: adopted, or started now; None when it could not be started."""
        pid = running_fence(self.data_dir)
        if pid is not None:
            if pid != self.pid:
                started_by_me = self._child is not None and self._child.pid == pid
                if not started_by_me:
                    log.info("adopted the running fence (pid %d)", pid)
                self.pid = pid
                self._channel(reads_checked_records(pid))
            return pid
        if self.pid is not None:
            log.warning("the fence (pid %d) is gone; starting a new one", self.pid)
        self._reap()
        self.pid = self._start()
        self._channel(self.pid is not None and reads_checked_records(self.pid))
        return self.pid

    def _channel(self, checked: bool) -> None:
        """Write in place from now on when the fence reads that; otherwise version 1, and once
        at once the deadline last written in place, which a fence that does not read version 2
        could not take."""
        with self._lock:
            if checked:
                if self._in_place is None:
                    self._in_place = InPlaceWriter(self.files.deadline, self._boot)
                return
            if self._in_place is None:
                return
            self._in_place.close()
            self._in_place = None
            if self._has_published:
                self._write(self._published)

    def publish(self) -> None:
        """Hand the fence the deadline now in force (None: this agent holds no lease).

        Read under the lock, so that of two threads publishing at once the later value lands
        last. Until this agent has renewed or released a lease once, a None is not written: a
        restarted agent knows nothing yet, and the fence keeps the deadline its predecessor left.
        """
        with self._lock:
            deadline = self._deadline()
            if self._has_published and deadline == self._published:
                return
            if deadline is None and not self._has_published:
                return
            if self._write(deadline):
                self._published, self._has_published = deadline, True

    def _write(self, deadline: float | None) -> bool:
        """Write ``deadline`` for the fence (the caller holds the lock); False when it could not."""
        try:
            try:
                self._write_once(deadline)
            except FileNotFoundError:  # the fence's directory is gone (removed by hand, say)
                self.files.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                self._write_once(deadline)
        except (OSError, ValueError) as exc:  # the fence keeps the deadline before: an early stop, not late
            log.error("cannot hand the fence its deadline: %s", exc)
            return False
        return True

    def _write_once(self, deadline: float | None) -> None:
        if self._in_place is not None:
            self._in_place.write(deadline)
        else:
            write_deadline(self.files.deadline, deadline, self._boot)

    def stop(self) -> None:
        """A clean stop of the agent with PostgreSQL stopped (and the lease released): end the fence."""
        self.publish()
        pid = running_fence(self.data_dir)
        if pid is None:
            self._reap()
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + _STOP_WAIT
        while running_fence(self.data_dir) == pid and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.02)
        self._reap()

    def _start(self) -> int | None:
        cmd = fence_command(sys.executable, self.data_dir, self._name, self._config_path, self._log_format)
        try:
            self.files.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # A session of its own: neither a signal to the agent's group nor the agent's death
            # reaches it. stdout/stderr are the agent's, so its lines land in the agent's log.
            child = own_children.start(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            log.error("cannot start the fence (%s): %s", " ".join(cmd), exc)
            return None
        self._child = child
        deadline = time.monotonic() + _START_WAIT
        while time.monotonic() < deadline:
            pid = running_fence(self.data_dir)
            if pid is not None:
                log.info("started the fence (pid %d)", pid)
                return pid
            if child.poll() is not None:
                break
            time.sleep(0.02)
        log.error("the fence did not start (exit code %s); see the lines above", child.poll())
        return None

    def _reap(self) -> None:
        if self._child is not None and self._child.poll() is not None:
            own_children.forget(self._child)
            self._child = None
