"""Simulation tests: several agents (real ``decide`` and ``Executor``) over the in-memory store and a
fake PostgreSQL, on virtual time, with crashes, freezes, store cuts and network partitions.

What is checked, and why this and not more
------------------------------------------
The naive invariant "at most one PostgreSQL runs read-write at any instant" does not hold for a
lease without fencing, and no implementation of this design can make it hold: an agent frozen
by SIGSTOP (or killed, its postmaster surviving) cannot stop its PostgreSQL, which keeps running
read-write after the lease ran out, while etcd hands the key to a standby that promotes. Only a
watchdog or STONITH closes that window. The simulation therefore checks the strongest
properties a correct lease-based implementation does guarantee, after every agent cycle and
every tick (``invariants.py``):

1. Legitimate writers are unique: among read-write instances whose agent's lease deadline
   (``LeaderLease.deadline()``, last renewal *sent* + ttl - margin) lies in the future, there is
   at most one. This is the brief's "at most one running primary not past its own deadline",
   and it holds under every fault, freezes included.
2. A live agent fences itself: after each cycle of an agent, if its PostgreSQL runs read-write,
   the leader key in the store names it and its own lease deadline lies ahead. So at any
   instant every read-write instance with a running, unfrozen agent (that has completed a
   cycle since it started or resumed) is the one the key names. Two writers can coexist only
   while all but one have a frozen or dead agent; every such overlap is recorded with the
   agents' states and reported, never silently allowed.
3. Clients only get acknowledgements from the key holder, unless its agent was frozen or dead:
   the client writes through a model of the generated HAProxy configuration (checks every
   500 ms, down after 2 failures, 1 s check timeout, shutdown-sessions), so a frozen primary
   keeps receiving writes until the router notices. Writes acknowledged by a non-holder
   ("unfenced") are counted, not forbidden; with the generated timing there are none, as the
   router gives up on a frozen node before its key can expire, and with a slower router they
   occur and are lost: that is the known limit, measured by the two freeze tests below.
4. Lost writes are only asynchronous replication's: at the end, every acknowledged write the
   primary lacks must have been made by the key holder past the fork of a later promotion of a
   member that shared its history up to there; and every promotion happens within
   ``maximum_lag_on_failover`` of the last position a leader published (safety rule 3).
5. No silent divergence: the fake PostgreSQL records a corruption whenever PostgreSQL itself
   would splice two different histories (same timeline number, different WAL), and the store's
   history never lists a timeline twice.
6. Liveness: once faults heal, the cluster converges within a bounded virtual time to one
   primary holding the key and every other member streaming the same history from it.

Bugs this simulation found are pinned as regressions in test_regressions.py, with the one
known gap it still shows (strict xfail).
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgwarden.ha.reasons import Reason
from tests.sim.harness import SIM_CONFIG, Simulation
from tests.sim.scenario import (
    FAILOVER_WITHIN,
    KINDS,
    Fault,
    assert_converges,
    bootstrapped,
    explain,
    inject,
    play,
    undo,
)

# --- bootstrap ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_bootstrap_of_three_members_gives_one_primary_and_two_streaming_standbys(seed: int) -> None:
    sim = bootstrapped(3, seed)
    primary = sim.primary()
    assert primary is not None and sim.key_holder() == primary
    standbys = [pg for pg in sim.world.instances.values() if pg.name != primary]
    assert all(pg.in_recovery and pg.streaming_from == primary for pg in standbys)
    view = sim.view()
    assert view.initialize and view.history == ()
    assert {pg.data.history.timeline for pg in sim.world.instances.values() if pg.data} == {1}
    assert sim.checker.violations == [] and sim.checker.overlaps == []


def test_bootstrap_publishes_a_slot_per_standby_on_the_primary() -> None:
    sim = bootstrapped(3, 1)
    primary = sim.world.instances[sim.primary() or ""]
    assert primary.data is not None
    assert set(primary.data.slots) == {n for n in sim.configs if n != primary.name}
    assert all(pg.slot == pg.name for pg in sim.world.instances.values() if pg is not primary)


# --- one fault on the primary -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["crash_node", "crash_agent", "pause", "cut_store", "isolate"])
def test_losing_the_primary_elects_another_within_the_ttl(kind: str) -> None:
    sim = bootstrapped(3, seed=2)
    sim.writer.enabled = True
    sim.run(3)
    old = sim.primary()
    assert old is not None
    inject(sim, kind, old, 12.0)

    def promoted() -> bool:
        holder = sim.key_holder()
        return holder not in (None, old) and sim.world.instances[holder or old].writable

    assert sim.run_until(promoted, FAILOVER_WITHIN), explain(sim)
    new = sim.key_holder()
    sim.run(5)
    undo(sim, kind, old)
    sim.heal()
    assert_converges(sim)
    assert sim.primary() == new  # the old primary rejoined as a standby, by rewind
    assert sim.world.instances[old].data is not None
    if kind in ("crash_agent", "pause"):  # its PostgreSQL outlived, or outwaited, its agent
        frozen = (f"'{old}': 'agent dead'", f"'{old}': 'agent paused'")
        assert sim.checker.overlaps and all(any(f in o for f in frozen) for o in sim.checker.overlaps)
    else:
        assert sim.checker.overlaps == []


def test_postgres_crash_on_the_primary_restarts_it_in_place_on_the_same_timeline() -> None:
    sim = bootstrapped(3, seed=3)
    sim.writer.enabled = True
    sim.run(2)
    primary = sim.primary()
    assert primary is not None
    sim.kill_postgres(primary)
    assert sim.run_until(lambda: sim.primary() == primary, 5.0), explain(sim)
    assert sim.view().history == ()
    assert_converges(sim)
    assert sim.checker.promotions == []


@pytest.mark.parametrize(
    "kind", ["crash_node", "crash_agent", "pause", "cut_store", "isolate", "kill_postgres", "store_outage"]
)
def test_no_acknowledged_write_is_lost_when_the_standbys_had_everything(kind: str) -> None:
    sim = bootstrapped(3, seed=4)
    sim.writer.enabled = True
    sim.run(5)
    sim.writer.enabled = False
    sim.run(0.5)  # standbys catch up: nothing is left unreplicated
    assert sim.converged(), explain(sim)
    old = sim.primary()
    assert old is not None
    acked = list(sim.writer.acked)
    assert len(acked) > 20
    inject(sim, kind, old, 8.0)
    sim.run(8.0)
    undo(sim, kind, old)
    sim.heal()
    assert_converges(sim)
    for pg in sim.world.instances.values():
        missing = [w for w in acked if not pg.holds(w)]
        assert missing == [], f"{pg.name} lacks {len(missing)} acknowledged writes\n{explain(sim)}"


# --- the lag limit ------------------------------------------------------------------------------


def test_standbys_beyond_maximum_lag_do_not_promote_and_the_old_primary_comes_back() -> None:
    config = dataclasses.replace(SIM_CONFIG, maximum_lag_on_failover=64 * 1024)
    sim = bootstrapped(3, seed=5, config=config)
    old = sim.primary()
    assert old is not None
    for name in sim.configs:
        if name != old:
            sim.world.rate[name] = 0  # replication stalls: the standbys fall behind
    sim.writer.enabled = True
    sim.run(15)  # ~300 kB written, published in the leader's status every cycle
    sim.writer.enabled = False
    acked = list(sim.writer.acked)
    sim.crash_agent(old, kill_postgres=True)
    sim.world.rate.clear()
    sim.run(20)
    assert sim.primary() is None and sim.checker.promotions == [], explain(sim)
    reasons = {a.last_decision.reason for a in sim.agents.values() if a.last_decision}
    assert reasons == {Reason.NOT_RACING_LAG}, explain(sim)
    sim.heal()
    assert_converges(sim)
    primary = sim.world.instances[sim.primary() or ""]
    assert [w for w in acked if not primary.holds(w)] == []


def test_a_standby_within_the_lag_limit_promotes_and_loses_only_the_unreplicated_tail() -> None:
    sim = bootstrapped(3, seed=6)
    old = sim.primary()
    assert old is not None
    sim.world.rate.update({n: 8 * 1024 for n in sim.configs if n != old})  # slow, not stalled
    sim.writer.enabled = True
    sim.run(10)
    sim.crash_agent(old, kill_postgres=True)
    assert sim.run_until(lambda: sim.primary() not in (None, old), FAILOVER_WITHIN), explain(sim)
    sim.world.rate.clear()
    sim.heal()
    assert_converges(sim)  # includes: every lost write lay past the promotion's fork
    fork = sim.checker.promotions[0].fork
    final = sim.world.instances[sim.primary() or ""]
    lost = [w for w in sim.writer.acked if not final.holds(w)]
    assert lost and all(w.instance == old and w.lsn > fork for w in lost)


# --- random faults ------------------------------------------------------------------------------

faults = st.builds(
    Fault,
    kind=st.sampled_from(KINDS),
    target=st.one_of(st.none(), st.integers(0, 2)),
    hold=st.floats(0.5, 15.0).map(lambda x: round(x, 1)),
    gap=st.floats(0.0, 10.0).map(lambda x: round(x, 1)),
    lasting=st.booleans(),
)


# ~50 s of CPU, single-threaded and deterministic (virtual clock): on a machine shared by many
# runs it can take longer than the suite's 600 s per test, which is no finding about pgwarden.
@pytest.mark.timeout(1800)
@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**16), script=st.lists(faults, min_size=1, max_size=6))
def test_random_faults_then_heal_converge_with_every_invariant_held(seed: int, script: list[Fault]) -> None:
    # Re-cloning is allowed after a failed pg_rewind: with it off, one transient rewind failure
    # waits for an operator (the known gap pinned in test_regressions.py).
    config = dataclasses.replace(SIM_CONFIG, remove_data_directory_on_diverged_timelines=True)
    sim = bootstrapped(3, seed, config=config)
    sim.writer.enabled = True
    sim.run(3)
    play(sim, script)
    assert_converges(sim)


# --- the known limit of a lease without fencing ------------------------------------------------


def freeze_the_primary_before_a_renewal(sim: Simulation, seconds: float) -> str:
    """SIGSTOP the primary's agent just before a renewal is due: its deadline is then nearest."""
    sim.writer.enabled = True
    sim.run(3)
    old = sim.primary()
    assert old is not None
    agent = sim.agents[old]
    assert sim.run_until(lambda: agent.next_run - sim.clock() <= sim.dt + 1e-6, 2.0)
    sim.pause_agent(old, seconds)
    return old


@pytest.mark.parametrize("seed", range(3))
def test_generated_router_timing_cuts_a_frozen_primary_off_before_its_key_can_expire(seed: int) -> None:
    """HAProxy as generated (inter 500 ms, fall 2, timeout check 1 s) marks a frozen agent's
    node down 2 to 3 s after the freeze; its key can pass to another member 3 to 4 s after its
    last renewal. So the frozen primary's PostgreSQL outlives its lease, yet no client write
    reaches it once another member could hold the key. The margin is thin (tenths of a second
    at worst): a slower router loses writes, as the next test shows."""
    sim = bootstrapped(3, seed=seed)
    old = freeze_the_primary_before_a_renewal(sim, 12.0)
    assert sim.run_until(lambda: sim.key_holder() not in (None, old), FAILOVER_WITHIN), explain(sim)
    sim.run(12)
    sim.heal()
    assert_converges(sim)
    assert sim.checker.unfenced == [] and sim.writer.routed_to_two == []
    assert sim.checker.overlaps and all(f"'{old}': 'agent paused'" in o for o in sim.checker.overlaps)


def test_a_slow_router_lets_a_frozen_primary_acknowledge_writes_that_are_then_lost() -> None:
    """The limit itself, with the HAProxy timing many Patroni setups use (inter 3 s, fall 3): the
    router still sends writes to the frozen primary after a standby took the key over. Those
    writes are acknowledged and lost; only fencing (a watchdog) or a router faster than the
    ttl margin prevents it."""
    sim = bootstrapped(3, seed=8, router={"inter": 3.0, "fall": 3, "timeout": 1.0})
    old = freeze_the_primary_before_a_renewal(sim, 15.0)
    assert sim.run_until(lambda: sim.key_holder() not in (None, old), FAILOVER_WITHIN), explain(sim)
    sim.run(15)
    sim.heal()
    assert_converges(sim)  # every invariant holds: these writes are the counted exception
    unfenced = sim.checker.unfenced
    assert unfenced and {w.instance for w in unfenced} == {old}
    final = sim.world.instances[sim.primary() or ""]
    assert not any(final.holds(w) for w in unfenced)


# --- cold start ---------------------------------------------------------------------------------


def test_a_full_stop_then_the_primary_started_last_promotes_it_with_everything_it_acknowledged() -> None:
    """Every node dies (a power cut) while the standbys lag behind the primary; they come back
    first and wait for the last leader instead of promoting within maximum_lag_on_failover of its
    last published position; it comes back 15 s later and is primary again, losing nothing."""
    sim = bootstrapped(3, seed=9)
    old = sim.primary()
    assert old is not None
    standbys = [n for n in sim.configs if n != old]
    sim.world.rate.update({n: 0 for n in standbys})  # replication stalls: the standbys fall behind
    sim.writer.enabled = True
    sim.run(4)
    sim.writer.enabled = False
    acked = list(sim.writer.acked)
    for name in sim.configs:
        sim.crash_agent(name, kill_postgres=True)
    sim.world.rate.clear()
    sim.run(2 * SIM_CONFIG.ttl)  # the leader key expires
    for name in standbys:
        sim.start_agent(name)
    sim.run(15)
    assert sim.key_holder() is None and sim.checker.promotions == [], explain(sim)
    reasons = {sim.agents[n].last_decision.reason for n in standbys if sim.agents[n].last_decision}
    assert reasons == {Reason.COLD_START_WAITING}, explain(sim)
    sim.start_agent(old)
    assert sim.run_until(lambda: sim.primary() == old, 10), explain(sim)
    assert_converges(sim)
    primary = sim.world.instances[old]
    assert [w for w in acked if not primary.holds(w)] == []
