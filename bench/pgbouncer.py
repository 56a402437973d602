"""PgBouncer beside HAProxy: the same switchover and node loss, one writer through each.

A real PgBouncer (tests/support/pgbouncer.py) runs in front of the pgwarden cluster under test,
repointed by deploy/pgbouncer/pgbouncer-follow from every node's on_role_change and on_start
callbacks. Each run measures, for the writer through HAProxy and the one through PgBouncer, the
longest gap between acknowledged writes and the acknowledged writes missing afterwards, and how
long after the fault PgBouncer's admin console named the new primary.
"""

from __future__ import annotations

from pgwarden.local.stack import Stack
from tests.support.cluster import primary_name
from tests.support.pgbouncer import Comparison, Pooler, compare

KEYS = (
    "pgb_switchover_gap",
    "pgb_switchover_gap_haproxy",
    "pgb_switchover_lost",
    "pgb_node_loss_gap",
    "pgb_node_loss_gap_haproxy",
    "pgb_node_loss_lost",
    "pgb_repoint",
)


def pooler(stack: Stack) -> Pooler:
    return Pooler(stack)


def _index(name: str) -> int:
    return int(name.removeprefix("node")) - 1


def switchover(stack: Stack, pool: Pooler, switch: object) -> Comparison:
    """``switch(leader, candidate)``: the cluster's POST /switchover (bench.cluster)."""
    leader = primary_name(stack)
    assert leader is not None, "no primary"
    candidate = next(i for i in range(stack.spec.nodes) if i != _index(leader))

    def inject() -> None:
        answer = switch(_index(leader), candidate)  # type: ignore[operator]
        assert answer.status_code == 200, answer.text

    return compare(stack, pool, "switchover", inject)


def node_loss(stack: Stack, pool: Pooler) -> Comparison:
    leader = primary_name(stack)
    assert leader is not None, "no primary"
    return compare(stack, pool, "node loss", lambda: stack.kill_node(_index(leader)))


def figures(outcome: Comparison, kind: str) -> dict[str, float]:
    return {
        f"pgb_{kind}_gap": outcome.pgbouncer.gap_s,
        f"pgb_{kind}_gap_haproxy": outcome.haproxy.gap_s,
        f"pgb_{kind}_lost": float(outcome.pgbouncer.lost),
        "pgb_repoint": outcome.repointed_s,
    }
