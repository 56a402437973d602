"""A node's snapshot in each role and an in-memory Operations, for the test_api_* files (no tests here).

The fake stands in for the agent so the HTTP layer is tested alone; the real operations are
tested against a real cluster elsewhere.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pgwarden.agent.lease import monotonic
from pgwarden.agent.member_record import member_record
from pgwarden.agent.snapshot import Snapshot, SnapshotHolder
from pgwarden.api.contract import ConfigAnswer, IfMatch, Inspection, OperationError, OperationResult
from pgwarden.api.server import ApiServer
from pgwarden.ha.decision import Decision
from pgwarden.ha.reasons import Reason
from pgwarden.model import (
    Address,
    ApiSettings,
    ClusterView,
    Credentials,
    EtcdSettings,
    LeaderStatus,
    LocalState,
    Lsn,
    NodeConfig,
    PostgresSettings,
    ReinitializeOptions,
    RestartConditions,
    Tags,
)
from tests.support import builders as b

LOOPBACK = Address("127.0.0.1", 0)


def api_settings(**changes: Any) -> ApiSettings:
    return replace(ApiSettings(listen=LOOPBACK, connect_address=LOOPBACK), **changes)


def node_config(name: str = "node1", tags: Tags | None = None) -> NodeConfig:
    return NodeConfig(
        cluster="demo",
        name=name,
        etcd=EtcdSettings(hosts=(Address("127.0.0.1", 2379),)),
        api=api_settings(),
        postgresql=PostgresSettings(
            listen=Address("127.0.0.1", 5432),
            connect_address=Address("127.0.0.1", 5432),
            data_dir="/nonexistent",
            bin_dir="/nonexistent",
            superuser=Credentials("postgres", "secret"),
            replication=Credentials("replicator", "secret"),
        ),
        tags=tags or Tags(),
    )


def snapshot(
    name: str,
    local: LocalState,
    view: ClusterView | None = None,
    *,
    tags: Tags | None = None,
    reason: Reason = Reason.LEADER_HEALTHY,
    loop_age: float = 0.5,
    lease_left: float | None = 3600.0,
) -> Snapshot:
    """``lease_left``: seconds the leader lease is still good for (None: this node holds none)."""
    config = node_config(name, tags)
    return Snapshot(
        config=config,
        view=view or b.view(status=b.status(lsn="0/3000000")),
        local=local,
        member=member_record(config, local),
        decision=Decision(actions=(), reason=reason, detail={"upstream": "node1"}),
        store_ok=True,
        loop_at=monotonic() - loop_age,
        loop_seconds=0.012,
        lease_deadline=None if lease_left is None else monotonic() + lease_left,
    )


# --- a node in each situation the health endpoints tell apart --------------------------------------


def primary() -> Snapshot:
    status = LeaderStatus(
        "node1",
        1,
        Lsn.parse("0/3000000"),
        slots={"node2": Lsn.parse("0/2000000"), "node3": Lsn.parse("0/3000000")},
    )
    return snapshot("node1", b.primary_local("0/3000000"), b.view(status=status))


def streaming_standby(**tag_changes: Any) -> Snapshot:
    local = replace(b.standby_local("0/3000000", "0/3000000"), streaming_from="127.0.0.1:5433")
    return snapshot("node2", local, tags=b.tags(**tag_changes), reason=Reason.STANDBY_HEALTHY)


def lagging_standby() -> Snapshot:
    """32 MiB behind: the leader published 0/5000000, this standby replayed 0/3000000."""
    local = replace(b.standby_local("0/3000000", "0/3000000"), streaming_from="127.0.0.1:5433")
    return snapshot("node2", local, b.view(status=b.status(lsn="0/5000000")), reason=Reason.STANDBY_HEALTHY)


def sync_standby() -> Snapshot:
    local = replace(b.standby_local("0/3000000", "0/3000000"), streaming_from="127.0.0.1:5433")
    view = b.view(status=b.status(lsn="0/3000000"), config=b.sync_config(), sync=b.sync_set("node2"))
    return snapshot("node2", local, view, reason=Reason.STANDBY_HEALTHY)


def standby_leader() -> Snapshot:
    """Leader of a standby cluster: holds the key, runs in recovery."""
    return snapshot("node1", b.standby_local("0/3000000", "0/3000000", upstream=None))


def stopped() -> Snapshot:
    return snapshot("node2", b.stopped_local(), reason=Reason.STANDBY_HEALTHY)


def stale_loop() -> Snapshot:
    """The agent's loop last finished long ago (2 x ttl is 8 s with the default ttl)."""
    return replace(streaming_standby(), loop_at=monotonic() - 60.0)


# --- the agent side ------------------------------------------------------------------------------


@dataclass
class FakeOperations:
    """Records calls; ``failure`` (an exception) is raised by the next calls until reset."""

    failure: BaseException | None = None
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=lambda: {"ttl": 30, "loop_wait": 10})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _call(self, name: str, *args: Any) -> None:
        with self.lock:
            self.calls.append((name, args))
        if self.failure is not None:
            raise self.failure

    def cluster(self) -> dict[str, Any]:
        self._call("cluster")
        return {"cluster": "demo", "leader": "node1", "pause": False, "members": [{"name": "node1"}]}

    def history(self) -> list[dict[str, Any]]:
        self._call("history")
        return [{"timeline": 1, "lsn": "0/3000000", "reason": "failover", "new_leader": "node2"}]

    def get_config(self) -> ConfigAnswer:
        self._call("get_config")
        return ConfigAnswer(dict(self.config), revision=7)

    def patch_config(self, patch: Mapping[str, Any], if_match: IfMatch | None = None) -> ConfigAnswer:
        # The precondition is recorded only when sent, so most tests compare the body alone.
        self._call("patch_config", dict(patch), *([if_match] if if_match is not None else []))
        merged = {**self.config, **patch}
        return ConfigAnswer({k: v for k, v in merged.items() if v is not None})

    def put_config(self, document: Mapping[str, Any], if_match: IfMatch | None = None) -> ConfigAnswer:
        self._call("put_config", dict(document), *([if_match] if if_match is not None else []))
        return ConfigAnswer(dict(document), parameter_check="accepted by PostgreSQL on node1: work_mem")

    def switchover(
        self, leader: str | None, candidate: str | None, scheduled_at: datetime | None, timeout: float
    ) -> OperationResult:
        self._call("switchover", leader, candidate, scheduled_at, timeout)
        if scheduled_at is not None:
            return OperationResult(202, f"switchover scheduled for {scheduled_at.isoformat()}")
        return OperationResult(200, f"switched over to {candidate}", {"new_leader": candidate})

    def cancel_switchover(self) -> OperationResult:
        self._call("cancel_switchover")
        raise OperationError(404, "no switchover is pending")

    def failover(self, candidate: str, timeout: float) -> OperationResult:
        self._call("failover", candidate, timeout)
        return OperationResult(200, f"failed over to {candidate}")

    # Options are recorded only when sent, so most tests compare the timeout alone.
    def restart(self, timeout: float, conditions: RestartConditions | None = None) -> OperationResult:
        self._call("restart", timeout, *([conditions] if conditions else []))
        return OperationResult(200, "restarted")

    def schedule_restart(
        self, when: datetime, conditions: RestartConditions | None = None
    ) -> OperationResult:
        self._call("schedule_restart", when, *([conditions] if conditions else []))
        return OperationResult(202, f"restart scheduled for {when.isoformat()}")

    def cancel_scheduled_restart(self) -> OperationResult:
        self._call("cancel_scheduled_restart")
        raise OperationError(404, "no restart is scheduled on this node")

    def reload(self) -> OperationResult:
        self._call("reload")
        return OperationResult(200, "reloaded")

    def reinitialize(self, timeout: float, options: ReinitializeOptions | None = None) -> OperationResult:
        self._call("reinitialize", timeout, *([options] if options else []))
        return OperationResult(202, "reinitialize started")

    def failsafe_topology(self) -> dict[str, str]:
        self._call("failsafe_topology")
        return {"node1": "http://127.0.0.1:8009", "node2": "http://127.0.0.1:8010"}

    def failsafe(self, leader: str, seconds: float | None) -> OperationResult:
        self._call("failsafe", leader, seconds)
        if leader == "node3":
            raise OperationError(412, "no failsafe promise to node3: this member sees node1 as the leader")
        return OperationResult(200, "Accepted", {"promised_to": leader})


@contextmanager
def running_api(
    snap: Snapshot | None = None,
    operations: FakeOperations | None = None,
    inspection: Inspection | None = None,
    **settings: Any,
) -> Iterator[tuple[str, SnapshotHolder, FakeOperations]]:
    """An ApiServer on a free loopback port; yields its base URL, snapshot holder and fake."""
    holder = SnapshotHolder(snap or primary())
    ops = operations or FakeOperations()
    server = ApiServer(api_settings(**settings), holder, ops, inspection=inspection)
    server.start()
    scheme = "https" if settings.get("certfile") else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.port}", holder, ops
    finally:
        server.stop()
