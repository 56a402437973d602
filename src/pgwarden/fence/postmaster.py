"""Whether the local PostgreSQL runs, and whether it may take writes, from two small files and no SQL.

postmaster.pid names the postmaster and, on line 8 (PostgreSQL 10 and later; pg_ctl reads it to
know when a server is up), its status: ``starting`` (startup, crash recovery, a standby not yet
consistent), ``ready`` (accepting connections: a primary, or a hot standby), ``standby`` (a
standby that accepts no connections) or ``stopping``. Whether it is a primary, pg_control says:
the cluster state is "in production" only once recovery ended, and PostgreSQL sets it before it
lets the first backend write (at the end of crash recovery or of a promotion). The fence reads
both at its deadline: a few microseconds, and nothing that could hang on the server.
"""

from __future__ import annotations

import contextlib
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from pgwarden.fence import proc

PID_FILE = "postmaster.pid"
STANDBY_SIGNAL = "standby.signal"
PG_CONTROL = "global/pg_control"
_STATUS_LINE = 7  # 0-based: LOCK_FILE_LINE_PM_STATUS is line 8
_ACCEPTING = ("ready", "stopping")
# ControlFileData begins, in every release since 9.x: uint64 system_identifier, uint32
# pg_control_version, uint32 catalog_version_no, DBState state (native byte order).
_CONTROL_HEAD = struct.Struct("=QIIi")
_REAPED_POLL = 0.01  # seconds between two looks at a dead postmaster's zombie
_MIN_CONTROL_VERSION = 1002  # PostgreSQL 10
DB_IN_PRODUCTION = 6  # DBState: startup 0, shut down 1, shut down in recovery 2, shutting down 3,
# in crash recovery 4, in archive recovery 5 (a standby), in production 6


@dataclass(frozen=True, slots=True)
class Postmaster:
    pid: int
    status: str  # "starting", "standby", "ready", "stopping", or "" before the postmaster wrote it


def postmaster(data_dir: str) -> Postmaster | None:
    """The postmaster serving ``data_dir`` and its status, or None when none runs.

    postmaster.pid may be stale (a crash, or a reused PID), so the process must exist, not be a
    zombie, and have ``data_dir`` as its working directory (the postmaster chdirs there).
    """
    lines = _pid_file(data_dir)
    pid = _recorded(lines)
    if pid is None or not _serves(pid, data_dir):
        return None
    status = lines[_STATUS_LINE].strip() if len(lines) > _STATUS_LINE else ""
    return Postmaster(pid, status)


def _pid_file(data_dir: str) -> list[str]:
    try:
        return (Path(data_dir) / PID_FILE).read_text().split("\n")
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _recorded(lines: list[str]) -> int | None:
    try:
        pid = int(lines[0].strip()) if lines else 0
    except ValueError:
        return None
    return pid if pid > 0 else None


def recorded_pid(data_dir: str) -> int | None:
    """The PID postmaster.pid names, whether or not that process still runs (None: no such file,
    or no PID in it). After a crash it names the dead postmaster, which a new one checks for."""
    return _recorded(_pid_file(data_dir))


def dead_postmaster(data_dir: str) -> int | None:
    """The PID postmaster.pid names when that process is a zombie (dead, not yet reaped), else
    None. While it is, a new postmaster refuses to start: the PID still exists."""
    pid = recorded_pid(data_dir)
    return pid if pid is not None and proc.state(pid) in ("Z", "X") else None


def wait_reaped(data_dir: str, timeout: float) -> bool:
    """Wait (at most ``timeout`` seconds) until the postmaster postmaster.pid names is no zombie;
    False when it still is. A postmaster SIGKILLed a moment ago stays a zombie until its parent
    reaps it (init, which some container inits do only every second or two): its PID still
    exists, so a new postmaster would refuse to start ("lock file "postmaster.pid" already
    exists") and the agent would try again a cycle later. A PID that is gone, or reused by a live
    process (which the new postmaster then judges itself), costs nothing here."""
    pid = recorded_pid(data_dir)
    deadline = time.monotonic() + timeout
    while pid is not None and proc.state(pid) in ("Z", "X"):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_REAPED_POLL)
    return True


def postmaster_pid(data_dir: str) -> int | None:
    """The PID of the postmaster serving ``data_dir``, or None when none runs."""
    found = postmaster(data_dir)
    return found.pid if found is not None else None


def writable_postmaster(data_dir: str) -> Postmaster | None:
    """The postmaster, when PostgreSQL may take writes: the fence stops only this one.

    The rule: a live postmaster serves ``data_dir``, its status is ``ready`` or ``stopping`` (a
    primary in a smart shutdown still commits for its open sessions), and pg_control says "in
    production". A hot standby is "in archive recovery"; a server still starting (whatever a
    stale pg_control says after an immediate stop) is not ``ready``. When pg_control cannot be
    read or makes no sense, the absence of ``standby.signal`` decides instead. A primary
    restarting after a crash reads ``starting``, then ``ready`` once it could take a write: the
    fence, which keeps looking, acts then.
    """
    found = postmaster(data_dir)
    if found is None or found.status not in _ACCEPTING:
        return None
    state = control_state(data_dir)
    if state is None:
        return None if (Path(data_dir) / STANDBY_SIGNAL).exists() else found
    return found if state == DB_IN_PRODUCTION else None


def control_state(data_dir: str) -> int | None:
    """pg_control's cluster state (DBState), or None when it cannot be read or makes no sense."""
    try:
        with open(Path(data_dir) / PG_CONTROL, "rb") as f:
            head = f.read(_CONTROL_HEAD.size)
    except OSError:
        return None
    if len(head) < _CONTROL_HEAD.size:
        return None
    _, version, _, state = _CONTROL_HEAD.unpack(head)
    if version < _MIN_CONTROL_VERSION or not 0 <= state <= DB_IN_PRODUCTION:
        return None
    return int(state)


def _serves(pid: int, data_dir: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else: check /proc below
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        cwd = os.readlink(proc / "cwd")
    except FileNotFoundError:
        return False
    except PermissionError:
        # Another user's process (possible only when not root): fall back to its name.
        with contextlib.suppress(OSError):
            if not (proc / "comm").read_text().startswith("postgres"):
                return False
        return True
    return os.path.realpath(data_dir) == cwd
