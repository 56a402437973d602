"""Talking to a real stack's REST API in tests: node URLs, credentials, and fuzz requests that never act.

The request strategies draw from the served OpenAPI document but only ever produce calls the API
must refuse or answer without changing anything (reads, unauthenticated writes, authenticated
writes with a malformed body, writes to paths that take none), so a fuzz can run against a live
cluster without restarting, promoting or reconfiguring it.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import yaml
from hypothesis import strategies as st

from pgwarden.api.openapi import DOCUMENT
from pgwarden.local.stack import Stack
from tests.support.cluster import wait_for
from tests.unit.test_api_fuzz import from_schema, json_values, queries

READS = ("GET", "HEAD", "OPTIONS")
WRITES = ("POST", "PUT", "PATCH", "DELETE")
# Every call that can change something: (endpoint without slashes, method).
WRITE_ROUTES = frozenset(
    (path.strip("/"), method.upper())
    for path, item in DOCUMENT["paths"].items()
    for method in item
    if method.upper() in WRITES
)
DOCUMENTED_PATHS = tuple(DOCUMENT["paths"])
# Values the dynamic config can never accept for ttl, so a config write carrying one is refused whole.
BAD_TTLS = ("soon", -1, 0, [1], {"seconds": 30})


def node_index(name: str) -> int:
    return int(name.removeprefix("node")) - 1


def api_url(stack: Stack, name: str) -> str:
    return stack.spec.api_url(node_index(name))


def credentials(stack: Stack) -> tuple[str, str]:
    creds = stack.describe().get("api_auth")
    assert creds, "the test stack runs with API auth"
    return creds["username"], creds["password"]


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def call(
    stack: Stack,
    name: str,
    method: str,
    path: str,
    *,
    body: Any = None,
    content: bytes | None = None,
    auth: bool = True,
    timeout: float = 30,
    content_type: str | None = "application/json",
) -> httpx.Response:
    """One request to ``name``'s API; ``body`` goes as JSON, ``content`` as raw bytes labelled
    ``content_type`` (None: no Content-Type header)."""
    headers = {"Content-Type": content_type} if content is not None and content_type else {}
    return httpx.request(
        method,
        api_url(stack, name) + path,
        json=body,
        content=content,
        headers=headers,
        auth=credentials(stack) if auth else None,
        timeout=timeout,
        verify=stack.api_verify(),
    )


def code(stack: Stack, name: str, path: str, method: str = "GET") -> int:
    return call(stack, name, method, path, auth=False, timeout=10).status_code


def status(stack: Stack, name: str) -> dict[str, Any]:
    """``GET /patroni`` of ``name``."""
    reply = call(stack, name, "GET", "/patroni", auth=False, timeout=10)
    assert reply.status_code == 200, reply.text
    document: dict[str, Any] = reply.json()
    return document


def assert_verdicts(stack: Stack, name: str, ok: list[str], failing: list[str]) -> None:
    """GET answers 200 on ``ok`` and 503 on ``failing``, with ``name``'s status document; HEAD and
    OPTIONS answer the same codes with no body (HAProxy's checks)."""
    expected = {**dict.fromkeys(ok, 200), **dict.fromkeys(failing, 503)}
    got = {}
    for path, wanted in expected.items():
        reply = call(stack, name, "GET", path, auth=False, timeout=10)
        got[path] = reply.status_code
        if reply.status_code == wanted:
            assert reply.json()["name"] == name, (path, reply.text)
        for method in ("HEAD", "OPTIONS"):
            bare = call(stack, name, method, path, auth=False, timeout=10)
            assert (bare.status_code, bare.content) == (wanted, b""), (method, path, bare.status_code)
    assert got == expected, f"{name}: {status(stack, name)['reason']}"


def endpoint_of(target: str) -> str:
    """The route a request target reaches, read exactly as ``api/routes.py`` reads it."""
    return target.partition("#")[0].partition("?")[0].strip("/")


def _not_a_json_object(raw: bytes) -> bool:
    """True when the API's body parser is sure to refuse ``raw`` (blank bodies are accepted)."""
    if not raw.strip():
        return False
    try:
        return not isinstance(json.loads(raw.decode("utf-8")), dict)
    except Exception:  # not UTF-8, not JSON, nested too deeply: all refused with 400
        return True


not_objects = st.binary(min_size=1, max_size=64).filter(_not_a_json_object) | (
    st.one_of(
        st.lists(json_values, max_size=3), st.integers(), st.text(max_size=10), st.none(), st.booleans()
    )
    .map(lambda value: json.dumps(value).encode())
    .filter(_not_a_json_object)
)


def _request_schema(path: str, method: str) -> dict[str, Any] | None:
    spec = DOCUMENT["paths"][path][method.lower()]
    content = spec.get("requestBody", {}).get("content", {}).get("application/json")
    return content["schema"] if content else None


def _allowed_fields(schema: dict[str, Any] | None) -> set[str]:
    if schema is None:
        return set()
    while "$ref" in schema:
        node: Any = DOCUMENT
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return set(schema.get("properties", {}))


@st.composite
def malformed_body(draw: st.DrawFn, path: str, method: str) -> bytes:
    """A body ``method path`` must refuse with 400 before it acts."""
    schema = _request_schema(path, method)
    if draw(st.booleans()):
        return draw(not_objects)
    if path == "/config":  # merged or replaced whole: one setting that cannot validate sinks it all
        extra = draw(st.dictionaries(st.text(max_size=12), json_values, max_size=3))
        return json.dumps({**extra, "ttl": draw(st.sampled_from(BAD_TTLS))}).encode()
    # Every operation's parser refuses an unknown field before it reads the others.
    drawn = draw(from_schema(schema)) if schema is not None else {}
    known = _allowed_fields(schema)
    unknown = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in known))
    document = {**drawn, unknown: draw(json_values)} if isinstance(drawn, dict) else {unknown: drawn}
    return json.dumps(document).encode()


garbage_paths = st.text(max_size=24).map(lambda text: "/" + quote(text, safe="/"))
paths = st.sampled_from(DOCUMENTED_PATHS) | garbage_paths
any_bodies = st.just(b"") | st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode())


# Stands for the stack's real credentials, which exist only once the cluster runs.
GOOD_CREDENTIALS = "<good credentials>"
WRONG_CREDENTIALS = (None, basic("pgwarden", "wrong"), basic("intruder", ""), "Bearer abc", "Basic !!!")


@st.composite
def harmless_requests(draw: st.DrawFn) -> tuple[str, str, bytes, str | None]:
    """``(method, target, body, authorization)`` that reads, or writes only to be refused.

    ``authorization`` is a header value, None, or ``GOOD_CREDENTIALS`` for the caller to fill in.
    """
    good = GOOD_CREDENTIALS
    wrong = st.sampled_from(WRONG_CREDENTIALS)
    kind = draw(st.sampled_from(["read", "read", "unauthenticated", "malformed", "no_such_write"]))
    if kind == "read":
        method = draw(st.sampled_from([*READS, "TRACE"]))
        return method, draw(paths) + draw(queries), b"", draw(wrong | st.just(good))
    if kind == "unauthenticated":  # any write at all, well-formed or not: 401 before anything
        if draw(st.booleans()):
            endpoint, method = draw(st.sampled_from(sorted(WRITE_ROUTES)))
            schema = _request_schema(f"/{endpoint}", method)
            well_formed = from_schema(schema).map(lambda v: json.dumps(v).encode()) if schema else any_bodies
            return method, f"/{endpoint}", draw(well_formed), draw(wrong)
        path = draw(paths)
        return draw(st.sampled_from(WRITES)), path + draw(queries), draw(any_bodies), draw(wrong)
    if kind == "malformed":
        endpoint, method = draw(st.sampled_from(sorted(WRITE_ROUTES)))
        return method, f"/{endpoint}", draw(malformed_body(f"/{endpoint}", method)), good
    method = draw(st.sampled_from(WRITES))
    target = draw(paths) + draw(queries)
    if (endpoint_of(target), method) in WRITE_ROUTES:  # would reach a real operation: make it a read
        method = "GET"
    return method, target, draw(any_bodies), good


def write_tags(stack: Stack, name: str, tags: dict[str, Any]) -> int:
    """Rewrite the node's YAML with ``tags`` (as an operator edits it); the node's index."""
    i = node_index(name)
    path: Path = stack.spec.config_path(i)
    document = yaml.safe_load(path.read_text())
    document["tags"] = tags
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    os.chmod(path, 0o600)
    return i


def retag(stack: Stack, name: str, tags: dict[str, Any], settle: float = 120) -> None:
    """Rewrite the node's YAML with ``tags`` and restart its agent, which adopts the running PostgreSQL."""
    i = write_tags(stack, name, tags)
    stack.kill_agent(i)
    stack.start_agent(i)

    def adopted() -> bool:
        try:
            now = status(stack, name)
        except (httpx.HTTPError, AssertionError):
            return False
        return now["tags"] == {**now["tags"], **tags} and now.get("replication_state") == "streaming"

    wait_for(adopted, settle, f"{name} back with tags {tags}")
