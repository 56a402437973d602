"""The agent's side of its fence: start it or adopt the running one, and feed it the lease deadline.

The fence (pgwarden.fence) outlives the agent: started in a session of its own, it keeps the last
deadline the agent wrote and stops a writable PostgreSQL once that passes, whether the agent is
dead, frozen or stuck. A restarted agent finds it by its pid file and command line and adopts it,
as it adopts the running PostgreSQL; until that agent's first renewal the fence keeps the
deadline of the agent before it.
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
from pgwarden.fence.channel import boot_id, write_deadline
from pgwarden.fence.files import FenceFiles, fence_command, running_fence

log = logging.getLogger(__name__)

_START_WAIT = 5.0  # a new fence writes its pid file within ~0.1 s (Python's start-up)
_STOP_WAIT = 2.0
_UNSET = object()  # nothing published yet by this agent


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
        self._published: object = _UNSET
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
            return pid
        if self.pid is not None:
            log.warning("the fence (pid %d) is gone; starting a new one", self.pid)
        self._reap()
        self.pid = self._start()
        return self.pid

    def publish(self) -> None:
        """Hand the fence the deadline now in force (None: this agent holds no lease).

        Read under the lock, so that of two threads publishing at once the later value lands
        last. Until this agent has renewed or released a lease once, a None is not written: a
        restarted agent knows nothing yet, and the fence keeps the deadline its predecessor left.
        """
        with self._lock:
            deadline = self._deadline()
            if deadline == self._published or (deadline is None and self._published is _UNSET):
                return
            try:
                self.files.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                write_deadline(self.files.deadline, deadline, self._boot)
            except OSError as exc:  # the fence keeps the deadline before: a stop too early, not late
                log.error("cannot hand the fence its deadline: %s", exc)
                return
            self._published = deadline

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
