"""A start after a crash waits for the dead postmaster's zombie to be reaped, and only for that."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from pgwarden.fence.postmaster import wait_reaped


def _names(data_dir: Path, pid: int) -> None:
    (data_dir / "postmaster.pid").write_text(f"{pid}\n{data_dir}\n")


def test_a_zombie_postmaster_is_waited_for_until_it_is_reaped(tmp_path: Path) -> None:
    # A child that exited and was not waited for is a zombie: its PID still exists, as a SIGKILLed
    # postmaster's does until init reaps it (a new postmaster would refuse to start meanwhile).
    dead = subprocess.Popen(["true"])
    _names(tmp_path, dead.pid)
    time.sleep(0.3)
    reaper = threading.Timer(0.5, dead.wait)
    reaper.start()
    started = time.monotonic()
    try:
        assert wait_reaped(str(tmp_path), 10.0)
        waited = time.monotonic() - started
    finally:
        reaper.join()
    assert 0.3 < waited < 5.0, f"returned after {waited:.2f} s, the zombie was reaped after 0.5 s"


def test_a_zombie_that_stays_is_waited_for_no_longer_than_the_timeout(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    _names(tmp_path, dead.pid)
    time.sleep(0.3)
    try:
        started = time.monotonic()
        assert not wait_reaped(str(tmp_path), 0.3)
        assert time.monotonic() - started < 3.0
    finally:
        dead.wait()


def test_a_live_or_absent_postmaster_costs_no_wait(tmp_path: Path) -> None:
    assert wait_reaped(str(tmp_path), 10.0)  # no postmaster.pid
    live = subprocess.Popen(["sleep", "30"])
    _names(tmp_path, live.pid)
    try:
        started = time.monotonic()
        assert wait_reaped(str(tmp_path), 10.0)
        assert time.monotonic() - started < 1.0
    finally:
        live.kill()
        live.wait()
