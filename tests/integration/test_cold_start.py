"""A full-cluster cold start on a real cluster: the most advanced node is promoted, not the first one up.

The standbys are stopped first, the primary takes writes they never get, then it is stopped too.
Started again standbys first and the former primary last, the standbys wait (cold start: they
were not the last leader, which has not answered) instead of promoting within
maximum_lag_on_failover of the last published position, and the former primary becomes primary
again with every write, the standbys following it.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from pgwarden.local import processes
from pgwarden.local.stack import Stack
from tests.support.cluster import conninfo, primary_name, running_stack, wait_for

pytestmark = pytest.mark.integration

ROWS_BEFORE = 50
ROWS_ONLY_ON_THE_PRIMARY = 300  # about 30 kB of WAL: far within maximum_lag_on_failover (1 MB)
STANDBYS_WAIT_S = 8.0  # how long the standbys run alone, and must not promote


def _index(stack: Stack, name: str) -> int:
    return next(i for i in range(stack.spec.nodes) if stack.spec.node_name(i) == name)


def _direct(stack: Stack, name: str) -> str:
    return conninfo(stack, stack.spec.node_host(_index(stack, name)), stack.spec.pg_port, 5)


def _insert(stack: Stack, name: str, ids: range) -> None:
    with psycopg.connect(_direct(stack, name), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS cold (id int PRIMARY KEY)")
        for i in ids:
            conn.execute("INSERT INTO cold VALUES (%s)", (i,))


def _count(stack: Stack, name: str) -> int:
    with psycopg.connect(_direct(stack, name), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM cold").fetchone()
    return int(row[0]) if row else -1


def _stop_agent(stack: Stack, name: str) -> None:
    """A clean stop (SIGTERM): the agent stops PostgreSQL and releases what it holds in etcd."""
    pid = stack.pids.get(name)
    assert pid is not None
    processes.stop(pid, timeout=60)


def _status(stack: Stack, name: str) -> dict[str, Any]:
    return stack.statuses().get(name) or {}


def _streams_from(stack: Stack, primary: str, standby: str) -> bool:
    try:
        with psycopg.connect(_direct(stack, primary), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'"
            ).fetchall()
    except psycopg.Error:
        return False
    return standby in {str(r[0]) for r in rows}


def test_full_restart_with_the_most_advanced_node_started_last_promotes_it() -> None:
    with running_stack() as stack:
        old = wait_for(lambda: primary_name(stack), 60, "a primary")
        standbys = [stack.spec.node_name(i) for i in range(stack.spec.nodes)]
        standbys.remove(old)
        _insert(stack, old, range(ROWS_BEFORE))
        wait_for(lambda: all(_streams_from(stack, old, s) for s in standbys), 60, "standbys streaming")

        for name in standbys:
            _stop_agent(stack, name)
        _insert(stack, old, range(ROWS_BEFORE, ROWS_BEFORE + ROWS_ONLY_ON_THE_PRIMARY))
        time.sleep(2)  # a loop or two: the leader publishes its position and membership
        _stop_agent(stack, old)

        for name in standbys:
            stack.start_agent(_index(stack, name))
        started = time.monotonic()
        wait_for(
            lambda: all("waiting" in str(_status(stack, s).get("reason", "")) for s in standbys),
            30,
            "the standbys waiting for the last leader",
        )
        while time.monotonic() - started < STANDBYS_WAIT_S:
            assert primary_name(stack) is None, f"{primary_name(stack)} promoted before {old} was back"
            time.sleep(0.5)
        reasons = {s: _status(stack, s).get("reason") for s in standbys}
        assert all(f"{old} (the last leader)" in str(r) for r in reasons.values()), reasons

        stack.start_agent(_index(stack, old))
        assert wait_for(lambda: primary_name(stack), 60, "a primary again") == old
        assert _count(stack, old) == ROWS_BEFORE + ROWS_ONLY_ON_THE_PRIMARY
        for name in standbys:
            wait_for(lambda name=name: _streams_from(stack, old, name), 90, f"{name} following {old}")
