"""Starting detached processes with a log file, and stopping exactly those (and their children) by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def spawn(
    cmd: Sequence[str], log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> int:
    """Start ``cmd`` in its own session, so it outlives the command that started it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    return proc.pid


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def parents() -> dict[int, int]:
    """Every process in /proc and its parent's PID."""
    found: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                found[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return found


def children(pid: int, parent_of: Mapping[int, int] | None = None) -> list[int]:
    """Every descendant of ``pid`` (PostgreSQL backends start their own sessions, so a process
    group kill misses them; the parent links in /proc do not)."""
    offspring: dict[int, list[int]] = {}
    for child, parent in (parents() if parent_of is None else parent_of).items():
        offspring.setdefault(parent, []).append(child)
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in offspring.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def signal_tree(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to ``pid`` and all its descendants (found first, so none escapes re-parenting)."""
    for target in [pid, *children(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, sig)


def stop(pid: int, timeout: float = 10.0, sig: signal.Signals = signal.SIGTERM) -> None:
    """``sig`` (SIGTERM by default), then SIGKILL of the whole tree if still alive after ``timeout``."""
    stop_all([pid], timeout, sig)


def stop_all(pids: Sequence[int], timeout: float, sig: signal.Signals = signal.SIGTERM) -> list[int]:
    """Signal every process at once, wait for all of them together, then SIGKILL the trees of those
    still alive; returns the PIDs that had to be killed."""
    trees = {pid: [pid, *children(pid)] for pid in pids if alive(pid)}
    for pid in list(trees):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            del trees[pid]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in trees):
        for pid in trees:
            _reap(pid)
        time.sleep(0.1)
    killed = [pid for pid in trees if alive(pid)]
    for pid, tree in trees.items():
        for target in tree + children(pid):
            if alive(target):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(target, signal.SIGKILL)
        _reap(pid)
    return killed


def command_line(pid: int) -> list[str]:
    """The arguments ``pid`` was started with (empty when it is gone or a kernel thread)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def signal_one(pid: int, sig: signal.Signals) -> None:
    """Signal one process alone (an agent killed while its PostgreSQL, a separate session, lives on)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
