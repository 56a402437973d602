"""Synchronous replication over repeated failovers: the claim stays put when a former primary rejoins.

Measured on a real 3-node cluster in ``on`` mode over 10 failovers (issue 14): every rejoined old
primary displaced the streaming synchronous standby by name order, so the claim moved after every
failover and one standby was never chosen. Rank now decides only who gets a free place
(ha/sync.py), as in Patroni: the standby that holds the place keeps it.
"""

from __future__ import annotations

from dataclasses import replace

from pgwarden.model import SyncMode
from tests.sim.harness import SIM_CONFIG, Simulation
from tests.sim.scenario import FAILOVER_WITHIN, assert_converges, bootstrapped, explain

FAILOVERS = 10
SETTLE = 8.0  # virtual seconds after convergence: several loop_waits for the claim to move, if it would


def claim(sim: Simulation) -> frozenset[str]:
    sync = sim.view().sync
    return sync.members if sync is not None and sync.quorum > 0 else frozenset()


def settled_claim(sim: Simulation, converge: bool = True) -> frozenset[str]:
    """The claim once the cluster converged (every member running) and its synchronous standby
    caught up with the spec."""
    if converge:
        assert_converges(sim)
    assert sim.run_until(lambda: len(claim(sim)) == 1, 30.0), explain(sim)
    sim.run(SETTLE)
    return claim(sim)


def test_the_synchronous_claim_does_not_churn_over_repeated_failovers() -> None:
    sim = bootstrapped(3, seed=3, config=replace(SIM_CONFIG, synchronous_mode=SyncMode.ON))
    before = settled_claim(sim)
    leaders: list[str] = []
    for _ in range(FAILOVERS):
        old = sim.primary()
        assert old is not None, explain(sim)
        leaders.append(old)
        sim.crash_agent(old, kill_postgres=True)
        failed_over = sim.run_until(lambda gone=old: sim.key_holder() not in (None, gone), FAILOVER_WITHIN)
        assert failed_over, explain(sim)
        new = sim.key_holder()
        assert new in before, f"{new} promoted from outside the synchronous set {sorted(before)}"
        # The new leader's only streaming standby takes the free place...
        chosen = settled_claim(sim, converge=False)
        # ...and keeps it when the former primary (whatever its rank) rejoins and streams too.
        sim.start_agent(old)
        after = settled_claim(sim)
        assert after == chosen, (
            f"the rejoining {old} displaced the synchronous standby: {sorted(chosen)} -> {sorted(after)}\n"
            + explain(sim)
        )
        before = after
    # The claim moved only with the failovers, so the leadership went round every member.
    assert set(leaders) == set(sim.configs), f"leaders in turn: {leaders}"
