"""Regressions for the bugs this simulation found in the HA rules, each a short script, and the
one known gap it still shows (strict xfail: it passes the day the rule changes).

Each test names the behaviour; its docstring says what went wrong before the fix and where.
The invariants checked throughout are described in test_simulation.py.
"""

from __future__ import annotations

import dataclasses

from pgwarden.ha.reasons import Reason
from tests.sim.harness import SIM_CONFIG, Simulation
from tests.sim.scenario import FAILOVER_WITHIN, Fault, assert_converges, bootstrapped, explain, play


def orphan_primary_writes_past_the_fork(sim: Simulation) -> tuple[str, str]:
    """The primary's agent dies while one standby, cut from the store, keeps streaming from its
    still running PostgreSQL, to which a local client keeps writing after a failover."""
    old = sim.primary()
    assert old is not None
    behind = sorted(n for n in sim.configs if n != old)[1]
    sim.cut_from_store(behind)
    sim.crash_agent(old)
    assert sim.run_until(lambda: sim.key_holder() not in (None, old), FAILOVER_WITHIN), explain(sim)
    for _ in range(5):
        sim.world.write(old, 500)
        sim.run(1.0)
    assert (sim.world.instances[behind].position or 0) > sim.checker.promotions[0].fork
    return old, behind


def test_a_standby_that_received_wal_past_the_fork_is_rewound_not_restarted_for_ever() -> None:
    """Found by this simulation (fixed in rules/following.py): the standby was stopped "to
    rewind", but stopped in recovery its pg_control no longer shows the divergence, so the next
    cycle started it again: stop, start, stop, for ever."""
    sim = bootstrapped(3, seed=12)
    sim.writer.enabled = True
    sim.run(2)
    orphan_primary_writes_past_the_fork(sim)
    sim.heal()
    assert_converges(sim)


def test_a_rewind_long_ago_does_not_excuse_a_later_fork() -> None:
    """Found by this simulation (fixed in rules/timeline.py): divergence() took the job runner's
    record of a successful rewind for "just rewound", but that record stays until the next job:
    a member rewound once, later primary, then demoted with WAL past the next fork, started as
    a standby without rewinding and never streamed. (pg_rewind copies the source's pg_control,
    so the exception was never needed.)"""
    sim = bootstrapped(3, seed=126)
    sim.writer.enabled = True
    sim.run(3)
    play(
        sim,
        [
            Fault("crash_node", 2, 4.1, 1.8),
            Fault("crash_agent", 0, 10.3, 9.2),
            Fault("isolate", 1, 8.3, 3.6),
            Fault("pause", None, 6.5, 8.0),
            Fault("cut_store", None, 12.0, 0.7),
        ],
    )
    assert_converges(sim)


def test_a_primary_frozen_past_a_failover_does_not_take_the_key_back() -> None:
    """Found by this simulation (fixed in rules/candidacy.py): the frozen primary woke with no
    key in the store and took it back on timeline 1, rewinding away every write the promoted
    standby had acknowledged on timeline 2."""
    sim = bootstrapped(2, seed=3)
    sim.writer.enabled = True
    sim.run(2)
    old = sim.primary()
    other = next(n for n in sim.configs if n != old)
    assert old is not None
    sim.pause_agent(old, 20.0)
    promoted = lambda: sim.key_holder() == other and sim.world.instances[other].writable  # noqa: E731
    assert sim.run_until(promoted, FAILOVER_WITHIN), explain(sim)
    sim.run(6)  # the new primary acknowledges writes on timeline 2
    sim.crash_agent(other, kill_postgres=True)
    sim.run(25)  # the frozen one wakes with no key in the store: it must wait, not lead
    assert sim.primary() is None and sim.key_holder() is None, explain(sim)
    decision = sim.agents[old].last_decision
    assert decision is not None and decision.reason is Reason.NOT_RACING_BEHIND_TIMELINE
    sim.heal()
    assert_converges(sim)
    assert sim.primary() == other


def test_a_standby_that_missed_a_timeline_does_not_create_it_a_second_time() -> None:
    """Found by this simulation (fixed in rules/candidacy.py): a member on an older timeline
    than the store's newest raced, and PostgreSQL, without that timeline's history file, gave
    its promotion the same number: two different timelines N, then a silent splice."""
    sim = bootstrapped(3, seed=7)
    sim.writer.enabled = True
    sim.run(2)
    old = sim.primary()
    assert old is not None
    stale = sorted(n for n in sim.configs if n != old)[1]
    sim.isolate(stale)  # keeps timeline 1
    sim.run(2)
    sim.crash_agent(old, kill_postgres=True)
    assert sim.run_until(lambda: sim.primary() not in (None, old), FAILOVER_WITHIN), explain(sim)
    new = sim.primary() or ""
    sim.run(5)
    sim.crash_agent(new, kill_postgres=True)
    sim.isolate(stale, False)
    sim.run(20)
    assert sim.primary() is None, explain(sim)
    sim.heal()
    assert_converges(sim)
    final = sim.world.instances[sim.primary() or ""]
    assert all(final.holds(w) for w in sim.writer.acked if w.instance == new)


def test_three_primaries_crashing_in_turn_leave_a_single_history() -> None:
    """Shrunk by Hypothesis from the random-fault property (fixed in rules/candidacy.py): the
    second primary's node came back as a crashed timeline-2 primary whose last WAL never reached
    timeline 3, raced, won, and PostgreSQL named its promotion "timeline 3" again; writes
    acknowledged on the first timeline 3 were lost and its old primary streamed over the
    second one."""
    config = dataclasses.replace(SIM_CONFIG, remove_data_directory_on_diverged_timelines=True)
    sim = bootstrapped(3, seed=0, config=config)
    sim.writer.enabled = True
    sim.run(3)
    play(
        sim,
        [
            Fault("crash_node", None, 4.0, 0.0),
            Fault("crash_node", None, 4.0, 0.0),
            Fault("crash_node", None, 7.0, 0.0),
        ],
    )
    assert_converges(sim)


def test_a_member_behind_the_newest_timeline_is_no_rival_for_one_on_it() -> None:
    """Found by this simulation (fixed with the rule above): the member on the newest timeline
    deferred to a peer with "more WAL" that was behind a timeline and would never race itself,
    so neither led. Shrunk from a random script over two members."""
    sim = bootstrapped(2, seed=170)
    sim.writer.enabled = True
    sim.run(3)
    play(
        sim,
        [
            Fault("isolate", 0, 5.1, 2.3),
            Fault("kill_postgres", 0, 13.3, 7.2),
            Fault("crash_agent", 0, 14.7, 7.7),
            Fault("crash_node", 1, 3.5, 0.5),
            Fault("crash_node", 0, 11.8, 6.8),
            Fault("restart_agent", 1, 0.6, 8.2),
        ],
    )
    assert_converges(sim)


def test_a_history_entry_lost_after_a_promotion_is_recorded_late() -> None:
    """Found by this simulation (fixed in rules/leadership.py): one failed AppendHistory right
    after a promotion was never retried, and a standby that had received WAL past the fork from
    the orphaned old primary could never be told to rewind: "nothing to do", never streaming."""
    sim = bootstrapped(3, seed=11)
    sim.writer.enabled = True
    sim.run(2)
    for agent in sim.agents.values():
        agent.link.failing["replace_at"] = 1  # the history append of whoever promotes times out
    orphan_primary_writes_past_the_fork(sim)
    sim.heal()
    assert_converges(sim)
    assert [e.timeline for e in sim.view().history] == [2]


def test_a_transient_rewind_failure_is_retried() -> None:
    sim = bootstrapped(3, seed=9)
    old = sim.primary()
    assert old is not None
    sim.crash_agent(old)  # its PostgreSQL keeps running read-write
    assert sim.run_until(lambda: sim.key_holder() not in (None, old), FAILOVER_WITHIN), explain(sim)
    new = sim.key_holder() or ""
    sim.run(2)
    sim.isolate(new)  # the rewind source is unreachable while the old primary rejoins
    sim.start_agent(old)
    sim.run(4)
    sim.isolate(new, False)
    sim.heal()
    assert_converges(sim)
