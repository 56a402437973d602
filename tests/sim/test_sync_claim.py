"""Synchronous replication over repeated failovers: the claim stays put when a former primary rejoins.

Measured on a real 3-node cluster in ``on`` mode over 10 failovers (issue 14): every rejoined old
primary displaced the streaming synchronous standby by name order, so the claim moved after every
failover and one standby was never chosen. Rank now decides only who gets a free place
(ha/sync.py), as in Patroni: the standby that holds the place keeps it.
"""

from __future__ import annotations

from dataclasses import replace

from pgwarden.model import SyncMode, Tags
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


def test_quorum_fails_over_without_its_nofailover_standby() -> None:
    """Quorum ANY 1 over four members, node4 tagged nofailover: the primary lists only the standbys
    that may fail over, so when it dies together with node4, one of them takes over, with every
    acknowledged write (the checker's lost-writes check). Listed beside them (before), node4 was
    in the claim ({3 standbys}, quorum 1): a failover needed all three to answer, and nobody did."""
    config = replace(SIM_CONFIG, synchronous_mode=SyncMode.QUORUM)
    sim = bootstrapped(4, seed=4, config=config, tags={"node4": Tags(nofailover=True)})
    assert_converges(sim)
    sim.writer.enabled = True
    primary = sim.primary()
    assert primary is not None and primary != "node4"
    others = frozenset(sim.configs) - {primary, "node4"}
    assert sim.run_until(lambda: claim(sim) == others, 30.0), explain(sim)
    sim.run(3.0)  # writes acknowledged under the claim
    sim.crash_agent("node4", kill_postgres=True)
    sim.crash_agent(primary, kill_postgres=True)
    assert sim.run_until(lambda: sim.key_holder() in others, FAILOVER_WITHIN), explain(sim)
    assert sim.run_until(lambda: sim.primary() in others, FAILOVER_WITHIN), explain(sim)
    new = sim.primary()
    assert new is not None
    sim.checker.lost_writes(sim.writer.acked, sim.world.instances[new])
    assert sim.checker.violations == [], explain(sim)
