"""A real 3-member etcd cluster on loopback addresses, for integration tests that need one.

Members listen on 127.0.1.21-23 (ports chosen free by the kernel), with fast elections
(heartbeat 100 ms, election timeout 1 s), data in a temporary directory. Members can be
killed (SIGKILL) and restarted with their data to inject faults. ``secure=True`` starts them as
the local stack does (local/etcd_security.py): TLS with client certificates on both ports, and
etcd auth with root and the users given, each limited to its prefix. Leaving the ``with`` block
stops every process and removes the directory, whatever happened inside; each member also
gets SIGKILL from the kernel if the test process itself dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx

from pgwarden.local import etcd_security
from pgwarden.local.pki import Issued, Pki
from pgwarden.model.node import Address, EtcdSettings
from pgwarden.tls import client_context

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
        secure: bool = False,
        users: Sequence[etcd_security.EtcdUser] = (),
        auth_token_ttl: int | None = None,
    ) -> None:
        self.hosts = tuple(hosts)
        self.startup_timeout = startup_timeout
        self._base_dir = base_dir
        self.secure = secure
        self.users = tuple(users)
        self.auth_token_ttl = auth_token_ttl
        self.root_password = secrets.token_urlsafe(12)
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
            if self.secure:
                for i, host in enumerate(self.hosts):
                    etcd_security.member_certificate(self.pki, f"e{i}", host)
                etcd_security.client_certificate(self.pki, "client")
            for i in range(len(self.hosts)):
                self.start(i)
            self.wait_healthy(self.startup_timeout)
            if self.secure:
                urls = [f"https://{e}" for e in self.endpoints]
                admin = self.pki.paths("client")
                etcd_security.enable_auth(urls, self.pki, admin, self.root_password, self.users)
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

    @property
    def scheme(self) -> str:
        return "https" if self.secure else "http"

    @property
    def pki(self) -> Pki:
        return Pki(self.dir / "tls", ca_name="pgwarden test etcd CA")

    def url(self, i: int) -> str:
        return f"{self.scheme}://{self.endpoints[i]}"

    def client(self) -> Issued:
        """A client certificate signed by the members' CA, without a CommonName."""
        return self.pki.paths("client")

    def settings(
        self, username: str | None = None, password: str | None = None, **changes: str | None
    ) -> EtcdSettings:
        """Client settings for this cluster: over TLS with ``client`` when secure, as ``username``."""
        base: dict[str, str | None] = {}
        if self.secure:
            client = self.client()
            base = {"cacert": str(self.pki.ca_cert), "cert": str(client.cert), "key": str(client.key)}
        return EtcdSettings(
            tuple(self.endpoints),
            protocol=self.scheme,
            username=username,
            password=password,
            **{**base, **changes},
        )

    def _verify(self) -> ssl.SSLContext | bool:
        if not self.secure:
            return True
        client = self.client()
        return client_context(str(self.pki.ca_cert), str(client.cert), str(client.key))

    def _command(self, i: int) -> list[str]:
        scheme = self.scheme
        initial = ",".join(f"e{j}={scheme}://{peer}" for j, peer in enumerate(self._peers))
        client, peer = self.endpoints[i], self._peers[i]
        command = [
            ETCD,
            f"--name=e{i}",
            f"--data-dir={self.dir / f'e{i}'}",
            f"--listen-client-urls={scheme}://{client}",
            f"--advertise-client-urls={scheme}://{client}",
            f"--listen-peer-urls={scheme}://{peer}",
            f"--initial-advertise-peer-urls={scheme}://{peer}",
            f"--initial-cluster={initial}",
            "--initial-cluster-state=new",  # ignored when the data dir already exists (restart)
            f"--initial-cluster-token={self._token}",
            "--heartbeat-interval=100",
            "--election-timeout=1000",
        ]
        if self.secure:
            command += etcd_security.member_flags(self.pki, self.pki.paths(f"e{i}"))
        if self.auth_token_ttl is not None:
            command.append(f"--auth-token-ttl={self.auth_token_ttl}")
        return command

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
            answer = httpx.get(f"{self.url(i)}/health", timeout=1.0, trust_env=False, verify=self._verify())
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
                url = f"{self.url(i)}/v3/maintenance/status"
                status = httpx.post(url, json={}, timeout=1.0, trust_env=False, verify=self._verify()).json()
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
