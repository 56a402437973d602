"""The leader lease's renewal interval and hedge (ha/lease_timing.py): table rows for the settings
people use, and the safety property over every timing the config accepts."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pgwarden.agent.watchdog import RESERVE
from pgwarden.config.bounds import BOUNDS
from pgwarden.ha.lease_timing import election_tolerated, hedge_after, margin, renewal_interval
from pgwarden.ha.watchdog_timing import watchdog_timeout
from pgwarden.model.cluster import DynamicConfig

LOW = {b.key: b.low for b in BOUNDS}
HIGH = {b.key: b.high for b in BOUNDS}


@pytest.mark.parametrize(
    ("ttl", "interval", "tolerated"),
    [
        (2, 0.25, 1.25),  # the fastest accepted timing: the old fixed 0.25 s (1.5 / 12 is less)
        (3, 0.25, 2.0),
        (4, 0.25, 2.75),  # the default: the 0.25 s the etcd-leader-kill fault test was proven at
        (8, 0.5833333, 6.4166667),
        (10, 0.75, 8.25),
        (30, 29 / 12, 29 * 11 / 12),  # Patroni's ttl: more often than its loop_wait of 10 s
        (600, 599 / 12, 599 * 11 / 12),
    ],
)
def test_interval_rows(ttl: float, interval: float, tolerated: float) -> None:
    assert renewal_interval(ttl) == pytest.approx(interval)
    assert election_tolerated(ttl, 0.0) == pytest.approx(tolerated)


@pytest.mark.parametrize(
    ("remaining", "hedge"),
    [
        (2.75, 0.275),  # a due renewal at the default ttl: hedged after 0.28 s (was 0.1 s)
        (1.5, 0.15),  # the loop's renewal, which may take retry_timeout
        (0.5, 0.1),  # close to the deadline: never sooner than 0.1 s
        (0.05, 0.1),
        (20.0, 1.0),  # a long ttl: at most a second, the member is hung
    ],
)
def test_hedge_rows(remaining: float, hedge: float) -> None:
    assert hedge_after(remaining) == pytest.approx(hedge)


def test_the_default_cluster_rides_out_two_etcd_election_timeouts() -> None:
    # etcd's default --election-timeout is 1 s; an election takes 1-2 of them (docs/timing.md).
    assert election_tolerated(DynamicConfig().ttl, 0.05) >= 2.0


@given(
    st.floats(min_value=LOW["ttl"], max_value=HIGH["ttl"]),
    st.floats(min_value=LOW["loop_wait"], max_value=HIGH["loop_wait"]),
    st.floats(min_value=LOW["retry_timeout"], max_value=HIGH["retry_timeout"]),
)
def test_a_due_renewal_with_etcd_answering_within_retry_timeout_lands_before_the_deadline(
    ttl: float, loop_wait: float, retry_timeout: float
) -> None:
    """Safety: the lease is renewed when it is renewal_interval old; etcd answering within
    retry_timeout renews it before our deadline (ttl - margin after the last renewal was sent),
    let alone etcd's expiry, for every ttl, loop_wait and retry_timeout the config accepts."""
    assume(loop_wait + 2 * retry_timeout <= ttl)  # the config's own rule (config/dynamic.py)
    interval = renewal_interval(ttl)
    assert 0 < interval < ttl - margin(ttl)
    assert interval + retry_timeout < ttl - margin(ttl)
    # and a hung member is given up for the others well within the time left then
    left = ttl - margin(ttl) - interval
    assert hedge_after(left) <= left / 2


@given(st.floats(min_value=LOW["ttl"], max_value=HIGH["ttl"]))
def test_the_keeper_never_renews_more_often_than_the_old_fixed_quarter_second(ttl: float) -> None:
    assert renewal_interval(ttl) >= 0.25


def test_an_armed_watchdog_at_the_default_ttl_still_rides_out_two_election_timeouts() -> None:
    # The device's timeout at ttl 4 is 3 s; the agent's deadline is capped 0.5 s before it.
    ttl = DynamicConfig().ttl
    capped = watchdog_timeout(ttl, None) - RESERVE
    assert capped - renewal_interval(ttl) - 0.05 >= 2.0
