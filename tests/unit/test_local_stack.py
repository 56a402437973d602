"""A local stack's bookkeeping without starting one: stale PIDs, foreign PIDs, down and purge, preflight."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgwarden.local import preflight, processes
from pgwarden.local.spec import StackSpec
from pgwarden.local.stack import Stack, StackError
from pgwarden.router.haproxy import RouterPorts


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    spec = StackSpec(dir=tmp_path / "stack", nodes=2)
    spec.save()
    return Stack(spec)


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process whose arguments name the stack directory, as etcd's --data-dir would."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", f"{tmp_path}/stack/etcd"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait(10)
    return proc.pid


def record(stack: Stack, pids: dict[str, int]) -> None:
    stack.pids_path.write_text(json.dumps(pids))


def test_a_stale_pids_file_of_dead_and_foreign_processes_is_not_a_running_stack(stack: Stack) -> None:
    record(stack, {"etcd1": dead_pid(), "node1": os.getpid()})  # os.getpid(): a reused PID
    assert not stack.running()
    assert stack.down() == []
    assert processes.alive(os.getpid())
    assert not stack.pids_path.exists()


def test_a_recorded_process_of_this_stack_counts_as_running_and_down_stops_it(
    stack: Stack, sleeper: subprocess.Popen[bytes]
) -> None:
    record(stack, {"etcd1": sleeper.pid})
    assert stack.running()
    assert stack.down() == [f"etcd1 (pid {sleeper.pid})"]
    assert sleeper.wait(5) is not None
    assert not stack.running()


def test_up_on_a_running_stack_refuses_and_leaves_it_running(
    stack: Stack, sleeper: subprocess.Popen[bytes]
) -> None:
    record(stack, {"etcd1": sleeper.pid})
    with pytest.raises(StackError, match="already running"):
        stack.up(timeout=10)
    assert sleeper.poll() is None
    assert stack.running()


def test_a_node_config_holds_its_passwords_in_a_file_no_one_else_could_open(stack: Stack) -> None:
    path = stack.spec.config_path(0)
    path.write_text("nothing secret yet\n")
    path.chmod(0o644)
    old_umask = os.umask(0)  # the loosest umask: only the mode given at creation protects the file
    try:
        with open(path) as opened_earlier:  # another user opened it while it was still public
            written = stack.write_node_config(0)
            fresh = stack.write_node_config(1)
            assert opened_earlier.read() == "nothing secret yet\n"  # the passwords went elsewhere
    finally:
        os.umask(old_umask)
    for config in (written, fresh):
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert stack.spec.superuser_password in config.read_text()
    assert [p.name for p in stack.spec.dir.iterdir() if p.name.endswith(".tmp")] == []


def test_purge_removes_the_stack_directory(stack: Stack) -> None:
    stack.down(purge=True)
    assert not stack.spec.dir.exists()


def test_purge_refuses_a_directory_that_holds_no_stack(tmp_path: Path) -> None:
    (tmp_path / "precious").write_text("keep me")
    with pytest.raises(StackError, match="not removing"):
        Stack(StackSpec(dir=tmp_path)).down(purge=True)
    assert (tmp_path / "precious").exists()


def test_observe_reports_silent_parts_without_failing(stack: Stack) -> None:
    state = stack.observe()
    assert [p.name for p in state.parts] == ["etcd1", "etcd2", "etcd3", "node1", "node2", "haproxy"]
    assert not any(p.running for p in state.parts)
    assert dict(state.members) == {"node1": None, "node2": None}
    assert not state.healthy and not state.routed


def test_preflight_names_an_address_already_in_use(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        spec = StackSpec(dir=tmp_path, network="127.0.251", router=RouterPorts("127.0.0.1", primary=port))
        found = preflight.problems(spec)
    assert any(f"127.0.0.1:{port} is already in use" in p for p in found)


def test_preflight_names_a_missing_program_and_a_missing_user(tmp_path: Path) -> None:
    spec = StackSpec(dir=tmp_path, bin_dir="/nonexistent/bin", run_as=("no-such-user-pgw",))
    found = "\n".join(preflight.problems(spec))
    assert "/nonexistent/bin/initdb is missing" in found
    if os.geteuid() == 0:
        assert "OS user 'no-such-user-pgw' does not exist" in found


def test_stop_all_stops_processes_together(tmp_path: Path) -> None:
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(3)]
    try:
        assert processes.stop_all([p.pid for p in procs], timeout=5) == []
        assert all(p.wait(5) is not None for p in procs)
    finally:
        for p in procs:
            p.kill()
            p.wait(5)
