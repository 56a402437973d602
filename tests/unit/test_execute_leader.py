"""The executor's leader-key handlers: the deadline a renewal records, and the watchdog beside it."""

from __future__ import annotations

from pathlib import Path

from pgwarden.agent.execute import Executor
from pgwarden.agent.lease import LeaderLease
from pgwarden.agent.watchdog import Watchdog
from pgwarden.agent.watchdog_device import WatchdogDevice
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.memory import MemoryStore
from pgwarden.ha import actions as a
from pgwarden.model import DynamicConfig, Tags
from pgwarden.model.node import WatchdogSettings
from tests.sim.harness import CLUSTER, node_config
from tests.support.builders import observation, view
from tests.support.watchdog import FakeDriver


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_renewal_counts_the_ttl_the_lease_was_granted_with() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    config = node_config(0, DynamicConfig(), Tags())
    cluster = ClusterStore(store, CLUSTER, config.etcd.prefix)
    lease = LeaderLease()
    executor = Executor(config, store, cluster, None, None, lease, lambda: 0, clock=clock)  # type: ignore[arg-type]
    obs = observation(name="node1", view=view(config=DynamicConfig(ttl=4.0)))
    assert executor.run((a.AcquireLeader(),), obs).failed is None
    assert lease.deadline() == 103.0  # granted for 4 s: deadline 4 - 1 s after sending
    # ttl raised to 30 s live: the lease in etcd still lives 4 s after each keepalive.
    clock.now = 101.0
    raised = observation(name="node1", view=view(config=DynamicConfig(ttl=30.0, loop_wait=1.0)))
    assert executor.run((a.RenewLeader(),), raised).failed is None
    assert lease.deadline() == 104.0, "counted from the lease's 4 s, not the new 30 s"


def _leader(tmp_path: Path, mode: str) -> tuple[Executor, LeaderLease, Path]:
    clock = Clock()
    store = MemoryStore(clock)
    config = node_config(0, DynamicConfig(), Tags())
    lease = LeaderLease()
    device = tmp_path / "watchdog"
    device.touch()
    settings = WatchdogSettings(mode, str(device), 2.0)
    dog = Watchdog(settings, lease, WatchdogDevice(str(device), FakeDriver()), clock)
    cluster = ClusterStore(store, CLUSTER, config.etcd.prefix)
    executor = Executor(
        config,
        store,
        cluster,
        None,
        None,
        lease,
        lambda: 0,
        clock=clock,
        watchdog=dog,  # type: ignore[arg-type]
    )
    return executor, lease, device


TIMED = view(config=DynamicConfig(ttl=10.0, loop_wait=1.0))


def test_the_new_leader_arms_the_watchdog_before_it_promotes(tmp_path: Path) -> None:
    executor, lease, device = _leader(tmp_path, "required")
    outcome = executor.run((a.AcquireLeader(), a.RenewLeader()), observation(name="node1", view=TIMED))
    assert outcome.failed is None
    assert device.read_bytes() == b"11", "armed on acquiring, kept alive on renewing"
    assert lease.deadline() == lease.watchdog_limit == 100.0 + 8 - 0.5


def test_a_required_watchdog_that_cannot_be_armed_stops_the_decision_before_the_promotion(
    tmp_path: Path,
) -> None:
    executor, _, device = _leader(tmp_path, "required")
    device.unlink()
    outcome = executor.run((a.AcquireLeader(), a.Promote()), observation(name="node1", view=TIMED))
    assert outcome.failed is not None and "watchdog is required" in outcome.failed
    assert outcome.executed == (), "Promote never ran"


def test_a_paused_leader_renews_with_the_watchdog_disarmed(tmp_path: Path) -> None:
    executor, lease, device = _leader(tmp_path, "automatic")
    obs = observation(name="node1", view=TIMED)
    executor.run((a.AcquireLeader(),), obs)
    assert executor.run((a.RenewLeader(watchdog=False),), obs).failed is None
    assert device.read_bytes() == b"1V" and lease.watchdog_limit is None
