"""GET /cluster, /history and /config answer from the agent's snapshot, never from etcd.

They need no credentials, and the agent's etcd client is the one that renews the leader lease:
a flood of these reads must never put a request in front of a renewal (issue 11).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from pgwarden.agent.requests import RequestBox
from pgwarden.agent.snapshot import SnapshotHolder
from pgwarden.api.contract import OperationError
from pgwarden.api.operations import AgentOperations
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.memory import MemoryStore
from pgwarden.dcs.store import Snapshot
from pgwarden.model import DynamicConfig
from tests.support import api_fakes as fake
from tests.support import builders as b
from tests.support.store_contract import VirtualClock


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__(VirtualClock())
        self.reads = 0

    def get_prefix(self, prefix: str) -> Snapshot:
        self.reads += 1
        return super().get_prefix(prefix)


def _operations(config_revision: int = 12) -> tuple[AgentOperations, CountingStore]:
    store = CountingStore()
    view = replace(
        b.view(
            config=DynamicConfig(ttl=9.0, pause=True),
            status=b.status(lsn="0/3000000"),
            history=[b.fork(2, "0/2000000", "node1")],
            sync=b.sync_set("node2"),
            switchover=b.intent("node3"),
        ),
        config_revision=config_revision,
    )
    holder = SnapshotHolder(replace(fake.primary(), view=view))
    return AgentOperations(ClusterStore(store, "demo"), holder, RequestBox()), store


def test_reads_answer_from_the_snapshot_without_touching_etcd() -> None:
    ops, store = _operations()
    cluster = ops.cluster()
    assert cluster["leader"] == "node1" and cluster["pause"] is True
    assert [m["name"] for m in cluster["members"]] == ["node1", "node2", "node3"]
    assert cluster["synchronous"] == ["node2"] and cluster["switchover"]["candidate"] == "node3"
    # Patroni's arrays: [timeline that ended (the promotion began 2), lsn, reason, timestamp,
    # new_leader], and pgwarden's event.
    assert [(e[0], e[1], e[4], e[5]) for e in ops.history()] == [(1, 0x2000000, "node1", "promotion")]
    answer = ops.get_config()
    assert answer.document["ttl"] == 9.0 and answer.revision == 12  # the ETag is the revision read
    assert store.reads == 0


def test_config_before_the_agent_has_read_one_is_503() -> None:
    ops, store = _operations(config_revision=0)
    with pytest.raises(OperationError) as caught:
        ops.get_config()
    assert caught.value.status == 503 and "not read a dynamic config" in caught.value.message
    assert store.reads == 0
