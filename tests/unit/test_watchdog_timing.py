"""The watchdog's timeout for a ttl and a safety margin (ha/watchdog_timing.py): Patroni's rule for a
configured margin, and the default margin that scales with ttl so that a default cluster arms."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgwarden.agent.lease import margin as lease_margin
from pgwarden.agent.watchdog import RESERVE
from pgwarden.config.bounds import BOUNDS
from pgwarden.ha.watchdog_timing import DEFAULT_MARGIN_MAX, safety_margin, watchdog_timeout
from pgwarden.model.cluster import DynamicConfig
from pgwarden.model.node import WatchdogSettings

TTL_LOW, TTL_HIGH = next((b.low, b.high) for b in BOUNDS if b.key == "ttl")


@pytest.mark.parametrize(
    ("ttl", "configured", "timeout"),
    [
        (4, None, 3),  # the default ttl: a 1 s margin, 3 s (a 5 s margin left nothing)
        (3, None, 2),
        (2, None, 1),
        (5, None, 3),  # 5 / 4 = 1.25 s: rounded down, the device fires earlier, never later
        (8, None, 6),
        (10, None, 7),  # 2.5 s
        (20, None, 15),  # 5 s from here on: Patroni's default margin
        (30, None, 25),  # Patroni's default ttl and margin, Patroni's timeout
        (600, None, 595),
        (10, 2, 8),  # a configured margin is taken as it is (production.md's example)
        (4, 5, -1),  # ...even one that leaves no timeout: the device is then not armed
        (10, -1, 5),  # -1: ttl // 2, as in Patroni
        (5, -1, 2),
        (4, 0, 4),
    ],
)
def test_timeout_rows(ttl: float, configured: float | None, timeout: int) -> None:
    assert watchdog_timeout(ttl, configured) == timeout


def test_the_default_cluster_arms_a_watchdog() -> None:
    defaults = DynamicConfig()
    wanted = watchdog_timeout(defaults.ttl, WatchdogSettings().safety_margin)
    assert WatchdogSettings().safety_margin is None, "unset by default: it scales with ttl"
    assert wanted - RESERVE > defaults.loop_wait, "room for the loop between two keepalives"
    assert wanted < defaults.ttl


@given(st.floats(min_value=TTL_LOW, max_value=TTL_HIGH))
def test_the_default_fires_before_etcd_could_expire_the_lease(ttl: float) -> None:
    timeout = watchdog_timeout(ttl, None)
    assert 1 <= timeout <= ttl - 1, "at least a second before etcd's expiry"
    assert timeout >= ttl - DEFAULT_MARGIN_MAX - 1, "never earlier than Patroni's margin (and rounding)"


@given(st.floats(min_value=3, max_value=TTL_HIGH), st.floats(min_value=0.1, max_value=300))
def test_the_default_leaves_room_for_the_loop_when_loop_wait_is_at_most_half_the_ttl(
    ttl: float, loop_wait: float
) -> None:
    if loop_wait > ttl / 2 - 1:
        return  # loop_wait + 2 * retry_timeout <= ttl: the usual settings keep loop_wait this short
    assert watchdog_timeout(ttl, None) - RESERVE > loop_wait


@given(st.floats(min_value=TTL_LOW, max_value=TTL_HIGH))
def test_the_default_margin_is_never_below_the_leases_own(ttl: float) -> None:
    # The agent's deadline is ttl - lease_margin after a renewal; a watchdog margin at least that
    # large means the device's cap (timeout - RESERVE) is what the agent and the fence enforce.
    assert safety_margin(ttl, None) >= lease_margin(ttl)
