"""The agent as the reaper of its PostgreSQL: a SIGKILLed postmaster is gone the instant it dies.

A dead process stays a zombie until its parent waits for it, and a zombie's PID still exists:
a new postmaster finds the old one's PID in postmaster.pid, sees it "alive", and refuses to start
("lock file postmaster.pid already exists"). pg_ctl leaves the postmaster to init, and some inits
(container ones) reap only every second or two, or never when the agent is itself PID 1: the
restart of a crashed primary waited that long. So the agent asks the kernel to make it the
*subreaper* of what it starts (``PR_SET_CHILD_SUBREAPER``): the postmaster is re-parented to the
agent when pg_ctl exits, and the postmaster watch reaps it the moment its pidfd says it died.

Only PostgreSQL's processes are reaped, precisely: the postmaster by its pidfd, and zombie
``postgres`` children outside the agent's own session (a crashed postmaster's backends, a
postmaster that failed to start), re-parented here when their parent died. Never a
``waitpid(-1)``: that would steal the exit status of a command the agent runs (pg_ctl,
pg_rewind...), which subprocess would then report as a success.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os

from pgwarden.local.processes import parents

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Orphaned descendants (the postmaster, once pg_ctl exits) become this process's children."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        done = bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        done = False
    if not done:
        log.info("cannot become the subreaper of PostgreSQL: a crashed postmaster is left to init")
    return done


def _stat(pid: int) -> tuple[str, int] | None:
    """State letter and session id of ``pid`` (a zombie's are still readable), None once gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[3])
    except (OSError, IndexError, ValueError):
        return None


def reap_pidfd(pidfd: int) -> bool:
    """Reap the process behind ``pidfd`` if it is a dead child of this one; True when reaped."""
    try:
        return os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG) is not None
    except (ChildProcessError, OSError):
        return False  # not our child (an adopted agent's postmaster is init's), or reaped already


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def reap_adopted() -> int:
    """Reap this process's zombie children that are PostgreSQL processes it adopted; how many.

    Adopted ones only: a ``postgres`` process outside the agent's own session, i.e. a postmaster
    (pg_ctl starts it in a session of its own) or one of its backends, re-parented here when
    their parent died (a postmaster that failed to start, a crashed one's backends). The commands
    the agent runs and waits for itself are never ``postgres`` outside its session: pg_ctl,
    pg_rewind or a callback lead sessions of their own under other names, and ``postgres -C``
    (the parameter check) runs in the agent's session."""
    me, own = os.getpid(), os.getsid(0)
    reaped = 0
    for child, parent in parents().items():
        if parent != me:
            continue
        found = _stat(child)
        if found is None or found[0] != "Z" or found[1] == own or _comm(child) != "postgres":
            continue
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(child, os.WNOHANG)[0] == child:
                reaped += 1
    return reaped
