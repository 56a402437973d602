"""The registry of the commands a process waits for itself (pgwarden/own_children.py)."""

from __future__ import annotations

import subprocess
import time

import pytest

from pgwarden import own_children


def test_a_started_command_is_known_until_forgotten() -> None:
    process = own_children.start(["true"])
    with own_children.lock():
        assert own_children.is_own(process.pid)
    assert process.wait() == 0
    own_children.forget(process)
    with own_children.lock():
        assert not own_children.is_own(process.pid)


def test_run_gives_the_exit_status_and_output_and_forgets_the_command() -> None:
    done = own_children.run(["sh", "-c", "echo out; echo err >&2; exit 3"], 10, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert not own_children._pids


def test_run_kills_a_command_that_outlives_its_timeout_and_waits_for_it() -> None:
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        own_children.run(["sh", "-c", "echo partial; exec sleep 30"], 0.5, text=True)
    assert time.monotonic() - started < 10
    assert caught.value.stdout == "partial\n"
    assert not own_children._pids  # killed, waited for and forgotten: no zombie, no entry


def test_a_process_that_is_no_subreaper_reaps_nothing_it_did_not_start() -> None:
    child = subprocess.Popen(["sh", "-c", "exit 6"])
    time.sleep(0.3)
    assert not own_children.reap(child.pid)
    assert child.wait() == 6
