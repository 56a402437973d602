"""Patroni 4.1.5 as the cluster under test: 3 Patroni nodes over a real 3-member etcd, behind the
same HAProxy configuration pgwarden gets, on a loopback network of its own.

Each node runs as its own unprivileged OS user (pgwtest1..3, as pgwarden's test nodes do) from
``.venv-patroni`` (``scripts/install-bench-deps.sh``), with its data under a temporary directory.
Stopping ends exactly the processes started here (by PID) and the PostgreSQL processes working
in its data directories, then removes the directory, whatever happened before.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import random
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bench.cluster import ClusterUnderTest, Node
from pgwarden.local import processes
from pgwarden.router.haproxy import Backend, RouterPorts, render
from tests.support.cluster import network_free
from tests.support.etcd import EtcdCluster
from tests.support.pg import BIN_DIR, ensure_os_user, processes_of

REPO = Path(__file__).resolve().parent.parent
PATRONI = REPO / ".venv-patroni" / "bin" / "patroni"
HAPROXY = "/usr/sbin/haproxy"
USERS = ("pgwtest1", "pgwtest2", "pgwtest3")
PG_PORT = 5432
API_PORT = 8008
# Patroni's defaults, and the shortest timing its validator accepts (ttl >= 20, loop_wait >= 1,
# retry_timeout >= 3).
DEFAULTS = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}
FASTEST = {"ttl": 20, "loop_wait": 1, "retry_timeout": 3}
# The PostgreSQL parameters pgwarden's local stack sets; everything else stays at Patroni's defaults.
PARAMETERS = {"shared_buffers": "32MB", "max_connections": 50}
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Between fork and exec (after the switch of user): a Patroni must not outlive a crashed bench.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def pick_network(tries: int = 40) -> str:
    """A 127.0.N network whose node, etcd and router addresses are all free (others run test
    clusters)."""
    for _ in range(tries):
        net = f"127.0.{random.randint(100, 250)}"
        if network_free(net):
            return net
    raise RuntimeError("no free 127.0.N network for the Patroni cluster")


class PatroniCluster(ClusterUnderTest):
    system = "Patroni"

    def __init__(self, timing: dict[str, int], label: str, network: str | None = None) -> None:
        self.label = label
        self._network = network  # 127.0.N; None: a free one is picked (tests pass their own range)
        self.timing = dict(timing)
        self.superuser_password = secrets.token_urlsafe(12)
        self._replication_password = secrets.token_urlsafe(12)
        self._rewind_password = secrets.token_urlsafe(12)
        self._api_password = secrets.token_urlsafe(12)
        self._procs: list[subprocess.Popen[bytes] | None] = [None] * len(USERS)
        self._haproxy: int | None = None
        self._etcd: EtcdCluster | None = None
        self.base = Path(".")
        self.nodes = []

    # --- layout -----------------------------------------------------------------------------
    def _layout(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="pgb-", dir="/tmp"))
        os.chmod(self.base, 0o755)
        (self.base / "logs").mkdir()
        net = self._network or pick_network()
        self.router = RouterPorts(bind_host=f"{net}.1")
        self.nodes = []
        for i, user in enumerate(USERS):
            ensure_os_user(user)
            entry = pwd.getpwnam(user)
            node_dir = self.base / f"node{i + 1}"
            (node_dir / "run").mkdir(parents=True)
            for path in (node_dir, node_dir / "run"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            self.nodes.append(Node(f"node{i + 1}", f"{net}.{11 + i}", PG_PORT, API_PORT, node_dir / "data"))
        self._etcd = EtcdCluster(hosts=tuple(f"{net}.{21 + i}" for i in range(3)), base_dir=self.base)

    def node_config(self, i: int) -> dict[str, Any]:
        node = self.nodes[i]
        assert self._etcd is not None
        node_dir = node.data_dir.parent
        password = {"superuser": self.superuser_password, "replication": self._replication_password}
        return {
            "scope": "bench",
            "name": node.name,
            "restapi": {
                "listen": f"{node.host}:{node.api_port}",
                "connect_address": f"{node.host}:{node.api_port}",
                "authentication": {"username": "bench", "password": self._api_password},
            },
            "etcd3": {"hosts": [str(e) for e in self._etcd.endpoints]},
            "bootstrap": {
                "dcs": {
                    **self.timing,
                    "maximum_lag_on_failover": 1048576,
                    "postgresql": {"use_pg_rewind": True, "use_slots": True, "parameters": PARAMETERS},
                },
                "initdb": [{"encoding": "UTF8"}, "data-checksums"],
            },
            "postgresql": {
                "listen": f"{node.host}:{node.pg_port}",
                "connect_address": f"{node.host}:{node.pg_port}",
                "data_dir": str(node.data_dir),
                "bin_dir": BIN_DIR,
                "pgpass": str(node_dir / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": password["superuser"]},
                    "replication": {"username": "replicator", "password": password["replication"]},
                    "rewind": {"username": "rewind_user", "password": self._rewind_password},
                },
                "parameters": {"unix_socket_directories": str(node_dir / "run")},
                "pg_hba": [
                    "local all all trust",
                    "host all all 127.0.0.0/8 scram-sha-256",
                    "host replication replicator 127.0.0.0/8 scram-sha-256",
                ],
            },
        }

    def _write_config(self, i: int) -> Path:
        entry = pwd.getpwnam(USERS[i])
        path = self.nodes[i].data_dir.parent / "patroni.yml"
        path.write_text(yaml.safe_dump(self.node_config(i), sort_keys=False))
        os.chmod(path, 0o600)  # passwords
        os.chown(path, entry.pw_uid, entry.pw_gid)
        return path

    # --- lifecycle --------------------------------------------------------------------------
    def start(self, timeout: float) -> None:
        if not PATRONI.exists():
            raise RuntimeError(f"{PATRONI} is missing: run `bash scripts/install-bench-deps.sh`")
        self._layout()
        assert self._etcd is not None
        self._etcd.__enter__()
        for i in range(len(self.nodes)):
            self._write_config(i)
            self.start_agent(i)
        backends = [Backend(n.name, n.host, n.pg_port, n.host, n.api_port) for n in self.nodes]
        cfg = self.base / "haproxy.cfg"
        cfg.write_text(render(backends, self.router))
        self._haproxy = processes.spawn([HAPROXY, "-db", "-f", str(cfg)], self.base / "logs" / "haproxy.log")
        self.wait_healthy(timeout)

    def start_agent(self, i: int) -> None:
        proc = self._procs[i]
        if proc is not None and proc.poll() is None:
            return
        entry = pwd.getpwnam(USERS[i])
        node_dir = self.nodes[i].data_dir.parent
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(node_dir)}
        with open(self.base / "logs" / f"{self.nodes[i].name}.log", "ab") as log:
            self._procs[i] = subprocess.Popen(
                [str(PATRONI), str(node_dir / "patroni.yml")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=node_dir,
                env=env,
                user=entry.pw_uid,
                group=entry.pw_gid,
                extra_groups=[],
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def stop_agent(self, i: int, timeout: float = 30.0) -> None:
        """SIGTERM to node ``i``'s Patroni alone, and wait for it to exit. Paused, Patroni leaves
        its PostgreSQL running (the first step of moving a node to pgwarden)."""
        proc = self._procs[i]
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        self._procs[i] = None

    def agent_pid(self, i: int) -> int | None:
        proc = self._procs[i]
        return proc.pid if proc is not None and proc.poll() is None else None

    def stop(self) -> None:
        try:
            if self._haproxy is not None:
                processes.stop(self._haproxy, timeout=5)
                self._haproxy = None
            live = [p for p in self._procs if p is not None and p.poll() is None]
            # Patroni stops its PostgreSQL on SIGTERM; whatever is still running after that is killed.
            processes.stop_all([p.pid for p in live], timeout=30)
            for p in live:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(5)
            self._procs = [None] * len(USERS)
            for node in self.nodes:
                for pid in processes_of(node.data_dir):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        finally:
            try:
                if self._etcd is not None:
                    self._etcd.__exit__(None, None, None)
                    self._etcd = None
            finally:
                if self.base != Path("."):
                    shutil.rmtree(self.base, ignore_errors=True)

    # --- the rest of the interface ----------------------------------------------------------
    def api_auth(self) -> tuple[str, str] | None:
        return ("bench", self._api_password)

    def sync_config(self, mode: str) -> dict[str, Any]:
        value: bool | str = {"off": False, "on": True}.get(mode, mode)
        return {"synchronous_mode": value, "synchronous_node_count": 1}

    def settings(self) -> str:
        t = self.timing
        return f"ttl {t['ttl']} s, loop_wait {t['loop_wait']} s, retry_timeout {t['retry_timeout']} s"

    def _etcd_cluster(self) -> EtcdCluster:
        assert self._etcd is not None, "the Patroni cluster's etcd is not running"
        return self._etcd

    def kill_etcd(self, i: int) -> None:
        self._etcd_cluster().kill(i)

    def start_etcd(self, i: int) -> None:
        self._etcd_cluster().start(i)

    def etcd_leader(self) -> int | None:
        return self._etcd_cluster().leader_index()

    def etcd_healthy(self) -> int:
        etcd = self._etcd_cluster()
        return sum(etcd.healthy(i) for i in range(len(etcd.hosts)))

    def log_tail(self, i: int, lines: int = 30) -> str:
        path = self.base / "logs" / f"{self.nodes[i].name}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"

    def etcd_endpoints(self) -> list[str]:
        return [str(e) for e in self._etcd_cluster().endpoints]

    def etcd_pid(self, i: int) -> int | None:
        return self._etcd_cluster().pid(i)


def patroni_version() -> str:
    try:
        out = subprocess.run(
            [str(PATRONI), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return "not installed"
    return out.stdout.strip().removeprefix("patroni ").strip() or "unknown"
