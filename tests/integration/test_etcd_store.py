"""EtcdStore against a real 3-member etcd: the shared Store contract, then faults injected for real."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

pytest.register_assert_rewrite("tests.support.store_contract")

from pgwarden.dcs.etcd import EtcdStore  # noqa: E402
from pgwarden.dcs.store import LeaseExpired, StoreError, WatchEvent  # noqa: E402
from pgwarden.ha.lease_timing import hedge_after  # noqa: E402
from pgwarden.model.node import Address  # noqa: E402
from tests.support.etcd import EtcdCluster, free_port  # noqa: E402
from tests.support.store_contract import CONTRACT, StoreHarness  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

TIMEOUT = 1.0


@pytest.fixture
def harness(etcd_cluster: EtcdCluster) -> Iterator[StoreHarness]:
    clients: list[EtcdStore] = []

    def new_client() -> EtcdStore:
        clients.append(EtcdStore(etcd_cluster.endpoints, timeout=TIMEOUT * 2))
        return clients[-1]

    try:
        yield StoreHarness(
            store=new_client(),
            prefix=f"/contract/{uuid.uuid4().hex[:8]}/",
            new_client=new_client,
            sleep=time.sleep,
            now=time.monotonic,
        )
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize("check", CONTRACT, ids=lambda c: c.__name__)
def test_store_contract(harness: StoreHarness, check: Callable[[StoreHarness], None]) -> None:
    check(harness)


def test_watch_waits_for_an_event_while_other_threads_use_the_store(harness: StoreHarness) -> None:
    store = harness.store
    start = store.put(harness.key("warmup"), "x") + 1
    seen: list[list[WatchEvent]] = []
    watcher = threading.Thread(target=lambda: seen.append(store.watch(harness.prefix, start, 5.0)))
    began = time.monotonic()
    watcher.start()
    time.sleep(0.3)
    assert store.get_prefix(harness.prefix).revision == start - 1  # the same store, meanwhile
    store.put(harness.key("leader"), "node1")
    watcher.join(timeout=10)
    assert time.monotonic() - began < 3.0
    assert [(e.kind, e.key, e.value) for e in seen[0]] == [("put", harness.key("leader"), "node1")]


# -- reaching etcd: rotation, timeouts, source address ------------------------------------------


class SilentServer:
    """Accepts TCP connections and never answers: a hung member, as the client sees it."""

    def __init__(self, host: str) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((host, 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.address = Address(host, self._sock.getsockname()[1])
        self.peers: list[str] = []
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(conn)
            self.peers.append(peer[0])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self._conns:
            conn.close()
        self._sock.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer("127.0.1.60")
    try:
        yield server
    finally:
        server.close()


def test_unreachable_endpoints_fail_in_bounded_time_with_a_clear_message(
    silent_server: SilentServer,
) -> None:
    refused = Address("127.0.1.62", free_port("127.0.1.62"))
    store = EtcdStore([silent_server.address, refused], timeout=0.5, bind_address="127.0.1.61")
    try:
        began = time.monotonic()
        with pytest.raises(StoreError) as info:
            store.get_prefix("/")
        assert time.monotonic() - began < 0.5 * 2 + 0.5
        assert str(info.value) == (
            f"etcd unreachable: {silent_server.address} timed out after 0.5s; {refused} refused"
        )
        assert silent_server.peers == ["127.0.1.61"]  # the client bound its source address
    finally:
        store.close()


def test_bound_source_address_reaches_etcd(etcd_cluster: EtcdCluster) -> None:
    with EtcdStore(etcd_cluster.endpoints, timeout=TIMEOUT, bind_address="127.0.1.50") as store:
        revision = store.put(f"/bound/{uuid.uuid4().hex[:8]}", "v")
        assert store.get_prefix("/bound/").revision >= revision


# -- faults: members killed for real ------------------------------------------------------------


def _restore(cluster: EtcdCluster) -> None:
    for i in range(len(cluster.hosts)):
        cluster.start(i)
    cluster.wait_healthy(20)


def _eventually(call: Callable[[], object], timeout: float) -> float:
    """Retry ``call`` until it stops raising StoreError; return how long that took."""
    began = time.monotonic()
    while True:
        try:
            call()
            return time.monotonic() - began
        except StoreError:
            if time.monotonic() - began > timeout:
                raise
            time.sleep(0.2)


def test_client_moves_on_when_its_member_dies(etcd_cluster: EtcdCluster) -> None:
    leader = etcd_cluster.leader_index()
    follower = next(i for i in range(3) if i != leader)
    order = [follower] + [i for i in range(3) if i != follower]
    store = EtcdStore([etcd_cluster.endpoints[i] for i in order], timeout=TIMEOUT)
    key = f"/rotation/{uuid.uuid4().hex[:8]}"
    try:
        store.put(key, "before")  # served by the follower, whose connection stays pooled
        etcd_cluster.kill(follower)
        began = time.monotonic()
        store.put(key, "after")
        assert [kv.value for kv in store.get_prefix(key).items] == ["after"]
        assert time.monotonic() - began < TIMEOUT  # a dead member refuses at once
    finally:
        store.close()
        _restore(etcd_cluster)


def test_client_carries_on_through_a_leader_election(etcd_cluster: EtcdCluster) -> None:
    leader = etcd_cluster.leader_index()
    assert leader is not None
    store = EtcdStore(etcd_cluster.endpoints, timeout=TIMEOUT)
    key = f"/election/{uuid.uuid4().hex[:8]}"
    try:
        etcd_cluster.kill(leader)
        took = _eventually(lambda: store.put(key, "v"), timeout=10)
        assert took < 5  # an election takes about one election timeout (1 s)
        assert [kv.value for kv in store.get_prefix(key).items] == ["v"]
    finally:
        store.close()
        _restore(etcd_cluster)


def test_lease_renewal_skips_a_hung_member_after_a_tenth_of_the_time_left(etcd_cluster: EtcdCluster) -> None:
    """A frozen member (a host stalled, or a member still forwarding to a dead leader) accepts the
    connection and never answers: the renewal asks the others after `hedge_after` the time left
    (0.2 s of 2 s), not after the request timeout, and counts the deadline from the request that
    succeeded."""
    leader = etcd_cluster.leader_index()
    hung = next(i for i in range(3) if i != leader)  # a follower: freezing it costs no election
    others = [e for i, e in enumerate(etcd_cluster.endpoints) if i != hung]
    store = EtcdStore([etcd_cluster.endpoints[hung], *others], timeout=TIMEOUT)  # asked first
    pid = etcd_cluster.pid(hung)
    assert pid is not None
    try:
        lease = store.grant_lease(10)
        os.kill(pid, signal.SIGSTOP)
        try:
            began = time.monotonic()
            sent = store.renew_lease(lease, until=began + 2)
            took = time.monotonic() - began
        finally:
            os.kill(pid, signal.SIGCONT)
        assert took < TIMEOUT / 2, f"renewal took {took:.2f}s with one member hung"
        assert began + hedge_after(2) / 2 <= sent <= began + took  # sent to another after the hedge
        store.revoke(lease)
    finally:
        store.close()
        _restore(etcd_cluster)


def test_lease_renewal_rides_out_a_leader_election(etcd_cluster: EtcdCluster) -> None:
    """The etcd leader killed: the renewal keeps asking every member until the new leader
    serves, well within a lease; the lease (and the key on it) survive the election."""
    leader = etcd_cluster.leader_index()
    assert leader is not None
    store = EtcdStore(etcd_cluster.endpoints, timeout=TIMEOUT)
    key = f"/renewal/{uuid.uuid4().hex[:8]}"
    try:
        lease = store.grant_lease(10)
        store.put(key, "me", lease=lease)
        etcd_cluster.kill(leader)
        began = time.monotonic()
        sent = store.renew_lease(lease, until=began + 8)
        took = time.monotonic() - began
        assert took < 6, f"no renewal {took:.1f}s after the etcd leader died"
        assert began <= sent <= began + took
        assert [kv.value for kv in store.get_prefix(key).items] == ["me"]
        store.revoke(lease)
    finally:
        store.close()
        _restore(etcd_cluster)


def test_quorum_loss_raises_in_bounded_time_then_recovers(etcd_cluster: EtcdCluster) -> None:
    store = EtcdStore(etcd_cluster.endpoints, timeout=TIMEOUT)
    prefix = f"/quorum/{uuid.uuid4().hex[:8]}/"
    try:
        lease = store.grant_lease(30)
        store.put(prefix + "leader", "node1", lease=lease)
        etcd_cluster.kill(1)
        etcd_cluster.kill(2)
        calls: list[Callable[[], object]] = [
            lambda: store.get_prefix(prefix),
            lambda: store.put(prefix + "x", "y"),
            lambda: store.create(prefix + "leader", "node2"),
            lambda: store.keepalive(lease),
            lambda: store.renew_lease(lease, until=time.monotonic() + 2 * TIMEOUT),
            lambda: store.watch(prefix, 1, 2.0),
        ]
        for call in calls:
            began = time.monotonic()
            with pytest.raises(StoreError) as info:
                call()
            assert time.monotonic() - began <= 3 * TIMEOUT + 2
            assert not isinstance(info.value, LeaseExpired)  # unknown, not gone
            assert str(info.value).startswith("etcd unreachable: ")
        etcd_cluster.start(1)
        etcd_cluster.start(2)
        _eventually(lambda: store.get_prefix(prefix), timeout=20)
        # The leader key is unchanged; the put of "x" may or may not have landed: a write that
        # timed out during the outage can still commit once quorum returns (an ambiguous write).
        assert [kv.value for kv in store.get_prefix(prefix + "leader").items] == ["node1"]
        assert store.keepalive(lease) > 0  # the lease outlived the outage
        store.revoke(lease)
    finally:
        store.close()
        _restore(etcd_cluster)
