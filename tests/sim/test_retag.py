"""A running standby retagged ``replicatefrom`` (node.yml and a reload): the production cycle over
the fake PostgreSQL, which streams only through a slot present on the upstream, as PostgreSQL does.

Before the switch waited for the relay's slot (ha/rules/topology.py ``slot_pending``), the retagged
standby pointed its walreceiver at the relay in the cycle it read its new tag, and was refused
until the relay created the slot at its next cycle; a real walreceiver then retries only every
``wal_retrieval_retry_interval`` (5 s). Now it streams without a gap: from the leader until the
relay lists the slot in its member record, from the relay from the next cycle on.
"""

from __future__ import annotations

import dataclasses

from pgwarden.ha.reasons import Reason
from pgwarden.model import PgState
from tests.sim.harness import Simulation
from tests.sim.scenario import assert_converges, bootstrapped, explain

SWITCH_WITHIN = 10.0  # virtual seconds: a few loop_waits


def retag(sim: Simulation, name: str, replicatefrom: str | None) -> None:
    """``name``'s node.yml changed and reloaded: its tags count from its next cycle."""
    config = sim.configs[name]
    sim.configs[name] = dataclasses.replace(
        config, tags=dataclasses.replace(config.tags, replicatefrom=replicatefrom)
    )
    sim.agents[name].cycle.use_config(sim.configs[name])


def running(sim: Simulation, name: str) -> bool:
    """``name``'s member record says its PostgreSQL runs (what a retagged member goes by)."""
    record = sim.view().member(name)
    return record is not None and record.state is PgState.RUNNING


def switch(sim: Simulation, name: str, until: str, within: float) -> tuple[list[float], set[Reason]]:
    """Tick until ``name`` streams from ``until``: the instants (virtual) it streamed from nobody,
    and the reasons its agent gave meanwhile."""
    pg = sim.world.instances[name]
    gaps: list[float] = []
    reasons: set[Reason] = set()
    for _ in range(round(within / sim.dt)):
        if pg.streaming_from == until:
            return gaps, reasons
        if pg.streaming_from is None:
            gaps.append(sim.clock())
        decision = sim.agents[name].last_decision
        if decision is not None:
            reasons.add(decision.reason)
        sim.tick()
    raise AssertionError(f"{name} not streaming from {until} within {within}s\n" + explain(sim))


def test_a_retagged_standby_streams_from_the_leader_until_its_relay_has_its_slot() -> None:
    sim = bootstrapped(3, seed=5)
    assert_converges(sim)
    sim.writer.enabled = True
    leader = sim.primary()
    assert leader is not None
    relay, leaf = (n for n in sorted(sim.configs) if n != leader)
    assert sim.run_until(lambda: running(sim, relay), 10.0), explain(sim)
    retag(sim, leaf, relay)
    gaps, reasons = switch(sim, leaf, relay, SWITCH_WITHIN)
    assert gaps == [], f"{leaf} streamed from nobody at {gaps}\n" + explain(sim)
    assert Reason.STANDBY_WAITING_FOR_RELAY_SLOT in reasons, reasons
    # Back to the leader: it keeps a slot for every member, so nothing to wait for.
    retag(sim, leaf, None)
    gaps, _ = switch(sim, leaf, leader, SWITCH_WITHIN)
    assert gaps == [], f"{leaf} streamed from nobody at {gaps}\n" + explain(sim)
    assert_converges(sim)


def test_a_standby_retagged_to_a_stopped_relay_keeps_streaming_from_the_leader_and_says_why() -> None:
    sim = bootstrapped(3, seed=6)
    assert_converges(sim)
    leader = sim.primary()
    assert leader is not None
    relay, leaf = (n for n in sorted(sim.configs) if n != leader)
    sim.crash_agent(relay, kill_postgres=True)
    sim.run(12.0)  # its member key expires (ttl) or shows it stopped
    retag(sim, leaf, relay)
    sim.run(5.0)
    assert sim.world.instances[leaf].streaming_from == leader, explain(sim)
    decision = sim.agents[leaf].last_decision
    assert decision is not None and decision.reason is Reason.STANDBY_REPLICATEFROM_UNAVAILABLE, explain(sim)
    sim.start_agent(relay)
    gaps, _ = switch(sim, leaf, relay, 60.0)
    assert gaps == [], f"{leaf} streamed from nobody at {gaps}\n" + explain(sim)
