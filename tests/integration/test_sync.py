"""Synchronous replication on a real cluster: no acknowledged write lost over repeated failovers,
quorum commit with a standby down or tagged nofailover, and what ``block`` and ``degrade`` do with
no standby at all."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import psycopg
import pytest

from pgwarden.drill.writer import Writer, missing_ids
from pgwarden.local.stack import Stack
from tests.support.cluster import TaggedSpec, WriterWatch, conninfo, primary_name, running_stack, wait_for

pytestmark = pytest.mark.integration


def _api(stack: Stack, name: str) -> str:
    return f"http://{stack.spec.node_host(_index(name))}:{stack.spec.api_port}"


def _index(name: str) -> int:
    return int(name.removeprefix("node")) - 1


def _cluster(stack: Stack) -> dict[str, Any]:
    for i in range(stack.spec.nodes):
        try:
            return dict(
                httpx.get(f"http://{stack.spec.node_host(i)}:{stack.spec.api_port}/cluster", timeout=3).json()
            )
        except (httpx.HTTPError, ValueError):
            continue
    return {}


def _sync_set(stack: Stack) -> list[str]:
    return list(_cluster(stack).get("synchronous") or [])


def _router(stack: Stack) -> str:
    return conninfo(stack, stack.spec.router.bind_host, stack.spec.router.primary, 2)


def _settled(stack: Stack, primary: str | None = None) -> bool:
    """Healthy, and the primary claims a synchronous standby in etcd (RPO 0 is in force again)."""
    ok, _ = stack.healthy()
    current = primary_name(stack)
    members = _sync_set(stack)
    return ok and current is not None and bool(members) and current not in members


def test_sync_on_loses_no_acknowledged_write_over_five_failovers() -> None:
    with running_stack(dcs={"synchronous_mode": "on", "synchronous_fallback": "block"}) as stack:
        wait_for(lambda: _settled(stack), 120, "a synchronous standby claimed in etcd")
        writer = Writer(_router(stack), table="sync_failovers", max_seconds=600)
        writer.prepare()
        lost: list[int] = []
        with WriterWatch(stack) as watch, writer:
            for round_ in range(5):
                old = primary_name(stack)
                assert old is not None
                assert writer.wait_for_acks(20, 60), f"round {round_}: no writes acknowledged"
                stack.kill_node(_index(old))
                wait_for(
                    lambda old=old: primary_name(stack) not in (None, old),
                    60,
                    f"round {round_}: a new primary",
                )
                assert writer.wait_for_acks(10, 60), f"round {round_}: no writes after failover"
                stack.start_agent(_index(old))
                wait_for(lambda: _settled(stack), 180, f"round {round_}: the old primary back, sync claimed")
        lost = missing_ids(_router(stack), writer.table, writer.report.acknowledged)
        assert lost == [], f"acknowledged writes lost in synchronous mode: {lost[:20]}"
        assert watch.overlaps == []
        assert len(writer.report.acknowledged) > 100


def test_quorum_any_one_of_two_keeps_writing_with_a_standby_down_and_fails_over_losslessly() -> None:
    dcs = {"synchronous_mode": "quorum", "synchronous_node_count": 1, "synchronous_fallback": "block"}
    with running_stack(dcs=dcs) as stack:
        wait_for(lambda: len(_sync_set(stack)) == 2, 120, "both standbys in the quorum")
        primary = primary_name(stack)
        assert primary is not None
        standbys = [stack.spec.node_name(i) for i in range(3) if stack.spec.node_name(i) != primary]
        writer = Writer(_router(stack), table="quorum_writes", max_seconds=300)
        writer.prepare()
        with writer:
            assert writer.wait_for_acks(20, 60)
            stack.kill_node(_index(standbys[0]))
            assert writer.wait_for_acks(50, 60), "writes stopped with one quorum standby down"
            # Until the claim names only the survivor, a failover could not know whether the dead
            # standby held commits the survivor lacks: nobody would promote (safe, not available).
            wait_for(lambda: _sync_set(stack) == [standbys[1]], 60, "the claim shrunk to the survivor")
            stack.kill_node(_index(primary))
            wait_for(lambda: primary_name(stack) == standbys[1], 90, f"{standbys[1]} promoted")
            assert writer.wait_for_acks(10, 60) or True  # the new primary waits for a standby (block)
        lost = missing_ids(
            conninfo(stack, stack.spec.node_host(_index(standbys[1])), stack.spec.pg_port),
            writer.table,
            writer.report.acknowledged,
        )
        assert lost == []


def test_quorum_leaves_a_nofailover_standby_out_and_fails_over_without_it() -> None:
    """Four nodes, node4 tagged nofailover, ANY 1: the primary waits for either standby that may
    fail over, never for node4 alone, so the claim names those two only. The primary and node4 then
    die together: with node4 in the claim ({3 standbys}, quorum 1) a failover would need all three
    to answer and nobody would promote; without it the most advanced of the other two does, with
    every acknowledged write."""
    dcs = {"synchronous_mode": "quorum", "synchronous_node_count": 1, "synchronous_fallback": "block"}
    tags = {"node4": {"nofailover": True}}
    with running_stack(nodes=4, dcs=dcs, spec_type=TaggedSpec, node_tags=tags) as stack:
        primary = primary_name(stack)
        assert primary is not None and primary != "node4"
        others = sorted(stack.spec.node_name(i) for i in range(3) if stack.spec.node_name(i) != primary)
        wait_for(lambda: sorted(_sync_set(stack)) == others, 120, f"the quorum claim naming {others}")
        wait_for(lambda: stack.healthy()[0], 120, "node4 streaming too")
        assert "node4" not in _sync_set(stack)
        writer = Writer(_router(stack), table="quorum_nofailover", max_seconds=300)
        writer.prepare()
        with writer:
            assert writer.wait_for_acks(50, 60)
            assert "node4" not in _sync_set(stack), "node4 entered the quorum under writes"
            stack.kill_node(_index("node4"))
            stack.kill_node(_index(primary))
            wait_for(lambda: primary_name(stack) in others, 90, f"one of {others} promoted without node4")
            assert writer.wait_for_acks(10, 60), "no write acknowledged by the new primary"
        new = primary_name(stack)
        assert new in others
        lost = missing_ids(
            conninfo(stack, stack.spec.node_host(_index(new)), stack.spec.pg_port),
            writer.table,
            writer.report.acknowledged,
        )
        assert lost == [], f"acknowledged writes lost: {lost[:20]}"


def _write_with_timeout(stack: Stack, value: int, seconds: float) -> bool:
    """One INSERT through HAProxy; False when it was not acknowledged within ``seconds``.

    A commit waiting for a synchronous standby ignores statement_timeout (the timer stops before
    the commit), so the wait is bounded here and the query cancelled, as an impatient client would.
    """
    done = threading.Event()
    conn: list[psycopg.Connection[Any]] = []

    def write() -> None:
        try:
            with psycopg.connect(_router(stack), autocommit=True) as c:
                conn.append(c)
                c.execute("CREATE TABLE IF NOT EXISTS sync_block (id int)")
                c.execute("INSERT INTO sync_block VALUES (%s)", (value,))
            done.set()
        except psycopg.Error:
            pass

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    thread.join(seconds)
    waited_too_long = thread.is_alive()
    if waited_too_long and conn:
        # A cancelled wait still commits locally (with a warning): it was not acknowledged in time.
        conn[0].cancel_safe()
    thread.join(10)
    return done.is_set() and not waited_too_long


def _kill_standbys(stack: Stack) -> list[str]:
    primary = primary_name(stack)
    standbys = [stack.spec.node_name(i) for i in range(3) if stack.spec.node_name(i) != primary]
    for name in standbys:
        stack.kill_node(_index(name))
    return standbys


def test_block_makes_writes_wait_until_a_standby_returns() -> None:
    with running_stack(dcs={"synchronous_mode": "on", "synchronous_fallback": "block"}) as stack:
        wait_for(lambda: _settled(stack), 120, "a synchronous standby claimed")
        assert _write_with_timeout(stack, 1, 5)
        standbys = _kill_standbys(stack)
        time.sleep(8)  # well past any fallback timer: block never falls back
        assert not _write_with_timeout(stack, 2, 2), "a write completed with no synchronous standby"
        stack.start_agent(_index(standbys[0]))
        wait_for(lambda: _write_with_timeout(stack, 3, 2), 120, "writes once a standby is back")


def test_degrade_resumes_writes_within_the_window_and_returns_to_synchronous() -> None:
    dcs = {"synchronous_mode": "on", "synchronous_fallback": "degrade", "synchronous_fallback_after": 3}
    with running_stack(dcs=dcs) as stack:
        wait_for(lambda: _settled(stack), 120, "a synchronous standby claimed")
        standbys = _kill_standbys(stack)
        started = time.monotonic()
        wait_for(lambda: _write_with_timeout(stack, 4, 2), 60, "writes resumed after degrading")
        assert time.monotonic() - started >= 2, "degraded before synchronous_fallback_after"
        cluster = _cluster(stack)
        assert cluster.get("synchronous") == [], cluster
        stack.start_agent(_index(standbys[0]))
        wait_for(
            lambda: _sync_set(stack) == [standbys[0]], 120, "synchronous again with the returned standby"
        )
        assert _write_with_timeout(stack, 5, 5)
