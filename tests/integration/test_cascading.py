"""More than three members, one of them cascading, on a real cluster: five nodes, node5 streaming
from node4 (``replicatefrom``; both ``nofailover``, a remote read-only site), synchronous mode on.

The cluster comes up with every standby streaming from its intended upstream (as PostgreSQL's
``pg_stat_replication`` on each upstream shows it), and the primary's node loss under writes
elects one new leader among nodes 1-3, loses no acknowledged write, and leaves the cascade in
place on the new timeline, the old primary back as a standby.
"""

from __future__ import annotations

import psycopg
import pytest

from pgwarden.local.stack import Stack
from tests.support.api import node_index, status
from tests.support.cluster import TaggedSpec, conninfo, primary_name, running_stack, wait_for
from tests.support.invariants import Invariants, routed_primary

pytestmark = pytest.mark.integration

RELAY, LEAF = "node4", "node5"
TAGS = {RELAY: {"nofailover": True}, LEAF: {"nofailover": True, "replicatefrom": RELAY}}
CANDIDATES = ("node1", "node2", "node3")


def _senders(stack: Stack, name: str) -> set[str]:
    """The standbys streaming from ``name``, as its PostgreSQL shows them."""
    host = stack.spec.node_host(node_index(name))
    try:
        with psycopg.connect(conninfo(stack, host, stack.spec.pg_port), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'"
            ).fetchall()
    except psycopg.Error:
        return set()
    return {str(r[0]) for r in rows}


def _as_intended(stack: Stack, primary: str) -> bool:
    """Every standby but the leaf streams from the primary; the leaf streams from the relay."""
    direct = {stack.spec.node_name(i) for i in range(stack.spec.nodes)} - {primary, LEAF}
    return _senders(stack, primary) == direct and _senders(stack, RELAY) == {LEAF}


def test_five_members_with_a_cascading_standby_lose_a_node_and_nothing_acknowledged() -> None:
    with running_stack(nodes=5, spec_type=TaggedSpec, node_tags=TAGS, synchronous="block") as stack:
        old = routed_primary(stack, 120)
        assert old in CANDIDATES, f"{old} leads, but nodes 4 and 5 are nofailover"
        wait_for(
            lambda: _as_intended(stack, old), 120, f"the standbys streaming from {old}, {LEAF} from {RELAY}"
        )

        with Invariants(stack, "node loss, 5 members, one cascading", heal_timeout=180) as check:
            stack.kill_node(node_index(old))
            new = wait_for(lambda: (p := primary_name(stack)) not in (None, old) and p, 90, "a new primary")
            assert check.writer.wait_for_acks(10, 60), "no write acknowledged by the new primary"
            stack.start_agent(node_index(old))
            report = check.finish()
        report.publish()
        report.assert_invariants()  # healed, one writer at a time, no acknowledged write lost
        assert new in CANDIDATES and report.primary_after == new

        wait_for(
            lambda: _as_intended(stack, new), 120, f"every standby back under {new}, {LEAF} under {RELAY}"
        )
        timeline = status(stack, new)["timeline"]
        for name in (RELAY, LEAF, old):
            assert status(stack, name)["timeline"] == timeline, f"{name} is not on {new}'s timeline"
