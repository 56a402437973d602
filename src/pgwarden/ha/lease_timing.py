"""When the leader lease is renewed between the loop's cycles, and when a slow renewal is hedged.

Pure arithmetic shared by the lease keeper (agent/lease_keeper.py), the etcd client's renewal
(dcs/etcd.py), `pgwarden doctor`'s election check and the tests; docs/timing.md has the argument.

- ``margin(ttl)``: the reserve kept before etcd could expire the lease (safety rule 1); our own
  write deadline is the last renewal's *send* time + ttl - margin.
- ``renewal_interval(ttl)``: the keeper renews once the last renewal (its own or the loop's) is
  this old: a twelfth of the usable lease, (ttl - margin) / 12, at least 0.25 s — 0.25 s at the
  default ttl 4, as the fixed interval before it, and less often at longer ttls (2.4 s at ttl
  30). Why a twelfth: an etcd leader election blocks every renewal; the lease rides it out when
  the election ends before the deadline of the last renewal sent before it, i.e. an election of
  up to ``election_tolerated(ttl, rtt)`` = ttl - margin - interval - rtt (2.7 s at ttl 4). An
  eighth (0.375 s at ttl 4, tried) left 2.6 s, and the fault suite's etcd leader killed 20
  times stopped the primary after a 2.46 s election on a loaded machine; the elections measured
  there take 1.1-2.8 s (docs/benchmarks.md). An armed watchdog caps the deadline at 2.5 s after a
  renewal at ttl 4 (agent/watchdog.py), leaving 2.2 s: still two etcd election timeouts of 1 s,
  `pgwarden doctor`'s threshold.
- Safety: a renewal that is due is sent at once and retried (to every member, `EtcdStore.
  renew_lease`) until the deadline; with etcd answering within ``retry_timeout`` the lease is
  renewed before ``renewal_interval + retry_timeout`` < ttl - margin, for every timing the config
  accepts (``loop_wait + 2 retry_timeout <= ttl``, ttl >= 2, retry_timeout >= 0.5): interval
  <= ttl/8 (0.25 <= ttl/8, (ttl - margin)/12 < ttl/8) and retry_timeout < ttl/2, so the sum
  < 5/8 ttl < 3/4 ttl <= ttl - margin
  (tests/unit/test_lease_timing.py proves it by hypothesis over the accepted ranges).
- ``hedge_after(remaining)``: a renewal goes to one etcd member first; without an answer after a
  tenth of the time left before the deadline (at least HEDGE_MIN, at most HEDGE_MAX), it goes to
  every member. It was a fixed 0.1 s, which sent 0.5-4.7 % of renewals twice when etcd was merely
  busy (bench/fleet.py). At ttl 4 a due renewal has 2.75 s left: the hedge comes after 0.28 s, and
  retries follow every RENEW_RETRY, so a hung member costs at most a tenth of the time left.
"""

from __future__ import annotations

# Seconds kept in reserve before etcd could expire the lease: covers an immediate stop of
# PostgreSQL (~0.1-0.3 s) plus scheduling delay of the loop. At most a quarter of the ttl.
SAFETY_MARGIN = 1.0
# The keeper renews this many times per usable lease (ttl - margin), never more often than every
# RENEWAL_MIN (the old fixed interval): see the module docstring.
RENEWALS_PER_LEASE = 12
RENEWAL_MIN = 0.25
# A hedge comes after this share of the time left before the deadline, within these bounds.
HEDGE_SHARE = 0.1
HEDGE_MIN = 0.1
HEDGE_MAX = 1.0


def margin(ttl: float) -> float:
    """The reserve before etcd could expire a lease of ``ttl``: min(1 s, ttl / 4)."""
    return min(SAFETY_MARGIN, ttl / 4)


def renewal_interval(ttl: float) -> float:
    """How old the last renewal may get before the keeper renews the lease: (ttl - margin) / 12,
    at least 0.25 s."""
    return max(RENEWAL_MIN, (ttl - margin(ttl)) / RENEWALS_PER_LEASE)


def election_tolerated(ttl: float, round_trip: float) -> float:
    """The longest etcd leader election the lease rides out (no stop): the deadline of the last
    renewal sent before it, at most ``renewal_interval`` old, less one round trip."""
    return ttl - margin(ttl) - renewal_interval(ttl) - round_trip


def hedge_after(remaining: float) -> float:
    """Seconds to wait for the preferred member's answer to a renewal before asking every member,
    with ``remaining`` seconds left before the deadline: a tenth of it, within 0.1 and 1 s."""
    return min(HEDGE_MAX, max(HEDGE_MIN, HEDGE_SHARE * remaining))
