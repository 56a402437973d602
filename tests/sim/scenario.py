"""Fault scenarios for the simulation (a list of faults, each held for a while, then healed) and the
helpers every simulation test shares: a bootstrapped cluster, and the check that it converged.

Hypothesis draws these lists; a failing one shrinks to a short list that reads as a script
("pause the primary for 6.0 s, then kill PostgreSQL on node2").
"""

from __future__ import annotations

from dataclasses import dataclass

from pgwarden.model import Lsn
from tests.sim.harness import Simulation

KINDS = (
    "crash_node",
    "crash_agent",
    "kill_postgres",
    "pause",
    "cut_store",
    "isolate",
    "restart_agent",
    "store_outage",  # etcd lost for every member at once (the target is ignored); leases expire
    "quorum_lost",  # etcd itself loses its majority: no lease expires, all renewed on return
    "slow_replication",  # the target receives WAL at 4 kB/s
)


@dataclass(frozen=True)
class Fault:
    kind: str
    target: int | None  # member index, or None: whoever runs the primary at that moment
    hold: float  # seconds before the fault is undone (crashed agents are started again)
    gap: float  # seconds of calm after it is undone
    lasting: bool = False  # not undone until the final heal, so faults pile up

    def __str__(self) -> str:
        who = "the primary" if self.target is None else f"node{self.target + 1}"
        tail = ", left in place" if self.lasting else f", undone, then {self.gap:.1f}s calm"
        return f"{self.kind} {who} for {self.hold:.1f}s{tail}"


def target_of(sim: Simulation, fault: Fault) -> str:
    if fault.target is not None:
        return f"node{fault.target % len(sim.configs) + 1}"
    return sim.primary() or sim.key_holder() or "node1"


def inject(sim: Simulation, kind: str, name: str, hold: float) -> None:
    match kind:
        case "crash_node":
            sim.crash_agent(name, kill_postgres=True)
        case "crash_agent":
            sim.crash_agent(name)
        case "kill_postgres":
            sim.kill_postgres(name)
        case "pause":
            sim.pause_agent(name, hold)
        case "cut_store":
            sim.cut_from_store(name)
        case "isolate":
            sim.isolate(name)
        case "restart_agent":
            sim.restart_agent(name)
        case "store_outage":
            for member in sim.configs:
                sim.cut_from_store(member)
        case "quorum_lost":
            sim.store.lose_quorum()
            sim.world.log("SCENARIO", "etcd lost its quorum")
        case "slow_replication":
            sim.world.rate[name] = 4096
        case _:
            raise ValueError(kind)


def undo(sim: Simulation, kind: str, name: str) -> None:
    match kind:
        case "crash_node" | "crash_agent" if name not in sim.agents:
            sim.start_agent(name)
        case "cut_store":
            sim.cut_from_store(name, False)
        case "isolate":
            sim.isolate(name, False)
        case "store_outage":
            for member in sim.configs:
                sim.cut_from_store(member, member in sim.world.isolated)
        case "quorum_lost":
            sim.store.regain_quorum()
            sim.world.log("SCENARIO", "etcd has a quorum again")
        case "slow_replication":
            sim.world.rate.pop(name, None)
        case _:
            pass  # a pause ends by itself; a killed PostgreSQL is the agent's to restart


def play(sim: Simulation, faults: list[Fault]) -> None:
    """Each fault in turn, held, undone unless lasting; then everything healed."""
    for fault in faults:
        name = target_of(sim, fault)
        sim.world.log("SCENARIO", f"{fault} -> {name}")
        inject(sim, fault.kind, name, fault.hold)
        sim.run(fault.hold)
        if not fault.lasting:
            undo(sim, fault.kind, name)
            sim.run(fault.gap)
    sim.world.log("SCENARIO", "heal everything")
    sim.heal()


BOOTSTRAP_WITHIN = 20.0  # virtual seconds: initdb 1 s, clone 2 s, starts and loop_wait
FAILOVER_WITHIN = 10.0  # ttl 4 s, then the watch fires and one cycle promotes
CONVERGE_WITHIN = 60.0  # after healing: rewinds, clones, job backoffs of 5 s


def bootstrapped(n: int = 3, seed: int = 0, **kwargs: object) -> Simulation:
    """A cluster of ``n`` members, bootstrapped: one primary, the others streaming from it."""
    sim = Simulation(n, seed=seed, **kwargs)  # type: ignore[arg-type]
    assert sim.run_until(sim.converged, BOOTSTRAP_WITHIN), explain(sim)
    return sim


def assert_converges(sim: Simulation, within: float = CONVERGE_WITHIN) -> None:
    """Healed: one primary, all others streaming it; then, writes stopped, all caught up; and
    every invariant held throughout, lost writes included."""
    assert sim.run_until(lambda: sim.converged(caught_up=False), within), explain(sim)
    sim.writer.enabled = False
    assert sim.run_until(sim.converged, 5.0), explain(sim)
    primary = sim.primary()
    assert primary is not None
    sim.checker.lost_writes(sim.writer.acked, sim.world.instances[primary])
    assert sim.checker.violations == [], explain(sim)


def explain(sim: Simulation, lines: int = 60) -> str:
    c = sim.checker
    return "\n".join(
        [
            f"violations: {c.violations}",
            f"overlaps: {c.overlaps}",
            "promotions: " + ", ".join(f"{p.at:.1f} {p.name} at {Lsn(p.fork)}" for p in c.promotions),
            "journal tail:",
            *sim.world.journal[-lines:],
        ]
    )
