"""The agent's side of the fence: start one, adopt the running one, feed it, stop it (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgwarden.agent.fence import FenceLink
from pgwarden.agent.lease import LeaderLease
from pgwarden.fence.channel import HEADER, RECORD_SIZE, boot_id, read_deadline
from pgwarden.fence.files import reads_checked_records, running_fence
from pgwarden.fence.proc import alive, command_line


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "node1" / "data"
    path.mkdir(parents=True)
    try:
        yield str(path)
    finally:
        pid = running_fence(str(path))
        if pid is not None:
            os.kill(pid, signal.SIGKILL)


def wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not alive(pid)


def test_an_agent_starts_its_fence_and_a_restarted_agent_adopts_it(data_dir: str) -> None:
    first = FenceLink(data_dir, "node1", lambda: None, "/etc/pgwarden/node1.yml")
    pid = first.ensure_running()
    assert pid is not None and running_fence(data_dir) == pid
    args = command_line(pid)
    assert "pgwarden.fence" in args and data_dir in args and "/etc/pgwarden/node1.yml" in args
    assert os.getsid(pid) == pid, "a session of its own: the agent's death does not reach it"
    second = FenceLink(data_dir, "node1", lambda: None)
    assert second.ensure_running() == pid, "adopted, not a second fence"
    second.stop()
    assert wait_gone(pid)
    assert running_fence(data_dir) is None


def test_a_fence_that_died_is_replaced(data_dir: str) -> None:
    link = FenceLink(data_dir, "node1", lambda: None)
    first = link.ensure_running()
    assert first is not None
    os.kill(first, signal.SIGKILL)
    assert wait_gone(first)
    second = link.ensure_running()
    assert second is not None and second != first and running_fence(data_dir) == second
    link.stop()


def test_a_second_fence_for_the_same_data_directory_exits(data_dir: str) -> None:
    first = FenceLink(data_dir, "node1", lambda: None)
    pid = first.ensure_running()
    original = first._child  # the link keeps only the child it started last
    assert pid is not None and original is not None
    first._start()  # as if another agent raced it: the lock keeps one
    racer = first._child
    assert racer is not None and racer.pid != pid
    try:
        # Waited for while the first fence holds the lock: stopping the first before the racer
        # (slow to start on a loaded machine) reached the lock would hand the lock to the racer,
        # which would then guard the directory until killed.
        assert racer.wait(timeout=60) == 0, "the second fence exits, finding the lock taken"
        assert running_fence(data_dir) == pid and alive(pid), "the first fence still guards"
    finally:
        if racer.poll() is None:  # by PID, even on failure: no fence outlives the test
            os.kill(racer.pid, signal.SIGKILL)
            racer.wait()
        first.stop()
    assert wait_gone(pid)
    original.wait(timeout=5)  # reaped here, not left a zombie until pytest exits


def test_the_lease_feeds_the_fence_on_every_renewal_and_release(tmp_path: Path) -> None:
    lease = LeaderLease()
    link = FenceLink(str(tmp_path / "data"), "node1", lease.deadline)
    lease.listeners.append(link.publish)
    path = link.files.deadline

    def written() -> float | None:
        record = read_deadline(path, boot_id(), time.monotonic())
        assert record is not None
        return record.deadline

    link.publish()
    assert not path.exists(), "a restarted agent knows no lease yet: the fence keeps the one it has"
    now = time.monotonic()
    lease.renewed(7, sent_at=now, ttl=4.0)
    assert written() == lease.deadline() == pytest.approx(now + 3.0)
    lease.forget()
    assert written() is None


def _read_written(path: Path) -> tuple[bytes, float | None]:
    record = read_deadline(path, boot_id(), time.monotonic())
    assert record is not None
    return path.read_bytes(), record.deadline


def _older_fence(data_dir: str) -> subprocess.Popen[bytes]:
    """A fence started as agents before version-2 records started theirs (no CHANNEL_FLAG)."""
    cmd = [sys.executable, "-m", "pgwarden.fence", "--data-dir", data_dir, "--name", "node1"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while running_fence(data_dir) != proc.pid and time.monotonic() < deadline:
        assert proc.poll() is None, "the fence exited"
        time.sleep(0.02)
    assert running_fence(data_dir) == proc.pid
    return proc


def test_a_fence_it_started_gets_each_deadline_in_place(data_dir: str) -> None:
    lease = LeaderLease()
    link = FenceLink(data_dir, "node1", lease.deadline)
    lease.listeners.append(link.publish)
    pid = link.ensure_running()
    assert pid is not None and reads_checked_records(pid)
    try:
        now = time.monotonic()
        lease.renewed(7, sent_at=now, ttl=4.0)
        raw, deadline = _read_written(link.files.deadline)
        assert raw.startswith(HEADER) and len(raw) == RECORD_SIZE and deadline == lease.deadline()
        inode = link.files.deadline.stat().st_ino
        lease.extended(7, now + 0.25)
        raw, deadline = _read_written(link.files.deadline)
        assert deadline == pytest.approx(now + 3.25)
        assert link.files.deadline.stat().st_ino == inode, "written in place"
    finally:
        link.stop()


def test_an_adopted_older_fence_gets_version_1_records_even_the_last_one_written_in_place(
    data_dir: str,
) -> None:
    # After an upgrade the running fence may be an older one, which reads version 1 only: a
    # record it cannot read would leave it enforcing the deadline before, and stop PostgreSQL.
    lease = LeaderLease()
    link = FenceLink(data_dir, "node1", lease.deadline)
    lease.listeners.append(link.publish)
    first = link.ensure_running()
    assert first is not None
    lease.renewed(7, sent_at=time.monotonic(), ttl=4.0)
    raw, _ = _read_written(link.files.deadline)
    assert raw.startswith(HEADER)
    os.kill(first, signal.SIGKILL)
    assert wait_gone(first)
    link._reap()
    older = _older_fence(data_dir)
    try:
        assert not reads_checked_records(older.pid)
        assert link.ensure_running() == older.pid
        raw, deadline = _read_written(link.files.deadline)
        assert raw.startswith(b'{"version": 1') and deadline == lease.deadline(), "rewritten at adoption"
        lease.extended(7, time.monotonic())
        raw, deadline = _read_written(link.files.deadline)
        assert raw.startswith(b'{"version": 1') and deadline == lease.deadline()
    finally:
        os.kill(older.pid, signal.SIGKILL)
        older.wait(10)
