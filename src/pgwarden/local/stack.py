"""Starts and stops a local stack: 3 etcd members, N agents (each with its PostgreSQL) and HAProxy."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pwd
import shutil
import signal
import ssl
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from pgwarden.config.fields import parse_address
from pgwarden.local import etcd_members, etcd_security, inventory, preflight, processes
from pgwarden.local.pki import Pki
from pgwarden.local.spec import SPEC_FILE, STACK_FILE, StackSpec, write_private
from pgwarden.local.state import Part, StackState, servers_up, verdict
from pgwarden.model.node import EtcdSettings
from pgwarden.router.haproxy import Backend, CheckTls, render
from pgwarden.tls import client_context

ETCD = preflight.ETCD
HAPROXY = preflight.HAPROXY
PIDS_FILE = "pids.json"
LEADER_ROLES = ("primary", "standby_leader")
# The lean agent entry (daemon/start.py, through python -m pgwarden.agent): no CLI imports in the agents.
AGENT_COMMAND = (sys.executable, "-m", "pgwarden.agent")


class StackError(Exception):
    """The stack could not be started or is not healthy; the message says which part and why."""


Watch = Callable[[StackState], None]


class Stack:
    def __init__(self, spec: StackSpec, agent_command: Sequence[str] = AGENT_COMMAND) -> None:
        # Absolute from here on: every path the stack hands its processes (node configs, data
        # directories) must name it the same way whatever directory a later command runs from.
        self.spec = spec if spec.dir.is_absolute() else dataclasses.replace(spec, dir=spec.dir.resolve())
        self.agent_command = tuple(agent_command)  # the benchmarks run other builds' agents
        self.pids: dict[str, int] = {}  # what this object started; pids.json has every start

    @property
    def pids_path(self) -> Path:
        return self.spec.dir / PIDS_FILE

    @property
    def stack_path(self) -> Path:
        return self.spec.dir / STACK_FILE

    @property
    def logs_dir(self) -> Path:
        return self.spec.dir / "logs"

    def running(self) -> bool:
        """True when a process of the stack in this directory still runs (``inventory``)."""
        return bool(self.find_processes())

    # --- up ---------------------------------------------------------------------------------
    def up(
        self,
        progress: Callable[[str], None] = lambda _: None,
        timeout: float = 120.0,
        watch: Watch | None = None,
    ) -> dict[str, Any]:
        """Start everything and wait until HAProxy routes writes to the one primary.

        On any failure (timeout, a part that exits, Ctrl-C) it stops what it started before
        raising; the logs stay in ``DIR/logs``.
        """
        deadline = time.monotonic() + timeout
        self.check_startable()  # before the try: a refusal must not stop a stack already running
        try:
            self.start(progress, etcd_timeout=min(30.0, timeout))
            progress("waiting for one primary, streaming standbys and HAProxy routing")
            self._wait(deadline, progress, watch, require_route=True, fail_on_exit=True)
        except BaseException:
            self.down()
            raise
        return self.describe()

    def check_startable(self) -> None:
        """StackError when this stack already runs, or a program, user or address is missing."""
        if self.running():
            raise StackError(f"a stack is already running from {self.spec.dir}")
        issues = preflight.problems(self.spec)
        if issues:
            raise StackError("cannot start:\n  " + "\n  ".join(issues))

    def start(self, progress: Callable[[str], None] = lambda _: None, etcd_timeout: float = 30.0) -> None:
        """Start etcd (and wait for it), the agents and HAProxy, without waiting for the cluster;
        call ``check_startable`` first."""
        spec = self.spec
        spec.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(spec.dir, 0o755)  # node users must reach their data directories below it
        spec.save()  # first, so that `down` knows the stack whatever happens next
        self.pids = {}
        with contextlib.suppress(FileNotFoundError):
            self.pids_path.unlink()  # a stack that was not stopped cleanly left its old PIDs
        if spec.api_tls or spec.etcd_tls:
            progress(f"issuing certificates in {spec.tls_dir}")
            self.issue_certificates()
        progress(f"starting etcd (3 members{', TLS' if spec.etcd_tls else ''})")
        for i in range(3):
            self._start_etcd(i)
        self._wait_etcd(etcd_timeout)
        if spec.etcd_tls:
            progress(f"enabling etcd authentication (users root and {spec.etcd_username})")
            self._enable_etcd_auth()
        progress(f"starting {spec.nodes} agents")
        for i in range(spec.nodes):
            self.write_node_config(i)
            self.start_agent(i)
        progress("starting HAProxy")
        self._start_haproxy()

    def _spawn(self, name: str, cmd: list[str]) -> int:
        """Start one part, marked as this stack's (``inventory``), and record its PID in pids.json
        at once, merged with what other commands recorded (a drill restarting an agent)."""
        env = inventory.marked_environment(self.spec.dir)
        pid = processes.spawn(cmd, self.logs_dir / f"{name}.log", env=env)
        self.pids[name] = pid
        write_private(self.pids_path, json.dumps({**self._read_pids(), name: pid}, indent=2) + "\n")
        return pid

    @property
    def pki(self) -> Pki:
        return Pki(self.spec.tls_dir, ca_name=f"pgwarden local CA ({self.spec.cluster})")

    def issue_certificates(self) -> Pki:
        """The stack's CA and certificates (kept when still good): with api_tls each agent's
        (server and client), the CLI's and HAProxy's; with etcd_tls each etcd member's, and an
        etcd client certificate for each agent, the CLI and etcdctl (``etcd-NAME``)."""
        spec = self.spec
        pki = self.pki
        if spec.api_tls:
            for i in range(spec.nodes):
                pki.issue_server(spec.node_name(i), [spec.node_host(i)], client_auth=True)
            pki.issue_client("cli")
            pki.issue_client("haproxy").bundle()
        if spec.etcd_tls:
            etcd_members.issue_certificates(spec, pki)
        return pki

    def api_verify(self) -> ssl.SSLContext | bool:
        """How this process calls the stack's APIs: with the CLI's certificate when they serve TLS."""
        if not self.spec.api_tls:
            return True
        certfile, keyfile = self.spec.tls_files("cli")
        return client_context(str(self.spec.tls_dir / "ca.crt"), certfile, keyfile)

    def etcd_verify(self) -> ssl.SSLContext | bool:
        """How this process reaches the stack's etcd: with the CLI's etcd certificate over TLS."""
        if not self.spec.etcd_tls:
            return True
        certfile, keyfile = self.spec.tls_files("etcd-cli")
        return client_context(str(self.spec.tls_dir / "ca.crt"), certfile, keyfile)

    def etcd_settings(self, name: str = "cli") -> EtcdSettings:
        """The etcd client settings of ``name`` (an agent's node name, or ``cli``)."""
        spec = self.spec
        hosts = tuple(parse_address(e) for e in spec.etcd_endpoints())
        extra = spec.etcd_client(name)
        return EtcdSettings(hosts, protocol=spec.etcd_scheme, **extra)

    def _enable_etcd_auth(self) -> None:
        try:
            etcd_members.enable_auth(self.spec, self.pki)
        except etcd_security.EtcdSetupError as exc:
            raise StackError(f"{exc}; etcd logs in {self.logs_dir}") from None

    def _start_etcd(self, i: int) -> None:
        self._spawn(f"etcd{i + 1}", etcd_members.command(self.spec, i, self.pki))

    def _wait_etcd(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_parts()
            if self._etcd_healthy() == 3:
                return
            time.sleep(0.3)
        raise StackError(f"etcd not healthy within {timeout:.0f}s; logs in {self.logs_dir}")

    def _etcd_healthy(self) -> int:
        return etcd_members.healthy(self.spec, self.etcd_verify())

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
        write_private(path, yaml.safe_dump(spec.node_config(i, user), sort_keys=False))  # passwords
        return path

    def start_agent(self, i: int) -> int:
        spec = self.spec
        cmd = [*self.agent_command, "-c", str(spec.config_path(i))]
        return self._spawn(spec.node_name(i), cmd)

    def _start_haproxy(self) -> None:
        spec = self.spec
        backends = [
            Backend(spec.node_name(i), spec.node_host(i), spec.pg_port, spec.node_host(i), spec.api_port)
            for i in range(spec.nodes)
        ]
        tls = None
        if spec.api_tls:
            backends = [dataclasses.replace(b, api_tls=True) for b in backends]
            tls = CheckTls(str(spec.tls_dir / "ca.crt"), str(spec.tls_dir / "haproxy.pem"))
        cfg = spec.dir / "haproxy.cfg"
        cfg.write_text(render(backends, spec.router, tls=tls))
        self._spawn("haproxy", [HAPROXY, "-db", "-f", str(cfg)])

    # --- state ----------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The ``stack.json`` document."""
        return self.spec.document()

    def statuses(self) -> dict[str, dict[str, Any] | None]:
        found: dict[str, dict[str, Any] | None] = {}
        verify = self.api_verify()
        for i in range(self.spec.nodes):
            url = f"{self.spec.api_url(i)}/patroni"
            try:
                found[self.spec.node_name(i)] = httpx.get(url, timeout=1, verify=verify).json()
            except (httpx.HTTPError, ValueError):
                found[self.spec.node_name(i)] = None
        return found

    def healthy(self) -> tuple[bool, str]:
        return verdict(self.statuses(), self.spec.nodes)

    def observe(self) -> StackState:
        """Processes, etcd, every member's status and HAProxy's routing, as of now."""
        members = self.statuses()
        ok, summary = verdict(members, self.spec.nodes)
        parts = tuple(
            Part(name, pid, pid is not None and processes.alive(pid))
            for name, pid in self._part_pids().items()
        )
        return StackState(parts, self._etcd_healthy(), members, self._routes_writes_to(), ok, summary)

    def _part_pids(self) -> dict[str, int | None]:
        names = [f"etcd{i + 1}" for i in range(3)]
        names += [self.spec.node_name(i) for i in range(self.spec.nodes)] + ["haproxy"]
        recorded = self._recorded()
        return {name: recorded.get(name) for name in names}

    def _routes_writes_to(self) -> tuple[str, ...] | None:
        r = self.spec.router
        try:
            text = httpx.get(f"http://{r.bind_host}:{r.stats}/;csv", timeout=1).text
        except httpx.HTTPError:
            return None
        return servers_up(text, "primary")

    def wait_healthy(
        self,
        timeout: float,
        progress: Callable[[str], None] = lambda _: None,
        watch: Watch | None = None,
        routed: bool = False,
    ) -> None:
        """Wait until one primary runs and every other node streams from it — and, with
        ``routed``, HAProxy sends writes to that primary (StackError otherwise)."""
        self._wait(time.monotonic() + timeout, progress, watch, require_route=routed, fail_on_exit=False)

    def _wait(
        self,
        deadline: float,
        progress: Callable[[str], None],
        watch: Watch | None,
        require_route: bool,
        fail_on_exit: bool,
    ) -> None:
        last = ""
        started = time.monotonic()
        while True:
            if fail_on_exit:
                self._check_parts()
            if watch is None and not require_route:
                done, summary = self.healthy()  # cheaper: members only
            else:
                state = self.observe()
                if watch is not None:
                    watch(state)
                summary = state.summary
                done = state.routed if require_route else state.healthy
                if state.healthy and not done:
                    summary += f"; HAProxy sends writes to {list(state.routes_writes_to or []) or 'nobody'}"
            if done:
                return
            if summary != last:
                progress(summary)
                last = summary
            if time.monotonic() >= deadline:
                waited = time.monotonic() - started
                raise StackError(f"not healthy after {waited:.0f}s ({last}); logs in {self.logs_dir}")
            time.sleep(0.5)

    def _check_parts(self) -> None:
        """Fail at once, with the end of its log, when a process the stack started has exited."""
        for name, pid in self.pids.items():
            if not processes.alive(pid):
                raise StackError(f"{name} exited during startup:\n{self._log_tail(name)}")

    def _log_tail(self, name: str, lines: int = 8) -> str:
        log = self.logs_dir / f"{name}.log"
        try:
            tail = log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"  (no log at {log})"
        return "\n".join(f"  | {line}" for line in tail) + f"\n  (full log: {log})"

    # --- which processes are this stack's ----------------------------------------------------
    def find_processes(self) -> list[int]:
        """Every live process of this stack: recorded or not, started by `up`, a drill or an agent."""
        return inventory.find(self.spec.dir, inventory.own_paths(self.spec))

    def parts(self) -> list[tuple[str, int]]:
        """The live parts, named as in pids.json: ``etcd1``.., ``node1``.. (a node's agents), ``haproxy``."""
        return inventory.parts(self.spec, self.find_processes(), self._recorded())

    def agent_pids(self, i: int) -> list[int]:
        """The live agents of node ``i`` (a drill may have started one the stack object never saw)."""
        return [pid for name, pid in self.parts() if name == self.spec.node_name(i)]

    def fence_pids(self, i: int) -> list[int]:
        """The live fence of node ``i`` (started by its agent, outliving it)."""
        return [pid for name, pid in self.parts() if name == inventory.fence_part(self.spec.node_name(i))]

    # --- faults and stop ----------------------------------------------------------------------
    def kill_node(self, i: int) -> None:
        """A node's death: SIGKILL the agent, its fence, the postmaster and every child of them."""
        postmaster = self._live_postmasters().get(self.spec.node_name(i))
        victims = [*self.agent_pids(i), *self.fence_pids(i), *([postmaster] if postmaster else [])]
        for pid in victims:
            processes.signal_tree(pid, signal.SIGKILL)

    def kill_agent(self, i: int) -> None:
        for pid in self.agent_pids(i):
            processes.signal_one(pid, signal.SIGKILL)

    def down(self, purge: bool = False) -> list[str]:
        """Stop every process of this stack (``find_processes``: by its directory, recorded or
        not); with ``purge`` then remove the directory, only once nothing of it runs. Returns what
        it stopped, e.g. ``["node1 agent (pid 12)", ...]``; empty when nothing ran. StackError
        when a process survived even SIGKILL (nothing is removed then)."""
        if purge and self.spec.dir.exists() and not self.looks_like_stack():
            raise StackError(f"{self.spec.dir} holds no {STACK_FILE} or {SPEC_FILE}; not removing it")
        parts = self.parts()
        # Fences are stopped with the others, after the agents (which end their own) and PostgreSQL.
        nodes = {n for n, _ in parts if n.startswith("node") and not inventory.is_fence_part(n)}
        stopped = [f"{n} agent (pid {p})" for n, p in parts if n in nodes]
        # Agents stop their PostgreSQL cleanly on SIGTERM, standbys first: a leader stopping
        # releases its key, and a standby still running would take it and promote.
        statuses = self.statuses() if nodes else {}
        leaders = {n for n, s in statuses.items() if s and s.get("role") in LEADER_ROLES}
        processes.stop_all([p for n, p in parts if n in nodes - leaders], timeout=30)
        processes.stop_all([p for n, p in parts if n in leaders], timeout=30)
        postmasters = self._live_postmasters()  # left behind: an agent killed earlier, or too slow
        stopped += [f"{n} PostgreSQL (pid {p})" for n, p in postmasters.items()]
        processes.stop_all(list(postmasters.values()), timeout=15, sig=signal.SIGINT)  # fast shutdown
        others = [(n, p) for n, p in parts if n not in nodes]
        stopped += [f"{n} (pid {p})" for n, p in others]
        for _, pid in others:
            # One at a time: an etcd leader stopping hands leadership to a peer first, and waits
            # seconds for one that is itself stopping.
            processes.stop(pid, timeout=10)
        leftovers = self.find_processes()  # a callback, a pg_basebackup, an orphaned backend...
        stopped += [f"{_shown(p)} (pid {p})" for p in leftovers]
        processes.stop_all(leftovers, timeout=5)
        survivors = self.find_processes()
        if survivors:
            listed = ", ".join(f"pid {p} ({_shown(p)})" for p in survivors)
            raise StackError(f"still running after SIGKILL: {listed}; {self.spec.dir} left in place")
        self.pids = {}
        if purge:
            shutil.rmtree(self.spec.dir, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.pids_path.unlink()
        return stopped

    def looks_like_stack(self) -> bool:
        return any((self.spec.dir / f).exists() for f in (STACK_FILE, SPEC_FILE, PIDS_FILE))

    def _read_pids(self) -> dict[str, int]:
        try:
            saved = json.loads(self.pids_path.read_text())
            return {str(k): int(v) for k, v in saved.items()}
        except (OSError, ValueError, TypeError, AttributeError):
            return {}

    def _recorded(self) -> dict[str, int]:
        """Every PID recorded, by this object or (in pids.json, which wins) by any other command."""
        return {**self.pids, **self._read_pids()}

    def _live_postmasters(self) -> dict[str, int]:
        return inventory.postmasters(self.spec, self.find_processes())


def _shown(pid: int) -> str:
    return " ".join(processes.command_line(pid))[:120] or "?"
