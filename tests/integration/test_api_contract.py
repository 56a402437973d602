"""The REST API contract (docs/rest-api.md, INTERFACE.md) on real agents of a real 3-node cluster.

One cluster serves the module; the tests run in file order and each leaves it healthy. Health
endpoints are checked in every role a node can be in (primary, streaming standby, standby whose
replay is paused, standby whose PostgreSQL is stopped, standby tagged ``noloadbalance``), then the
status codes of the operations, auth and malformed bodies, and last a property-based fuzz drawn
from the OpenAPI document against one standby that only ever reads or gets refused.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from pgwarden.agent.snapshot import SnapshotHolder
from pgwarden.api.openapi import DOCUMENT
from pgwarden.api.routes import Request, RestApi
from pgwarden.config import ConfigError, dynamic_config_to_dict, merge_patch, parse_dynamic_config
from pgwarden.local.stack import Stack
from pgwarden.model import DynamicConfig
from tests.support import api_fakes as fake
from tests.support.api import (
    GOOD_CREDENTIALS,
    api_url,
    assert_verdicts,
    basic,
    call,
    code,
    credentials,
    harmless_requests,
    node_index,
    retag,
    status,
)
from tests.support.cluster import conninfo, primary_name, running_stack, wait_for
from tests.support.schema import problems

pytestmark = pytest.mark.integration

SETTLE = 60.0  # seconds; other clusters share these two cores


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as s:
        yield s


def _roles(stack: Stack) -> tuple[str, list[str]]:
    """The primary and the standbys, once the cluster is healthy."""
    wait_for(lambda: stack.healthy()[0], 120, "one primary and every standby streaming")
    primary = primary_name(stack)
    assert primary is not None
    return primary, sorted(
        stack.spec.node_name(i) for i in range(stack.spec.nodes) if stack.spec.node_name(i) != primary
    )


# --- health endpoints, role by role ---------------------------------------------------------------
def test_primary_answers_the_leader_checks_and_fails_the_standby_ones(stack: Stack) -> None:
    primary, _ = _roles(stack)
    ok = ["/primary", "/read-write", "/", "/master", "/leader", "/read-only", "/read-only-sync", "/health"]
    ok += ["/liveness", "/readiness", "/readiness?lag=1kB", "/primary?tag_nofailover=false"]
    not_ok = ["/replica", "/standby-leader", "/standby_leader", "/sync", "/synchronous", "/async"]
    not_ok += ["/asynchronous", "/primary?tag_nofailover=true"]
    assert_verdicts(stack, primary, ok, not_ok)


def test_streaming_standby_answers_the_replica_checks(stack: Stack) -> None:
    _, standbys = _roles(stack)
    ok = ["/replica", "/read-only", "/health", "/liveness", "/readiness", "/async", "/asynchronous"]
    ok += ["/replica?replication_state=streaming", "/replica?lag=1GB", "/replica?lag=16MB", "/async?lag=1GB"]
    ok += ["/replica?tag_nofailover=false", "/replica?tag_noloadbalance=FALSE", "/replica/"]
    not_ok = ["/primary", "/read-write", "/", "/leader", "/standby-leader", "/sync", "/read-only-sync"]
    not_ok += ["/replica?tag_nofailover=true", "/replica?tag_zone=b"]
    for standby in standbys:
        assert_verdicts(stack, standby, ok, not_ok)


def test_unknown_get_path_fails_closed_with_the_status_document(stack: Stack) -> None:
    primary, standbys = _roles(stack)
    for name in (primary, standbys[0]):
        reply = call(stack, name, "GET", "/no-such-check", auth=False, timeout=10)
        assert reply.status_code == 503
        document = reply.json()
        assert document["name"] == name and document["role"] in ("primary", "replica")
        for method in ("HEAD", "OPTIONS"):
            bare = call(stack, name, method, "/no-such-check", auth=False, timeout=10)
            assert (bare.status_code, bare.content) == (503, b"")


def test_a_malformed_lag_is_400_not_a_verdict(stack: Stack) -> None:
    primary, standbys = _roles(stack)
    for name in (primary, standbys[0]):
        reply = call(stack, name, "GET", "/replica?lag=lots", auth=False, timeout=10)
        assert reply.status_code == 400
        assert "lag" in reply.json()["error"]


@contextlib.contextmanager
def _replay_paused(stack: Stack, name: str) -> Iterator[None]:
    info = conninfo(stack, stack.spec.node_host(node_index(name)), stack.spec.pg_port, 5)
    with psycopg.connect(info, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")


def _write_wal(stack: Stack, primary: str, megabytes: int) -> None:
    info = conninfo(stack, stack.spec.node_host(node_index(primary)), stack.spec.pg_port, 5)
    with psycopg.connect(info, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS api_lag_fill (id int, pad text)")
        conn.execute(
            "INSERT INTO api_lag_fill SELECT g, repeat('x', 1000) FROM generate_series(1, %s) g",
            (megabytes * 1000,),
        )


def _replay_gap(stack: Stack, name: str) -> int:
    xlog = status(stack, name).get("xlog") or {}
    received, replayed = xlog.get("received_location"), xlog.get("replayed_location")
    return received - replayed if isinstance(received, int) and isinstance(replayed, int) else 0


def _metrics(stack: Stack, name: str) -> dict[str, list[Sample]]:
    """``GET /metrics`` parsed as Prometheus text: every sample by its name."""
    reply = call(stack, name, "GET", "/metrics", auth=False, timeout=10)
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/plain")
    found: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def test_lagging_standby_fails_checks_with_a_tight_lag_bound_only(stack: Stack) -> None:
    primary, standbys = _roles(stack)
    lagging = standbys[0]
    with _replay_paused(stack, lagging):
        _write_wal(stack, primary, 4)
        wait_for(
            lambda: _replay_gap(stack, lagging) > 1024 * 1024, SETTLE, f"{lagging} receiving, not replaying"
        )
        # The agent compares with the leader's position in etcd: one loop on each side to publish it.
        wait_for(lambda: code(stack, lagging, "/replica?lag=1kB") == 503, SETTLE, "the lag in the snapshot")
        ok = ["/replica?lag=1GB", "/replica", "/async?lag=1GB", "/readiness?lag=1GB", "/health"]
        failing = ["/replica?lag=1kB", "/read-only?lag=1kB", "/async?lag=1kB", "/readiness?lag=1kB"]
        assert_verdicts(stack, lagging, ok, failing)
        [lag] = _metrics(stack, lagging)["pgwarden_replication_lag_bytes"]
        assert lag.value > 1024 * 1024, "the metric is what ?lag= compares"
    wait_for(lambda: code(stack, lagging, "/replica?lag=1kB") == 200, SETTLE, f"{lagging} caught up")


def test_status_says_when_replay_is_paused(stack: Stack) -> None:
    _, standbys = _roles(stack)
    with _replay_paused(stack, standbys[0]):
        wait_for(lambda: status(stack, standbys[0])["xlog"].get("paused") is True, 15, "xlog.paused true")
    wait_for(lambda: status(stack, standbys[0])["xlog"].get("paused") is False, 15, "xlog.paused false again")


def _set_pause(stack: Stack, name: str, pause: bool) -> None:
    reply = call(stack, name, "PATCH", "/config", body={"pause": pause})
    assert reply.status_code == 200 and reply.json()["pause"] is pause, reply.text


def _pg_ctl_stop(stack: Stack, i: int) -> None:
    subprocess.run(
        [f"{stack.spec.bin_dir}/pg_ctl", "stop", "-m", "fast", "-w", "-D", str(stack.spec.data_dir(i))],
        user=stack.spec.user_for(i),
        cwd="/tmp",
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_stopped_postgresql_fails_health_but_the_agent_is_alive(stack: Stack) -> None:
    primary, standbys = _roles(stack)
    stopped = standbys[-1]
    _set_pause(stack, primary, True)
    try:
        # Maintenance mode keeps the agent from starting PostgreSQL again; it must know first.
        wait_for(lambda: status(stack, stopped)["pause"] is True, SETTLE, f"{stopped} sees the pause")
        _pg_ctl_stop(stack, node_index(stopped))
        wait_for(lambda: status(stack, stopped)["state"] == "stopped", SETTLE, f"{stopped} reported stopped")
        failing = ["/health", "/replica", "/read-only", "/async", "/readiness", "/primary"]
        assert_verdicts(stack, stopped, ["/liveness", "/patroni"], failing)
    finally:
        _set_pause(stack, primary, False)
    wait_for(lambda: code(stack, stopped, "/replica") == 200, SETTLE, f"{stopped} streaming again")
    _roles(stack)


def test_noloadbalance_standby_leaves_the_read_pool_and_custom_tags_select(stack: Stack) -> None:
    primary, standbys = _roles(stack)
    tagged, other = standbys
    retag(stack, tagged, {"noloadbalance": True, "custom_zone": "east"})
    # Docs: /replica excludes noloadbalance; /read-only is "as /replica, or the primary", so it
    # excludes it too; /readiness and /health say nothing about load balancing.
    failing = ["/replica", "/replica?tag_custom_zone=east", "/replica?tag_noloadbalance=true"]
    failing += ["/read-only", "/async"]
    assert_verdicts(stack, tagged, ["/readiness", "/health", "/liveness"], failing)
    members = {m["name"]: m for m in call(stack, primary, "GET", "/cluster", auth=False).json()["members"]}
    assert members[tagged]["tags"]["noloadbalance"] is True
    assert members[tagged]["tags"]["custom_zone"] == "east"
    # An untagged standby has no custom_zone: a filter on it fails closed, the built-in tags match.
    assert_verdicts(
        stack, other, ["/replica?tag_noloadbalance=false", "/replica"], ["/replica?tag_custom_zone=east"]
    )
    assert code(stack, primary, "/primary?tag_custom_zone=east") == 503
    # Back in the read pool with only the custom tag: now the tag selects it (case-insensitively).
    retag(stack, tagged, {"custom_zone": "east"})
    ok = ["/replica", "/replica?tag_custom_zone=east", "/replica?tag_custom_zone=EAST"]
    assert_verdicts(
        stack, tagged, [*ok, "/read-only?tag_custom_zone=east"], ["/replica?tag_custom_zone=west"]
    )
    _roles(stack)


# --- status and operations ------------------------------------------------------------------------
def test_cluster_history_and_config_documents(stack: Stack) -> None:
    primary, standbys = _roles(stack)
    for name in (primary, *standbys):  # every agent answers for the whole cluster
        cluster = call(stack, name, "GET", "/cluster", auth=False).json()
        assert cluster["leader"] == primary and cluster["pause"] is False
        members = {m["name"]: m for m in cluster["members"]}
        assert sorted(members) == sorted([primary, *standbys])
        assert members[primary]["role"] == "leader" and members[primary]["lag"] is None  # Patroni's
        assert problems("Cluster", cluster) == []  # docs/openapi.json describes what is sent
        for standby in standbys:
            m = members[standby]
            assert m["role"] == "replica" and m["state"] == "streaming"  # Patroni's word
            assert isinstance(m["lag"], int) and m["lag"] >= 0
            assert m["api_url"] == api_url(stack, standby) and m["port"] == stack.spec.pg_port
    history = call(stack, primary, "GET", "/history", auth=False)
    assert history.status_code == 200 and isinstance(history.json(), list)
    assert all(problems("HistoryEntry", entry) == [] for entry in history.json())
    config = call(stack, standbys[0], "GET", "/config", auth=False)
    assert config.status_code == 200
    assert {"ttl", "loop_wait", "pause"} <= set(config.json())
    assert problems("ConfigDocument", config.json()) == []
    for name in (primary, *standbys):
        assert problems("Status", call(stack, name, "GET", "/patroni", auth=False).json()) == []


def test_config_writes_validate_and_compare_and_set(stack: Stack) -> None:
    primary, standbys = _roles(stack)
    before = call(stack, primary, "GET", "/config", auth=False).json()
    for patch, field in (({"ttl": "soon"}, "ttl"), ({"loop_wait": -1}, "loop_wait")):
        reply = call(stack, primary, "PATCH", "/config", body=patch)
        assert reply.status_code == 400, reply.text
        assert field in reply.json()["error"]
    put = call(stack, standbys[0], "PUT", "/config", body={**before, "ttl": "soon"})
    assert put.status_code == 400 and "ttl" in put.json()["error"]
    # Same-value patches from every agent at once: each one reads, then writes with compare-and-set,
    # so a loser answers 409 (retry) and never overwrites blindly or fails with a 5xx.
    same = {"maximum_lag_on_failover": before["maximum_lag_on_failover"]}
    names = [primary, *standbys] * 3
    seen: list[int] = []
    for _ in range(5):
        with ThreadPoolExecutor(len(names)) as pool:
            replies = list(pool.map(lambda n: call(stack, n, "PATCH", "/config", body=same), names))
        seen += [r.status_code for r in replies]
        for r in replies:
            assert r.status_code in (200, 409), r.text
            if r.status_code == 409:
                assert "retry" in r.json()["error"]
        if 409 in seen:
            break
    print(f"concurrent PATCH /config answers: {sorted(seen)}")
    assert 200 in seen and 409 in seen, "concurrent writes never collided"
    assert call(stack, primary, "GET", "/config", auth=False).json() == before


def test_operations_answer_their_documented_status_codes(stack: Stack) -> None:
    primary, standbys = _roles(stack)
    failover = call(stack, standbys[0], "POST", "/failover", body={"candidate": "node9"})
    assert failover.status_code == 412 and "not a member" in failover.json()["error"]
    cancel = call(stack, primary, "DELETE", "/switchover", body={})
    assert cancel.status_code == 404 and "no switchover" in cancel.json()["error"]
    reload = call(stack, standbys[0], "POST", "/reload", body={})
    assert reload.status_code == 200, reload.text
    wrong_method = call(stack, primary, "GET", "/switchover", auth=False)
    assert wrong_method.status_code == 405 and "POST" in wrong_method.headers["Allow"]
    options = call(stack, primary, "OPTIONS", "/config", auth=False)
    assert options.status_code == 200 and "PATCH" in options.headers["Allow"] and options.content == b""
    assert call(stack, primary, "POST", "/primary", body={}).status_code == 405
    assert call(stack, primary, "POST", "/no-such-operation", body={}).status_code == 404
    assert primary_name(stack) == primary


WRITE_CALLS = [
    ("PATCH", "/config", {"pause": True}),
    ("PUT", "/config", {"ttl": 30}),
    ("POST", "/switchover", {"candidate": "node9"}),
    ("DELETE", "/switchover", None),
    ("POST", "/failover", {"candidate": "node9"}),
    ("POST", "/restart", {}),
    ("POST", "/reload", {}),
    ("POST", "/reinitialize", {}),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITE_CALLS, ids=[f"{m} {p}" for m, p, _ in WRITE_CALLS])
def test_writes_without_the_right_credentials_are_401(
    stack: Stack, method: str, path: str, body: dict[str, Any] | None
) -> None:
    _, standbys = _roles(stack)
    name = standbys[0]
    username, password = credentials(stack)
    for authorization in (None, basic(username, password + "x"), basic("intruder", password), "Bearer x"):
        headers = {"Authorization": authorization} if authorization else {}
        reply = httpx.request(method, api_url(stack, name) + path, json=body, headers=headers, timeout=10)
        assert reply.status_code == 401, (authorization, reply.text)
        assert reply.headers["WWW-Authenticate"] == 'Basic realm="pgwarden"'
        assert "credentials" in reply.json()["error"]
    assert call(stack, name, "GET", "/config", auth=False).json()["pause"] is False


MALFORMED = [
    ("PATCH", "/config", b"{", "not valid JSON"),
    ("PATCH", "/config", b"", "empty"),
    ("PUT", "/config", b"[]", "JSON object"),
    ("POST", "/switchover", b'{"canidate": "node2"}', "canidate"),
    ("POST", "/switchover", b'{"candidate": "node2", "scheduled_at": "2030-01-31T02:00:00"}', "time zone"),
    ("POST", "/switchover", b'{"candidate": 2}', "candidate"),
    ("POST", "/failover", b"{}", "candidate"),
    ("POST", "/failover", b'{"candidate": "node2", "timeout": 0}', "timeout"),
    ("POST", "/restart", b'{"timeout": "soon"}', "timeout"),
    ("POST", "/reload", b'{"now": true}', "now"),
    ("POST", "/reinitialize", b"NaN", "NaN"),
    ("DELETE", "/switchover", b"[1]", "JSON object"),
    ("POST", "/reload", b"\xff\xfe", "UTF-8"),
]


@pytest.mark.parametrize(
    ("method", "path", "content", "words"), MALFORMED, ids=[f"{m} {p} {c[:20]!r}" for m, p, c, _ in MALFORMED]
)
def test_malformed_bodies_are_400_naming_the_fault(
    stack: Stack, method: str, path: str, content: bytes, words: str
) -> None:
    primary, standbys = _roles(stack)
    reply = call(stack, standbys[0], method, path, content=content)
    assert reply.status_code == 400, reply.text
    assert words in reply.json()["error"]
    assert primary_name(stack) == primary


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_writes_without_a_json_content_type_are_415_and_change_nothing(
    stack: Stack, content_type: str | None
) -> None:
    """A browser form (or a no-cors fetch) cannot send application/json cross-site."""
    primary, standbys = _roles(stack)
    for method, path, content in (
        ("PATCH", "/config", b'{"pause": true}'),
        ("POST", "/switchover", b'{"candidate": "%s"}' % standbys[0].encode()),
        ("POST", "/restart", b""),
    ):
        reply = call(stack, primary, method, path, content=content, content_type=content_type)
        assert reply.status_code == 415, reply.text
        assert "Content-Type: application/json" in reply.json()["error"]
    assert call(stack, primary, "GET", "/config", auth=False).json()["pause"] is False
    assert primary_name(stack) == primary


def test_a_body_over_the_limit_is_413(stack: Stack) -> None:
    _, standbys = _roles(stack)
    reply = call(stack, standbys[0], "PATCH", "/config", content=b" " * (1024 * 1024 + 1))
    assert reply.status_code == 413 and "limit" in reply.json()["error"]


def test_metrics_parse_and_carry_the_role(stack: Stack) -> None:
    primary, standbys = _roles(stack)
    for name, role in ((primary, "primary"), (standbys[0], "replica")):
        samples = _metrics(stack, name)
        assert {"pgwarden_info", "pgwarden_leader", "pgwarden_timeline"} <= set(samples)
        roles = {s.labels["role"]: s.value for s in samples["pgwarden_role"]}
        assert roles[role] == 1 and sum(roles.values()) == 1, roles
        [leader] = samples["pgwarden_leader"]
        assert leader.value == (role == "primary")


def test_openapi_document_is_served(stack: Stack) -> None:
    _, standbys = _roles(stack)
    reply = call(stack, standbys[0], "GET", "/openapi.json", auth=False)
    assert reply.status_code == 200
    assert reply.json() == json.loads(json.dumps(DOCUMENT))


# --- fuzz -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fuzzed(stack: Stack) -> Iterator[tuple[str, str]]:
    """A standby to fuzz and the primary, checked healthy and unchanged once the fuzz is over."""
    primary, standbys = _roles(stack)
    yield standbys[-1], primary
    assert code(stack, standbys[-1], "/liveness") == 200
    assert _roles(stack)[0] == primary


_READS = {"cluster", "history", "get_config", "failsafe_topology"}


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(request=harmless_requests())
def test_the_fuzz_never_asks_for_an_operation_that_would_act(
    request: tuple[str, str, bytes, str | None],
) -> None:
    """The fuzz below runs on a live cluster: in memory first, none of its requests may reach an
    operation except reads and config writes the real validation refuses."""
    method, target, body, authorization = request
    if authorization == GOOD_CREDENTIALS:
        authorization = basic("pgwarden", "secret")
    ops = fake.FakeOperations()
    api = RestApi(
        fake.api_settings(username="pgwarden", password="secret"),
        SnapshotHolder(fake.streaming_standby()),
        ops,
    )
    api.answer(Request(method, target, body, authorization, "application/json"))
    for name, args in ops.calls:
        if name == "patch_config":
            with pytest.raises(ConfigError):
                parse_dynamic_config(merge_patch(dynamic_config_to_dict(DynamicConfig()), args[0]), "patch")
        elif name == "put_config":
            with pytest.raises(ConfigError):
                parse_dynamic_config(args[0], "put")
        else:
            assert name in _READS, (request, name, args)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(request=harmless_requests())
def test_fuzzed_requests_never_5xx_and_never_drop_the_connection(
    stack: Stack, fuzzed: tuple[str, str], request: tuple[str, str, bytes, str | None]
) -> None:
    method, target, body, authorization = request
    if authorization == GOOD_CREDENTIALS:
        authorization = basic(*credentials(stack))
    name, _ = fuzzed
    host, port = stack.spec.node_host(node_index(name)), stack.spec.api_port
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        headers = {"Authorization": authorization} if authorization else {}
        headers["Content-Type"] = "application/json"  # as a JSON client sends every call
        connection.request(method, target, body=body or None, headers=headers)
        response = connection.getresponse()
        content = response.read()
        event(f"{method} {response.status}")
        assert response.status < 500 or response.status == 503, (
            method,
            target,
            body,
            response.status,
            content,
        )
        if method in ("HEAD", "OPTIONS"):
            assert content == b""
        elif response.status == 503 and response.getheader("Content-Type") == "application/json":
            document = json.loads(content)
            assert "internal error" not in str(document.get("error", "")), (method, target, body, document)
        connection.request("GET", "/liveness")
        alive = connection.getresponse()
        alive.read()
        assert alive.status == 200
    finally:
        connection.close()
    time.sleep(0.01)  # leave the agent's loop its share of two busy cores
