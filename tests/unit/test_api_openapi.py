"""The OpenAPI document and docs/rest-api.md describe exactly the routes and metrics the server has."""

from __future__ import annotations

import re
from pathlib import Path

from pgwarden.agent.snapshot import SnapshotHolder
from pgwarden.api import openapi
from pgwarden.api.metrics import METRICS
from pgwarden.api.routes import RestApi
from tests.support import api_fakes as fake

DOCS = Path(__file__).resolve().parents[2] / "docs"
WRITE = {"post", "put", "patch", "delete"}


def _routes() -> dict[str, frozenset[str]]:
    return RestApi(fake.api_settings(), SnapshotHolder(fake.primary()), fake.FakeOperations()).routes


def test_openapi_json_is_fresh() -> None:
    assert (DOCS / "openapi.json").read_text() == openapi.render(), (
        "docs/openapi.json is stale: run `.venv/bin/python -m pgwarden.api.openapi > docs/openapi.json`"
    )


def test_every_route_and_method_is_described_and_nothing_else() -> None:
    described = {
        path: frozenset(m.upper() for m in item if m in {"get", *WRITE})
        for path, item in openapi.DOCUMENT["paths"].items()
    }
    assert described == _routes()


def test_write_calls_declare_auth_and_their_error_answers() -> None:
    for path, item in openapi.DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method in WRITE:
                assert operation["security"] == [{"basicAuth": []}], (method, path)
                assert {"400", "401", "503"} <= set(operation["responses"]), (method, path)


def test_every_ref_resolves() -> None:
    text = openapi.render()
    for ref in set(re.findall(r'"\$ref": "#/([^"]+)"', text)):
        node = openapi.DOCUMENT
        for part in ref.split("/"):
            assert part in node, f"dangling $ref #/{ref}"
            node = node[part]


def test_reference_doc_names_every_path_and_metric() -> None:
    text = (DOCS / "rest-api.md").read_text()
    missing = [
        path for path in _routes() if path != "/" and f"`{path}" not in text and f"{path}`" not in text
    ]
    missing += [name for name in METRICS if f"`{name}`" not in text]
    assert not missing, f"docs/rest-api.md does not mention: {missing}"


def test_operation_ids_are_unique() -> None:
    ids = [
        operation["operationId"]
        for item in openapi.DOCUMENT["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    ]
    assert len(ids) == len(set(ids))
