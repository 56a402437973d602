"""The agent on a real 3-node cluster: node loss, PostgreSQL crash, agent crash, foreign data directory.

Every test watches all nodes directly while faults happen and fails if two accept writes at once.
"""

from __future__ import annotations

import signal
import subprocess
import time

import httpx
import psycopg
import pytest

from pgwarden.drill.writer import Writer, missing_ids
from pgwarden.fence.files import running_fence
from pgwarden.fence.postmaster import postmaster_pid
from pgwarden.local import processes
from pgwarden.local.stack import Stack
from tests.support.cluster import (
    WriterWatch,
    cluster_document,
    conninfo,
    primary_name,
    running_stack,
    wait_for,
    write_through_router,
)

pytestmark = pytest.mark.integration


def _index(stack, name: str) -> int:
    return int(name.removeprefix("node")) - 1


def _status(stack, name: str) -> dict:
    return stack.statuses()[name] or {}


def _streaming_from(stack, name: str, upstream: str) -> bool:
    s = _status(stack, name)
    return s.get("replication_state") == "streaming" and s.get("upstream") == upstream


def test_node_loss_elects_one_new_primary_and_the_old_one_rejoins_by_rewind() -> None:
    with running_stack() as stack:
        node_loss_and_rejoin(stack)


def node_loss_and_rejoin(stack: Stack) -> None:
    """The primary's node dies: one new primary, writes through HAProxy again, the third node
    follows it, and the old primary comes back by rewind; never two writers (test_secure_cluster
    runs this on a secured stack)."""
    with WriterWatch(stack) as watch:
        old = primary_name(stack)
        assert old is not None
        assert write_through_router(stack, 1)
        old_timeline = _status(stack, old)["timeline"]

        stack.kill_node(_index(stack, old))
        new = wait_for(lambda: (p := primary_name(stack)) and p != old and p, 60, "a new primary")
        wait_for(lambda: write_through_router(stack, 2), 30, "a write through HAProxy to the new primary")
        assert _status(stack, new)["timeline"] == old_timeline + 1
        third = next(n for n in stack.statuses() if n not in (old, new))
        wait_for(lambda: _streaming_from(stack, third, new), 60, f"{third} streaming from {new}")

        # The old primary returns: it must rewind (its timeline forked) and stream from the new one.
        stack.start_agent(_index(stack, old))
        wait_for(lambda: _streaming_from(stack, old, new), 120, f"{old} streaming from {new} again")
        log = (stack.spec.dir / "logs" / f"{old}.log").read_text()
        assert "rewinding from" in log
        assert primary_name(stack) == new
    assert watch.polls > 50
    assert watch.overlaps == [], f"two nodes accepted writes at once: {watch.overlaps[:5]}"


def test_postgres_crash_on_the_primary_restarts_in_place_on_the_same_timeline() -> None:
    with running_stack(dcs={"parameters": {"work_mem": "7MB"}}) as stack, WriterWatch(stack) as watch:
        primary = primary_name(stack)
        assert primary is not None
        timeline = _status(stack, primary)["timeline"]
        data_dir = stack.spec.data_dir(_index(stack, primary))
        postmaster = postmaster_pid(str(data_dir))
        assert postmaster is not None
        processes.signal_tree(postmaster, signal.SIGKILL)

        wait_for(lambda: postmaster_pid(str(data_dir)) not in (None, postmaster), 30, "a new postmaster")
        wait_for(lambda: write_through_router(stack, 10), 30, "writes through HAProxy again")
        # Asked again while a status request times out (1 s, a loaded machine): a failover would
        # leave another name there for good.
        wait_for(lambda: primary_name(stack) == primary, 10, f"{primary} primary again")
        assert _status(stack, primary)["timeline"] == timeline
        # The cluster's parameters from bootstrap.dcs reach every node's PostgreSQL.
        for i in range(stack.spec.nodes):
            info = conninfo(stack, stack.spec.node_host(i), stack.spec.pg_port)
            with psycopg.connect(info) as conn:
                assert conn.execute("SHOW work_mem").fetchone() == ("7MB",)
    assert watch.overlaps == []


def _primary_answer(stack: Stack, i: int) -> int | None:
    try:
        return httpx.request("OPTIONS", f"{stack.spec.api_url(i)}/primary", timeout=2).status_code
    except httpx.HTTPError:
        return None


def _accepts_writes(stack: Stack, i: int) -> bool:
    try:
        info = conninfo(stack, stack.spec.node_host(i), stack.spec.pg_port, 1)
        with psycopg.connect(info, autocommit=True) as conn:
            row = conn.execute("SELECT NOT pg_is_in_recovery()").fetchone()
        return bool(row and row[0])
    except psycopg.Error:
        return False


def test_a_crashed_primary_is_primary_again_at_once_without_a_failover_or_a_lost_write() -> None:
    """The postmaster and its children SIGKILLed, the agent alive: the same node is primary again
    on the same timeline holding the same leader key (no failover for a crash that recovers
    within ttl), its /primary answers 503 while PostgreSQL recovers and 200 once it accepts
    writes, without waiting for the next cycle (loop_wait is 8 s here: the postmaster watch wakes
    the loop when PostgreSQL is ready), and no write acknowledged through HAProxy is lost."""
    dcs = {"loop_wait": 8, "ttl": 30, "retry_timeout": 10}
    with running_stack(dcs=dcs) as stack, WriterWatch(stack) as watch:
        primary = primary_name(stack)
        assert primary is not None
        i = _index(stack, primary)
        timeline = _status(stack, primary)["timeline"]
        leader_key = cluster_document(stack).get("leader")
        log = stack.spec.dir / "logs" / f"{primary}.log"
        logged = len(log.read_text())
        r = stack.spec.router
        writer = Writer(conninfo(stack, r.bind_host, r.primary, 1), table="crash_writes", max_seconds=120)
        writer.prepare()
        with writer:
            assert writer.wait_for_acks(20, 30), "no writes through HAProxy before the crash"
            postmaster = postmaster_pid(str(stack.spec.data_dir(i)))
            assert postmaster is not None
            processes.signal_tree(postmaster, signal.SIGKILL)
            wait_for(lambda: _primary_answer(stack, i) == 503, 10, "/primary 503 after the crash", 0.02)
            writable = wait_for(
                lambda: _accepts_writes(stack, i) and time.monotonic(), 60, "PostgreSQL writable", 0.02
            )
            answered = wait_for(
                lambda: _primary_answer(stack, i) == 200 and time.monotonic(), 60, "/primary 200", 0.02
            )
            assert writer.wait_for_acks(20, 60), "no writes through HAProxy after the crash"
        # A loop_wait (8 s) would be the old delay; the watch's wake-up is ~0.1 s on a quiet machine.
        late = answered - writable
        assert late < 5.0, f"/primary answered 200 {late:.1f} s after PostgreSQL accepted writes"
        assert primary_name(stack) == primary
        assert _status(stack, primary)["timeline"] == timeline
        assert cluster_document(stack).get("leader") == leader_key, "the leader key changed hands"
        since = log.read_text()[logged:]
        assert "new lease" not in since and "lease deadline passed" not in since, since[-2000:]
        lost = missing_ids(conninfo(stack, stack.spec.node_host(i), stack.spec.pg_port), writer.table,
                           writer.report.acknowledged)  # fmt: skip
        assert lost == [], f"{len(lost)} acknowledged writes lost: {lost[:10]}"
        assert len(writer.report.acknowledged) >= 40
    assert watch.overlaps == []


def test_agent_crash_on_the_primary_is_adopted_without_restarting_postgres() -> None:
    """The agent killed and restarted within the lease: the new agent adopts the running fence and
    PostgreSQL (same PIDs), renews the key before the fence's deadline, and nothing fails over.

    ttl 10 (deadline 9 s after a renewal): an agent takes seconds to start on a loaded test
    machine, and with the 4 s default it would come back after the fence stopped PostgreSQL
    (safe, but a restart in place, not an adoption; docs/timing.md)."""
    with running_stack(dcs={"ttl": 10}) as stack, WriterWatch(stack) as watch:
        primary = primary_name(stack)
        assert primary is not None
        i = _index(stack, primary)
        data_dir = str(stack.spec.data_dir(i))
        postmaster, fence = postmaster_pid(data_dir), running_fence(data_dir)
        assert fence is not None
        log = stack.spec.dir / "logs" / f"{primary}.log"
        offset = log.stat().st_size
        stack.kill_agent(i)
        time.sleep(1.0)  # well within ttl: the key must still be ours when the agent returns
        stack.start_agent(i)
        wait_for(
            lambda: _status(stack, primary).get("reason_code") == "LEADER_HEALTHY", 30, "the agent adopting"
        )
        assert postmaster_pid(data_dir) == postmaster
        assert running_fence(data_dir) == fence
        assert primary_name(stack) == primary
        # HAProxy marked the node down while its API was gone; it returns on the next check.
        wait_for(lambda: write_through_router(stack, 20), 10, "writes through HAProxy again")
        lines = log.read_text(errors="replace")[offset:]
        assert f"adopted the running fence (pid {fence})" in lines
        assert "took over the leader key carrying my name" in lines
        assert "stopped immediately" not in lines, "the fence stopped PostgreSQL"
    assert watch.overlaps == []


def test_a_foreign_data_directory_is_refused_and_left_untouched() -> None:
    with running_stack() as stack:
        primary = primary_name(stack)
        victim = next(n for n in stack.statuses() if n != primary)
        i = _index(stack, victim)
        processes.stop(stack.pids[victim], timeout=30)  # SIGTERM: the agent stops its PostgreSQL
        data_dir = stack.spec.data_dir(i)
        user = stack.spec.user_for(i)
        subprocess.run(["rm", "-rf", str(data_dir)], check=True)
        subprocess.run(
            [
                "runuser",
                "-u",
                str(user),
                "--",
                f"{stack.spec.bin_dir}/initdb",
                "-D",
                str(data_dir),
                "-U",
                "postgres",
            ],
            check=True,
            capture_output=True,
        )
        before = sorted(p.name for p in data_dir.iterdir())
        control = (data_dir / "global" / "pg_control").read_bytes()
        stack.start_agent(i)
        wait_for(
            lambda: _status(stack, victim).get("reason_code") == "FOREIGN_DATA_DIRECTORY", 30, "the refusal"
        )
        time.sleep(2)
        assert (data_dir / "global" / "pg_control").read_bytes() == control
        assert sorted(p.name for p in data_dir.iterdir()) == before
        assert primary_name(stack) == primary
