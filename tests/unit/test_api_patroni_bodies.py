"""Patroni's operation bodies over real loopback sockets: each valid body reaches its operation
parsed into typed values (the refusals, each naming its field, are rows of test_api_http.py's
BAD_BODIES)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from pgwarden.api.contract import DEFAULT_OPERATION_TIMEOUT
from pgwarden.model import ReinitializeOptions, RestartConditions, Role
from tests.support import api_fakes as fake

T = DEFAULT_OPERATION_TIMEOUT


@pytest.fixture
def api() -> Iterator[tuple[httpx.Client, fake.FakeOperations]]:
    with fake.running_api() as (url, _, ops), httpx.Client(base_url=url, timeout=5) as client:
        yield client, ops


RESTART_BODIES: list[tuple[dict[str, Any], tuple[Any, ...]]] = [
    ({"restart_pending": True}, (T, RestartConditions(only_if_pending=True))),
    ({"restart_pending": False}, (T,)),  # nothing asked: an unconditional restart
    ({"role": "primary"}, (T, RestartConditions(role=Role.PRIMARY))),
    ({"role": "master"}, (T, RestartConditions(role=Role.PRIMARY))),  # Patroni 3's spelling
    ({"role": "replica"}, (T, RestartConditions(role=Role.REPLICA))),
    ({"role": "standby_leader"}, (T, RestartConditions(role=Role.STANDBY_LEADER))),
    ({"role": "standby-leader"}, (T, RestartConditions(role=Role.STANDBY_LEADER))),  # patronictl's
    ({"postgres_version": "16.0"}, (T, RestartConditions(below_version=160000))),
    ({"postgres_version": "15.4"}, (T, RestartConditions(below_version=150004))),
    ({"postgres_version": "9.6.3"}, (T, RestartConditions(below_version=90603))),
    ({"postgres_version": "15.4.1"}, (T, RestartConditions(below_version=150401))),
    # patronictl sends --timeout as the string typed; Patroni reads units as PostgreSQL does
    ({"timeout": "45"}, (45.0,)),
    ({"timeout": "2min"}, (120.0,)),
    ({"timeout": "1500 ms"}, (1.5,)),
    (
        {"restart_pending": True, "role": "replica", "postgres_version": "16.1", "timeout": 30},
        (30.0, RestartConditions(role=Role.REPLICA, below_version=160001, only_if_pending=True)),
    ),
]


@pytest.mark.parametrize(("body", "called"), RESTART_BODIES)
def test_restart_body_reaches_the_operation_parsed(
    api: tuple[httpx.Client, fake.FakeOperations], body: dict[str, Any], called: tuple[Any, ...]
) -> None:
    client, ops = api
    assert client.post("/restart", json=body).status_code == 200
    assert ops.calls == [("restart", called)]


def test_a_scheduled_restart_keeps_its_conditions(api: tuple[httpx.Client, fake.FakeOperations]) -> None:
    client, ops = api
    body = {"schedule": "2030-01-31T02:00:00+00:00", "restart_pending": True, "postgres_version": "16.2"}
    assert client.post("/restart", json=body).status_code == 202
    when = datetime(2030, 1, 31, 2, tzinfo=UTC)
    assert ops.calls == [
        ("schedule_restart", (when, RestartConditions(below_version=160002, only_if_pending=True)))
    ]


@pytest.mark.parametrize(
    ("body", "called"),
    [
        ({}, (T,)),
        ({"force": True}, (T, ReinitializeOptions(force=True))),
        ({"from_leader": True}, (T, ReinitializeOptions(from_leader=True))),
        ({"force": True, "from_leader": True, "timeout": 90}, (90.0, ReinitializeOptions(True, True))),
        ({"force": False}, (T,)),
    ],
)
def test_reinitialize_body_reaches_the_operation_parsed(
    api: tuple[httpx.Client, fake.FakeOperations], body: dict[str, Any], called: tuple[Any, ...]
) -> None:
    client, ops = api
    assert client.post("/reinitialize", json=body).status_code == 202
    assert ops.calls == [("reinitialize", called)]


def test_failover_naming_the_leader_is_a_switchover_from_it(
    api: tuple[httpx.Client, fake.FakeOperations],
) -> None:
    """Patroni: "received failover request with leader specified - performing switchover instead"."""
    client, ops = api
    assert client.post("/failover", json={"leader": "node1", "candidate": "node2"}).status_code == 200
    assert client.post("/failover", json={"member": "node3"}).status_code == 200  # Patroni's alias
    assert client.post("/failover", json={"candidate": "node3", "leader": None}).status_code == 200
    assert ops.calls == [
        ("switchover", ("node1", "node2", None, T)),
        ("failover", ("node3", T)),
        ("failover", ("node3", T)),
    ]
