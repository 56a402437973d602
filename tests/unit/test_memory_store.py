"""MemoryStore: the shared Store contract on a virtual clock, plus what only simulations need."""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest.register_assert_rewrite("tests.support.store_contract")

from pgwarden.dcs.memory import MemoryStore  # noqa: E402
from pgwarden.dcs.store import LeaseExpired, StoreError  # noqa: E402
from tests.support.store_contract import CONTRACT, StoreHarness, VirtualClock  # noqa: E402


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def store(clock: VirtualClock) -> MemoryStore:
    return MemoryStore(clock)


@pytest.fixture
def harness(store: MemoryStore, clock: VirtualClock) -> StoreHarness:
    return StoreHarness(
        store=store, prefix="/contract/", new_client=lambda: store, sleep=clock.advance, now=clock
    )


@pytest.mark.parametrize("check", CONTRACT, ids=lambda c: c.__name__)
def test_store_contract(harness: StoreHarness, check: Callable[[StoreHarness], None]) -> None:
    check(harness)


def test_lease_expires_only_once_the_clock_passes_its_ttl(store: MemoryStore, clock: VirtualClock) -> None:
    lease = store.grant_lease(3)
    store.put("/k", "v", lease=lease)
    clock.advance(3.0)
    assert store.get_prefix("/k").items != ()  # exactly at the deadline: still there
    clock.advance(0.01)
    assert store.get_prefix("/k").items == ()
    assert store.lease_ttl(lease) is None


def test_keepalive_restarts_the_ttl_from_now(store: MemoryStore, clock: VirtualClock) -> None:
    lease = store.grant_lease(2)
    clock.advance(1.5)
    assert store.keepalive(lease) == 2.0
    assert store.lease_ttl(lease) == pytest.approx(2.0)
    clock.advance(1.9)
    assert store.lease_ttl(lease) == pytest.approx(0.1)


def test_expiry_deletes_a_lease_s_keys_in_one_revision(store: MemoryStore, clock: VirtualClock) -> None:
    lease = store.grant_lease(2)
    store.put("/c/leader", "a", lease=lease)
    start = store.put("/c/members/a", "{}", lease=lease)
    clock.advance(5)
    events = store.watch("/c/", start + 1, timeout=0)
    assert sorted(e.key for e in events) == ["/c/leader", "/c/members/a"]
    assert {e.kind for e in events} == {"delete"}
    assert len({e.mod_revision for e in events}) == 1
    assert store.revision == start + 1


def test_failed_compare_and_set_does_not_bump_the_revision(store: MemoryStore) -> None:
    store.put("/k", "a")
    before = store.revision
    assert not store.create("/k", "b")
    assert not store.replace("/k", "b", expected_value="x")
    assert not store.replace_at("/k", "b", mod_revision=1)
    assert not store.delete("/k", expected_value="x")
    assert not store.delete("/absent")
    assert store.revision == before


def test_put_without_lease_detaches_the_key(store: MemoryStore, clock: VirtualClock) -> None:
    lease = store.grant_lease(2)
    store.put("/k", "a", lease=lease)
    store.put("/k", "b")
    clock.advance(10)
    assert [kv.value for kv in store.get_prefix("/k").items] == ["b"]


def test_watch_never_blocks(store: MemoryStore) -> None:
    revision = store.put("/k", "a")
    assert store.watch("/", revision + 1, timeout=3600) == []
    assert store.watch("/", 0, timeout=3600) == []  # "from now on": nothing yet


def test_unavailable_store_refuses_every_call(store: MemoryStore) -> None:
    lease = store.grant_lease(2)
    store.available = False
    calls: list[Callable[[], object]] = [
        lambda: store.get_prefix("/"),
        lambda: store.grant_lease(2),
        lambda: store.keepalive(lease),
        lambda: store.revoke(lease),
        lambda: store.put("/k", "v"),
        lambda: store.create("/k", "v"),
        lambda: store.replace("/k", "v", "w"),
        lambda: store.replace_at("/k", "v", 0),
        lambda: store.delete("/k"),
        lambda: store.watch("/", 1, 1),
    ]
    for call in calls:
        with pytest.raises(StoreError) as info:
            call()
        assert type(info.value) is StoreError  # not LeaseExpired: the lease may well be alive
    store.available = True
    assert store.keepalive(lease) == 2.0


def test_leases_keep_expiring_while_the_store_is_unreachable(store: MemoryStore, clock: VirtualClock) -> None:
    lease = store.grant_lease(2)
    store.put("/leader", "a", lease=lease)
    store.available = False
    clock.advance(3)
    with pytest.raises(StoreError):
        store.keepalive(lease)
    store.available = True
    with pytest.raises(LeaseExpired):
        store.keepalive(lease)
    assert store.get_prefix("/").items == ()
