"""The agent as its PostgreSQL's reaper (agent/adoption.py), on real processes.

Run in a child interpreter: the subreaper flag is for the life of a process, and pytest's own
process should not collect the orphans of every other test.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent(
    """
    import os, select, signal, subprocess, time
    from pgwarden.agent.adoption import become_subreaper, reap_pidfd, reap_session, session_of

    assert become_subreaper()
    # As pg_ctl does: a child starts the "postmaster" as a session leader and exits at once; the
    # postmaster has a "backend" in its session.
    inner = "sleep 60 >/dev/null 2>&1 & exec sleep 61"
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
        reap_session(session)
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{others[0]}"), "its session's zombie stayed"
    # A command the process waits for itself keeps its exit status.
    assert subprocess.run(["sh", "-c", "exit 3"]).returncode == 3
    print("ok")
    """
)


def test_a_killed_postmaster_and_its_session_are_reaped_by_the_agent() -> None:
    done = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
