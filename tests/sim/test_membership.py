"""A member whose slot name another member already has, joining a running cluster: the production
cycle over the memory store keeps it out (no clone, no slot of its own, no race), while that
member is gone and through a failover too, and lets it in once renamed."""

from __future__ import annotations

import dataclasses

from pgwarden.ha.reasons import Reason
from pgwarden.model import Tags
from tests.sim.harness import Simulation, node_config
from tests.sim.scenario import FAILOVER_WITHIN, bootstrapped, explain


def join(sim: Simulation, name: str) -> None:
    """A new node, ``name``, with an empty data directory and its own address, started."""
    index = len(sim.configs)
    config = dataclasses.replace(node_config(index, sim.configs["node1"].bootstrap, Tags()), name=name)
    sim.configs[name] = config
    address = config.postgresql.connect_address
    sim.world.add(name, address.host, address.port)
    sim.start_agent(name)


def kept_out(sim: Simulation, name: str) -> bool:
    decision = sim.agents[name].last_decision
    return decision is not None and decision.reason is Reason.SLOT_NAME_TAKEN


def test_a_member_named_like_another_stays_out_through_failures_and_joins_once_renamed() -> None:
    sim = bootstrapped(3, seed=5)
    sim.writer.enabled = True
    join(sim, "NODE2")  # slot name node2, which node2 has
    sim.run(10)
    newcomer = sim.world.instances["NODE2"]
    assert kept_out(sim, "NODE2"), explain(sim)
    message = sim.agents["NODE2"].last_decision.message  # type: ignore[union-attr]
    assert "NODE2" in message and "node2" in message
    assert newcomer.data is None and not newcomer.ready  # never cloned, never started
    primary = sim.primary()
    assert primary is not None
    slots = sim.world.instances[primary].data.slots  # type: ignore[union-attr]
    assert set(slots) <= {"node1", "node2", "node3"}  # no slot of its own

    # node2's node dies: its member key expires, but the leader keeps its slot for
    # member_slots_ttl, so the name is not free: NODE2 still does not clone.
    sim.crash_agent("node2", kill_postgres=True)
    sim.run(15)
    assert "node2" not in {m.name for m in sim.view().members}
    assert kept_out(sim, "NODE2") and newcomer.data is None, explain(sim)

    leader = sim.primary()
    if leader is not None:  # node2 was a standby: now a failover, in which NODE2 must not race
        sim.crash_agent(leader, kill_postgres=True)
    assert sim.run_until(lambda: sim.primary() == "node3", FAILOVER_WITHIN + 5), explain(sim)
    assert kept_out(sim, "NODE2") and newcomer.data is None, explain(sim)
    assert sim.checker.violations == [], explain(sim)

    sim.crash_agent("NODE2")  # renamed: the operator stops it and starts it as node4
    sim.configs.pop("NODE2")
    sim.world.instances.pop("NODE2")
    join(sim, "node4")
    assert sim.run_until(lambda: sim.world.instances["node4"].streaming_from == "node3", 20), explain(sim)
    assert sim.agents["node4"].last_decision.reason is not Reason.SLOT_NAME_TAKEN  # type: ignore[union-attr]
