"""Restarts that apply pending settings: scheduled (REST API, kept by the agent) and rolling (CLI)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pgwarden.agent.requests import RequestBox
from pgwarden.agent.snapshot import SnapshotHolder
from pgwarden.api import bodies
from pgwarden.api.operations import AgentOperations
from pgwarden.api.routes import Request, RestApi
from pgwarden.client import NoLeader, StepKind, plan_rolling_restart
from pgwarden.client.rolling_restart import lowers_hot_standby_minimum
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.memory import MemoryStore
from pgwarden.model import Member
from tests.support import api_fakes as fake
from tests.support.builders import WALL, member, primary_member, view
from tests.support.store_contract import VirtualClock
from tests.unit.test_cli_client import FakeCluster, write_stack

NOW_ISO = datetime.fromtimestamp(WALL, UTC).isoformat()
LATER_ISO = datetime.fromtimestamp(WALL + 3600, UTC).isoformat()


# --- the REST API and the agent's keeping of a schedule -------------------------------------------


def _api() -> tuple[RestApi, RequestBox]:
    box = RequestBox()
    cluster = ClusterStore(MemoryStore(VirtualClock()), "demo")
    ops = AgentOperations(cluster, SnapshotHolder(fake.primary()), box, clock=lambda: WALL)
    return RestApi(fake.api_settings(), SnapshotHolder(fake.primary()), ops), box


def _answer(api: RestApi, method: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    raw = json.dumps(body).encode() if body is not None else b""
    response = api.answer(Request(method, "/restart", raw, content_type="application/json"))
    return response.status, json.loads(response.body)


def test_a_scheduled_restart_is_kept_by_the_agent_until_cancelled() -> None:
    api, box = _api()
    status, doc = _answer(api, "POST", {"schedule": LATER_ISO})
    assert status == 202 and doc["schedule"] == LATER_ISO
    assert box.scheduled_restart() == WALL + 3600
    status, doc = _answer(api, "POST", {"schedule": LATER_ISO})
    assert status == 409 and "already scheduled" in doc["error"]
    status, doc = _answer(api, "DELETE")
    assert status == 200 and "cancelled" in doc["message"]
    assert box.scheduled_restart() is None
    status, doc = _answer(api, "DELETE")
    assert status == 404


@pytest.mark.parametrize(
    ("body", "words"),
    [
        pytest.param({"schedule": "tomorrow"}, "'schedule' is not an ISO-8601 time", id="not_a_time"),
        pytest.param({"schedule": "2030-01-01T02:00:00"}, "must include a time zone", id="no_zone"),
        pytest.param({"schedule": "2020-01-01T02:00:00+00:00"}, "in the past", id="past"),
        pytest.param({"restart_pendng": True}, "unknown field 'restart_pendng'", id="unknown_field"),
    ],
)
def test_a_faulty_schedule_is_400_naming_the_field(body: dict[str, Any], words: str) -> None:
    api, box = _api()
    status, doc = _answer(api, "POST", body)
    assert status == 400 and words in doc["error"]
    assert box.scheduled_restart() is None


def test_the_restart_body_reads_timeout_and_schedule() -> None:
    parsed = bodies.restart_request(json.dumps({"timeout": 20, "schedule": NOW_ISO}).encode())
    assert parsed.timeout == 20 and parsed.schedule == datetime.fromtimestamp(WALL, UTC)
    assert bodies.restart_request(b"").schedule is None


def test_clearing_a_schedule_leaves_a_newer_one_alone() -> None:
    box = RequestBox()
    assert box.schedule_restart(100.0)
    assert box.cancel_scheduled_restart(at=99.0) is None  # the decision was about another one
    assert box.scheduled_restart() == 100.0
    assert box.cancel_scheduled_restart(at=100.0) == 100.0
    assert box.scheduled_restart() is None


# --- the rolling restart's plan ------------------------------------------------------------------


def pending(m: Member, **reasons: tuple[str, str]) -> Member:
    return replace(m, pending_restart=True, pending_restart_reason=reasons)


RAISED = {"max_connections": ("100", "120")}
LOWERED = {"max_connections": ("120", "100")}


def test_standbys_restart_first_and_the_primary_last_in_place() -> None:
    v = view(
        members=[pending(primary_member(), **RAISED), pending(member("node3")), pending(member("node2"))]
    )
    steps = plan_rolling_restart(v, switchover=False)
    assert [(s.kind, s.member, s.primary) for s in steps] == [
        (StepKind.RESTART, "node2", False),
        (StepKind.RESTART, "node3", False),
        (StepKind.RESTART, "node1", True),
    ]


def test_with_switchover_the_primary_hands_over_last() -> None:
    v = view(members=[pending(primary_member()), member("node2"), pending(member("node3"))])
    steps = plan_rolling_restart(v, switchover=True)
    assert [(s.kind, s.member) for s in steps] == [
        (StepKind.RESTART, "node3"),
        (StepKind.SWITCHOVER, "node1"),
    ]
    assert str(steps[-1]) == "switch over from node1 (primary)"


def test_lowering_a_hot_standby_minimum_restarts_the_primary_first() -> None:
    v = view(members=[pending(primary_member(), **LOWERED), pending(member("node2"), **LOWERED)])
    steps = plan_rolling_restart(v, switchover=True)
    assert [(s.kind, s.member) for s in steps] == [(StepKind.RESTART, "node1"), (StepKind.RESTART, "node2")]
    assert lowers_hot_standby_minimum(LOWERED) and not lowers_hot_standby_minimum(RAISED)
    assert not lowers_hot_standby_minimum({"shared_buffers": ("256MB", "128MB")})


def test_nothing_pending_plans_nothing_and_no_leader_is_refused() -> None:
    assert plan_rolling_restart(view(), switchover=False) == []
    with pytest.raises(NoLeader):
        plan_rolling_restart(view(leader=None), switchover=False)


# --- the command ---------------------------------------------------------------------------------


def stack(tmp_path: Path) -> Path:
    return write_stack(tmp_path, cluster="demo", etcd=["127.0.0.1:1"])


def _serving(role: str) -> tuple[int, dict[str, Any]]:
    return 200, {"state": "running", "role": role, "replication_state": "streaming", "pending_restart": False}


def test_restart_pending_restarts_standbys_then_the_primary_through_their_apis(tmp_path: Path) -> None:
    members = (pending(primary_member()), pending(member("node2")), member("node3"))
    cluster = FakeCluster(
        members=members, stack_dir=write_stack(tmp_path, cluster="demo", etcd=["127.0.0.1:1"])
    )
    cluster.answers[("node1", "GET", "/patroni")] = _serving("primary")
    cluster.answers[("node2", "GET", "/patroni")] = _serving("replica")
    result = cluster.run("restart", "--pending", "--force")
    assert result.exit_code == 0, result.output
    posts = [(name, path) for name, method, path, _, _ in cluster.requests if method == "POST"]
    assert posts == [("node2", "/restart"), ("node1", "/restart")]
    assert "rolling restart: restart node2; then restart node1 (primary)" in result.output


def test_restart_pending_with_switchover_hands_over_then_restarts_the_old_primary_if_needed(
    tmp_path: Path,
) -> None:
    members = (pending(primary_member()), member("node2"), member("node3"))
    cluster = FakeCluster(
        members=members, stack_dir=write_stack(tmp_path, cluster="demo", etcd=["127.0.0.1:1"])
    )
    status, doc = _serving("replica")
    cluster.answers[("node1", "GET", "/patroni")] = (status, {**doc, "pending_restart": True})
    result = cluster.run("restart", "--pending", "--switchover", "--force", "--timeout", "1")
    posts = [(name, path, body) for name, method, path, body, _ in cluster.requests if method == "POST"]
    assert posts[0] == ("node1", "/switchover", {"leader": "node1", "timeout": 1.0})
    assert posts[1][:2] == ("node1", "/restart")
    # The fake still says "pending" after the restart: the command stops and says so (exit 1).
    assert result.exit_code == 1 and "did not serve again" in result.output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(
            ["restart", "node2", "--switchover"], "--switchover goes with --pending", id="switchover"
        ),
        pytest.param(["restart", "--pending", "--cancel"], "choose one", id="cancel_pending"),
        pytest.param(
            ["restart", "--pending", "--switchover", "--pg-version", "16.1"],
            "--switchover goes with --pending alone",
            id="switchover_with_a_condition",
        ),
    ],
)
def test_restart_refuses_a_confused_command_line(tmp_path: Path, args: list[str], words: str) -> None:
    cluster = FakeCluster(stack_dir=stack(tmp_path))
    result = cluster.run(*args)
    assert result.exit_code == 2 and words in result.output
    assert cluster.requests == []


def test_restart_without_a_member_or_force_asks_first(tmp_path: Path) -> None:
    """patronictl's `restart CLUSTER`: which member (empty: all), then a confirmation; no answer: nothing."""
    cluster = FakeCluster(stack_dir=stack(tmp_path))
    result = cluster.run("restart")
    assert result.exit_code == 1 and "Which member do you want to restart" in result.output
    assert cluster.requests == []


def test_restart_scheduled_and_cancel_reach_the_node(tmp_path: Path) -> None:
    cluster = FakeCluster(stack_dir=stack(tmp_path))
    assert cluster.run("restart", "node2", "--scheduled", LATER_ISO, "--force").exit_code == 0
    assert cluster.run("restart", "node2", "--cancel").exit_code == 0
    calls = [(name, method, path, body) for name, method, path, body, _ in cluster.requests]
    assert calls[0] == ("node2", "POST", "/restart", {"timeout": 30.0, "schedule": LATER_ISO})
    assert calls[1] == ("node2", "DELETE", "/restart", {})
