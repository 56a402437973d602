"""Failsafe mode in the simulation: etcd lost for every agent (or for some), with members lost, cut
off or restarted meanwhile; never two writers, whatever the interleaving.

The in-memory store keeps expiring leases while the agents cannot reach it (the harder case: a
real etcd that lost its quorum expires none, and re-extends them all when it is back), so when
the outage ends the leader's key is gone and the leader must take it back before any member that
promised may race. Every invariant of test_simulation.py holds; these tests add the strongest one,
which only fencing could give in general: no two PostgreSQL instances ever accept writes at once
(``overlaps == []``), since no agent here is frozen or killed while its PostgreSQL runs.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgwarden.ha.reasons import Reason
from pgwarden.model import FAILSAFE, DynamicConfig
from tests.sim.harness import SIM_CONFIG, Simulation
from tests.sim.scenario import Fault, assert_converges, bootstrapped, explain, inject, play, undo

FAILSAFE_ON = dataclasses.replace(SIM_CONFIG, failsafe_mode=True)
OUTAGE = 30.0
MARGIN = 1.0  # SIM_CONFIG's ttl 4 s: the write deadline is a round's send time + 3 s


def _ready(seed: int, config: DynamicConfig = FAILSAFE_ON) -> tuple[Simulation, str]:
    """A converged cluster (whose leader published the failsafe topology, in failsafe mode), the
    writer running."""
    sim = bootstrapped(3, seed, config=config)
    sim.writer.enabled = True
    primary = sim.primary()
    assert primary is not None
    if config.failsafe_mode:
        published = lambda: sorted(sim.view().failsafe or {}) == sorted(sim.configs)  # noqa: E731
        assert sim.run_until(published, 5.0), explain(sim)
    sim.run(2)
    return sim, primary


def _longest_gap(sim: Simulation, start: float, end: float) -> float:
    """Seconds of the longest stretch in [start, end] without an acknowledged write."""
    times = [start] + [w.at for w in sim.writer.acked if start <= w.at <= end] + [end]
    return max(b - a for a, b in itertools.pairwise(times))


def _failsafe_entries(sim: Simulation) -> list[str]:
    return [e.new_leader for e in sim.view().history if e.event == FAILSAFE]


@pytest.mark.parametrize("seed", range(3))
def test_etcd_quorum_lost_the_primary_keeps_writing_and_renews_its_key_after(seed: int) -> None:
    sim, primary = _ready(seed)
    start = sim.clock()
    inject(sim, "quorum_lost", primary, OUTAGE)
    sim.run(OUTAGE)
    end = sim.clock()
    assert sim.primary() == primary and sim.checker.promotions == [], explain(sim)
    assert _longest_gap(sim, start, end) <= 0.5, explain(sim)
    reasons = {a.last_decision.reason for a in sim.agents.values() if a.last_decision}
    assert reasons == {Reason.STORE_UNREACHABLE, Reason.STORE_UNREACHABLE_FAILSAFE}, explain(sim)
    undo(sim, "quorum_lost", primary)
    sim.run(2)
    assert sim.key_holder() == primary
    assert_converges(sim)
    assert sim.primary() == primary and sim.checker.promotions == []
    assert _failsafe_entries(sim) == [primary], explain(sim)
    assert sim.checker.overlaps == [] and sim.checker.unfenced == []


@pytest.mark.parametrize("seed", range(3))
def test_etcd_lost_for_every_agent_the_primary_keeps_writing_and_takes_its_key_back(seed: int) -> None:
    """The agents lose etcd while its majority lives on and expires every lease: the key is gone
    when they see it again, and the members that promised let the primary take it back."""
    sim, primary = _ready(seed)
    start = sim.clock()
    inject(sim, "store_outage", primary, OUTAGE)
    sim.run(OUTAGE)
    end = sim.clock()
    assert sim.key_holder() is None, "the in-memory store expires the key meanwhile"
    assert sim.primary() == primary and sim.checker.promotions == [], explain(sim)
    assert _longest_gap(sim, start, end) <= 0.5, explain(sim)
    undo(sim, "store_outage", primary)
    assert sim.run_until(lambda: sim.key_holder() == primary, 3.0), explain(sim)
    assert_converges(sim)
    assert sim.primary() == primary and sim.checker.promotions == []
    assert _failsafe_entries(sim) == [primary], explain(sim)
    assert sim.checker.overlaps == [] and sim.checker.unfenced == []


def test_without_failsafe_mode_the_same_outage_stops_the_primary() -> None:
    sim, primary = _ready(0, SIM_CONFIG)
    start = sim.clock()
    inject(sim, "store_outage", primary, OUTAGE)
    sim.run(OUTAGE)
    assert sim.primary() is None and _longest_gap(sim, start, sim.clock()) > OUTAGE - 5
    undo(sim, "store_outage", primary)
    assert_converges(sim)
    assert _failsafe_entries(sim) == []


@pytest.mark.parametrize("seed", range(3))
def test_a_member_lost_during_the_outage_stops_the_primary_at_its_deadline(seed: int) -> None:
    """No promise from the lost member: the last confirmed round's deadline is the end."""
    sim, primary = _ready(seed)
    inject(sim, "quorum_lost", primary, OUTAGE)
    sim.run(5)
    standby = next(n for n in sim.configs if n != primary)
    sim.crash_agent(standby, kill_postgres=True)
    lost_at = sim.clock()
    pg = sim.world.instances[primary]
    assert sim.run_until(lambda: not pg.writable, sim.configs[primary].bootstrap.ttl), explain(sim)
    assert sim.clock() - lost_at <= SIM_CONFIG.ttl - MARGIN + 0.2, explain(sim)
    sim.run(OUTAGE - 5)
    assert sim.world.writable() == [] and sim.checker.promotions == [], explain(sim)
    acked = list(sim.writer.acked)
    undo(sim, "quorum_lost", primary)
    sim.heal()
    assert_converges(sim)
    final = sim.world.instances[sim.primary() or ""]
    assert sim.primary() == primary and [w for w in acked if not final.holds(w)] == [], explain(sim)
    assert _failsafe_entries(sim) == [primary]
    assert sim.checker.overlaps == []


def test_the_primary_alone_cut_from_etcd_keeps_writing_and_nobody_races_for_its_expired_key() -> None:
    sim, primary = _ready(4)
    inject(sim, "cut_store", primary, OUTAGE)
    sim.run(OUTAGE)
    assert sim.key_holder() is None and sim.primary() == primary, explain(sim)
    waiting = {a.last_decision.reason for n, a in sim.agents.items() if n != primary and a.last_decision}
    assert waiting == {Reason.FAILSAFE_PROMISE_HOLDING}, explain(sim)
    undo(sim, "cut_store", primary)
    assert sim.run_until(lambda: sim.key_holder() == primary, 3.0), explain(sim)
    assert_converges(sim)
    assert sim.checker.promotions == [] and sim.checker.overlaps == []


def test_the_primary_isolated_stops_at_its_deadline_and_a_standby_takes_over_after_the_promises() -> None:
    sim, primary = _ready(5)
    inject(sim, "isolate", primary, 20.0)
    isolated_at = sim.clock()
    pg = sim.world.instances[primary]
    assert sim.run_until(lambda: not pg.writable, SIM_CONFIG.ttl), explain(sim)
    stopped_at = sim.clock()
    assert sim.run_until(lambda: sim.primary() not in (None, primary), 15.0), explain(sim)
    promoted_at = sim.checker.promotions[-1].at
    # The promises the standbys gave last end ttl after they got them, the leader's deadline
    # margin before that: the new primary starts after the old one stopped.
    assert isolated_at < stopped_at < promoted_at, explain(sim)
    sim.run(5)
    undo(sim, "isolate", primary)
    sim.heal()
    assert_converges(sim)
    assert sim.checker.overlaps == []


def test_a_member_restarted_during_the_outage_does_not_race_on_a_forgotten_promise() -> None:
    sim, primary = _ready(6)
    inject(sim, "cut_store", primary, 20.0)
    sim.run(6)  # the key expired meanwhile: the standbys hold their promises
    standby = next(n for n in sim.configs if n != primary)
    sim.restart_agent(standby)
    sim.run(14)
    assert sim.primary() == primary and sim.checker.promotions == [], explain(sim)
    undo(sim, "cut_store", primary)
    assert_converges(sim)
    assert sim.checker.overlaps == [] and sim.checker.promotions == []


# --- random interleavings --------------------------------------------------------------------------

# Faults an agent survives (no SIGSTOP, no kill of an agent whose PostgreSQL runs on): with them
# alone no two PostgreSQL instances may ever accept writes at once.
SURVIVABLE = (
    "crash_node",
    "kill_postgres",
    "cut_store",
    "isolate",
    "restart_agent",
    "store_outage",
    "quorum_lost",
)
outages = st.builds(
    Fault,
    kind=st.sampled_from((*SURVIVABLE, "store_outage", "quorum_lost")),
    target=st.one_of(st.none(), st.integers(0, 2)),
    hold=st.floats(0.5, 20.0).map(lambda x: round(x, 1)),
    gap=st.floats(0.0, 8.0).map(lambda x: round(x, 1)),
    lasting=st.booleans(),
)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**16), script=st.lists(outages, min_size=1, max_size=5))
def test_random_outages_member_losses_and_restarts_never_make_two_writers(
    seed: int, script: list[Fault]
) -> None:
    config = dataclasses.replace(FAILSAFE_ON, remove_data_directory_on_diverged_timelines=True)
    sim, _ = _ready(seed, config)
    play(sim, script)
    assert_converges(sim)
    assert sim.checker.overlaps == [], explain(sim)
