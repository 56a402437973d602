"""The postmaster watch wakes the loop when the postmaster exits, at once, and stops when asked."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from pgwarden.agent.postmaster_watch import PostmasterWatch


def _fake_postmaster(data_dir: Path) -> subprocess.Popen[bytes]:
    """A process that passes for the postmaster: its PID in postmaster.pid, its cwd the data dir."""
    proc = subprocess.Popen(["sleep", "60"], cwd=data_dir)
    (data_dir / "postmaster.pid").write_text(f"{proc.pid}\n{data_dir}\n")
    return proc


def test_the_loop_is_woken_as_soon_as_the_postmaster_exits(tmp_path: Path) -> None:
    proc = _fake_postmaster(tmp_path)
    wake = threading.Event()
    watch = PostmasterWatch(str(tmp_path), wake)
    watch.start()
    try:
        time.sleep(0.5)  # asleep on the postmaster by now
        assert not wake.is_set()
        proc.kill()
        proc.wait()
        assert wake.wait(5.0)
        # A new postmaster is watched in turn.
        wake.clear()
        again = _fake_postmaster(tmp_path)
        time.sleep(0.5)
        again.kill()
        again.wait()
        assert wake.wait(5.0)
    finally:
        watch.stop()
        proc.kill()
    watch._thread.join(5.0)
    assert not watch._thread.is_alive()


def test_a_watch_asleep_on_a_running_postmaster_stops_when_asked(tmp_path: Path) -> None:
    proc = _fake_postmaster(tmp_path)
    watch = PostmasterWatch(str(tmp_path), threading.Event())
    watch.start()
    try:
        time.sleep(0.3)
        watch.stop()
        watch.stop()  # twice is fine
        watch._thread.join(5.0)
        assert not watch._thread.is_alive()
    finally:
        proc.kill()
        proc.wait()


def _status(data_dir: Path, pid: int, status: str) -> None:
    """postmaster.pid as PostgreSQL writes it: the status on line 8."""
    lines = [str(pid), str(data_dir), "1700000000", "5432", "/tmp", "*", "  1234   5678", status]
    (data_dir / "postmaster.pid").write_text("\n".join(lines) + "\n")


def test_the_loop_is_woken_when_a_starting_postmaster_accepts_connections(tmp_path: Path) -> None:
    # A primary in crash recovery says "starting"; the loop must hear of "ready" at once, not at
    # its next loop_wait, so that /primary answers 200 (and HAProxy sends writes) without delay.
    proc = subprocess.Popen(["sleep", "60"], cwd=tmp_path)
    _status(tmp_path, proc.pid, "starting")
    wake = threading.Event()
    watch = PostmasterWatch(str(tmp_path), wake)
    watch.start()
    try:
        time.sleep(0.5)
        assert not wake.is_set(), "woken while the postmaster still starts"
        _status(tmp_path, proc.pid, "ready")
        assert wake.wait(5.0), "not woken when the postmaster became ready"
        # Then it sleeps on the running postmaster as before: its death wakes the loop too.
        time.sleep(0.3)
        wake.clear()
        proc.kill()
        proc.wait()
        assert wake.wait(5.0)
    finally:
        watch.stop()
        proc.kill()
    watch._thread.join(5.0)
    assert not watch._thread.is_alive()


def test_a_watch_on_a_starting_postmaster_stops_when_asked(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "60"], cwd=tmp_path)
    _status(tmp_path, proc.pid, "starting")
    watch = PostmasterWatch(str(tmp_path), threading.Event())
    watch.start()
    try:
        time.sleep(0.3)
        watch.stop()
        watch._thread.join(5.0)
        assert not watch._thread.is_alive()
    finally:
        proc.kill()
        proc.wait()
