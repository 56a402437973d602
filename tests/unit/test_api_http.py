"""The REST API over real loopback sockets: health verdicts, auth, bodies, error mapping, limits, TLS."""

from __future__ import annotations

import base64
import dataclasses
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from pgwarden.agent.snapshot import Snapshot
from pgwarden.api.contract import DEFAULT_OPERATION_TIMEOUT, IfMatch, OperationError, OperationResult
from pgwarden.api.server import MAX_BODY
from tests.support import api_fakes as fake

JSON = "application/json"
AS_JSON = {"Content-Type": JSON}


def _check_json(response: httpx.Response) -> None:
    assert response.headers["content-type"] == JSON
    if response.request.method in ("HEAD", "OPTIONS"):
        assert response.content == b""
    else:
        json.loads(response.content)


@pytest.fixture
def api() -> Iterator[tuple[httpx.Client, fake.FakeOperations]]:
    with fake.running_api() as (url, _, ops), httpx.Client(base_url=url, timeout=5) as client:
        yield client, ops


# --- health endpoints --------------------------------------------------------------------------

HEALTH_CASES: list[tuple[str, Callable[[], Snapshot], dict[str, int]]] = [
    (
        "primary",
        fake.primary,
        {
            "/": 200, "/primary": 200, "/read-write": 200, "/master": 200, "/leader": 200,
            "/standby-leader": 503, "/replica": 503, "/read-only": 200, "/sync": 503, "/async": 503,
            "/read-only-sync": 200, "/health": 200, "/liveness": 200, "/readiness": 200,
            "/patroni": 200, "/status": 200, "/no-such-check": 503, "/primary?tag_nofailover=false": 200,
        },
    ),
    (
        "streaming_standby",
        fake.streaming_standby,
        {
            "/": 503, "/primary": 503, "/leader": 503, "/replica": 200, "/replica/": 200,
            "/replica?replication_state=streaming": 200, "/replica?lag=1MB": 200, "/read-only": 200,
            "/async": 200, "/asynchronous": 200, "/sync": 503, "/read-only-sync": 503, "/health": 200,
            "/readiness": 200, "/liveness": 200, "/replica?tag_nofailover=false": 200,
            "/replica?tag_nofailover=true": 503, "/patroni": 200,
        },
    ),
    (
        "lagging_standby_32MiB",
        fake.lagging_standby,
        {
            "/replica": 200, "/replica?lag=16MB": 503, "/replica?lag=64MB": 200,
            "/replica?lag=33554432": 200, "/replica?lag=33554431": 503, "/async?lag=16MB": 503,
            "/read-only?lag=16MB": 503, "/readiness": 200, "/readiness?lag=16MB": 503,
        },
    ),
    (
        "sync_standby",
        fake.sync_standby,
        {"/sync": 200, "/synchronous": 200, "/async": 503, "/read-only-sync": 200},
    ),
    (
        "standby_leader",
        fake.standby_leader,
        {"/standby-leader": 200, "/standby_leader": 200, "/leader": 200, "/primary": 503, "/read-write": 503},
    ),
    (
        "postgres_stopped",
        fake.stopped,
        {
            "/health": 503, "/primary": 503, "/replica": 503, "/readiness": 503, "/liveness": 200,
            "/patroni": 200,
        },
    ),
    (
        "noloadbalance_standby",
        lambda: fake.streaming_standby(noloadbalance=True),
        {"/replica": 503, "/read-only": 503, "/async": 503, "/health": 200, "/readiness": 200},
    ),
    ("stale_loop", fake.stale_loop, {"/liveness": 503, "/health": 200}),
]  # fmt: skip


@pytest.mark.parametrize(("situation", "build", "expected"), HEALTH_CASES, ids=[c[0] for c in HEALTH_CASES])
def test_health_endpoints_answer_get_head_and_options_alike(
    situation: str, build: Callable[[], Snapshot], expected: dict[str, int]
) -> None:
    snap = build()
    with fake.running_api(snap) as (url, _, ops), httpx.Client(base_url=url, timeout=5) as client:
        for path, code in expected.items():
            got = client.get(path)
            assert got.status_code == code, f"{situation}: GET {path}"
            _check_json(got)
            assert got.json()["name"] == snap.config.name
            for method in ("HEAD", "OPTIONS"):
                bare = client.request(method, path)
                assert (bare.status_code, bare.content) == (code, b""), f"{situation}: {method} {path}"
                _check_json(bare)
        assert ops.calls == []  # health never reaches the agent


def test_status_document_names_role_and_reason() -> None:
    with fake.running_api(fake.standby_leader()) as (url, _, _ops):
        doc = httpx.get(f"{url}/patroni").json()
    assert doc["role"] == "standby_leader"
    assert doc["reason_code"] == "LEADER_HEALTHY"
    assert doc["xlog"]["replayed_location"] == 0x3000000


def test_health_follows_the_latest_snapshot() -> None:
    with fake.running_api(fake.primary()) as (url, holder, _):
        assert httpx.get(f"{url}/primary").status_code == 200
        holder.set(fake.streaming_standby())
        assert httpx.get(f"{url}/primary").status_code == 503


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_malformed_lag_is_400(api: tuple[httpx.Client, fake.FakeOperations], method: str) -> None:
    client, _ = api
    got = client.request(method, "/replica?lag=plenty")
    assert got.status_code == 400
    _check_json(got)
    if method == "GET":
        assert "lag" in got.json()["error"]


# --- reads through Operations ------------------------------------------------------------------


def test_reads_reach_operations(api: tuple[httpx.Client, fake.FakeOperations]) -> None:
    client, ops = api
    assert client.get("/cluster").json()["leader"] == "node1"
    assert client.get("/history").json()[0]["timeline"] == 1
    assert client.get("/config").json() == {"ttl": 30, "loop_wait": 10}
    assert client.get("/openapi.json").json()["openapi"] == "3.1.0"
    head = client.head("/cluster")
    assert (head.status_code, head.content) == (200, b"")
    assert [name for name, _ in ops.calls] == ["cluster", "history", "get_config", "cluster"]


def test_config_carries_etag_if_match_and_the_parameter_check_over_the_wire(
    api: tuple[httpx.Client, fake.FakeOperations],
) -> None:
    client, ops = api
    assert client.get("/config").headers["etag"] == '"7"'
    put = client.put("/config", json={"ttl": 40}, headers={"If-Match": '"7", W/"8"'})
    assert put.status_code == 200
    assert put.headers["pgwarden-parameter-check"] == "accepted by PostgreSQL on node1: work_mem"
    assert ops.calls[-1] == ("put_config", ({"ttl": 40}, IfMatch(frozenset({7}))))
    bad = client.patch("/config", json={"ttl": 40}, headers={"If-Match": "seven"})
    assert bad.status_code == 400 and "If-Match" in bad.json()["error"]
    assert ops.calls[-1][0] == "put_config"  # the malformed precondition reached no operation


def test_options_on_an_operation_path_lists_its_methods(
    api: tuple[httpx.Client, fake.FakeOperations],
) -> None:
    client, ops = api
    got = client.options("/switchover")
    assert (got.status_code, got.content, got.headers["allow"]) == (200, b"", "DELETE, OPTIONS, POST")
    assert ops.calls == []


# --- writes ------------------------------------------------------------------------------------


def test_switchover_now_and_scheduled(api: tuple[httpx.Client, fake.FakeOperations]) -> None:
    client, ops = api
    now = client.post("/switchover", json={"leader": "node1", "candidate": "node2"})
    assert (now.status_code, now.json()) == (
        200,
        {"message": "switched over to node2", "new_leader": "node2"},
    )
    later = client.post(
        "/switchover", json={"candidate": "node3", "scheduled_at": "2030-01-31T02:00:00Z", "timeout": 5}
    )
    assert later.status_code == 202
    assert ops.calls == [
        ("switchover", ("node1", "node2", None, DEFAULT_OPERATION_TIMEOUT)),
        ("switchover", (None, "node3", datetime(2030, 1, 31, 2, tzinfo=UTC), 5.0)),
    ]


def test_every_write_call_reaches_its_operation(api: tuple[httpx.Client, fake.FakeOperations]) -> None:
    client, ops = api
    answers = [
        client.post("/failover", json={"candidate": "node3"}),
        client.post("/restart", headers=AS_JSON),  # no body: the type is still required
        client.post("/restart", json={"timeout": 600}),
        client.post("/reload", json={}),
        client.post(
            "/reinitialize", content=b"  ", headers={"Content-Type": "Application/JSON; charset=UTF-8"}
        ),
        client.patch("/config", json={"ttl": 20, "loop_wait": None}),
        client.put("/config", json={"ttl": 40}),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 202, 200, 200]
    assert answers[5].json() == {"ttl": 20}
    assert ops.calls == [
        ("failover", ("node3", DEFAULT_OPERATION_TIMEOUT)),
        ("restart", (DEFAULT_OPERATION_TIMEOUT,)),
        ("restart", (600.0,)),
        ("reload", ()),
        ("reinitialize", (DEFAULT_OPERATION_TIMEOUT,)),
        ("patch_config", ({"ttl": 20, "loop_wait": None},)),
        ("put_config", ({"ttl": 40},)),
    ]


def test_operation_error_becomes_its_status_and_document(
    api: tuple[httpx.Client, fake.FakeOperations],
) -> None:
    client, ops = api
    got = client.delete("/switchover", headers=AS_JSON)
    assert (got.status_code, got.json()) == (404, {"error": "no switchover is pending"})
    ops.failure = OperationError(412, "node3 is 64 MiB behind", {"lag": 67108864})
    got = client.post("/switchover", json={"candidate": "node3"})
    assert (got.status_code, got.json()) == (412, {"error": "node3 is 64 MiB behind", "lag": 67108864})
    ops.failure = OperationError(200, "a bug: an error with a success status")
    assert client.get("/cluster").status_code == 503


def test_unexpected_exception_is_503_and_the_server_stays_up(
    api: tuple[httpx.Client, fake.FakeOperations],
) -> None:
    client, ops = api
    ops.failure = RuntimeError("etcd client exploded")
    for call in (lambda: client.get("/cluster"), lambda: client.post("/restart", json={})):
        got = call()
        assert got.status_code == 503
        assert got.json() == {"error": "internal error: etcd client exploded"}
    assert client.get("/health").status_code == 200


BAD_BODIES = [
    ("POST", "/switchover", b"{", "not valid JSON"),
    ("POST", "/switchover", b"[1, 2]", "must be a JSON object, got an array"),
    ("POST", "/switchover", b"{}", "'leader'"),
    ("POST", "/switchover", b'{"candidate": "node2", "scheduled_at": "2030-01-31T02:00:00"}', "time zone"),
    ("POST", "/switchover", b'{"candidate": "node2", "scheduled_at": "tomorrow"}', "'scheduled_at'"),
    ("POST", "/switchover", b'{"candidate": "node2", "scheduled_at": 1700000000}', "'scheduled_at'"),
    ("POST", "/switchover", b'{"candidate": 2}', "'candidate'"),
    ("POST", "/switchover", b'{"candidate": ""}', "'candidate'"),
    ("POST", "/switchover", b'{"canidate": "node2"}', "'canidate'"),
    ("POST", "/switchover", b'{"candidate": "node2", "timeout": -1}', "'timeout'"),
    ("POST", "/switchover", b'{"candidate": "node2", "timeout": 0}', "'timeout'"),
    ("POST", "/switchover", b'{"candidate": "node2", "timeout": 601}', "'timeout'"),
    ("POST", "/switchover", b'{"candidate": "node2", "timeout": 1e400}', "'timeout'"),
    ("POST", "/switchover", b'{"candidate": "node2", "timeout": "ten"}', "'timeout'"),
    ("POST", "/switchover", b'{"candidate": "node2", "timeout": true}', "'timeout'"),
    ("POST", "/switchover", b'{"candidate": "node2", "timeout": NaN}', "not valid JSON"),
    ("POST", "/failover", b"{}", "'candidate'"),
    ("POST", "/failover", b'{"candidate": "node2", "leader": "node2"}', "'leader'"),
    ("POST", "/failover", b'{"candidate": "node2", "leader": 1}', "'leader'"),
    ("POST", "/failover", b'{"candidate": "node2", "scheduled_at": "2030-01-31T02:00Z"}', "'scheduled_at'"),
    ("POST", "/restart", b'{"role": "leader"}', "'role'"),
    ("POST", "/restart", b'{"role": 1}', "'role'"),
    ("POST", "/restart", b'{"postgres_version": "15"}', "'postgres_version'"),
    ("POST", "/restart", b'{"postgres_version": 16}', "'postgres_version'"),
    ("POST", "/restart", b'{"postgres_version": "16.a"}', "'postgres_version'"),
    ("POST", "/restart", b'{"restart_pending": "yes"}', "'restart_pending'"),
    ("POST", "/restart", b'{"pending": true}', "'pending'"),
    ("POST", "/restart", b'{"timeout": "30 fortnights"}', "'timeout'"),
    ("POST", "/reinitialize", b'{"force": "yes"}', "'force'"),
    ("POST", "/reinitialize", b'{"from_leader": 1}', "'from_leader'"),
    ("POST", "/reinitialize", b'{"forced": true}', "'forced'"),
    ("POST", "/restart", b'{"timeout": "soon"}', "'timeout'"),
    ("POST", "/restart", b'"restart"', "got a string"),
    ("POST", "/reload", b'{"force": true}', "'force'"),
    ("POST", "/reinitialize", b"null", "got null"),
    ("POST", "/failsafe", b"{}", "'name'"),
    ("POST", "/failsafe", b"", "empty"),
    ("POST", "/failsafe", b'{"name": "node1", "leader": "node1"}', "'leader'"),
    ("POST", "/failsafe", b'{"name": "node1", "promise_seconds": 601}', "'promise_seconds'"),
    ("POST", "/failsafe", b'{"name": "node1", "promise_seconds": "4"}', "'promise_seconds'"),
    ("POST", "/failsafe", b'{"name": "node1", "promise_seconds": true}', "'promise_seconds'"),
    ("DELETE", "/switchover", b'{"now": 1}', "'now'"),
    ("PATCH", "/config", b"", "empty"),
    ("PATCH", "/config", b"[]", "got an array"),
    ("PUT", "/config", b"\xff\xfe", "UTF-8"),
    ("PUT", "/config", b"[" * 100_000, "JSON"),
]


@pytest.mark.parametrize(("method", "path", "body", "says"), BAD_BODIES)
def test_malformed_body_is_400_naming_the_problem(
    api: tuple[httpx.Client, fake.FakeOperations], method: str, path: str, body: bytes, says: str
) -> None:
    client, ops = api
    got = client.request(method, path, content=body, headers=AS_JSON)
    assert got.status_code == 400
    _check_json(got)
    assert says in got.json()["error"]
    assert ops.calls == []


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/switchover", "DELETE, OPTIONS, POST"),
        ("POST", "/primary", "GET, HEAD, OPTIONS"),
        ("PUT", "/cluster", "GET, HEAD, OPTIONS"),
        ("DELETE", "/config", "GET, HEAD, OPTIONS, PATCH, PUT"),
        ("HEAD", "/restart", "DELETE, OPTIONS, POST"),
        ("TRACE", "/patroni", "GET, HEAD, OPTIONS"),
    ],
)
def test_wrong_method_on_a_known_path_is_405(
    api: tuple[httpx.Client, fake.FakeOperations], method: str, path: str, allow: str
) -> None:
    client, ops = api
    got = client.request(method, path)
    assert (got.status_code, got.headers["allow"]) == (405, allow)
    _check_json(got)
    assert ops.calls == []


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (None, b""),
        (None, b'{"candidate": "node2"}'),
        ("application/x-www-form-urlencoded", b"candidate=node2"),
        ("text/plain", b'{"candidate": "node2"}'),
        ("multipart/form-data; boundary=x", b"--x--"),
        ("application/jsonp", b'{"candidate": "node2"}'),
    ],
)
def test_writes_without_a_json_content_type_are_415(
    api: tuple[httpx.Client, fake.FakeOperations], content_type: str | None, body: bytes
) -> None:
    """What a browser can send cross-site without a preflight (a form, a no-cors fetch) never acts."""
    client, ops = api
    headers = {"Content-Type": content_type} if content_type else {}
    writes = (("POST", "/switchover"), ("POST", "/restart"), ("PATCH", "/config"), ("DELETE", "/switchover"))
    for method, path in writes:
        got = client.request(method, path, content=body, headers=headers)
        assert got.status_code == 415, (method, path)
        _check_json(got)
        assert "Content-Type: application/json" in got.json()["error"]
    assert ops.calls == []


def test_write_to_an_unknown_path_is_404(api: tuple[httpx.Client, fake.FakeOperations]) -> None:
    client, _ = api
    got = client.post("/promote", json={})
    assert got.status_code == 404
    _check_json(got)


# --- limits and protocol errors ----------------------------------------------------------------


def test_body_over_one_mebibyte_is_413_and_the_connection_survives(
    api: tuple[httpx.Client, fake.FakeOperations],
) -> None:
    client, ops = api
    just_fits = b"{" + b" " * (MAX_BODY - 2) + b"}"
    assert client.put("/config", content=just_fits, headers=AS_JSON).status_code == 200
    got = client.put("/config", content=just_fits + b" ", headers=AS_JSON)
    assert got.status_code == 413
    _check_json(got)
    assert client.get("/health").status_code == 200
    assert [name for name, _ in ops.calls] == ["put_config"]


def _raw(port: int, request: bytes) -> bytes:
    """Send bytes, read until the server closes (it must, after these refusals)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: 900000000\r\n\r\n", 413),
        (b"POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n", 400),
        (b"POST /reload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 411),
        (b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        (b"this is not http\r\n\r\n", 400),
    ],
)
def test_protocol_refusals_are_json_and_close_the_connection(request_bytes: bytes, status: int) -> None:
    with fake.running_api() as (url, _, ops):
        port = int(url.rsplit(":", 1)[1])
        head, _, body = _raw(port, request_bytes).partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0].split(b" ")[1] == str(status).encode()
        assert b"Content-Type: application/json" in head
        assert "error" in json.loads(body)
        assert httpx.get(f"{url}/health").status_code == 200
        assert ops.calls == []


def test_a_client_hanging_up_mid_body_costs_nothing() -> None:
    with fake.running_api() as (url, _, ops):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        assert httpx.get(f"{url}/health").status_code == 200
        assert ops.calls == []


def test_a_slow_operation_does_not_delay_health_checks() -> None:
    entered, release = threading.Event(), threading.Event()

    class SlowOperations(fake.FakeOperations):
        def switchover(self, *args: object) -> OperationResult:  # type: ignore[override]
            entered.set()
            release.wait(60)  # until the health checks below are done, however long they take
            return OperationResult(200, "done")

    with fake.running_api(operations=SlowOperations()) as (url, _, _ops):
        pending = threading.Thread(
            target=httpx.post, args=(f"{url}/switchover",), kwargs={"json": {"candidate": "n"}, "timeout": 90}
        )
        pending.start()
        try:
            assert entered.wait(30), "the switchover reached the operation"
            # Not a stopwatch (a loaded machine makes any bound flaky): the checks are answered
            # while the operation is still running, so nothing serialises them behind it.
            with httpx.Client(base_url=url, timeout=10) as client:
                for _ in range(20):
                    assert client.get("/primary").status_code == 200
            assert pending.is_alive(), "all 20 answered while the switchover was still in progress"
        finally:
            release.set()
            pending.join(30)
        assert not pending.is_alive()


# --- auth --------------------------------------------------------------------------------------


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def guarded() -> Iterator[tuple[httpx.Client, fake.FakeOperations]]:
    with (
        fake.running_api(username="admin", password="s3cret:with:colons") as (url, _, ops),
        httpx.Client(base_url=url, timeout=5) as client,
    ):
        yield client, ops


@pytest.mark.parametrize(
    "headers",
    [
        {},
        _basic("admin", "wrong"),
        _basic("root", "s3cret:with:colons"),
        _basic("admin", "s3cret"),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Bearer s3cret"},
        {"Authorization": "Basic " + base64.b64encode(b"admin").decode()},
    ],
    ids=["none", "wrong_password", "wrong_user", "password_prefix", "garbage", "bearer", "no_colon"],
)
def test_writes_without_the_right_credentials_are_401(
    guarded: tuple[httpx.Client, fake.FakeOperations], headers: dict[str, str]
) -> None:
    client, ops = guarded
    for method, path in (
        ("POST", "/reload"),
        ("POST", "/failsafe"),
        ("PATCH", "/config"),
        ("PUT", "/config"),
        ("DELETE", "/switchover"),
    ):
        got = client.request(method, path, json={}, headers=headers)
        assert got.status_code == 401, (method, path)
        assert got.headers["www-authenticate"] == 'Basic realm="pgwarden"'
        _check_json(got)
    assert ops.calls == []


def test_writes_with_the_right_credentials_pass(guarded: tuple[httpx.Client, fake.FakeOperations]) -> None:
    client, ops = guarded
    got = client.post("/reload", headers={**_basic("admin", "s3cret:with:colons"), **AS_JSON})
    assert got.status_code == 200
    assert client.post("/restart", json={}, auth=("admin", "s3cret:with:colons")).status_code == 200
    assert [name for name, _ in ops.calls] == ["reload", "restart"]


def test_reads_never_need_credentials(guarded: tuple[httpx.Client, fake.FakeOperations]) -> None:
    client, _ = guarded
    for path in ("/primary", "/patroni", "/cluster", "/history", "/config", "/metrics", "/openapi.json"):
        assert client.get(path).status_code == 200, path
        assert client.head(path).status_code == 200, path
    assert client.options("/primary").status_code == 200


# --- TLS ---------------------------------------------------------------------------------------


def test_tls_round_trip_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    trust = ssl.create_default_context(cafile=str(cert))
    with fake.running_api(certfile=str(cert), keyfile=str(key)) as (url, _, _ops):
        assert url.startswith("https://")
        with httpx.Client(base_url=url, verify=trust, timeout=5) as client:
            assert client.get("/primary").status_code == 200
            assert client.post("/reload", json={}).status_code == 200
        plain = url.replace("https://", "http://")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{plain}/primary", timeout=5)
        with pytest.raises(httpx.HTTPError):  # a client that does not trust the certificate
            httpx.get(f"{url}/primary", timeout=5)
        with httpx.Client(base_url=url, verify=trust, timeout=5) as client:
            assert client.get("/health").status_code == 200


def test_an_unreadable_certificate_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        fake.ApiServer(fake.api_settings(certfile=str(tmp_path / "missing.pem")), *_holder_and_ops())


def _holder_and_ops() -> tuple[fake.SnapshotHolder, fake.FakeOperations]:
    return fake.SnapshotHolder(fake.primary()), fake.FakeOperations()


def test_a_leader_whose_lease_ran_out_stops_answering_primary_even_from_an_old_snapshot() -> None:
    """A frozen agent, or a loop stuck in etcd requests, must not keep HAProxy routing writes to it."""
    expired = dataclasses.replace(fake.primary(), lease_deadline=time.monotonic() - 0.01)
    with fake.running_api(expired) as (url, _, _ops), httpx.Client(base_url=url, timeout=5) as client:
        assert client.get("/primary").status_code == 503
        assert client.get("/leader").status_code == 503
    with fake.running_api(fake.primary()) as (url, _, _ops), httpx.Client(base_url=url, timeout=5) as client:
        assert client.get("/primary").status_code == 200


def test_cached_health_answers_still_follow_the_lease_deadline_and_the_loop_age() -> None:
    """Answers are rendered once per snapshot, but a verdict that depends on the clock is picked
    at answer time: the same snapshot answers /primary 200, then 503 once its lease ran out, and
    /liveness 200, then 503 once the loop is late (ttl 4 s: 8 s on a standby, 4 s on a leader)."""
    lease_left = 3.0  # generous: the first requests must all come before it runs out
    snap = dataclasses.replace(
        fake.primary(), lease_deadline=time.monotonic() + lease_left, loop_at=time.monotonic() - 0.5
    )
    with fake.running_api(snap) as (url, holder, _ops), httpx.Client(base_url=url, timeout=5) as client:
        for method in ("GET", "OPTIONS", "GET", "OPTIONS"):  # twice: the second answers come from the cache
            assert client.request(method, "/primary").status_code == 200
            assert client.request(method, "/liveness").status_code == 200
        time.sleep(lease_left + 0.1)
        assert holder.get() is snap
        for method in ("GET", "OPTIONS"):
            assert client.request(method, "/primary").status_code == 503
            assert client.request(method, "/leader").status_code == 503
            # No longer leading: the liveness limit is 2 x ttl (8 s); the loop is ~3.6 s old.
            assert client.request(method, "/liveness").status_code == 200
    stale = dataclasses.replace(fake.streaming_standby(), loop_at=time.monotonic() - 6.0)
    with fake.running_api(stale) as (url, _holder, _ops), httpx.Client(base_url=url, timeout=5) as client:
        assert client.get("/liveness").status_code == 200
        time.sleep(max(0.0, stale.loop_at + 8.1 - time.monotonic()))
        assert client.get("/liveness").status_code == 503
        assert client.options("/liveness").status_code == 503


def _listening(host: str = "127.0.0.1") -> socket.socket:
    return socket.create_server((host, 0))


def test_an_address_in_use_is_waited_for_until_its_owner_exits() -> None:
    """A migration starts pgwarden, then stops Patroni: the API takes the port over at once."""
    holder = _listening()
    port = holder.getsockname()[1]
    settings = fake.api_settings(listen=fake.Address("127.0.0.1", port))
    threading.Timer(0.5, holder.close).start()
    began = time.monotonic()
    server = fake.ApiServer(settings, *_holder_and_ops(), bind_wait=10)
    try:
        waited = time.monotonic() - began
        assert 0.4 <= waited < 5, waited
        server.start()
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    finally:
        server.stop()


def test_an_address_still_in_use_after_the_wait_fails() -> None:
    holder = _listening()
    try:
        settings = fake.api_settings(listen=fake.Address("127.0.0.1", holder.getsockname()[1]))
        with pytest.raises(OSError):
            fake.ApiServer(settings, *_holder_and_ops(), bind_wait=0.3)
    finally:
        holder.close()
