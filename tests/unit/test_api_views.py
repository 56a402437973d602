"""The reads that let people see the cluster, over loopback sockets: the web view, /events, /diagnostics."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import httpx

from pgwarden.agent.decision_log import DecisionLog
from pgwarden.agent.member_record import member_record
from pgwarden.agent.requests import RequestBox
from pgwarden.agent.round_trips import RoundTrips
from pgwarden.agent.snapshot import SnapshotHolder
from pgwarden.agent.wal_clock import WalClock
from pgwarden.api.inspection import AgentInspection, Sources
from pgwarden.api.operations import AgentOperations
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.codec import decode_member, encode_member
from pgwarden.dcs.memory import MemoryStore
from pgwarden.ha.decision import Decision
from pgwarden.ha.reasons import Reason
from pgwarden.model import Lsn
from tests.support import api_fakes as fake
from tests.support import builders as b


def inspection(holder: SnapshotHolder, peers: dict[str, Any] | None = None) -> AgentInspection:
    decisions = DecisionLog(clock=lambda: 1_700_000_000.0)
    decisions.record(Decision((), Reason.LEADER_HEALTHY))
    clock = WalClock()
    clock.note(1_699_999_990.0, Lsn.parse("0/2000000"))
    clock.note(1_699_999_995.0, Lsn.parse("0/3000000"))
    return AgentInspection(
        Sources(
            config=holder.get().config,
            snapshots=holder,
            decisions=decisions,
            wal_clock=clock,
            etcd_reads=RoundTrips(),
            etcd_renewals=RoundTrips(),
            postgres=lambda: {"answered": False, "error": "no server here", "wal_disk": {}},
            peers=lambda members, me, path: peers or {},
            clock=lambda: 1_700_000_000.0,
        )
    )


def primary_with_reasons() -> Any:
    snap = fake.primary()
    members = tuple(
        replace(m, reason=f"{m.name} says why", reason_code="STANDBY_HEALTHY", progress="")
        for m in snap.view.members
    )
    return replace(snap, view=replace(snap.view, members=members))


def test_the_web_view_is_served_from_the_package_with_a_strict_policy() -> None:
    with fake.running_api() as (url, _, _):
        page = httpx.get(f"{url}/ui", timeout=5)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        # Every asset the page loads is this agent's: no scheme, no host, nothing inline.
        for asset in re.findall(r'(?:src|href)="([^"]+)"', page.text):
            assert asset.startswith("/ui/") or asset == "data:,", asset
        assert "<script>" not in page.text and "style=" not in page.text
        for path, kind in (("/ui/app.js", "text/javascript"), ("/ui/app.css", "text/css")):
            answer = httpx.get(f"{url}{path}", timeout=5)
            assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind)
        assert httpx.get(f"{url}/ui/", timeout=5).text == page.text
        assert httpx.head(f"{url}/ui", timeout=5).status_code == 200


def agent_operations(holder: SnapshotHolder) -> Any:
    """The agent's own operations: /cluster from the snapshot (the store is never read for it)."""
    cluster = ClusterStore(MemoryStore(clock=lambda: 0.0), "demo")
    return AgentOperations(cluster, holder, RequestBox())


def test_the_state_it_polls_has_every_member_with_its_last_decision() -> None:
    holder = SnapshotHolder(primary_with_reasons())
    with fake.running_api(holder.get(), operations=agent_operations(holder)) as (url, _, _):
        state = httpx.get(f"{url}/ui/state", timeout=5).json()
    assert state["served_by"] == "node1" and state["leader"] == "node1"
    reasons = {m["name"]: m["reason"] for m in state["members"]}
    assert reasons == {m.name: f"{m.name} says why" for m in holder.get().view.members}
    assert {m["reason_code"] for m in state["members"]} == {"STANDBY_HEALTHY"}
    assert {"history", "synchronous_mode", "failsafe_active", "dcs_ok", "observed_at"} <= set(state)


def test_the_state_is_rendered_once_per_snapshot(monkeypatch: Any) -> None:
    with fake.running_api(primary_with_reasons()) as (url, holder, ops):
        for _ in range(5):
            httpx.get(f"{url}/ui/state", timeout=5)
        assert [c for c, _ in ops.calls].count("cluster") == 1
        holder.set(replace(holder.get()))  # a new snapshot (the next cycle)
        httpx.get(f"{url}/ui/state", timeout=5)
        assert [c for c, _ in ops.calls].count("cluster") == 2


def test_events_and_diagnostics_answer_from_the_agents_parts() -> None:
    snap = fake.primary()
    behind = tuple(
        replace(m, lsn=Lsn.parse("0/2000000")) if m.name == "node2" else m for m in snap.view.members
    )
    holder = SnapshotHolder(replace(snap, view=replace(snap.view, members=behind)))
    peers = {
        "node2": {"member": "node2", "events": [{"reason_code": "STANDBY_HEALTHY"}]},
        "node3": "no answer",
    }
    with fake.running_api(holder.get(), inspection=inspection(holder, peers)) as (url, _, _):
        events = httpx.get(f"{url}/events", timeout=5).json()
        assert events["member"] == "node1"
        [run] = events["events"]
        assert (run["reason_code"], run["decisions"], run["time"]) == (
            "LEADER_HEALTHY",
            1,
            "2023-11-14T22:13:20+00:00",
        )
        cluster = httpx.get(f"{url}/cluster/events", timeout=5).json()
        assert set(cluster["members"]) == {"node1", "node2"}
        assert cluster["unreachable"] == {"node3": "no answer"}
        diagnostics = httpx.get(f"{url}/diagnostics", timeout=5).json()
    assert diagnostics["format"] == 1 and diagnostics["time"] == 1_700_000_000.0
    assert diagnostics["api"]["loopback"] is True and diagnostics["api"]["auth"] is False
    assert diagnostics["postgres"] == {"answered": False, "error": "no server here", "wal_disk": {}}
    assert diagnostics["fence"]["state"] == "absent"
    # The leader tells how old the oldest write each member lacks is, from its WAL clock.
    assert diagnostics["behind"]["node2"] == {"lsn": "0/2000000", "seconds": 5.0, "at_least": False}


def test_without_an_agent_behind_it_the_api_says_so() -> None:
    with fake.running_api() as (url, _, _):
        assert httpx.get(f"{url}/events", timeout=5).json() == {"member": None, "events": []}
        answer = httpx.get(f"{url}/diagnostics", timeout=5)
    assert answer.status_code == 503 and "no diagnostics" in answer.json()["error"]


def test_the_member_record_carries_the_last_decision_through_etcd() -> None:
    local = b.standby_local("0/3000000", "0/3000000")
    decision = Decision((), Reason.STANDBY_HEALTHY, {"upstream": "node1"})
    record = member_record(fake.node_config("node2"), local, decision=decision)
    assert (record.reason_code, record.reason) == ("STANDBY_HEALTHY", decision.message)
    assert decode_member(encode_member(record)) == record
    odd = json.loads(encode_member(record)) | {"reason": 42, "reason_code": None, "progress": "x" * 1000}
    decoded = decode_member(json.dumps(odd))
    assert decoded is not None and (decoded.reason, decoded.reason_code) == ("", "")
    assert len(decoded.progress) == 100
    # What the agent writes reads back equal, however long its sentence: an idle member rewrites nothing.
    long = Decision((), Reason.REQUEST_REFUSED, {"request": "restart", "why": "x" * 2000})
    record = member_record(fake.node_config("node2"), local, decision=long)
    assert decode_member(encode_member(record)) == record
