"""More than three members, one of them cascading, on a real cluster: five nodes, node5 streaming
from node4 (``replicatefrom``; both ``nofailover``, a remote read-only site), synchronous mode on.

The cluster comes up with every standby streaming from its intended upstream (as PostgreSQL's
``pg_stat_replication`` on each upstream shows it), and the primary's node loss under writes
elects one new leader among nodes 1-3, loses no acknowledged write, and leaves the cascade in
place on the new timeline, the old primary back as a standby.

The slots follow the tree: the relay keeps the cascading member's slot (active, streaming), the
primary's slot for that member moves up with it instead of pinning WAL since it moved away, and
when the relay dies the member falls back to the primary through that slot and loses nothing.
"""

from __future__ import annotations

from typing import Any

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


def _query(stack: Stack, name: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on ``name``'s PostgreSQL; [] when it does not answer."""
    host = stack.spec.node_host(node_index(name))
    try:
        with psycopg.connect(conninfo(stack, host, stack.spec.pg_port), autocommit=True) as conn:
            cur = conn.execute(sql, args)
            return cur.fetchall() if cur.description else []
    except psycopg.Error:
        return []


def _execute(stack: Stack, name: str, sql: str, *args: Any) -> None:
    """Run ``sql`` on ``name``'s PostgreSQL; a failure fails the test."""
    host = stack.spec.node_host(node_index(name))
    with psycopg.connect(conninfo(stack, host, stack.spec.pg_port, timeout=10), autocommit=True) as conn:
        conn.execute(sql, args)


def _slot(stack: Stack, on: str, member: str) -> tuple[bool, int] | None:
    """``member``'s physical slot on ``on``: (active, restart_lsn as bytes), None when absent."""
    rows = _query(
        stack,
        on,
        "SELECT active, pg_wal_lsn_diff(restart_lsn, '0/0')::bigint FROM pg_replication_slots"
        " WHERE slot_name = %s AND restart_lsn IS NOT NULL",
        member,
    )
    return (bool(rows[0][0]), int(rows[0][1])) if rows else None


def _lsn(stack: Stack, name: str, sql: str) -> int:
    rows = _query(stack, name, f"SELECT pg_wal_lsn_diff({sql}, '0/0')::bigint")
    return int(rows[0][0]) if rows and rows[0][0] is not None else -1


def _rows(stack: Stack, name: str) -> int:
    rows = _query(stack, name, "SELECT count(*) FROM slot_rows")
    return int(rows[0][0]) if rows else -1


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


def test_slots_follow_the_cascade_and_the_leaf_falls_back_to_the_primary_when_its_relay_dies() -> None:
    with running_stack(nodes=5, spec_type=TaggedSpec, node_tags=TAGS) as stack:
        primary = routed_primary(stack, 120)
        wait_for(lambda: _as_intended(stack, primary), 120, f"{LEAF} streaming from {RELAY}")
        wait_for(lambda: (_slot(stack, RELAY, LEAF) or (False, 0))[0], 60, f"{LEAF}'s slot on {RELAY} active")

        # Writes on the primary, several WAL segments of them, then a checkpoint.
        _execute(stack, primary, "CREATE TABLE slot_rows (id bigint primary key, pad text)")
        for batch in range(4):
            _execute(
                stack,
                primary,
                "INSERT INTO slot_rows SELECT g, repeat('x', 200) FROM generate_series(%s::int, %s::int) g",
                batch * 20000 + 1,
                (batch + 1) * 20000,
            )
            _execute(stack, primary, "SELECT pg_switch_wal()")
        _execute(stack, primary, "CHECKPOINT")
        written = _lsn(stack, primary, "pg_current_wal_lsn()")
        assert written > 0, f"{primary} does not answer"

        # The primary keeps a slot for the leaf (it streams from the relay), which does not hold
        # WAL back: it moves up with what the leaf reports, to past everything just written.
        def released() -> bool:
            slot = _slot(stack, primary, LEAF)
            return slot is not None and not slot[0] and slot[1] >= written

        wait_for(released, 90, f"{primary}'s slot for {LEAF} past {written} (the writes)")
        slot, replayed = _slot(stack, primary, LEAF), _lsn(stack, LEAF, "pg_last_wal_replay_lsn()")
        assert slot is not None and slot[1] <= replayed, f"{primary}'s slot {slot} passed {LEAF}'s WAL"
        assert _rows(stack, LEAF) == 80000, f"{LEAF} did not receive the writes through {RELAY}"
        relay_slot = _slot(stack, RELAY, LEAF)
        assert relay_slot is not None and relay_slot[0], f"{RELAY} has no active slot for {LEAF}"
        assert LEAF in _senders(stack, RELAY) and LEAF not in _senders(stack, primary)

        # The relay dies: the leaf streams from the primary, through its slot there, and the
        # writes made after that reach it.
        stack.kill_node(node_index(RELAY))
        wait_for(lambda: LEAF in _senders(stack, primary), 120, f"{LEAF} streaming from {primary}")
        slot = _slot(stack, primary, LEAF)
        assert slot is not None and slot[0], f"{LEAF} streams from {primary} without its slot there"
        _execute(
            stack, primary, "INSERT INTO slot_rows SELECT g, 'after' FROM generate_series(80001, 80100) g"
        )
        wait_for(lambda: _rows(stack, LEAF) == 80100, 60, f"every row on {LEAF}")
        assert status(stack, LEAF)["upstream"] == primary
