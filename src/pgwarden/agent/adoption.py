"""The agent as the reaper of its PostgreSQL: a SIGKILLed postmaster is gone the instant it dies.

A dead process stays a zombie until its parent waits for it, and a zombie's PID still exists:
a new postmaster finds the old one's PID in postmaster.pid, sees it "alive", and refuses to start
("lock file postmaster.pid already exists"). pg_ctl leaves the postmaster to init, and some inits
(container ones) reap only every second or two, or never when the agent is itself PID 1: the
restart of a crashed primary waited that long. So the agent asks the kernel to make it the
*subreaper* of what it starts (``PR_SET_CHILD_SUBREAPER``): the postmaster is re-parented to the
agent when pg_ctl exits, and the postmaster watch reaps it the moment its pidfd says it died.

Every child it inherits is reaped, not only PostgreSQL's: an orphan of anything below the agent (a
crashed postmaster's backends, a callback's left-behind daemon, a killed pg_basebackup's WAL
streamer) becomes its child, and a subreaper that does not wait collects zombies for ever. What it
must not take is the exit status of a command it runs and waits for itself (pg_ctl, pg_rewind, a
callback, the fence): those are started through ``pgwarden.own_children`` and skipped. So never a
blind ``waitpid(-1)``: ``subprocess`` would then report the stolen command as a success.

Becoming a subreaper is the process's choice, made by its entry point (daemon/start.py), never by a
library call: a process that runs an ``Agent`` in a thread (a test) and does not sweep would
otherwise keep every orphan below it as a zombie, and a PostgreSQL killed with its agent could not
start again ("lock file postmaster.pid already exists") until that process exited.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os

from pgwarden import own_children
from pgwarden.local.processes import parents

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


def become_subreaper() -> bool:
    """Orphaned descendants (the postmaster, once pg_ctl exits) become this process's children;
    from now on the process must call ``reap_adopted`` regularly (the agent does every cycle)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        done = bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        done = False
    if not done:
        log.info("cannot become the subreaper of PostgreSQL: a crashed postmaster is left to init")
    own_children.inheriting(done)
    return done


def is_subreaper() -> bool:
    """Whether this process collects the orphans below it (PR_GET_CHILD_SUBREAPER)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        flag = ctypes.c_int(0)
        return bool(libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0 and flag.value)
    except (OSError, AttributeError):
        return False


def reap_pidfd(pidfd: int) -> bool:
    """Reap the process behind ``pidfd`` if it is a dead child of this one; True when reaped."""
    if not own_children.inherits():
        return False
    try:
        return os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG) is not None
    except (ChildProcessError, OSError):
        return False  # not our child (an adopted agent's postmaster is init's), or reaped already


def reap_adopted() -> int:
    """Reap every zombie child this process inherited (not one of its own commands); how many.

    Cheap when there is none, as in nearly every cycle: one ``waitid`` that only looks
    (``WNOWAIT``). Only when the zombie it shows is one of the process's own commands, about to be
    waited for by the thread that started it, are the children listed from /proc to find the
    others."""
    if not own_children.inherits():
        return 0  # orphans go to another process: this one's children are all waited for
    reaped = 0
    with own_children.lock():
        while True:
            try:
                found = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return reaped  # no children at all
            if found is None:
                return reaped
            if own_children.is_own(found.si_pid):
                return reaped + _reap_listed()
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(found.si_pid, os.WNOHANG)[0] == found.si_pid:
                    reaped += 1


def _reap_listed() -> int:
    """Reap the inherited zombie children found in /proc (``own_children.lock`` held)."""
    me = os.getpid()
    reaped = 0
    for child, parent in parents().items():
        if parent != me or own_children.is_own(child) or _state(child) != "Z":
            continue
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(child, os.WNOHANG)[0] == child:
                reaped += 1
    return reaped


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
