"""The fence's rule and loop, against a stand-in postmaster: a real process whose postmaster.pid and
pg_control say what each case needs (no PostgreSQL: the rule reads files and /proc only)."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pgwarden.fence.channel import InPlaceWriter, render, write_deadline
from pgwarden.fence.files import FenceFiles
from pgwarden.fence.postmaster import (
    DB_IN_PRODUCTION,
    control_state,
    postmaster,
    postmaster_pid,
    writable_postmaster,
)
from pgwarden.fence.watch import POLL, Fence

BOOT = "this-boot"
IN_ARCHIVE_RECOVERY = 5
IN_CRASH_RECOVERY = 4


@dataclass
class Server:
    """A stand-in for a running PostgreSQL: a sleeping process with the data directory as its cwd."""

    data_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, status: str = "ready", state: int = DB_IN_PRODUCTION) -> int:
        proc = subprocess.Popen(["sleep", "60"], cwd=self.data_dir)
        self.processes.append(proc)
        lines = [str(proc.pid), str(self.data_dir), "1700000000", "5432", "/tmp", "127.0.0.1", "1 2", status]
        (self.data_dir / "postmaster.pid").write_text("\n".join(lines) + "\n")
        self.set_state(state)
        return proc.pid

    def set_state(self, state: int) -> None:
        (self.data_dir / "global").mkdir(exist_ok=True)
        head = struct.pack("=QIIi", 7714911326625047102, 1300, 202209061, state)
        (self.data_dir / "global" / "pg_control").write_bytes(head + bytes(8192 - len(head)))

    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        for proc in self.processes:
            if proc.pid == pid:
                proc.wait(5)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    found = Server(data_dir)
    try:
        yield found
    finally:
        for proc in found.processes:
            proc.kill()
            proc.wait(5)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fence(server: Server, clock: Clock) -> tuple[Fence, list[int]]:
    signalled: list[int] = []

    def sigquit(pid: int) -> None:
        signalled.append(pid)
        server.kill(pid)  # PostgreSQL's immediate shutdown, in short

    return Fence(str(server.data_dir), BOOT, clock, sigquit), signalled


def deadline_file(server: Server) -> Path:
    files = FenceFiles.beside(str(server.data_dir))
    files.directory.mkdir(exist_ok=True)
    return files.deadline


# --- the rule: may PostgreSQL take writes? --------------------------------------------------


@pytest.mark.parametrize(
    ("status", "state", "standby_signal", "writable"),
    [
        ("ready", DB_IN_PRODUCTION, False, True),
        ("stopping", DB_IN_PRODUCTION, False, True),  # a smart shutdown still commits
        ("ready", IN_ARCHIVE_RECOVERY, True, False),  # a hot standby also says "ready"
        ("ready", IN_ARCHIVE_RECOVERY, False, False),
        ("starting", DB_IN_PRODUCTION, True, False),  # a standby starting after an immediate stop
        ("starting", IN_CRASH_RECOVERY, False, False),
        ("standby", IN_ARCHIVE_RECOVERY, True, False),
        ("ready", 99, False, True),  # pg_control makes no sense: standby.signal decides
        ("ready", 99, True, False),
        ("", DB_IN_PRODUCTION, False, False),  # status not written yet
    ],
    ids=[
        "primary",
        "primary_stopping",
        "hot_standby",
        "hot_standby_without_signal_file",
        "standby_starting_with_stale_pg_control",
        "crash_recovery",
        "standby_accepting_no_connections",
        "unreadable_state_no_signal_file",
        "unreadable_state_signal_file",
        "status_not_yet_written",
    ],
)
def test_writable_rule(server: Server, status: str, state: int, standby_signal: bool, writable: bool) -> None:
    pid = server.start(status, state)
    if standby_signal:
        (server.data_dir / "standby.signal").touch()
    found = writable_postmaster(str(server.data_dir))
    assert (found is not None) is writable
    assert postmaster_pid(str(server.data_dir)) == pid


def test_a_stale_pid_file_is_no_postmaster(server: Server) -> None:
    pid = server.start()
    server.kill(pid)
    assert postmaster(str(server.data_dir)) is None and writable_postmaster(str(server.data_dir)) is None


def test_control_state_of_a_missing_or_short_file_is_unknown(tmp_path: Path) -> None:
    assert control_state(str(tmp_path)) is None
    (tmp_path / "global").mkdir()
    (tmp_path / "global" / "pg_control").write_bytes(b"\x01\x02")
    assert control_state(str(tmp_path)) is None


# --- the loop --------------------------------------------------------------------------------


def test_a_fence_that_never_saw_a_deadline_does_nothing(server: Server) -> None:
    server.start()
    clock = Clock()
    f, signalled = fence(server, clock)
    assert f.turn() == pytest.approx(clock.now + POLL)
    assert signalled == []


def test_past_the_deadline_a_writable_postgres_is_stopped_and_left_a_standby(server: Server) -> None:
    pid = server.start()
    clock = Clock()
    write_deadline(deadline_file(server), 1003.0, BOOT)
    f, signalled = fence(server, clock)
    clock.now = 1002.95
    assert f.turn() == pytest.approx(1003.0), "it wakes at the deadline, not a poll later"
    assert signalled == []
    clock.now = 1003.0
    f.turn()
    assert signalled == [pid]
    assert (server.data_dir / "standby.signal").exists()


def test_a_renewal_moves_the_deadline(server: Server) -> None:
    server.start()
    clock = Clock()
    path = deadline_file(server)
    write_deadline(path, 1003.0, BOOT)
    f, signalled = fence(server, clock)
    f.turn()
    write_deadline(path, 1004.0, BOOT)
    clock.now = 1003.5
    f.turn()
    assert signalled == []


def test_in_place_renewals_move_the_deadline_and_a_torn_one_keeps_the_one_before(server: Server) -> None:
    pid = server.start()
    clock = Clock()
    path = deadline_file(server)
    writer = InPlaceWriter(path, BOOT)
    try:
        writer.write(1003.0)
        f, signalled = fence(server, clock)
        f.turn()
        writer.write(1004.0)
        clock.now = 1003.5
        f.turn()
        assert f.deadline == 1004.0 and signalled == []
        # A record read while half-written (here: damaged for good) is not a deadline: the fence
        # keeps 1004.0, not the 1904.0 the bytes now seem to say.
        raw = bytearray(path.read_bytes())
        raw[raw.index(b"1004") + 1] = ord("9")
        path.write_bytes(bytes(raw))
        clock.now = 1004.0
        f.turn()
        assert f.deadline == 1004.0 and signalled == [pid]
    finally:
        writer.close()


def test_a_renewal_written_after_the_first_look_still_wins(server: Server) -> None:
    server.start()
    clock = Clock(1003.5)
    path = deadline_file(server)
    write_deadline(path, 1003.0, BOOT)
    f, signalled = fence(server, clock)
    f.refresh()
    write_deadline(path, 1006.0, BOOT)  # the agent renewed in between
    assert not f.enforce()
    assert signalled == []


def test_a_standby_is_never_stopped(server: Server) -> None:
    server.start("ready", IN_ARCHIVE_RECOVERY)
    (server.data_dir / "standby.signal").touch()
    clock = Clock(2000.0)
    write_deadline(deadline_file(server), 1003.0, BOOT)
    f, signalled = fence(server, clock)
    f.turn()
    assert signalled == []


def test_a_released_lease_stops_nothing(server: Server) -> None:
    server.start()
    clock = Clock(2000.0)
    write_deadline(deadline_file(server), None, BOOT)
    f, signalled = fence(server, clock)
    f.turn()
    assert signalled == [] and f.deadline is None


def test_garbage_keeps_the_deadline_in_force(server: Server) -> None:
    pid = server.start()
    clock = Clock()
    path = deadline_file(server)
    write_deadline(path, 1003.0, BOOT)
    f, signalled = fence(server, clock)
    f.turn()
    path.write_text("garbage")
    clock.now = 1003.1
    f.turn()
    assert signalled == [pid]


def test_garbage_or_another_boot_at_start_is_no_deadline(server: Server) -> None:
    server.start()
    clock = Clock(2000.0)
    path = deadline_file(server)
    f, signalled = fence(server, clock)
    for text in ("garbage", render(1003.0, "an-earlier-boot", 42)):
        path.write_text(text)
        f.turn()
    assert signalled == []


def test_a_writable_postgres_started_again_past_the_deadline_is_stopped_again(server: Server) -> None:
    first = server.start()
    clock = Clock(1003.5)
    write_deadline(deadline_file(server), 1003.0, BOOT)
    f, signalled = fence(server, clock)
    f.turn()
    second = server.start()  # started by hand as a primary, no renewal in between
    clock.now = 1004.0
    f.turn()
    assert signalled == [first, second]
