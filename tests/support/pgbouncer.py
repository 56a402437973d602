"""A real PgBouncer (Debian's) in front of a test stack, repointed by deploy/pgbouncer/pgbouncer-follow.

``Pooler`` writes PgBouncer's files in a directory of its own (pgbouncer.ini including the
[databases] file the callback rewrites, the userlist, the admin passfile, one callback settings
file per node), points the databases at the current primary as an operator does once at install,
installs the callback on every node (node.yml's ``callbacks``, taken up live by a SIGHUP) and
runs PgBouncer as the ``postgres`` OS user on the stack's own address (127.0.N.1:6432), in its own
session; ``stop`` ends it by its PID. The test (tests/integration/test_pgbouncer.py) and the
bench (bench/pgbouncer.py) drive it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import yaml

from pgwarden.drill.writer import Writer, missing_ids
from pgwarden.local.stack import Stack
from tests.support.cluster import conninfo, primary_name, wait_for

REPO = Path(__file__).resolve().parents[2]
FOLLOW = REPO / "deploy" / "pgbouncer" / "pgbouncer-follow"
PGBOUNCER = "/usr/sbin/pgbouncer"
ADMIN_USER = "pgwarden"
DATABASE = "postgres"  # the writers' tables live there
RUN_AS = "postgres"  # PgBouncer refuses to run as root


class Pooler:
    """``directory``: a new one under /tmp by default (the postgres user must reach it), removed
    on exit."""

    def __init__(self, stack: Stack, directory: Path | None = None, port: int = 6432) -> None:
        self.stack = stack
        self._own_dir = directory is None
        self.dir = directory or Path(tempfile.mkdtemp(prefix="pgw-pgbouncer-", dir="/tmp"))
        self.host = stack.spec.router.bind_host
        self.port = port
        self.admin_password = secrets.token_urlsafe(12)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def databases_file(self) -> Path:
        return self.dir / "databases.ini"

    @property
    def passfile(self) -> Path:
        return self.dir / "admin.pgpass"

    def conninfo(self, timeout: int = 1) -> str:
        return conninfo(self.stack, self.host, self.port, timeout)

    def admin_conninfo(self) -> str:
        return f"host={self.host} port={self.port} dbname=pgbouncer user={ADMIN_USER}"

    # --- set up ---------------------------------------------------------------------------------
    def __enter__(self) -> Pooler:
        try:
            self.write_files()
            self.install_callbacks()
            self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def write_files(self) -> None:
        spec = self.stack.spec
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        leader = primary_name(self.stack)
        assert leader is not None, "no primary to point PgBouncer at"
        i = int(leader.removeprefix("node")) - 1
        self.databases_file.write_text(
            f"[databases]\n{DATABASE} = host={spec.node_host(i)} port={spec.pg_port} dbname={DATABASE}\n"
        )
        (self.dir / "pgbouncer.ini").write_text(
            f"%include {self.databases_file}\n"
            "[pgbouncer]\n"
            f"listen_addr = {self.host}\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = scram-sha-256\n"
            f"auth_file = {self.dir / 'userlist.txt'}\n"
            f"admin_users = {ADMIN_USER}\n"
            "pool_mode = session\n"
            "max_client_conn = 200\n"
            "default_pool_size = 20\n"
            # A failed server login is retried after 0.25 s, not 15: a database repointed while
            # PgBouncer waits to retry the dead old primary would wait that long.
            "server_login_retry = 0.25\n"
            "server_connect_timeout = 2\n"
            f"pidfile = {self.dir / 'pgbouncer.pid'}\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\n"
        )
        (self.dir / "userlist.txt").write_text(
            f'"postgres" "{spec.superuser_password}"\n"{ADMIN_USER}" "{self.admin_password}"\n'
        )
        self.passfile.write_text(f"{self.host}:{self.port}:pgbouncer:{ADMIN_USER}:{self.admin_password}\n")
        self.passfile.chmod(0o600)  # libpq ignores a passfile others can read
        account = pwd.getpwnam(RUN_AS)
        for name in ("pgbouncer.ini", "userlist.txt", "databases.ini"):
            os.chown(self.dir / name, account.pw_uid, account.pw_gid)
        (self.dir / "userlist.txt").chmod(0o600)
        # PgBouncer writes its log and pid file here; the callbacks (the agents, root here) too.
        os.chown(self.dir, account.pw_uid, account.pw_gid)

    def settings_file(self, i: int) -> Path:
        return self.dir / f"follow-{self.stack.spec.node_name(i)}.conf"

    def install_callbacks(self) -> None:
        """pgbouncer-follow on every node, taken up live (SIGHUP reloads node.yml's callbacks)."""
        spec = self.stack.spec
        for i in range(spec.nodes):
            self.settings_file(i).write_text(
                f"PRIMARY_HOST={spec.node_host(i)}\n"
                f"PRIMARY_PORT={spec.pg_port}\n"
                f"DATABASES_FILE={self.databases_file}\n"
                f'DATABASES="{DATABASE}={DATABASE}"\n'
                f'ADMIN="{self.admin_conninfo()}"\n'
                f"PASSFILE={self.passfile}\n"
            )
            path = spec.config_path(i)
            config = yaml.safe_load(path.read_text())
            command = f"{FOLLOW} {self.settings_file(i)}"
            config["callbacks"] = {"on_role_change": command, "on_start": command}
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            marker = len(self._log(i))
            for pid in self.stack.agent_pids(i):
                os.kill(pid, signal.SIGHUP)
            wait_for(
                lambda i=i, marker=marker: any("callbacks" in line for line in self._log(i)[marker:]),
                30,
                f"{spec.node_name(i)} taking up the callbacks",
            )

    def _log(self, i: int) -> list[str]:
        log = self.stack.logs_dir / f"{self.stack.spec.node_name(i)}.log"
        return log.read_text(errors="replace").splitlines()

    def start(self) -> None:
        with open(self.dir / "pgbouncer.out", "ab") as out:  # what it says before its log is open
            self.process = subprocess.Popen(
                [PGBOUNCER, "-u", RUN_AS, str(self.dir / "pgbouncer.ini")],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self._answers, 30, "PgBouncer answering")

    def _answers(self) -> bool:
        try:
            with psycopg.connect(self.conninfo(2), autocommit=True) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            assert self.process is not None and self.process.poll() is None, self.log_tail()
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # PgBouncer's immediate shutdown
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    # --- questions ------------------------------------------------------------------------------
    def routed_host(self) -> str | None:
        """Where PgBouncer sends the writers' database now (its admin console's SHOW DATABASES)."""
        shown = subprocess.run(
            ["psql", "-X", "-A", "-F", "\t", "-d", self.admin_conninfo(), "-c", "SHOW DATABASES"],
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "PGPASSFILE": str(self.passfile), "PGCONNECT_TIMEOUT": "3"},
            check=False,
        )
        lines = shown.stdout.splitlines()
        if shown.returncode != 0 or not lines:
            return None
        header = lines[0].split("\t")
        for line in lines[1:]:
            row = dict(zip(header, line.split("\t"), strict=False))
            if row.get("name") == DATABASE:
                return row.get("host")
        return None

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for name in ("pgbouncer.out", "pgbouncer.log"):
            with contextlib.suppress(OSError):
                text += "\n".join((self.dir / name).read_text().splitlines()[-lines:]) + "\n"
        return text or "(no PgBouncer output)"


def wait_routed_to(pooler: Pooler, host: str, timeout: float) -> float:
    """Seconds until PgBouncer routes to ``host``."""
    started = time.monotonic()
    wait_for(lambda: pooler.routed_host() == host, timeout, f"PgBouncer routing to {host}", interval=0.1)
    return time.monotonic() - started


@dataclass(frozen=True)
class Route:
    """What a writer through one router saw across a fault."""

    gap_s: float  # the longest time between two acknowledged writes
    lost: int  # acknowledged writes missing from the new primary
    acknowledged: int


@dataclass(frozen=True)
class Comparison:
    fault: str
    primary_before: str
    primary_after: str
    haproxy: Route
    pgbouncer: Route
    repointed_s: float  # fault -> PgBouncer's SHOW DATABASES names the new primary

    def line(self) -> str:
        return (
            f"[{self.fault}] {self.primary_before} -> {self.primary_after}; write gap through HAProxy "
            f"{self.haproxy.gap_s:.2f} s (lost {self.haproxy.lost} of {self.haproxy.acknowledged}), "
            f"through PgBouncer {self.pgbouncer.gap_s:.2f} s (lost {self.pgbouncer.lost} of "
            f"{self.pgbouncer.acknowledged}); PgBouncer repointed {self.repointed_s:.2f} s after the fault"
        )


def compare(
    stack: Stack, pooler: Pooler, fault: str, inject: Callable[[], None], timeout: float = 120.0
) -> Comparison:
    """Two writers, one through HAProxy and one through PgBouncer, each inserting every 20 ms on
    one connection (a new one after an error); ``inject`` the fault, wait until both write again
    to the new primary, and compare their gaps and losses."""
    spec = stack.spec
    router = spec.router
    before = primary_name(stack)
    assert before is not None, "no single primary before the fault"
    tag = secrets.token_hex(3)
    writers = {
        "haproxy": Writer(conninfo(stack, router.bind_host, router.primary, 1), f"via_haproxy_{tag}"),
        "pgbouncer": Writer(pooler.conninfo(1), f"via_pgbouncer_{tag}"),
    }
    for writer in writers.values():
        writer.prepare()
    with contextlib.ExitStack() as running:
        for writer in writers.values():
            running.enter_context(writer)
        for name, writer in writers.items():
            assert writer.wait_for_acks(10, 30), f"no write through {name} before the fault"
        faulted = time.monotonic()
        inject()
        after = wait_for(
            lambda: (p := primary_name(stack)) not in (None, before) and p, timeout, "a new primary"
        )
        i = int(after.removeprefix("node")) - 1
        wait_routed_to(pooler, spec.node_host(i), max(5.0, faulted + timeout - time.monotonic()))
        repointed = time.monotonic() - faulted
        for name, writer in writers.items():
            assert writer.wait_for_acks(10, timeout), f"no write through {name} after the fault"
    direct = conninfo(stack, spec.node_host(i), spec.pg_port, 5)
    routes = {}
    for name, writer in writers.items():
        report = writer.report
        lost = missing_ids(direct, writer.table, list(report.acknowledged))
        routes[name] = Route(report.longest_gap(), len(lost), len(report.acknowledged))
    return Comparison(fault, before, after, routes["haproxy"], routes["pgbouncer"], repointed)
