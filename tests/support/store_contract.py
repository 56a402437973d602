"""The behaviour every `Store` must share, as checks run against both etcd and the in-memory store.

A test module provides a `StoreHarness` (the store, a way to let time pass, a way to open a
second client) and runs every check in `CONTRACT`:

    @pytest.mark.parametrize("check", CONTRACT, ids=lambda c: c.__name__)
    def test_store_contract(harness, check):
        check(harness)

Time passes for real against etcd and virtually against the memory store, so the same
"lease expires within ttl + 2 s" check is both fast in unit tests and honest against etcd.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from pgwarden.dcs.store import LeaseExpired, Store, StoreError

LEASE_TTL = 2.0  # etcd's minimum with a 1 s election timeout


class VirtualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class StoreHarness:
    store: Store
    prefix: str  # unique to the test, ends with "/"
    new_client: Callable[[], Store]  # another client of the same store (closed by the harness owner)
    sleep: Callable[[float], None]  # let time pass: really, or on the virtual clock
    now: Callable[[], float]  # the clock `sleep` moves

    def key(self, name: str) -> str:
        return self.prefix + name

    def wait_until(self, condition: Callable[[], bool], timeout: float, step: float = 0.1) -> float:
        """Let time pass until ``condition()``; return how long it took; fail after ``timeout``."""
        start = self.now()
        while not condition():
            waited = self.now() - start
            if waited > timeout:
                pytest.fail(f"condition still false after {waited:.1f}s")
            self.sleep(step)
        return self.now() - start


def _value(h: StoreHarness, name: str) -> str | None:
    kv = h.store.get_prefix(h.key(name)).get(h.key(name))
    return None if kv is None else kv.value


def create_only_if_absent(h: StoreHarness) -> None:
    assert h.store.create(h.key("k"), "first")
    assert not h.store.create(h.key("k"), "second")
    assert _value(h, "k") == "first"
    assert h.store.delete(h.key("k"))
    assert h.store.create(h.key("k"), "third")
    assert _value(h, "k") == "third"


def replace_only_if_value_matches(h: StoreHarness) -> None:
    assert not h.store.replace(h.key("k"), "x", expected_value="")  # absent: nothing to compare
    h.store.put(h.key("k"), "a")
    assert not h.store.replace(h.key("k"), "b", expected_value="other")
    assert _value(h, "k") == "a"
    lease = h.store.grant_lease(LEASE_TTL)
    assert h.store.replace(h.key("k"), "b", expected_value="a", lease=lease)
    kv = h.store.get_prefix(h.key("k")).get(h.key("k"))
    assert kv is not None and kv.value == "b" and kv.lease == lease  # re-attached to the lease
    h.store.revoke(lease)
    assert _value(h, "k") is None


def replace_at_compares_mod_revision(h: StoreHarness) -> None:
    assert not h.store.replace_at(h.key("k"), "x", mod_revision=12345)  # absent
    assert h.store.replace_at(h.key("k"), "v1", mod_revision=0)  # 0 = only if absent
    assert not h.store.replace_at(h.key("k"), "v1bis", mod_revision=0)
    first = h.store.get_prefix(h.key("k")).get(h.key("k"))
    assert first is not None
    assert h.store.replace_at(h.key("k"), "v2", mod_revision=first.mod_revision)
    assert not h.store.replace_at(h.key("k"), "v3", mod_revision=first.mod_revision)  # stale
    second = h.store.get_prefix(h.key("k")).get(h.key("k"))
    assert second is not None and second.value == "v2"
    assert second.mod_revision > first.mod_revision
    assert second.create_revision == first.create_revision
    # With a lease: a holder rewriting junk over the leader key puts it back on its lease.
    lease = h.store.grant_lease(LEASE_TTL)
    assert h.store.replace_at(h.key("k"), "v3", mod_revision=second.mod_revision, lease=lease)
    third = h.store.get_prefix(h.key("k")).get(h.key("k"))
    assert third is not None and third.value == "v3" and third.lease == lease
    h.store.revoke(lease)
    assert _value(h, "k") is None


def delete_with_expected_value(h: StoreHarness) -> None:
    assert not h.store.delete(h.key("k"))
    assert not h.store.delete(h.key("k"), expected_value="a")
    h.store.put(h.key("k"), "a")
    assert not h.store.delete(h.key("k"), expected_value="b")
    assert _value(h, "k") == "a"
    assert h.store.delete(h.key("k"), expected_value="a")
    assert _value(h, "k") is None
    h.store.put(h.key("k"), "a")
    assert h.store.delete(h.key("k"))


def put_and_get_prefix(h: StoreHarness) -> None:
    r1 = h.store.put(h.key("a/1"), "one")
    r2 = h.store.put(h.key("a/2"), "two ünïcode")
    h.store.put(h.key("ab"), "sibling")  # shares the text prefix "a" but not "a/"
    assert r2 > r1
    snapshot = h.store.get_prefix(h.key("a/"))
    assert snapshot.revision >= r2
    assert [(kv.key, kv.value) for kv in snapshot.items] == [
        (h.key("a/1"), "one"),
        (h.key("a/2"), "two ünïcode"),
    ]
    one = snapshot.items[0]
    assert one.mod_revision == one.create_revision == r1 and one.lease == 0
    assert h.store.get_prefix(h.key("none/")).items == ()


def put_with_unknown_lease_fails(h: StoreHarness) -> None:
    lease = h.store.grant_lease(LEASE_TTL)
    h.store.revoke(lease)
    with pytest.raises(StoreError):
        h.store.put(h.key("k"), "v", lease=lease)
    assert _value(h, "k") is None


def lease_expiry_frees_keys_and_watch_sees_delete(h: StoreHarness) -> None:
    lease = h.store.grant_lease(LEASE_TTL)
    h.store.put(h.key("leader"), "me", lease=lease)
    unrelated = h.store.put(h.key("config"), "stays")
    waited = h.wait_until(lambda: _value(h, "leader") is None, timeout=LEASE_TTL + 2)
    assert waited >= LEASE_TTL - 0.5  # not before its time (etcd may round and check late)
    assert _value(h, "config") == "stays"
    events = h.store.watch(h.prefix, unrelated + 1, timeout=2.0)
    assert [(e.kind, e.key) for e in events] == [("delete", h.key("leader"))]
    with pytest.raises(LeaseExpired):
        h.store.keepalive(lease)


def keepalive_keeps_the_lease(h: StoreHarness) -> None:
    lease = h.store.grant_lease(LEASE_TTL)
    h.store.put(h.key("leader"), "me", lease=lease)
    for _ in range(6):  # 3 s in all: well past the TTL
        h.sleep(0.5)
        remaining = h.store.keepalive(lease)
        assert 0 < remaining <= LEASE_TTL
    assert _value(h, "leader") == "me"
    h.store.revoke(lease)


def renew_lease_keeps_the_lease_and_says_when_it_sent_the_renewal(h: StoreHarness) -> None:
    lease = h.store.grant_lease(LEASE_TTL)
    h.store.put(h.key("leader"), "me", lease=lease)
    for _ in range(6):  # 3 s in all: well past the TTL
        h.sleep(0.5)
        before = h.now()
        sent = h.store.renew_lease(lease, until=before + LEASE_TTL)
        assert before <= sent <= h.now()  # the leader's deadline counts from this moment
    assert _value(h, "leader") == "me"
    h.store.revoke(lease)
    with pytest.raises(LeaseExpired):
        h.store.renew_lease(lease, until=h.now() + LEASE_TTL)


def revoke_frees_keys_and_ignores_unknown_leases(h: StoreHarness) -> None:
    lease = h.store.grant_lease(LEASE_TTL)
    h.store.put(h.key("a"), "1", lease=lease)
    h.store.put(h.key("b"), "2", lease=lease)
    h.store.revoke(lease)
    assert h.store.get_prefix(h.prefix).items == ()
    h.store.revoke(lease)  # again: no error
    with pytest.raises(LeaseExpired):
        h.store.keepalive(lease)


def lease_ttl_rounds_up_to_whole_seconds(h: StoreHarness) -> None:
    lease = h.store.grant_lease(1.2)
    ttl = h.store.keepalive(lease)
    assert ttl == math.floor(ttl) and ttl >= 2
    h.store.revoke(lease)


def watch_returns_recorded_events(h: StoreHarness) -> None:
    r1 = h.store.put(h.key("m/a"), "1")
    h.store.put(h.key("mx"), "shares the text prefix m, not m/")
    h.store.delete(h.key("m/a"))
    events = h.store.watch(h.key("m/"), r1, timeout=2.0)
    assert [(e.kind, e.key, e.value) for e in events] == [
        ("put", h.key("m/a"), "1"),
        ("delete", h.key("m/a"), ""),
    ]
    assert events[0].mod_revision == r1


def watch_times_out_empty(h: StoreHarness) -> None:
    revision = h.store.put(h.key("other"), "x")
    start = h.now()
    assert h.store.watch(h.key("quiet/"), revision + 1, timeout=0.5) == []
    assert h.now() - start < 3.0


def two_clients_race_for_the_leader_key(h: StoreHarness) -> None:
    clients = [h.new_client() for _ in range(4)]
    leases = [c.grant_lease(LEASE_TTL * 5) for c in clients]
    results: dict[str, bool] = {}
    barrier = threading.Barrier(len(clients))

    def race(i: int) -> None:
        barrier.wait(timeout=5)
        results[f"node{i}"] = clients[i].create(h.key("leader"), f"node{i}", lease=leases[i])

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    winners = [name for name, won in results.items() if won]
    assert len(results) == len(clients) and len(winners) == 1
    assert _value(h, "leader") == winners[0]
    for client, lease in zip(clients, leases, strict=True):
        client.revoke(lease)


CONTRACT: list[Callable[[StoreHarness], None]] = [
    create_only_if_absent,
    replace_only_if_value_matches,
    replace_at_compares_mod_revision,
    delete_with_expected_value,
    put_and_get_prefix,
    put_with_unknown_lease_fails,
    lease_expiry_frees_keys_and_watch_sees_delete,
    keepalive_keeps_the_lease,
    renew_lease_keeps_the_lease_and_says_when_it_sent_the_renewal,
    revoke_frees_keys_and_ignores_unknown_leases,
    lease_ttl_rounds_up_to_whole_seconds,
    watch_returns_recorded_events,
    watch_times_out_empty,
    two_clients_race_for_the_leader_key,
]
