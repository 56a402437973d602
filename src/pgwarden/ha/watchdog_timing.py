"""The watchdog device's timeout: ttl - safety_margin whole seconds (Patroni's rule; -1: ttl // 2),
with a default margin that scales with ttl so that every ttl the config accepts can arm a device.

Patroni's fixed default margin of 5 s fits its 30 s ttl; with pgwarden's 4 s ttl it left no
timeout at all, so `watchdog.mode: automatic` never armed. Unset, the margin is ttl / 4 between
1 and 5 s: the device fires a quarter of the ttl (at least 1 s, at most Patroni's 5 s) before
etcd could expire the leader lease; Patroni's own 25 s at its 30 s ttl. While the device is armed
the lease deadline is capped at its keepalive + timeout - 0.5 s (agent/watchdog.py), so the agent
and the fence still stop PostgreSQL before it fires (ttl 4: 2.5 s after a renewal instead of 3).
Pure: the agent (agent/watchdog.py) and the tests share it.
"""

from __future__ import annotations

# The default margin's bounds: at least a second before etcd could expire the lease (a keepalive
# follows its renewal's answer by a few milliseconds; etcd counts from receiving the renewal), at
# most Patroni's default.
DEFAULT_MARGIN_MIN = 1.0
DEFAULT_MARGIN_MAX = 5.0
HALF_TTL = -1.0  # Patroni's spelling of "the timeout is ttl // 2"


def safety_margin(ttl: float, configured: float | None) -> float:
    """The margin in force: the configured one, or (unset) ttl / 4 between 1 and 5 seconds."""
    if configured is not None:
        return configured
    return min(DEFAULT_MARGIN_MAX, max(DEFAULT_MARGIN_MIN, ttl / 4))


def watchdog_timeout(ttl: float, configured: float | None) -> int:
    """The device's timeout in whole seconds, rounded down: a watchdog that fires earlier, never
    later. Zero or less when the margin leaves no timeout (the device is then not armed)."""
    margin = safety_margin(ttl, configured)
    return int(ttl // 2) if margin == HALF_TTL else int(ttl - margin)
