"""A running Patroni 4.1.5 cluster moved to pgwarden node by node, under a writer through HAProxy.

The sequence is docs/migrating-from-patroni.md's: convert each node's patroni.yml (with the running
cluster's dynamic config), pause Patroni, then node by node, the primary first: stop its Patroni
(paused, it leaves PostgreSQL running) and start a pgwarden agent on the same data directory. The
HAProxy in front is Patroni's, unchanged. Then what a user checks: no acknowledged write lost, the
primary's postmaster never restarted, every standby streaming again through its slot without a
clone or a restart, Patroni's postgresql.conf taken over; then a pgwarden switchover and the loss
of a node on the migrated cluster.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from bench.patroni_cluster import FASTEST, PATRONI, USERS, PatroniCluster
from pgwarden.local import processes
from pgwarden.postgres.foreign_conf import written_by_patroni
from pgwarden.postgres.probe import postmaster_pid
from tests.support.cluster import cluster_network
from tests.support.pg import postgres_available, processes_of

pytestmark = [
    pytest.mark.skipif(not postgres_available(), reason="needs root and PostgreSQL 15"),
    pytest.mark.skipif(not PATRONI.exists(), reason="Patroni is installed by `make deps`"),
]
PGWARDEN = Path(sys.executable).with_name("pgwarden")
WRITE_EVERY = 0.02  # the brief: a row every 20 ms


class Writer:
    """Inserts an increasing id through HAProxy's write port every 20 ms on one connection,
    reconnecting after an error; remembers every id whose commit was acknowledged."""

    def __init__(self, cluster: PatroniCluster) -> None:
        r = cluster.router
        self.dsn = (
            f"host={r.bind_host} port={r.primary} user=postgres password={cluster.superuser_password} "
            "dbname=postgres connect_timeout=1"
        )
        self.acked: list[tuple[int, float]] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS migration_writes (id bigint PRIMARY KEY)")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        deadline = time.monotonic() + 600  # bounded whatever the test does
        next_id = 1
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, autocommit=True)
                conn.execute("INSERT INTO migration_writes VALUES (%s)", (next_id,))
                self.acked.append((next_id, time.monotonic()))
            except psycopg.Error:
                self.failures += 1
                if conn is not None:
                    conn.close()
                conn = None
            next_id += 1
            self._stop.wait(WRITE_EVERY)
        if conn is not None:
            conn.close()

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time without an acknowledged write between ``start`` and ``end``."""
        times = [start, *(t for _, t in self.acked if start <= t <= end), end]
        return max(b - a for a, b in itertools.pairwise(times))

    def wait_for_more(self, count: int, timeout: float) -> None:
        target = len(self.acked) + count
        _wait(lambda: len(self.acked) >= target, timeout, f"{count} more acknowledged writes")


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _status(cluster: PatroniCluster, i: int) -> dict[str, Any] | None:
    node = cluster.nodes[i]
    try:
        answer = httpx.get(f"http://{node.host}:{node.api_port}/patroni", timeout=2)
        return dict(answer.json())
    except (httpx.HTTPError, ValueError):
        return None


def _role(cluster: PatroniCluster, i: int) -> str | None:
    status = _status(cluster, i)
    return status.get("role") if status and status.get("state") == "running" else None


def _sql(cluster: PatroniCluster, i: int, query: str) -> list[tuple[Any, ...]]:
    node = cluster.nodes[i]
    dsn = (
        f"host={node.host} port={node.pg_port} user=postgres password={cluster.superuser_password} "
        "dbname=postgres connect_timeout=2"
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query).fetchall()


def _streaming(cluster: PatroniCluster, primary: int) -> set[str]:
    rows = _sql(
        cluster,
        primary,
        "SELECT r.application_name FROM pg_stat_replication r JOIN pg_replication_slots s "
        "ON s.active_pid = r.pid WHERE r.state = 'streaming'",
    )
    return {str(name) for (name,) in rows}


@contextlib.contextmanager
def _pgwarden_agents(base: Path) -> Iterator[dict[int, int]]:
    """The pgwarden agents started by the test (node index -> PID), stopped by PID on the way out."""
    agents: dict[int, int] = {}
    try:
        yield agents
    finally:
        processes.stop_all(list(agents.values()), timeout=30)
        for log in sorted((base / "logs").glob("pgwarden-*.log")):
            print(f"----- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:]))


def _convert(cluster: PatroniCluster, i: int, leader: int) -> Path:
    node = cluster.nodes[i]
    out = cluster.base / f"pgwarden-{node.name}.yml"
    leader_api = f"http://{cluster.nodes[leader].host}:{cluster.nodes[leader].api_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PATRONI_", "PGWARDEN_"))}
    done = subprocess.run(
        [str(PGWARDEN), "migrate", "from-patroni", str(node.data_dir.parent / "patroni.yml"),
         "-o", str(out), "--dcs", leader_api],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "pgpass" in done.stderr and "rewind" in done.stderr  # what did not map is said
    return out


def _start_pgwarden(cluster: PatroniCluster, i: int, config: Path, agents: dict[int, int]) -> Path:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        # The test runs the agents as root; each PostgreSQL keeps running as its Patroni's user.
        "PGWARDEN_POSTGRESQL_RUN_AS": USERS[i],
    }
    log = cluster.base / "logs" / f"pgwarden-{cluster.nodes[i].name}.log"
    agents[i] = processes.spawn([str(PGWARDEN), "agent", "-c", str(config)], log, env=env)
    return log


def test_live_migration_from_patroni_loses_no_write_and_restarts_nothing() -> None:
    cluster = PatroniCluster(dict(FASTEST), "Patroni", network=cluster_network())
    with cluster, _pgwarden_agents(cluster.base) as agents:
        count = len(cluster.nodes)
        primary = _wait(lambda: _primary(cluster, range(count)), 60, "Patroni's primary") - 1
        with Writer(cluster) as writer:
            new, acked_before_loss = _migrate_and_operate(cluster, agents, writer, primary)
        # Every write acknowledged before the node loss is there (the planned steps are lossless).
        rows = {int(n) for (n,) in _sql(cluster, new, "SELECT id FROM migration_writes")}
        missing = sorted(set(acked_before_loss) - rows)
        assert not missing, f"{len(missing)} acknowledged writes lost: {missing[:10]}"
        assert len(acked_before_loss) > 300


def _primary(cluster: PatroniCluster, among: Any) -> int | None:
    """1 + the index of the member answering as a running primary (so that node 0 is truthy)."""
    return next((i + 1 for i in among if _role(cluster, i) == "primary"), None)


def _migrate(
    cluster: PatroniCluster, agents: dict[int, int], writer: Writer, primary: int
) -> tuple[dict[int, Path], dict[int, int | None]]:
    """docs/migrating-from-patroni.md's steps 1 to 4, and what a user checks after them; returns
    each node's pgwarden config and each postmaster's PID."""
    count = len(cluster.nodes)
    standbys = [i for i in range(count) if i != primary]
    _wait(lambda: len(_streaming(cluster, primary)) == len(standbys), 60, "Patroni's standbys streaming")
    pids = {i: postmaster_pid(str(cluster.nodes[i].data_dir)) for i in range(count)}
    writer.wait_for_more(25, 30)

    # 1. Convert every node's config, with the running cluster's dynamic config.
    configs = {i: _convert(cluster, i, primary) for i in range(count)}

    # 2. Pause Patroni (patronictl pause does this PATCH), then node by node, the primary first.
    api = cluster.nodes[primary]
    answer = httpx.patch(
        f"http://{api.host}:{api.api_port}/config", json={"pause": True}, auth=cluster.api_auth(), timeout=10
    )
    assert answer.status_code == 200, answer.text
    _wait(lambda: all((_status(cluster, i) or {}).get("pause") for i in range(count)), 60, "pause")
    started = time.monotonic()
    for i in [primary, *standbys]:
        # pgwarden first: started, it waits for Patroni's API port, and takes it over once free.
        log = _start_pgwarden(cluster, i, configs[i], agents)
        _wait(
            lambda log=log: "in use; waiting" in log.read_text(errors="replace"),
            60,
            "pgwarden waiting for the port",
        )
        begin = time.monotonic()
        cluster.stop_agent(i)
        stopped = time.monotonic()
        assert postmaster_pid(str(cluster.nodes[i].data_dir)) == pids[i], "Patroni stopped PostgreSQL"
        want = "primary" if i == primary else "replica"
        _wait(lambda i=i, want=want: _role(cluster, i) == want, 60, f"pgwarden on node {i + 1} as {want}")
        print(
            f"{cluster.nodes[i].name} ({want}): Patroni stopped in {stopped - begin:.1f} s, pgwarden "
            f"answered as {want} {time.monotonic() - stopped:.1f} s later"
        )
        writer.wait_for_more(10, 30)
    names = {cluster.nodes[i].name for i in standbys}
    _wait(lambda: _streaming(cluster, primary) == names, 60, "every standby streaming to pgwarden's primary")
    migrated = time.monotonic()
    writer.wait_for_more(25, 30)

    # 3. What a user checks.
    assert {i: postmaster_pid(str(cluster.nodes[i].data_dir)) for i in range(count)} == pids
    slots = {str(n) for (n,) in _sql(cluster, primary, "SELECT slot_name FROM pg_replication_slots")}
    assert slots >= names  # Patroni's slots, kept and streaming again
    for node in cluster.nodes:
        assert not written_by_patroni((node.data_dir / "postgresql.conf").read_text())
        assert (node.data_dir / "pgwarden.conf").exists()
        assert (node.data_dir / "postgresql.base.conf").exists()  # for the way back
    status = _status(cluster, primary) or {}
    assert status.get("pending_restart") in (None, False), status
    gap = writer.longest_gap(started, migrated)
    print(
        f"migration of {count} nodes took {migrated - started:.1f} s; longest gap between "
        f"acknowledged writes {gap * 1000:.0f} ms; {writer.failures} failed writes"
    )

    return configs, pids


def _migrate_and_operate(
    cluster: PatroniCluster, agents: dict[int, int], writer: Writer, primary: int
) -> tuple[int, list[int]]:
    """The migration, a switchover and a node loss; returns the last primary and the writes
    acknowledged before the node loss."""
    configs, _ = _migrate(cluster, agents, writer, primary)
    count = len(cluster.nodes)
    standbys = [i for i in range(count) if i != primary]

    # pgwarden runs the migrated cluster: a switchover...
    candidate = standbys[0]
    done = subprocess.run(
        [str(PGWARDEN), "switchover", "-c", str(configs[primary]), "--candidate",
         cluster.nodes[candidate].name, "--force"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    _wait(lambda: _role(cluster, candidate) == "primary", 60, "the switchover's new primary")
    _wait(lambda: _role(cluster, primary) == "replica", 90, "the old primary back as a standby")
    writer.wait_for_more(25, 60)
    acked_before_loss = [n for n, _ in writer.acked]

    # ... and the loss of the new primary's node (agent and PostgreSQL killed).
    lost = candidate
    processes.stop(agents.pop(lost), timeout=1, sig=signal.SIGKILL)
    for pid in processes_of(cluster.nodes[lost].data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    survivors = [i for i in range(count) if i != lost]
    new = _wait(lambda: _primary(cluster, survivors), FASTEST["ttl"] * 4, "a survivor promoted") - 1
    writer.wait_for_more(25, 60)
    return new, acked_before_loss


def test_the_way_back_to_patroni_restarts_nothing_either() -> None:
    """docs/migrating-from-patroni.md's way back: pgwarden paused, its agents killed (PostgreSQL
    keeps running), Patroni started again and resumed; its own files and keys take over again."""
    cluster = PatroniCluster(dict(FASTEST), "Patroni", network=cluster_network())
    with cluster, _pgwarden_agents(cluster.base) as agents:
        count = len(cluster.nodes)
        primary = _wait(lambda: _primary(cluster, range(count)), 60, "Patroni's primary") - 1
        with Writer(cluster) as writer:
            configs, pids = _migrate(cluster, agents, writer, primary)
            paused = subprocess.run(
                [str(PGWARDEN), "pause", "-c", str(configs[primary])],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert paused.returncode == 0, paused.stdout + paused.stderr
            _wait(
                lambda: all((_status(cluster, i) or {}).get("pause") for i in range(count)),
                30,
                "pgwarden paused",
            )
            back = time.monotonic()
            for i in [primary, *[j for j in range(count) if j != primary]]:
                processes.stop(agents.pop(i), timeout=1, sig=signal.SIGKILL)
                cluster.start_agent(i)
            _wait(lambda: _role(cluster, primary) == "primary", 90, "Patroni's primary again")
            api = cluster.nodes[primary]
            answer = httpx.patch(
                f"http://{api.host}:{api.api_port}/config",
                json={"pause": None},
                auth=cluster.api_auth(),
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
            names = {cluster.nodes[i].name for i in range(count) if i != primary}
            _wait(lambda: _streaming(cluster, primary) == names, 90, "Patroni's standbys streaming again")
            returned = time.monotonic()
            writer.wait_for_more(25, 60)
            print(
                f"way back took {returned - back:.1f} s; longest gap between acknowledged writes "
                f"{writer.longest_gap(back, returned) * 1000:.0f} ms"
            )
        assert {i: postmaster_pid(str(cluster.nodes[i].data_dir)) for i in range(count)} == pids
        for node in cluster.nodes:
            assert written_by_patroni((node.data_dir / "postgresql.conf").read_text())
        rows = {int(n) for (n,) in _sql(cluster, primary, "SELECT id FROM migration_writes")}
        missing = sorted({n for n, _ in writer.acked} - rows)
        assert not missing, f"{len(missing)} acknowledged writes lost: {missing[:10]}"
