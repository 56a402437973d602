"""Which running processes belong to a local stack: found by its directory, never by a program's name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from pgwarden.local import inventory, processes
from pgwarden.local.spec import StackSpec
from pgwarden.local.stack import Stack

# Sleeps; with an argument, it first starts a grandchild in a clean environment (as an agent
# starts PostgreSQL, whose backends then rename themselves) and prints the grandchild's PID.
SLEEPER = """
import subprocess, sys, time
if len(sys.argv) > 1 and sys.argv[1] == "spawn":
    child = subprocess.Popen(["sleep", "60"], env={})
    print(child.pid, flush=True)
time.sleep(60)
"""
STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    spec = StackSpec(dir=tmp_path / "stack", nodes=2)
    spec.save()
    return Stack(spec)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        processes.signal_tree(proc.pid, signal.SIGKILL)
        proc.wait(10)


def start(
    procs: list[subprocess.Popen[str]],
    args: Sequence[str],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    code: str = SLEEPER,
) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, text=True
    )
    procs.append(proc)
    return proc


def test_a_process_carrying_the_stack_marker_is_found_with_its_descendants(
    stack: Stack, started: list[subprocess.Popen[str]]
) -> None:
    marked = start(started, ["spawn"], env=inventory.marked_environment(stack.spec.dir))
    assert marked.stdout is not None
    grandchild = int(marked.stdout.readline())
    other = start(started, [], env=inventory.marked_environment(stack.spec.dir.with_name("other")))
    found = stack.find_processes()
    assert marked.pid in found and grandchild in found  # the grandchild has no marker, no path
    assert other.pid not in found and os.getpid() not in found
    assert stack.running()


def test_an_agent_started_with_a_relative_config_path_is_found_and_named(
    stack: Stack, started: list[subprocess.Popen[str]]
) -> None:
    # As `pgwarden drill --unplanned` from the parent directory restarted agents before: no
    # marker, and "-c stack/node2.yml" relative to its working directory.
    agent = start(started, ["agent", "-c", "stack/node2.yml"], env={}, cwd=stack.spec.dir.parent)
    assert stack.parts() == [("node2", agent.pid)]
    assert stack.agent_pids(1) == [agent.pid] and stack.agent_pids(0) == []


def test_a_fence_is_named_after_its_node_and_is_no_agent(
    stack: Stack, started: list[subprocess.Popen[str]]
) -> None:
    # As an agent starts it: python -m pgwarden.fence --data-dir DIR/node2/data --config DIR/node2.yml
    data_dir, config = stack.spec.data_dir(1), stack.spec.config_path(1)
    fence = start(started, ["pgwarden.fence", "--data-dir", str(data_dir), "--config", str(config)], env={})
    assert stack.parts() == [("node2 fence", fence.pid)]
    assert stack.agent_pids(1) == [] and stack.fence_pids(1) == [fence.pid] and stack.fence_pids(0) == []
    assert stack.down() == [f"node2 fence (pid {fence.pid})"]
    assert not processes.alive(fence.pid)


def test_a_process_reading_the_stacks_logs_is_not_the_stacks(
    stack: Stack, started: list[subprocess.Popen[str]]
) -> None:
    reader = start(started, [str(stack.logs_dir / "node1.log"), "--dir", str(stack.spec.dir)], env={})
    assert reader.pid not in stack.find_processes()
    assert not stack.running()


def test_down_stops_unrecorded_processes_of_the_stack_even_one_ignoring_sigterm(
    stack: Stack, started: list[subprocess.Popen[str]]
) -> None:
    marked = inventory.marked_environment(stack.spec.dir)
    agent = start(started, ["spawn", "-c", str(stack.spec.config_path(0))], env=marked)
    assert agent.stdout is not None
    backend = int(agent.stdout.readline())
    stubborn = start(started, [], env=marked, code=STUBBORN)
    assert stubborn.stdout is not None and stubborn.stdout.readline()  # its handler is set
    stopped = stack.down(purge=True)
    assert f"node1 agent (pid {agent.pid})" in stopped
    assert any(f"(pid {stubborn.pid})" in line for line in stopped)
    # Both were reaped by `down` itself (they are children of this test process): gone is all
    # one can see, and the stubborn one only goes with SIGKILL.
    assert not any(processes.alive(p) for p in (agent.pid, backend, stubborn.pid))
    assert not stack.spec.dir.exists()


def test_a_recorded_pid_now_used_by_another_program_is_left_alone(
    stack: Stack, started: list[subprocess.Popen[str]]
) -> None:
    stranger = start(started, [], env={})
    stack.pids_path.write_text(f'{{"node1": {stranger.pid}}}')
    assert stack.parts() == [] and not stack.running()
    assert stack.down() == []
    assert stranger.poll() is None
