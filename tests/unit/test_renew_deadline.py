"""The deadline a renewal records is never past etcd's own expiry, even after a live change of ttl."""

from __future__ import annotations

from pgwarden.agent.execute import Executor
from pgwarden.agent.lease import LeaderLease
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.memory import MemoryStore
from pgwarden.ha import actions as a
from pgwarden.model import DynamicConfig, Tags
from tests.sim.harness import CLUSTER, node_config
from tests.unit.builders import observation, view


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
