"""The lease guard stops a writable PostgreSQL at the lease deadline, without the loop and without etcd."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pgwarden.agent import lease_guard
from pgwarden.agent.guard import ErrorCounts
from pgwarden.agent.lease import LeaderLease
from pgwarden.agent.lease_guard import LeaseGuard


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Postgres:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def stop(self, mode: str) -> None:
        self.calls.append(("stop", mode))

    def configure_standby(self, upstream: object, slot: object) -> None:
        self.calls.append(("configure_standby", (upstream, slot)))


def guard(writable: bool = True) -> tuple[LeaseGuard, LeaderLease, Postgres, Clock]:
    lease, pg, clock = LeaderLease(), Postgres(), Clock()
    lease.renewed(7, sent_at=100.0, ttl=4.0)  # deadline 103.0
    return LeaseGuard(lease, pg, lambda: writable, clock), lease, pg, clock  # type: ignore[arg-type]


def test_nothing_happens_before_the_deadline() -> None:
    g, lease, pg, clock = guard()
    clock.now = 102.99
    assert not g.check()
    assert pg.calls == [] and lease.lease_id == 7


def test_at_the_deadline_a_writable_postgres_is_stopped_immediately_and_left_a_standby() -> None:
    g, lease, pg, clock = guard()
    clock.now = 103.0
    assert g.check()
    assert pg.calls == [("stop", "immediate"), ("configure_standby", (None, None))]
    assert lease.lease_id is None and lease.deadline() is None
    assert not g.check(), "fires once: the lease is forgotten until the loop renews one"


def test_a_renewal_moves_the_deadline() -> None:
    g, lease, pg, clock = guard()
    clock.now = 102.5
    lease.renewed(7, sent_at=102.5, ttl=4.0)
    clock.now = 104.0
    assert not g.check() and pg.calls == []


def test_a_read_only_postgres_is_left_alone() -> None:
    g, _, pg, clock = guard(writable=False)
    clock.now = 200.0
    assert not g.check() and pg.calls == []


def test_every_look_feeds_the_fence_the_deadline_it_enforces() -> None:
    lease, pg, clock = LeaderLease(), Postgres(), Clock()
    fed: list[float | None] = []
    g = LeaseGuard(lease, pg, lambda: True, clock, feed=lambda: fed.append(lease.deadline()))  # type: ignore[arg-type]
    lease.renewed(7, sent_at=100.0, ttl=4.0)
    clock.now = 101.0
    g.check()
    clock.now = 103.0
    g.check()
    assert fed == [103.0, 103.0]


def test_when_it_cannot_tell_whether_postgres_writes_it_stops_it() -> None:
    lease, pg, clock = LeaderLease(), Postgres(), Clock()
    lease.renewed(7, sent_at=100.0, ttl=4.0)

    def unknown() -> bool:
        raise RuntimeError("snapshot unreadable")

    g = LeaseGuard(lease, pg, unknown, clock)  # type: ignore[arg-type]
    clock.now = 103.0
    assert g.check() and pg.calls[0] == ("stop", "immediate")


def test_its_thread_outlives_an_error_and_still_stops_postgres_at_the_deadline() -> None:
    """Above every other thread the guard must not die of an exception: it is safety rule 1."""
    errors = ErrorCounts()
    lease, pg = LeaderLease(), Postgres()
    failures = iter([RuntimeError("first look fails"), RuntimeError("second too")])

    def clock() -> float:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return time.monotonic()

    lease.renewed(7, sent_at=time.monotonic() - 10, ttl=4.0)  # deadline long passed
    g = LeaseGuard(lease, pg, lambda: True, clock, errors=errors)  # type: ignore[arg-type]
    g.start()
    try:
        deadline = time.monotonic() + 5
        while not pg.calls and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        g.stop()
    assert pg.calls[0] == ("stop", "immediate")
    assert errors.counts() == {"lease-guard": 2}


def test_a_fence_that_cannot_be_fed_does_not_keep_the_guard_from_its_check() -> None:
    lease, pg, clock = LeaderLease(), Postgres(), Clock()
    lease.renewed(7, sent_at=100.0, ttl=4.0)

    def broken_feed() -> None:
        raise OSError("no space left on device")

    g = LeaseGuard(lease, pg, lambda: True, clock, feed=broken_feed)  # type: ignore[arg-type]
    clock.now = 103.0
    assert g.check() and pg.calls[0] == ("stop", "immediate")


def test_a_guard_without_a_lease_wakes_at_once_when_one_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """Idle (no deadline), the guard looks rarely; a lease taken wakes it: with the idle interval
    made a minute, a deadline that has already passed is still enforced within seconds."""
    monkeypatch.setattr(lease_guard, "_LONGEST_SLEEP", 60.0)
    lease, pg = LeaderLease(), Postgres()
    g = LeaseGuard(lease, pg, lambda: True)  # type: ignore[arg-type]
    g.start()
    try:
        time.sleep(0.3)  # the guard has looked once and now waits (no deadline)
        assert pg.calls == []
        lease.renewed(7, sent_at=time.monotonic() - 10, ttl=4.0)  # a deadline long passed
        deadline = time.monotonic() + 10
        while not pg.calls and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        g.stop()
    assert pg.calls[:1] == [("stop", "immediate")]


def test_the_guard_sleeps_until_the_deadline_and_no_longer() -> None:
    """A leader's guard wakes at its deadline (or within 1 s), not 20 times a second; past a
    deadline it looks every 50 ms until PostgreSQL is stopped or the lease forgotten."""
    assert lease_guard.sleep_for(None, 10.0) == 1.0
    assert lease_guard.sleep_for(10.3, 10.0) == pytest.approx(0.3)
    assert lease_guard.sleep_for(30.0, 10.0) == 1.0
    assert lease_guard.sleep_for(10.0, 10.0) == 0.05  # at the deadline it no longer holds
    assert lease_guard.sleep_for(9.0, 10.0) == 0.05


def test_a_leader_s_guard_stops_postgres_at_the_deadline_it_slept_towards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a long sleep allowed, a deadline 0.3 s ahead is still enforced on time: the guard
    sleeps until the deadline itself, not a fixed interval."""
    monkeypatch.setattr(lease_guard, "_LONGEST_SLEEP", 60.0)
    lease, pg = LeaderLease(), Postgres()
    lease.renewed(7, sent_at=time.monotonic() - 4.0 + 1.0 + 0.3, ttl=4.0)  # deadline in 0.3 s
    due = lease.deadline()
    assert due is not None
    g = LeaseGuard(lease, pg, lambda: True)  # type: ignore[arg-type]
    g.start()
    try:
        limit = time.monotonic() + 10
        while not pg.calls and time.monotonic() < limit:
            time.sleep(0.01)
        stopped = time.monotonic()
    finally:
        g.stop()
    assert pg.calls[:1] == [("stop", "immediate")]
    assert due <= stopped < due + 2.0  # on time, with room for a loaded machine
