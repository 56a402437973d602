"""Planned switchover and manual operations on a real cluster, through real HAProxy.

One cluster serves the whole module (the tests run in file order and each leaves it healthy):
a writer inserting every 20 ms through HAProxy's write port loses nothing across a switchover,
reads land on standbys, refusals say why, a scheduled switchover waits for its time, and
restart/reinitialize do what they say on the node they are asked of.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from pgwarden.drill.writer import Writer, missing_ids
from pgwarden.local.stack import Stack
from tests.support.cluster import WriterWatch, conninfo, primary_name, running_stack, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as s:
        yield s


def _auth(stack: Stack) -> tuple[str, str] | None:
    creds = stack.describe().get("api_auth")
    return (creds["username"], creds["password"]) if creds else None


def _api(stack: Stack, name: str) -> str:
    return stack.spec.api_url(int(name.removeprefix("node")) - 1)


def _post(stack: Stack, name: str, path: str, body: dict[str, Any], timeout: float = 60) -> httpx.Response:
    return httpx.post(
        f"{_api(stack, name)}{path}", json=body, auth=_auth(stack), timeout=timeout, verify=stack.api_verify()
    )


def _router(stack: Stack, port: int) -> str:
    return conninfo(stack, stack.spec.router.bind_host, port, 2)


def _standbys(stack: Stack, primary: str) -> list[str]:
    return [stack.spec.node_name(i) for i in range(stack.spec.nodes) if stack.spec.node_name(i) != primary]


def _timeline(stack: Stack, name: str) -> int:
    status = stack.statuses()[name]
    assert status is not None
    return int(status["timeline"])


def _healthy(stack: Stack) -> None:
    wait_for(lambda: stack.healthy()[0], 120, "one primary and every standby streaming")


def test_switchover_under_writes_loses_nothing_and_the_old_primary_follows(stack: Stack) -> None:
    _healthy(stack)
    old = primary_name(stack)
    assert old is not None
    candidate = _standbys(stack, old)[0]
    timeline = _timeline(stack, old)
    writer = Writer(_router(stack, stack.spec.router.primary), table="switchover_writes")
    writer.prepare()
    with WriterWatch(stack) as watch, writer:
        assert writer.wait_for_acks(25, 30), "the writer got no acknowledgements before the switchover"
        started = time.monotonic()
        reply = _post(stack, old, "/switchover", {"leader": old, "candidate": candidate})
        assert reply.status_code == 200, reply.text
        assert reply.json()["leader"] == candidate
        assert writer.wait_for_acks(25, 30), "no writes acknowledged through HAProxy after the switchover"
    report = writer.report
    assert primary_name(stack) == candidate
    assert _timeline(stack, candidate) == timeline + 1
    assert missing_ids(_router(stack, stack.spec.router.primary), writer.table, report.acknowledged) == []
    assert watch.overlaps == [], f"two writable nodes at once: {watch.overlaps}"
    print(f"switchover write gap: {report.longest_gap(after=started):.3f}s, {report.errors} failed attempts")
    # The old primary stopped cleanly before the fork, so it follows the new one without pg_rewind.
    _healthy(stack)
    old_status = stack.statuses()[old]
    assert old_status is not None and old_status["role"] == "replica"
    assert old_status["timeline"] == timeline + 1
    log = (stack.spec.dir / "logs" / f"{old}.log").read_text(errors="replace")
    assert "rewinding" not in log.split("switchover to", 1)[-1]


def test_reads_through_the_replica_port_land_on_standbys(stack: Stack) -> None:
    _healthy(stack)
    seen = set()
    for _ in range(6):
        with psycopg.connect(_router(stack, stack.spec.router.replicas), autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery(), inet_server_addr()::text").fetchone()
        assert row is not None and row[0] is True
        seen.add(str(row[1]).split("/")[0])
    primary = primary_name(stack)
    assert primary is not None
    primary_host = stack.spec.node_host(int(primary.removeprefix("node")) - 1)
    assert primary_host not in seen


@pytest.mark.parametrize(
    ("body", "words"),
    [
        pytest.param({"candidate": "node9"}, "not a member", id="unknown_candidate"),
        pytest.param({"leader": "nodeX", "candidate": "node1"}, "leader name mismatch", id="wrong_leader"),
    ],
)
def test_unsafe_switchovers_are_refused_with_412_and_a_reason(
    stack: Stack, body: dict[str, Any], words: str
) -> None:
    primary = primary_name(stack)
    assert primary is not None
    reply = _post(stack, primary, "/switchover", body)
    assert reply.status_code == 412, reply.text
    assert words in reply.json()["error"]
    assert primary_name(stack) == primary


def test_switchover_without_credentials_is_401(stack: Stack) -> None:
    if _auth(stack) is None:
        pytest.skip("the local stack runs without API auth")
    primary = primary_name(stack)
    assert primary is not None
    reply = httpx.post(
        f"{_api(stack, primary)}/switchover",
        json={"candidate": "node1"},
        timeout=10,
        verify=stack.api_verify(),
    )
    assert reply.status_code == 401
    assert primary_name(stack) == primary


def test_scheduled_switchover_waits_for_its_time_and_can_be_cancelled(stack: Stack) -> None:
    _healthy(stack)
    old = primary_name(stack)
    assert old is not None
    candidate = _standbys(stack, old)[-1]
    later = datetime.now(UTC) + timedelta(minutes=10)
    reply = _post(stack, old, "/switchover", {"candidate": candidate, "scheduled_at": later.isoformat()})
    assert reply.status_code == 202, reply.text
    assert _post(stack, old, "/switchover", {"candidate": candidate}).status_code == 409
    cancel = httpx.request(
        "DELETE",
        f"{_api(stack, old)}/switchover",
        json={},
        auth=_auth(stack),
        timeout=10,
        verify=stack.api_verify(),
    )
    assert cancel.status_code == 200, cancel.text
    soon = datetime.now(UTC) + timedelta(seconds=8)
    reply = _post(stack, old, "/switchover", {"candidate": candidate, "scheduled_at": soon.isoformat()})
    assert reply.status_code == 202, reply.text
    # Only an answer read wholly before the scheduled time counts (a loaded machine may take
    # seconds over the POST or a read): each such read must still name the old primary.
    before = 0
    while True:
        seen = primary_name(stack)
        if datetime.now(UTC) >= soon - timedelta(seconds=0.5):
            break
        assert seen == old, "the switchover ran before its time"
        before += 1
        time.sleep(0.5)
    assert before > 0, "no read finished before the scheduled time (8 s): nothing was checked"
    wait_for(lambda: primary_name(stack) == candidate, 60, f"{candidate} primary after the scheduled time")
    _healthy(stack)


def test_restart_of_a_standby_and_reinitialize_refused_on_the_primary(stack: Stack) -> None:
    _healthy(stack)
    primary = primary_name(stack)
    assert primary is not None
    standby = _standbys(stack, primary)[0]
    before = stack.statuses()[standby]
    reply = _post(stack, standby, "/restart", {})
    assert reply.status_code == 200, reply.text
    refused = _post(stack, primary, "/reinitialize", {})
    assert refused.status_code == 412, refused.text
    assert "primary" in refused.json()["error"]
    _healthy(stack)
    assert before is not None and primary_name(stack) == primary


def test_reinitialize_recreates_a_standby_that_then_streams_again(stack: Stack) -> None:
    _healthy(stack)
    primary = primary_name(stack)
    assert primary is not None
    standby = _standbys(stack, primary)[-1]
    i = int(standby.removeprefix("node")) - 1
    marker = stack.spec.data_dir(i) / "pgwarden-test-marker"
    marker.write_text("gone after a reinitialize")
    reply = _post(stack, standby, "/reinitialize", {})
    assert reply.status_code == 202, reply.text
    wait_for(lambda: not marker.exists(), 30, "the data directory wiped")
    _healthy(stack)
