"""The registry of the commands a process waits for itself (pgwarden/own_children.py)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

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
    before = set(own_children._pids)  # other tests' commands (a fence still running) may be there
    done = own_children.run(["sh", "-c", "echo out; echo err >&2; exit 3"], 10, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert own_children._pids == before


def test_run_kills_a_command_that_outlives_its_timeout_and_waits_for_it() -> None:
    before = set(own_children._pids)
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        own_children.run(["sh", "-c", "echo partial; exec sleep 30"], 0.5, text=True)
    assert time.monotonic() - started < 10
    assert caught.value.stdout == "partial\n"
    assert own_children._pids == before  # killed, waited for and forgotten: no zombie, no entry


def test_a_process_that_is_no_subreaper_reaps_nothing_it_did_not_start() -> None:
    child = subprocess.Popen(["sh", "-c", "exit 6"])
    time.sleep(0.3)
    assert not own_children.reap(child.pid)
    assert child.wait() == 6


# Packages the agent's process runs. A command started there without own_children would be
# reaped by the agent's sweep (it is a subreaper) and subprocess would report its exit as 0.
AGENT_PACKAGES = ("agent", "daemon", "postgres", "dcs", "api", "config", "documents", "model", "ha")


def test_the_agent_starts_every_command_through_own_children() -> None:
    root = Path(own_children.__file__).parent
    spawning = re.compile(
        r"subprocess\.(Popen|run|call|check_call|check_output)\(|os\.(fork|spawn\w*|posix_spawn\w*)\("
    )
    found = [
        f"{path.relative_to(root)}:{n}"
        for package in AGENT_PACKAGES
        for path in sorted((root / package).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if spawning.search(line)
    ]
    assert found == [], f"start these through pgwarden.own_children: {found}"
