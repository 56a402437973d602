"""The commands this process started and waits for itself, by PID: what a reaper must leave alone.

The agent is a subreaper (agent/adoption.py): every orphan below it (a crashed postmaster, a
callback's left-behind daemon, a killed pg_basebackup's WAL streamer) becomes its child, and it
must wait for each, or their zombies pile up, and a dead postmaster's zombie keeps PostgreSQL from
starting again. But a zombie child may also be one of its own commands (pg_ctl, pg_rewind, a
callback, the fence) between its exit and the ``wait`` of the thread that started it: reaping
that one would steal its exit status, which ``subprocess`` then reports as 0, a success.

So every command is started here (``start``), registered under the same lock the reaper holds
while it decides (``lock``), and forgotten once its own waiter is done (``forget``). A child not
registered is one the process inherited, and the reaper may wait for it.
"""

from __future__ import annotations

import os
import subprocess
import threading
from typing import Any

_lock = threading.Lock()
_pids: set[int] = set()
# Set once this process is a subreaper (agent/adoption.py): only then does it inherit orphans, and
# only then may it wait for a child it did not start here. In any other process (a test running
# an agent in a thread) such a child is somebody's subprocess.Popen, and its exit status theirs.
_inherits = False


def start(args: list[str], **popen: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen(args, **popen)``, its PID registered before any reaper can look."""
    with _lock:
        process: subprocess.Popen[Any] = subprocess.Popen(args, **popen)
        _pids.add(process.pid)
    return process


def forget(process: subprocess.Popen[Any]) -> None:
    """``process`` has been waited for (or never will be by this process): no longer ours."""
    with _lock:
        _pids.discard(process.pid)


def run(args: list[str], timeout: float, **popen: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run(args, capture_output=True, timeout=timeout, **popen)`` through ``start``:
    on a timeout the command is killed and waited for, and TimeoutExpired raised, as there."""
    process = start(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
    try:
        with process:
            try:
                out, err = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                process.kill()
                exc.stdout, exc.stderr = process.communicate()
                raise
            except BaseException:
                process.kill()
                raise
        return subprocess.CompletedProcess(args, process.wait(), out, err)
    finally:
        forget(process)


def is_own(pid: int) -> bool:
    """Whether ``pid`` is a command this process waits for itself (call it holding ``lock``)."""
    return pid in _pids


def lock() -> threading.Lock:
    """Held by a reaper from its look at a zombie child to its wait: no command starts meanwhile."""
    return _lock


def inheriting(flag: bool) -> None:
    """Record that this process is (or is not) a subreaper: whether it may reap what it inherits."""
    global _inherits
    _inherits = flag


def inherits() -> bool:
    return _inherits


def reap(pid: int) -> bool:
    """Reap ``pid`` if it is a dead child this process inherited (a subreaper's, never one of its
    own commands); True when reaped. For a dead postmaster about to be replaced."""
    if not _inherits:
        return False
    with _lock:
        if pid in _pids:
            return False
        try:
            return os.waitpid(pid, os.WNOHANG)[0] == pid
        except ChildProcessError:
            return False
