"""The agent as its PostgreSQL's reaper (agent/adoption.py), on real processes.

Run in a child interpreter: the subreaper flag is for the life of a process, and pytest's own
process should not collect the orphans of every other test.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

_SCRIPT = textwrap.dedent(
    """
    import os, select, signal, subprocess, time
    from pgwarden import own_children
    from pgwarden.agent.adoption import become_subreaper, is_subreaper, reap_adopted, reap_pidfd

    def session_of(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return int(f.read().rsplit(")", 1)[1].split()[3])
        except (OSError, ValueError):
            return None

    assert not is_subreaper()
    assert become_subreaper()
    assert is_subreaper()
    # As pg_ctl does: a child starts the "postmaster" as a session leader and exits at once; the
    # postmaster has a "backend" in its session.
    os.symlink("/bin/sleep", "postgres")  # comm "postgres", as PostgreSQL's processes
    inner = "./postgres 60 >/dev/null 2>&1 & exec ./postgres 61"
    out = subprocess.run(
        ["sh", "-c", f"setsid sh -c '{inner}' >/dev/null 2>&1 & echo $!"],
        capture_output=True, text=True, check=True,
    ).stdout
    pid = int(out)
    time.sleep(0.2)
    with open(f"/proc/{pid}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid(), "not re-parented here"
    session = session_of(pid)
    assert session == pid, "not a session leader"
    listed = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    others = [p for p in listed if p != pid and session_of(p) == session]
    assert len(others) == 1, others
    fd = os.pidfd_open(pid)
    os.kill(pid, signal.SIGKILL)
    os.kill(others[0], signal.SIGKILL)
    select.select([fd], [], [], 5)
    assert reap_pidfd(fd), "the dead postmaster was not reaped"
    assert not os.path.exists(f"/proc/{pid}"), "still a zombie"
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{others[0]}/stat") and time.monotonic() < deadline:
        reap_adopted()
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{others[0]}"), "its session's zombie stayed"
    # Any orphan it inherits is reaped too, not only PostgreSQL's: a callback's left-behind
    # daemon ("sleep" here, in the session of a shell that exited).
    out = subprocess.run(
        ["sh", "-c", "setsid sh -c 'sleep 60 >/dev/null 2>&1 & echo $!' & wait"],
        capture_output=True, text=True, check=True,
    ).stdout
    orphan = int(out)
    time.sleep(0.2)
    with open(f"/proc/{orphan}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid(), "not re-parented here"
    os.kill(orphan, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{orphan}/stat") and time.monotonic() < deadline:
        reap_adopted()
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{orphan}"), "an inherited non-PostgreSQL zombie stayed"
    # A command the process runs and waits for itself keeps its exit status, even one that exited
    # before it was waited for, whatever its name or session, and while an inherited zombie waits
    # behind it.
    os.mkdir("own")
    os.symlink("/bin/false", "own/postgres")
    own = own_children.start(["own/postgres"])
    leader = own_children.start(["sh", "-c", "exit 4"], start_new_session=True)
    time.sleep(0.3)
    reap_adopted()
    assert own.wait() == 1, "the agent's own command was reaped by the sweep"
    assert leader.wait() == 4, "the agent's own session leader was reaped by the sweep"
    own_children.forget(own)
    own_children.forget(leader)
    assert own_children.run(["sh", "-c", "exit 3"], 10).returncode == 3
    print("ok")
    """
)


def test_a_killed_postmaster_and_its_backends_are_reaped_by_the_agent(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_a_process_that_is_no_subreaper_leaves_its_children_to_their_waiters() -> None:
    # pytest's process is none: a zombie child of it is some Popen's, and keeps its exit status.
    from pgwarden.agent.adoption import reap_adopted

    child = subprocess.Popen(["sh", "-c", "exit 5"])
    time.sleep(0.3)
    assert reap_adopted() == 0
    assert child.wait() == 5
