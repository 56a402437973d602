"""Real PostgreSQL nodes for integration tests: OS users, directory layout, settings and cleanup.

Node ``i`` (1-based) runs as OS user ``pgwtest<i>`` on 127.0.2.<10+i> with a free port. Its files
live under one ``/tmp/pgw-<random>`` directory (short, so unix socket paths stay well below the
108-byte limit): ``n<i>/data`` (0700, owned by the node user), ``n<i>/data.log`` and ``s<i>``
(socket directory). Leaving the ``with`` block stops every PostgreSQL process started there
(pg_ctl stop -m immediate, then SIGKILL of whatever still runs in a data directory) and removes
the directory, whatever happened inside.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pgwarden.model.node import Address, Credentials, PostgresSettings

BIN_DIR = "/usr/lib/postgresql/15/bin"
SUPERUSER = "postgres"
REPLICATION_USER = "replicator"
# Quotes, a backslash and a space: every layer that carries a password must quote it right.
SUPERUSER_PASSWORD = "su p'ass\\word"
REPLICATION_PASSWORD = "re'pl \\secret"
# Small and quick: tests run several instances on two cores.
TEST_PARAMETERS: dict[str, str | int | float | bool] = {
    "shared_buffers": "16MB",
    "max_connections": 20,
    "checkpoint_timeout": "30min",
}


def postgres_available() -> bool:
    return os.geteuid() == 0 and Path(BIN_DIR, "initdb").exists()


def ensure_os_user(name: str) -> None:
    """Create a system user without a home directory, unless it exists (idempotent)."""
    with contextlib.suppress(KeyError):
        pwd.getpwnam(name)
        return
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", name],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if result.returncode not in (0, 9):  # 9: created meanwhile by another test process
        raise RuntimeError(f"useradd {name} failed: {result.stderr.strip()}")


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def node_settings(
    *,
    host: str,
    port: int,
    data_dir: Path,
    socket_dir: Path,
    run_as: str | None,
    parameters: dict[str, str | int | float | bool] | None = None,
) -> PostgresSettings:
    return PostgresSettings(
        listen=Address(host, port),
        connect_address=Address(host, port),
        data_dir=str(data_dir),
        bin_dir=BIN_DIR,
        superuser=Credentials(SUPERUSER, SUPERUSER_PASSWORD),
        replication=Credentials(REPLICATION_USER, REPLICATION_PASSWORD),
        run_as=run_as,
        socket_dir=str(socket_dir),
        parameters=dict(TEST_PARAMETERS if parameters is None else parameters),
    )


@dataclass(frozen=True)
class PgNode:
    name: str  # member name: node<i>
    user: str
    host: str
    port: int
    data_dir: Path
    socket_dir: Path
    settings: PostgresSettings


def _proc_table() -> dict[int, tuple[int, str | None]]:
    """pid -> (parent pid, working directory) of every process we can see."""
    table: dict[int, tuple[int, str | None]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        try:
            cwd: str | None = os.readlink(entry / "cwd")
        except OSError:
            cwd = None
        table[int(entry.name)] = (ppid, cwd)
    return table


def processes_of(data_dir: Path) -> set[int]:
    """PIDs of the PostgreSQL processes serving ``data_dir``: every process working in it (the
    postmaster, its children, a single-user server) and all their descendants."""
    real = os.path.realpath(data_dir)
    table = _proc_table()
    found = {pid for pid, (_, cwd) in table.items() if cwd == real}
    for _ in range(10):  # descendants, a bounded number of generations
        more = {pid for pid, (ppid, _) in table.items() if ppid in found} - found
        if not more:
            break
        found |= more
    return found


def kill_postgres(node: PgNode) -> None:
    """Stop the node's PostgreSQL whatever state it is in: immediate stop, then SIGKILL by PID."""
    pids = processes_of(node.data_dir)
    for pid in pids:  # a SIGSTOPped test victim would ignore the stop request
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    if (node.data_dir / "postmaster.pid").exists():
        user = pwd.getpwnam(node.user)
        subprocess.run(
            [f"{BIN_DIR}/pg_ctl", "stop", "-D", str(node.data_dir), "-m", "immediate", "-w", "-t", "10"],
            user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd="/",
            capture_output=True, timeout=20, check=False,
        )  # fmt: skip
    for pid in pids | processes_of(node.data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class PgNodes:
    """``count`` node layouts (users, directories, settings); use as a context manager."""

    def __init__(self, count: int = 2, first: int = 1) -> None:
        self.count = count
        self.first = first
        self.root = Path(".")
        self.nodes: list[PgNode] = []

    def __enter__(self) -> PgNodes:
        self.root = Path(tempfile.mkdtemp(prefix="pgw-", dir="/tmp"))
        try:
            os.chmod(self.root, 0o755)
            for i in range(self.first, self.first + self.count):
                self.nodes.append(self._make_node(i))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __getitem__(self, index: int) -> PgNode:
        return self.nodes[index]

    def _make_node(self, i: int) -> PgNode:
        user = f"pgwtest{i}"
        ensure_os_user(user)
        entry = pwd.getpwnam(user)
        node_dir = self.root / f"n{i}"
        node_dir.mkdir(mode=0o755)
        data_dir = node_dir / "data"
        data_dir.mkdir(mode=0o700)
        socket_dir = self.root / f"s{i}"
        socket_dir.mkdir(mode=0o755)
        for path in (data_dir, socket_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        host = f"127.0.2.{10 + i}"
        port = free_port(host)
        settings = node_settings(host=host, port=port, data_dir=data_dir, socket_dir=socket_dir, run_as=user)
        return PgNode(f"node{i}", user, host, port, data_dir, socket_dir, settings)

    def close(self) -> None:
        try:
            for node in self.nodes:
                kill_postgres(node)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def pg_nodes(count: int = 2, first: int = 1) -> Iterator[PgNodes]:
    with PgNodes(count, first) as nodes:
        yield nodes


def wait_until(check: Callable[[], bool], timeout: float = 15.0, interval: float = 0.1) -> None:
    """Poll ``check`` until true (an exception counts as not yet); raise AssertionError after
    ``timeout`` seconds, naming the last exception."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            if check():
                return
        except Exception as exc:  # e.g. a standby not accepting connections yet
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s; last error: {last}")
        time.sleep(interval)
