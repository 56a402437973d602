"""Random requests drawn from the OpenAPI document (and plain garbage) never break the REST API.

Whatever the path, method, body, credentials or operation failure: the answer is a well-formed
HTTP response, never a 5xx other than 503, never a dropped connection, and ``/health`` still
answers afterwards.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from pgwarden.api.contract import OperationError
from pgwarden.api.openapi import DOCUMENT
from tests.support import api_fakes as fake

METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "TRACE")
USER, PASSWORD = "admin", "secret"
GOOD_AUTH = "Basic YWRtaW46c2VjcmV0"  # admin:secret
JSON_TYPE = "application/json"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = DOCUMENT
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values near the schema: valid ones, and the edges just past it (wrong time zones, timeouts)."""
    schema = _resolve(schema)
    kind = schema.get("type")
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | json_values
    if kind == "object" and "properties" in schema:
        fields = {name: from_schema(sub) for name, sub in schema["properties"].items()}
        return st.fixed_dictionaries({}, optional=fields) | st.dictionaries(st.text(max_size=8), json_values)
    if kind == "string" and schema.get("format") == "date-time":
        return st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()) | st.text()
    if kind == "string":
        return st.text(max_size=30) | st.sampled_from(["node1", "node2", "node3"])
    if kind in ("number", "integer"):
        return st.integers(-10, 1000) | st.floats(allow_nan=False) | st.sampled_from([0, 600, 600.0001])
    return json_values


OPERATIONS = [
    (path, method.upper(), spec)
    for path, item in DOCUMENT["paths"].items()
    for method, spec in item.items()
    if method in ("get", "head", "options", "post", "put", "patch", "delete")
]

WRITES = [(path, method, spec) for path, method, spec in OPERATIONS if "requestBody" in spec]


def _body(spec: dict[str, Any]) -> st.SearchStrategy[bytes]:
    content = spec.get("requestBody", {}).get("content", {}).get("application/json")
    drawn = from_schema(content["schema"]) if content else json_values
    as_json = drawn.map(lambda value: json.dumps(value).encode())
    return as_json | st.just(b"") | st.binary(max_size=64) | st.sampled_from([b"{", b"[]", b"null", b"NaN"])


queries = st.sampled_from(
    ["", "?lag=16MB", "?lag=0", "?lag=-1", "?lag=huge", "?replication_state=streaming"]
) | (st.text(max_size=20).map(lambda text: "?" + quote(text, safe="=&")))


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, bytes]:
    if draw(st.booleans()):
        path, method, spec = draw(st.sampled_from(OPERATIONS) | st.sampled_from(WRITES))
        method = draw(st.sampled_from([method] * 8 + list(METHODS)))
        body = draw(_body(spec)) if method not in ("GET", "HEAD", "OPTIONS") else b""
    else:  # garbage: any path, any method, any bytes
        path = "/" + quote(draw(st.text(max_size=30)), safe="/")
        method = draw(st.sampled_from(METHODS))
        body = draw(st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode()))
    return method, path + draw(queries), body


failures = st.one_of(
    st.none(),
    st.none(),  # operations succeed half the time, so bodies that pass reach them
    st.builds(
        OperationError,
        st.sampled_from([400, 404, 409, 412, 503]),
        st.text(max_size=30),
        st.none() | st.dictionaries(st.sampled_from(["lag", "state"]), st.integers()),
    ),
    st.builds(RuntimeError, st.text(max_size=30)),
)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, fake.FakeOperations]]:
    ops = fake.FakeOperations()
    with fake.running_api(fake.primary(), ops, username=USER, password=PASSWORD) as (url, _, _ops):
        yield int(url.rsplit(":", 1)[1]), ops


@settings(max_examples=200, deadline=None)
@given(
    request=requests(),
    authorization=st.sampled_from([None, GOOD_AUTH, GOOD_AUTH, GOOD_AUTH, "Basic d3Jvbmc6d3Jvbmc="]),
    content_type=st.sampled_from(
        [None, JSON_TYPE, JSON_TYPE, JSON_TYPE, "text/plain", "application/x-www-form-urlencoded"]
    ),
    failure=failures,
)
def test_any_request_gets_a_sound_answer(
    server: tuple[int, fake.FakeOperations],
    request: tuple[str, str, bytes],
    authorization: str | None,
    content_type: str | None,
    failure: BaseException | None,
) -> None:
    port, ops = server
    ops.failure = failure
    method, target, body = request
    headers = {"Authorization": authorization} if authorization else {}
    if content_type:
        headers["Content-Type"] = content_type
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, target, body=body or None, headers=headers)
        response = connection.getresponse()
        content = response.read()
        event(f"status {response.status}")
        assert response.status < 500 or response.status == 503, (
            method,
            target,
            body,
            response.status,
            content,
        )
        if method in ("HEAD", "OPTIONS"):
            assert content == b""
        elif response.getheader("Content-Type") == "application/json":
            document = json.loads(content)
            if response.status >= 400:  # an error sentence, or a failed health check's status
                assert isinstance(document.get("error", document.get("name")), str), document
        else:
            # Only /metrics (Prometheus text) and the web view's page and assets are not JSON.
            assert target.strip("/").startswith(("metrics", "ui")) and response.status == 200
        connection.request("GET", "/health")
        health = connection.getresponse()
        health.read()
        assert health.status == 200
    finally:
        connection.close()
        ops.failure = None
