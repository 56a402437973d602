"""Maintenance mode and cascading replication on a real cluster.

Pause: the agents keep reporting but take no automatic action; the primary's PostgreSQL killed
during a pause is neither restarted nor failed over, and resuming hands management back.
``replicatefrom``: a standby streams from the named member, and from the primary once it is gone.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import psycopg
import pytest

from pgwarden.fence.postmaster import postmaster_pid
from pgwarden.local import processes
from pgwarden.local.stack import Stack
from tests.support.api import call, node_index, retag, status
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
        # The relay creates the slot the cascading standby names at its next cycle; until then
        # the walreceiver is refused and retries (wal_retrieval_retry_interval, 5 s).
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
