"""Starts and stops a local stack: 3 etcd members, N agents (each with its PostgreSQL) and HAProxy."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from pgwarden.local import processes
from pgwarden.local.spec import StackSpec
from pgwarden.postgres.probe import postmaster_pid
from pgwarden.router.haproxy import Backend, render

ETCD = "/usr/bin/etcd"
HAPROXY = "/usr/sbin/haproxy"


class StackError(Exception):
    """The stack could not be started or is not healthy; the message says which part and why."""


class Stack:
    def __init__(self, spec: StackSpec) -> None:
        self.spec = spec
        self.pids: dict[str, int] = {}

    @property
    def pids_path(self) -> Path:
        return self.spec.dir / "pids.json"

    @property
    def stack_path(self) -> Path:
        return self.spec.dir / "stack.json"

    def running(self) -> bool:
        """True when a stack started from this directory still has live processes."""
        try:
            pids = json.loads(self.pids_path.read_text())
        except (OSError, ValueError):
            return False
        return any(processes.alive(int(p)) for p in pids.values())

    # --- up ---------------------------------------------------------------------------------
    def up(self, progress: Callable[[str], None] = lambda _: None, timeout: float = 120.0) -> dict[str, Any]:
        spec = self.spec
        spec.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(spec.dir, 0o755)  # node users must reach their data directories below it
        progress("starting etcd (3 members)")
        for i in range(3):
            self._start_etcd(i)
        self._wait_etcd(timeout=30)
        progress(f"starting {spec.nodes} agents")
        for i in range(spec.nodes):
            self.write_node_config(i)
            self.start_agent(i)
        progress("starting HAProxy")
        self._start_haproxy()
        doc = self.describe()
        self.stack_path.write_text(json.dumps(doc, indent=2) + "\n")
        progress("waiting for one primary and streaming standbys")
        self.wait_healthy(timeout, progress)
        return doc

    def _save_pids(self) -> None:
        self.pids_path.write_text(json.dumps(self.pids, indent=2) + "\n")

    def _start_etcd(self, i: int) -> None:
        spec = self.spec
        host = spec.etcd_host(i)
        cluster = ",".join(f"etcd{j + 1}=http://{spec.etcd_host(j)}:{spec.etcd_peer_port}" for j in range(3))
        cmd = [
            ETCD,
            "--name", f"etcd{i + 1}",
            "--data-dir", str(spec.dir / "etcd" / f"etcd{i + 1}"),
            "--listen-client-urls", f"http://{host}:{spec.etcd_port}",
            "--advertise-client-urls", f"http://{host}:{spec.etcd_port}",
            "--listen-peer-urls", f"http://{host}:{spec.etcd_peer_port}",
            "--initial-advertise-peer-urls", f"http://{host}:{spec.etcd_peer_port}",
            "--initial-cluster", cluster,
            "--initial-cluster-token", f"pgwarden-{spec.cluster}",
            "--initial-cluster-state", "new",
            "--heartbeat-interval", "100",
            "--election-timeout", "1000",
        ]  # fmt: skip
        self.pids[f"etcd{i + 1}"] = processes.spawn(cmd, spec.dir / "logs" / f"etcd{i + 1}.log")
        self._save_pids()

    def _wait_etcd(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        urls = [f"http://{e}/health" for e in self.spec.etcd_endpoints()]
        while time.monotonic() < deadline:
            try:
                if all(httpx.get(u, timeout=1).json().get("health") == "true" for u in urls):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.3)
        raise StackError(f"etcd not healthy within {timeout:.0f}s; see {self.spec.dir / 'logs'}")

    def _run_as(self, i: int) -> str | None:
        user = self.spec.user_for(i)
        if user is None and os.geteuid() == 0:
            user = "postgres"  # PostgreSQL refuses to run as root
        return user

    def write_node_config(self, i: int) -> Path:
        spec = self.spec
        user = self._run_as(i)
        node_dir = spec.node_dir(i)
        (node_dir / "run").mkdir(parents=True, exist_ok=True)
        if user is not None and os.geteuid() == 0:
            entry = pwd.getpwnam(user)
            os.chown(node_dir, entry.pw_uid, entry.pw_gid)
            os.chown(node_dir / "run", entry.pw_uid, entry.pw_gid)
        path = spec.config_path(i)
        path.write_text(yaml.safe_dump(spec.node_config(i, user), sort_keys=False))
        os.chmod(path, 0o600)
        return path

    def start_agent(self, i: int) -> int:
        spec = self.spec
        cmd = [sys.executable, "-m", "pgwarden", "agent", "-c", str(spec.config_path(i))]
        pid = processes.spawn(cmd, spec.dir / "logs" / f"{spec.node_name(i)}.log")
        self.pids[spec.node_name(i)] = pid
        self._save_pids()
        return pid

    def _start_haproxy(self) -> None:
        spec = self.spec
        backends = [
            Backend(spec.node_name(i), spec.node_host(i), spec.pg_port, spec.node_host(i), spec.api_port)
            for i in range(spec.nodes)
        ]
        cfg = spec.dir / "haproxy.cfg"
        cfg.write_text(render(backends, spec.router))
        self.pids["haproxy"] = processes.spawn(
            [HAPROXY, "-db", "-f", str(cfg)], spec.dir / "logs" / "haproxy.log"
        )
        self._save_pids()

    # --- state ----------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        spec = self.spec
        r = spec.router
        return {
            "cluster": spec.cluster,
            "nodes": [
                {
                    "name": spec.node_name(i),
                    "host": spec.node_host(i),
                    "port": spec.pg_port,
                    "api_url": f"http://{spec.node_host(i)}:{spec.api_port}",
                    "data_dir": str(spec.data_dir(i)),
                    "config": str(spec.config_path(i)),
                }
                for i in range(spec.nodes)
            ],
            "etcd": spec.etcd_endpoints(),
            "haproxy": {
                "primary": f"{r.bind_host}:{r.primary}",
                "replicas": f"{r.bind_host}:{r.replicas}",
                "stats": f"http://{r.bind_host}:{r.stats}/",
            },
            "superuser": {"username": "postgres", "password": spec.superuser_password},
        }

    def statuses(self) -> dict[str, dict[str, Any] | None]:
        found: dict[str, dict[str, Any] | None] = {}
        for i in range(self.spec.nodes):
            url = f"http://{self.spec.node_host(i)}:{self.spec.api_port}/patroni"
            try:
                found[self.spec.node_name(i)] = httpx.get(url, timeout=1).json()
            except (httpx.HTTPError, ValueError):
                found[self.spec.node_name(i)] = None
        return found

    def healthy(self) -> tuple[bool, str]:
        statuses = self.statuses()
        primaries = [
            n for n, s in statuses.items() if s and s.get("role") == "primary" and s.get("state") == "running"
        ]
        streaming = [n for n, s in statuses.items() if s and s.get("replication_state") == "streaming"]
        summary = f"primary: {primaries or 'none'}; streaming: {streaming or 'none'}"
        return len(primaries) == 1 and len(streaming) == self.spec.nodes - 1, summary

    def wait_healthy(self, timeout: float, progress: Callable[[str], None] = lambda _: None) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            ok, summary = self.healthy()
            if ok:
                return
            if summary != last:
                progress(summary)
                last = summary
            time.sleep(0.5)
        raise StackError(f"cluster not healthy within {timeout:.0f}s ({last}); see {self.spec.dir / 'logs'}")

    # --- faults and stop ----------------------------------------------------------------------
    def kill_node(self, i: int) -> None:
        """A node's death: SIGKILL the agent, the postmaster and every child of either."""
        name = self.spec.node_name(i)
        postmaster = postmaster_pid(str(self.spec.data_dir(i)))
        for pid in (self.pids.get(name), postmaster):
            if pid is not None:
                processes.signal_tree(pid, signal.SIGKILL)

    def kill_agent(self, i: int) -> None:
        pid = self.pids.get(self.spec.node_name(i))
        if pid is not None:
            processes.signal_one(pid, signal.SIGKILL)

    def down(self, purge: bool = False) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.pids = {k: int(v) for k, v in json.loads(self.pids_path.read_text()).items()}
        agents = [n for n in self.pids if n.startswith("node")]
        for name in agents:  # agents stop their PostgreSQL cleanly on SIGTERM
            processes.stop(self.pids[name], timeout=20)
        for i in range(self.spec.nodes):  # any postmaster left behind (agent killed earlier)
            postmaster = postmaster_pid(str(self.spec.data_dir(i)))
            if postmaster is not None:
                processes.stop(postmaster, timeout=10)
        for name, pid in self.pids.items():
            if name not in agents:
                processes.stop(pid, timeout=10)
        self.pids = {}
        if purge:
            shutil.rmtree(self.spec.dir, ignore_errors=True)
        elif self.pids_path.exists():
            self.pids_path.unlink()
