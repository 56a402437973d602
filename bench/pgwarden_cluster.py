"""pgwarden as the cluster under test: the test suite's running_stack (etcd x3, agents, HAProxy),
plain (the default, for speed) or ``secure`` as ``pgwarden up`` starts it: etcd over TLS with
client certificates and etcd auth, the agents' APIs over mTLS, HAProxy checking over TLS."""

from __future__ import annotations

import contextlib
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.cluster import ClusterUnderTest, Node
from pgwarden.local import processes
from pgwarden.local.stack import AGENT_COMMAND, Stack
from pgwarden.model.cluster import DynamicConfig
from tests.support import faults
from tests.support.cluster import running_stack


class PgwardenCluster(ClusterUnderTest):
    system = "pgwarden"

    def __init__(
        self,
        dcs: dict[str, Any] | None = None,
        label: str = "pgwarden",
        agent_command: Sequence[str] = AGENT_COMMAND,
        secure: bool = False,
        **spec: Any,
    ) -> None:
        """``spec``: more StackSpec fields for the stack (``etcd_auth_token_ttl``, say)."""
        self.label = label
        self._dcs = dict(dcs or {})
        self._agent_command = tuple(agent_command)
        self.secure = secure
        self._spec = spec
        self._exit = contextlib.ExitStack()
        self.stack: Stack | None = None
        self._verify: ssl.SSLContext | bool = True
        self.nodes = []

    def start(self, timeout: float) -> None:
        stack = self._exit.enter_context(
            running_stack(
                dcs=self._dcs,
                timeout=timeout,
                agent_command=self._agent_command,
                secure=self.secure,
                **self._spec,
            )
        )
        self.stack = stack
        self._verify = stack.api_verify()  # built once: every status poll would load the files
        spec = stack.spec
        self.router = spec.router
        self.superuser_password = spec.superuser_password
        self.nodes = [
            Node(spec.node_name(i), spec.node_host(i), spec.pg_port, spec.api_port, spec.data_dir(i))
            for i in range(spec.nodes)
        ]
        self.wait_healthy(timeout)

    def stop(self) -> None:
        self._exit.close()
        self.stack = None
        self._verify = True

    def api_verify(self) -> ssl.SSLContext | bool:
        return self._verify

    def _api(self, i: int) -> str:
        return self._stack().spec.api_url(i)

    def _stack(self) -> Stack:
        assert self.stack is not None, "the pgwarden stack is not running"
        return self.stack

    def agent_pid(self, i: int) -> int | None:
        stack = self._stack()
        pid = stack.pids.get(stack.spec.node_name(i))
        return pid if pid is not None and processes.alive(pid) else None

    def start_agent(self, i: int) -> None:
        self._stack().start_agent(i)

    def cycle_seconds(self, i: int) -> float | None:
        try:
            text = httpx.get(f"{self._api(i)}/metrics", timeout=2, verify=self._verify, trust_env=False).text
        except httpx.HTTPError:
            return None
        for line in text.splitlines():
            if line.startswith("pgwarden_loop_duration_seconds "):
                return float(line.split()[1])
        return None

    def api_auth(self) -> tuple[str, str] | None:
        creds = self._stack().describe().get("api_auth")
        return (creds["username"], creds["password"]) if creds else None

    def sync_config(self, mode: str) -> dict[str, Any]:
        return {"synchronous_mode": mode, "synchronous_node_count": 1}

    def settings(self) -> str:
        d = DynamicConfig()
        ttl = self._dcs.get("ttl", d.ttl)
        loop = self._dcs.get("loop_wait", d.loop_wait)
        retry = self._dcs.get("retry_timeout", d.retry_timeout)
        timing = f"ttl {ttl:g} s, loop_wait {loop:g} s, retry_timeout {retry:g} s (pgwarden defaults)"
        if not self.secure:
            if self._spec.get("etcd_tls"):
                return timing + (
                    "; etcd TLS on client and peer ports with --client-cert-auth and etcd auth, the"
                    " API over plain HTTP"
                )
            return timing
        return timing + (
            "; secure as `pgwarden up` starts it: etcd TLS on client and peer ports with"
            " --client-cert-auth, etcd auth (a role limited to the cluster's prefix), API mTLS,"
            " HAProxy check-ssl"
        )

    def upstream(self, i: int, primary: int) -> int:
        """``replicatefrom`` (``node_tags``, tests/support/cluster.py TaggedSpec) when it names
        another standby; the primary otherwise (pgwarden streams from the primary when the
        named member is the primary itself or is gone)."""
        tags = dict(self._spec.get("node_tags") or {}).get(self.nodes[i].name) or {}
        names = [n.name for n in self.nodes]
        named = tags.get("replicatefrom")
        if named in names and names.index(named) not in (i, primary):
            return names.index(named)
        return primary

    def kill_etcd(self, i: int) -> None:
        faults.kill_etcd(self._stack(), i)

    def start_etcd(self, i: int) -> None:
        faults.start_etcd(self._stack(), i)

    def etcd_leader(self) -> int | None:
        return faults.etcd_leader(self._stack())

    def etcd_healthy(self) -> int:
        return faults.etcd_healthy(self._stack())

    def log_tail(self, i: int, lines: int = 30) -> str:
        stack = self._stack()
        path = stack.logs_dir / f"{stack.spec.node_name(i)}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"

    def etcd_endpoints(self) -> list[str]:
        return list(self._stack().spec.etcd_endpoints())

    def etcd_pid(self, i: int) -> int | None:
        pid = self._stack().pids.get(f"etcd{i + 1}")
        return pid if pid is not None and processes.alive(pid) else None


def baseline(source: Path) -> PgwardenCluster:
    """pgwarden as built from another source tree (``git archive main src``, say): its agents run
    from there (``python -m pgwarden agent``, which every build has), the rest from this one."""
    command = ("env", f"PYTHONPATH={source.resolve()}", sys.executable, "-m", "pgwarden", "agent")
    return PgwardenCluster(label="pgwarden baseline", agent_command=command)


def psycopg_binary() -> PgwardenCluster:
    """pgwarden whose agents run psycopg-binary (its own libpq and OpenSSL, ``PSYCOPG_IMPL=binary``)
    instead of psycopg over the system's libpq, which the agent prefers (daemon/start.py)."""
    command = ("env", "PSYCOPG_IMPL=binary", sys.executable, "-m", "pgwarden", "agent")
    return PgwardenCluster(label="pgwarden, psycopg-binary", agent_command=command)
