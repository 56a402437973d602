"""A start after a crash waits for the dead postmaster's zombie to be reaped, and only for that."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pgwarden.fence.postmaster import wait_reaped
from pgwarden.model import Address
from pgwarden.model.node import Credentials, PostgresSettings
from pgwarden.postgres.commands import PostgresError
from pgwarden.postgres.controller import ZOMBIE_WAIT_START, PostgresController


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


def _controller(tmp_path: Path) -> PostgresController:
    here = Address("127.0.2.11", 5432)
    settings = PostgresSettings(
        listen=here,
        connect_address=here,
        data_dir=str(tmp_path),
        bin_dir="/usr/lib/postgresql/15/bin",
        superuser=Credentials("postgres", "su"),
        replication=Credentials("replicator", "r"),
    )
    return PostgresController(settings, "node1")


def test_a_start_does_not_stall_the_cycle_on_a_zombie_it_cannot_reap(tmp_path: Path) -> None:
    # Not this process's to reap (it is no subreaper): the start fails at once, naming the dead
    # postmaster and the parent that has to reap it, and the cycle tries again next time.
    dead = subprocess.Popen(["true"])
    _names(tmp_path, dead.pid)
    time.sleep(0.3)
    try:
        started = time.monotonic()
        with pytest.raises(PostgresError, match=rf"previous postmaster \(pid {dead.pid}\) is dead") as err:
            _controller(tmp_path)._no_dead_postmaster(ZOMBIE_WAIT_START)
        assert time.monotonic() - started < 2.0
        assert f"parent (pid {os.getpid()}" in str(err.value)
    finally:
        dead.wait()
    _controller(tmp_path)._no_dead_postmaster(ZOMBIE_WAIT_START)  # reaped: nothing to wait for
