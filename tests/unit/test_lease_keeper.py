"""The lease keeper renews the leader lease between the loop's cycles, within what the loop decided."""

from __future__ import annotations

import time

import pytest

from pgwarden.agent.lease import LeaderLease
from pgwarden.agent.lease_keeper import IDLE_WAIT, RETRY_WAIT, LeaseKeeper
from pgwarden.dcs.memory import MemoryStore
from pgwarden.dcs.store import StoreError
from tests.support.store_contract import VirtualClock


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(100.0)


@pytest.fixture
def store(clock: VirtualClock) -> MemoryStore:
    return MemoryStore(clock)


def held(store: MemoryStore, clock: VirtualClock) -> tuple[LeaderLease, int]:
    """A lease the loop granted at 100.0 with the key on it: deadline 103.0, kept until 104.0."""
    lease = LeaderLease()
    lease_id = store.grant_lease(4)
    store.put("/leader", "node1", lease=lease_id)
    lease.renewed(lease_id, clock(), 4.0)
    return lease, lease_id


def test_each_renewal_moves_the_deadline_to_its_send_time(store: MemoryStore, clock: VirtualClock) -> None:
    lease, _ = held(store, clock)
    keeper = LeaseKeeper(store, lease, clock)
    clock.advance(0.25)
    assert keeper.renew_once()
    assert lease.deadline() == 103.25
    clock.advance(0.25)
    assert keeper.renew_once()
    assert lease.deadline() == 103.5


def test_renewals_stop_one_ttl_after_the_loops_last_renewal(store: MemoryStore, clock: VirtualClock) -> None:
    """A loop that stopped deciding to keep the key (stuck, demoting) lets the lease run out."""
    lease, _ = held(store, clock)
    keeper = LeaseKeeper(store, lease, clock)
    for _ in range(11):  # until 102.75
        clock.advance(0.25)
        assert keeper.renew_once()
    clock.now = 104.0  # keep_until: the loop renewed last at 100.0
    assert not keeper.renew_once()
    assert lease.deadline() == 102.75 + 3.0
    lease.renewed(lease.lease_id or 0, 104.0, 4.0)  # the loop again: keeping resumes
    clock.advance(0.25)
    assert keeper.renew_once() and lease.deadline() == 107.25


def test_nothing_is_renewed_without_a_lease_or_past_the_deadline(
    store: MemoryStore, clock: VirtualClock
) -> None:
    lease = LeaderLease()
    keeper = LeaseKeeper(store, lease, clock)
    assert not keeper.renew_once()
    lease, _ = held(store, clock)
    keeper = LeaseKeeper(store, lease, clock)
    clock.now = 103.0  # the deadline: the lease guard's moment, not the keeper's
    assert not keeper.renew_once()
    assert lease.deadline() == 103.0


def test_a_failed_renewal_leaves_the_deadline_and_the_next_one_recovers(
    store: MemoryStore, clock: VirtualClock
) -> None:
    lease, _ = held(store, clock)
    keeper = LeaseKeeper(store, lease, clock)
    store.available = False
    clock.advance(1.0)
    assert not keeper.renew_once()
    assert lease.deadline() == 103.0
    store.available = True
    clock.advance(1.0)
    assert keeper.renew_once() and lease.deadline() == 105.0


def test_a_renewal_that_lands_after_the_loop_let_the_lease_go_changes_nothing(
    store: MemoryStore, clock: VirtualClock
) -> None:
    """The loop released the key (forget) while the keeper's request was in flight."""

    class Racing(MemoryStore):
        def renew_lease(self, lease_id: int, until: float) -> float:
            sent = super().renew_lease(lease_id, until)
            lease.forget()
            return sent

    racing = Racing(clock)
    lease, _ = held(racing, clock)
    clock.advance(0.25)
    assert not LeaseKeeper(racing, lease, clock).renew_once()
    assert lease.lease_id is None and lease.deadline() is None


def test_the_deadline_never_moves_back() -> None:
    lease = LeaderLease()
    lease.renewed(7, 100.0, 4.0)
    assert lease.extended(7, 101.0)
    assert not lease.extended(7, 100.5)  # a slower request answering late
    lease.renewed(7, 100.8, 4.0)  # the loop's renewal, sent before the keeper's
    assert lease.deadline() == 104.0
    assert not lease.extended(8, 102.0)  # another lease: not ours any more
    assert lease.deadline() == 104.0


def test_a_store_error_is_reported_not_raised(clock: VirtualClock) -> None:
    class Down(MemoryStore):
        def renew_lease(self, lease_id: int, until: float) -> float:
            raise StoreError("etcd unreachable: everyone said no leader")

    down = Down(clock)
    lease, _ = held(down, clock)
    assert not LeaseKeeper(down, lease, clock).renew_once()


def test_a_renewal_is_due_when_the_last_one_is_a_twelfth_of_the_usable_lease_old(
    store: MemoryStore, clock: VirtualClock
) -> None:
    """ttl 4: renewals every (4 - 1) / 12 = 0.25 s, counted from the last one, the loop's or ours."""
    lease, _ = held(store, clock)  # the loop renewed at 100.0
    keeper = LeaseKeeper(store, lease, clock)
    assert keeper.wait_before_next() == pytest.approx(0.25)
    clock.now = 100.125
    assert keeper.wait_before_next() == pytest.approx(0.125)
    clock.now = 100.25
    assert keeper.wait_before_next() == 0.0
    assert keeper.renew_once()
    assert keeper.wait_before_next() == pytest.approx(0.25)
    clock.now = 100.375
    lease.renewed(lease.lease_id or 0, 100.375, 4.0)  # the loop's renewal pushes the next one back
    assert keeper.wait_before_next() == pytest.approx(0.25)


def test_no_lease_or_past_keep_until_means_no_renewal_due(store: MemoryStore, clock: VirtualClock) -> None:
    lease = LeaderLease()
    keeper = LeaseKeeper(store, lease, clock)
    assert keeper.wait_before_next() == IDLE_WAIT  # a standby: woken by a lease change
    lease, _ = held(store, clock)
    keeper = LeaseKeeper(store, lease, clock)
    clock.now = 104.0  # one ttl past the loop's last renewal: the loop must decide again
    assert keeper.wait_before_next() == IDLE_WAIT


def test_after_a_failed_renewal_the_next_try_waits_a_little(store: MemoryStore, clock: VirtualClock) -> None:
    lease, _ = held(store, clock)
    keeper = LeaseKeeper(store, lease, clock)
    clock.now = 101.0
    assert keeper.wait_before_next() == 0.0
    assert keeper.wait_before_next(retry_at=101.0 + RETRY_WAIT) == RETRY_WAIT
    clock.now = 101.0 + RETRY_WAIT
    assert keeper.wait_before_next(retry_at=101.0 + RETRY_WAIT) == 0.0, "a little, once: not for good"


def test_the_thread_renews_on_its_interval_and_wakes_for_a_new_lease() -> None:
    """Real time: a standby's keeper sleeps (no renewals); once the loop grants a lease, the keeper
    renews it about every ``interval`` (bounds generous: the machine is shared)."""
    store = MemoryStore(time.monotonic)
    lease = LeaderLease()
    keeper = LeaseKeeper(store, lease, interval=lambda ttl: 0.1)
    keeper.start()
    try:
        time.sleep(0.3)
        assert keeper.renewals == 0
        lease_id = store.grant_lease(10)
        lease.renewed(lease_id, time.monotonic(), 10.0)
        time.sleep(1.0)
        assert 3 <= keeper.renewals <= 12, keeper.renewals
    finally:
        keeper.stop()
    assert not keeper._thread.is_alive()


@pytest.mark.parametrize("first_attempt", ["loses_the_race_with_the_loop", "meets_an_etcd_error"])
def test_the_thread_keeps_renewing_after_an_attempt_that_did_not_renew(first_attempt: str) -> None:
    """Real time. An attempt that did not renew once delayed every later one for good: the
    keeper's renewal racing the loop's (sent later, answered first: ``extended`` refuses the
    older one) stopped the keeper for the rest of the agent's life, leaving the lease renewed once
    a cycle and an etcd election tolerance a loop_wait shorter (docs/timing.md)."""

    class FirstAttempt(MemoryStore):
        calls = 0

        def renew_lease(self, lease_id: int, until: float) -> float:
            self.calls += 1
            if self.calls > 1:
                return super().renew_lease(lease_id, until)
            if first_attempt == "meets_an_etcd_error":
                raise StoreError("etcd unreachable: a leader election")
            sent = super().renew_lease(lease_id, until)
            lease.renewed(lease_id, time.monotonic(), 10.0)  # the loop's, sent after ours
            return sent

    store = FirstAttempt(time.monotonic)
    lease = LeaderLease()
    keeper = LeaseKeeper(store, lease, interval=lambda ttl: 0.1)
    lease_id = store.grant_lease(10)
    lease.renewed(lease_id, time.monotonic(), 10.0)
    keeper.start()
    try:
        time.sleep(1.5)
        assert store.calls > 1 and keeper.renewals >= 3, (store.calls, keeper.renewals)
    finally:
        keeper.stop()
