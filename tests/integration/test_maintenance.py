"""Maintenance mode and cascading replication on a real cluster.

Pause: the agents keep reporting but take no automatic action; the primary's PostgreSQL killed
during a pause is neither restarted nor failed over, and resuming hands management back.
``replicatefrom``: a standby streams from the named member, and from the primary once it is gone;
retagged while it runs (node.yml and SIGHUP), it never stops streaming: it moves to the relay once
the relay has its slot, back to the primary at once, and stays with the primary, saying why,
while the relay it names is down.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pgwarden.drill.writer import Writer, missing_ids
from pgwarden.fence.postmaster import postmaster_pid
from pgwarden.local import processes
from pgwarden.local.stack import Stack
from tests.support.api import call, node_index, retag, status, write_tags
from tests.support.cluster import conninfo, primary_name, running_stack, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as s:
        yield s


def _healthy(stack: Stack) -> None:
    wait_for(lambda: stack.healthy()[0], 120, "one primary and every standby streaming")


def _set_pause(stack: Stack, name: str, paused: bool) -> None:
    reply = call(stack, name, "PATCH", "/config", body={"pause": paused})
    assert reply.status_code == 200, reply.text


def test_paused_cluster_neither_restarts_nor_fails_over_a_dead_primary(stack: Stack) -> None:
    _healthy(stack)
    primary = primary_name(stack)
    assert primary is not None
    _set_pause(stack, primary, True)
    try:
        wait_for(lambda: status(stack, primary)["pause"] is True, 30, "every agent sees the pause")
        postmaster = postmaster_pid(str(stack.spec.data_dir(node_index(primary))))
        assert postmaster is not None
        processes.signal_tree(postmaster, signal.SIGKILL)
        time.sleep(12)  # three ttl and then some: long enough for a failover or a restart to happen
        for i in range(stack.spec.nodes):
            doc = status(stack, stack.spec.node_name(i))
            assert doc["pause"] is True
            assert doc["leader"] == primary, "the leader key moved during a pause"
        assert status(stack, primary)["state"] != "running", "PostgreSQL was restarted during a pause"
        assert postmaster_pid(str(stack.spec.data_dir(node_index(primary)))) is None
    finally:
        _set_pause(stack, stack.spec.node_name((node_index(primary) + 1) % stack.spec.nodes), False)
    wait_for(lambda: primary_name(stack) == primary, 60, "the same primary restarted after resume")
    _healthy(stack)


def test_replicatefrom_streams_from_its_upstream_then_from_the_primary_once_it_is_gone(stack: Stack) -> None:
    _healthy(stack)
    primary = primary_name(stack)
    assert primary is not None
    upstream, cascading = [stack.spec.node_name(i) for i in range(3) if stack.spec.node_name(i) != primary]
    retag(stack, cascading, {"replicatefrom": upstream})
    wait_for(
        lambda: status(stack, cascading).get("upstream") == upstream, 60, f"{cascading} following {upstream}"
    )
    host = stack.spec.node_host(node_index(upstream))

    def sends_to_cascading() -> bool:
        # The standby switches once the relay lists its slot (it creates it at its next cycle),
        # so its walreceiver is not refused; the relay's pg_stat_replication then shows it.
        with psycopg.connect(conninfo(stack, host, stack.spec.pg_port), autocommit=True) as conn:
            rows = conn.execute("SELECT application_name FROM pg_stat_replication").fetchall()
        return (cascading,) in rows

    wait_for(sends_to_cascading, 30, f"{upstream} sending WAL to {cascading}")
    stack.kill_node(node_index(upstream))
    wait_for(
        lambda: (
            status(stack, cascading).get("upstream") == primary
            and status(stack, cascading).get("replication_state") == "streaming"
        ),
        90,
        f"{cascading} streaming from the primary once {upstream} is gone",
    )
    stack.start_agent(node_index(upstream))
    wait_for(
        lambda: status(stack, cascading).get("upstream") == upstream,
        120,
        f"{cascading} back under {upstream}",
    )
    retag(stack, cascading, {})
    _healthy(stack)


def _reload_tags(stack: Stack, name: str, tags: dict[str, Any]) -> None:
    """What an operator does: rewrite the node's YAML and send its agent SIGHUP (tags are live)."""
    i = write_tags(stack, name, tags)
    for pid in stack.agent_pids(i):
        os.kill(pid, signal.SIGHUP)
    wanted = tags.get("replicatefrom")
    wait_for(
        lambda: status(stack, name)["tags"].get("replicatefrom") == wanted, 30, f"{name} reloaded with {tags}"
    )


def _sql(stack: Stack, name: str, query: str) -> Any:
    host = stack.spec.node_host(node_index(name))
    with psycopg.connect(conninfo(stack, host, stack.spec.pg_port), autocommit=True) as conn:
        return conn.execute(query).fetchone()


def _receiving_from(stack: Stack, name: str) -> str | None:
    """The member whose address pg_stat_wal_receiver shows ``name`` streaming from, if it streams."""
    row = _sql(stack, name, "SELECT status, sender_host FROM pg_stat_wal_receiver")
    if row is None or row[0] != "streaming":
        return None
    hosts = {stack.spec.node_host(i): stack.spec.node_name(i) for i in range(stack.spec.nodes)}
    return hosts.get(row[1])


def _slot_refusals(stack: Stack, name: str, since: int) -> list[str]:
    """Lines of ``name``'s server log, past byte ``since``, where its walreceiver was refused for
    want of its slot on the upstream (what a user finds in the log when streaming stopped)."""
    log = stack.spec.data_dir(node_index(name)).with_name("data.log")
    with log.open("rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace")
    return [line for line in text.splitlines() if "replication slot" in line and "does not exist" in line]


def test_retagging_replicatefrom_on_a_running_standby_never_stops_its_streaming(stack: Stack) -> None:
    _healthy(stack)
    primary = primary_name(stack)
    assert primary is not None
    relay, leaf = [stack.spec.node_name(i) for i in range(3) if stack.spec.node_name(i) != primary]
    router = conninfo(stack, stack.spec.router.bind_host, stack.spec.router.primary)
    writer = Writer(router, table="retag_writes", max_seconds=300)
    writer.prepare()
    log_size = stack.spec.data_dir(node_index(leaf)).with_name("data.log").stat().st_size
    try:
        with writer:
            assert writer.wait_for_acks(20, 60)
            _reload_tags(stack, leaf, {"replicatefrom": relay})
            wait_for(lambda: _receiving_from(stack, leaf) == relay, 60, f"{leaf} streaming from {relay}")
            assert writer.wait_for_acks(20, 60), "writes stopped"
            # Back to the primary, which keeps a slot for every member.
            _reload_tags(stack, leaf, {})
            wait_for(lambda: _receiving_from(stack, leaf) == primary, 60, f"{leaf} back on {primary}")
            # Named relay down: the standby stays with the primary and says why.
            stack.kill_node(node_index(relay))
            _reload_tags(stack, leaf, {"replicatefrom": relay})
            wait_for(
                lambda: status(stack, leaf).get("reason_code") == "STANDBY_REPLICATEFROM_UNAVAILABLE",
                60,
                f"{leaf} saying {relay} is not running",
            )
            assert _receiving_from(stack, leaf) == primary
            assert relay in str(status(stack, leaf).get("reason"))
            assert writer.wait_for_acks(20, 60), "writes stopped"
            stack.start_agent(node_index(relay))
            wait_for(lambda: _receiving_from(stack, leaf) == relay, 120, f"{leaf} on {relay} once it runs")
            assert writer.wait_for_acks(20, 60), "writes stopped"
        refusals = _slot_refusals(stack, leaf, log_size)
        assert refusals == [], f"{leaf}'s walreceiver was refused its slot:\n" + "\n".join(refusals[:5])
        # Nothing missing on the retagged standby: every acknowledged write reached it.
        target = _sql(stack, primary, "SELECT pg_current_wal_lsn()::text")[0]
        wait_for(
            lambda: _sql(stack, leaf, f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn")[0],
            60,
            f"{leaf} replayed up to {target}",
        )
        leaf_host = stack.spec.node_host(node_index(leaf))
        lost = missing_ids(
            conninfo(stack, leaf_host, stack.spec.pg_port), writer.table, writer.report.acknowledged
        )
        assert lost == [], f"acknowledged writes missing on {leaf}: {lost[:20]}"
        assert len(writer.report.acknowledged) > 80
    finally:
        if not stack.agent_pids(node_index(relay)):
            stack.start_agent(node_index(relay))
        _reload_tags(stack, leaf, {})
        _healthy(stack)
