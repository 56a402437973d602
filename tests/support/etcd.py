"""A real 3-member etcd cluster on loopback addresses, for integration tests that need one.

Members listen on 127.0.1.21-23 (ports chosen free by the kernel), with fast elections
(heartbeat 100 ms, election timeout 1 s), data in a temporary directory. Members can be
killed (SIGKILL) and restarted with their data to inject faults. Leaving the ``with`` block
stops every process and removes the directory, whatever happened inside; each member also
gets SIGKILL from the kernel if the test process itself dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx

from pgwarden.model.node import Address

HOSTS = ("127.0.1.21", "127.0.1.22", "127.0.1.23")
ETCD = "/usr/bin/etcd"
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: an etcd must not outlive a crashed test run.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EtcdCluster:
    """Three etcd members on loopback; use as a context manager."""

    def __init__(
        self,
        hosts: Sequence[str] = HOSTS,
        startup_timeout: float = 20.0,
        base_dir: Path | None = None,
    ) -> None:
        self.hosts = tuple(hosts)
        self.startup_timeout = startup_timeout
        self._base_dir = base_dir
        self.dir = Path(".")
        self.endpoints: list[Address] = []
        self._peers: list[Address] = []
        self._procs: list[subprocess.Popen[bytes] | None] = [None] * len(self.hosts)
        self._token = f"pgwarden-test-{uuid.uuid4().hex[:8]}"

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> EtcdCluster:
        self.dir = Path(tempfile.mkdtemp(prefix="pgwarden-etcd-", dir=self._base_dir))
        try:
            self.endpoints = [Address(h, free_port(h)) for h in self.hosts]
            self._peers = [Address(h, free_port(h)) for h in self.hosts]
            for i in range(len(self.hosts)):
                self.start(i)
            self.wait_healthy(self.startup_timeout)
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        try:
            self.stop_all()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _command(self, i: int) -> list[str]:
        initial = ",".join(f"e{j}=http://{peer}" for j, peer in enumerate(self._peers))
        client, peer = self.endpoints[i], self._peers[i]
        return [
            ETCD,
            f"--name=e{i}",
            f"--data-dir={self.dir / f'e{i}'}",
            f"--listen-client-urls=http://{client}",
            f"--advertise-client-urls=http://{client}",
            f"--listen-peer-urls=http://{peer}",
            f"--initial-advertise-peer-urls=http://{peer}",
            f"--initial-cluster={initial}",
            "--initial-cluster-state=new",  # ignored when the data dir already exists (restart)
            f"--initial-cluster-token={self._token}",
            "--heartbeat-interval=100",
            "--election-timeout=1000",
        ]

    def start(self, i: int) -> None:
        """Start member ``i`` (again, with its data, if it was killed). Does not wait."""
        if self.running(i):
            return
        log = open(self.dir / f"e{i}.log", "ab")  # noqa: SIM115 -- the child keeps it open
        try:
            self._procs[i] = subprocess.Popen(
                self._command(i),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()

    def kill(self, i: int) -> None:
        """SIGKILL member ``i`` (by PID) and reap it."""
        proc = self._procs[i]
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        self._procs[i] = None

    def stop_all(self) -> None:
        """SIGKILL every member: a test cluster needs no graceful leadership hand-off."""
        for i in range(len(self._procs)):
            self.kill(i)

    def pid(self, i: int) -> int | None:
        proc = self._procs[i]
        return proc.pid if proc is not None and proc.poll() is None else None

    def running(self, i: int) -> bool:
        proc = self._procs[i]
        return proc is not None and proc.poll() is None

    # -- observation -----------------------------------------------------------------------------

    def healthy(self, i: int) -> bool:
        """Member ``i`` is up and sees a leader (etcd's own /health)."""
        if not self.running(i):
            return False
        try:
            answer = httpx.get(f"http://{self.endpoints[i]}/health", timeout=1.0, trust_env=False)
            return bool(answer.json().get("health") == "true")
        except (httpx.HTTPError, ValueError):
            return False

    def wait_healthy(self, timeout: float = 20.0) -> None:
        """Wait until every running member is healthy; raise with the members' logs if not."""
        deadline = time.monotonic() + timeout
        while True:
            sick = [i for i in range(len(self.hosts)) if self.running(i) and not self.healthy(i)]
            if not sick:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"etcd members {sick} not healthy after {timeout}s:\n" + self._log_tails(sick)
                )
            time.sleep(0.1)

    def leader_index(self) -> int | None:
        """Which member is the raft leader now, as running members see it."""
        for i in range(len(self.hosts)):
            if not self.running(i):
                continue
            try:
                url = f"http://{self.endpoints[i]}/v3/maintenance/status"
                status = httpx.post(url, json={}, timeout=1.0, trust_env=False).json()
            except (httpx.HTTPError, ValueError):
                continue
            if status.get("leader") and status["leader"] == status["header"]["member_id"]:
                return i
        return None

    def _log_tails(self, members: Sequence[int]) -> str:
        out = []
        for i in members:
            path = self.dir / f"e{i}.log"
            lines = path.read_text(errors="replace").splitlines()[-15:] if path.exists() else []
            out.append(f"--- e{i} ({self.endpoints[i]}) ---\n" + "\n".join(lines))
        return "\n".join(out)
