"""The differential contract test: a real Patroni 4.1.5 cluster and a real pgwarden cluster, same steps.

Each cluster (3 nodes, 3-member etcd, HAProxy) is brought to the same situation by
tests/support/documents.py ``collect``: healthy, one switchover done, synchronous_mode on. Then,
for every endpoint (``/patroni``, ``/cluster``, ``/history``, ``/config``) in every role (primary,
synchronous standby, other standby), pgwarden's document must have every field Patroni's has,
with the same JSON type (pgwarden may add fields), and conform to docs/openapi.json. Then
Patroni's operation bodies (tests/support/operation_codes.py) get the same status codes from both. The live
Patroni documents are also checked against the recorded fixture (tests/fixtures/patroni/
documents.json, which the unit test tests/unit/test_patroni_documents.py uses): when Patroni's
shape moves, this says to re-record it. One cluster of each, one after the other: about 3 minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bench.patroni_cluster import FASTEST, PATRONI, PatroniCluster
from bench.pgwarden_cluster import PgwardenCluster
from tests.support.cluster import cluster_network
from tests.support.documents import ENDPOINTS, ROLES, collect, load_fixture, missing_fields
from tests.support.operation_codes import answers
from tests.support.schema import problems

pytestmark = pytest.mark.skipif(not PATRONI.exists(), reason="Patroni is not installed: run `make deps`")

SCHEMAS = {"patroni": "Status", "cluster": "Cluster", "config": "ConfigDocument"}
# Differences on purpose (docs/rest-api.md#patroni-compatibility says each): a problem line of
# missing_fields starting with one of these is expected. Everything else must match.
ON_PURPOSE = {
    # pgwarden's timing takes fractions of a second (retry_timeout 1.5 s by default): a whole
    # number of seconds is shown as an integer, as Patroni does, a fraction as a number.
    f"/config .{key}: Patroni has integer": "fractional seconds"
    for key in ("ttl", "loop_wait", "retry_timeout", "primary_start_timeout")
}


def _shape(endpoint: str, document: Any) -> Any:
    """The document without the values a user chose (PostgreSQL parameters: names, not shape)."""
    if endpoint == "config" and isinstance(document.get("postgresql"), dict):
        nested = {k: v for k, v in document["postgresql"].items() if k != "parameters"}
        return {**document, "postgresql": nested}
    return document


@pytest.fixture(scope="module")
def patroni() -> Iterator[dict[str, dict[str, Any]]]:
    cluster = PatroniCluster(dict(FASTEST), "Patroni", network=cluster_network())
    with cluster:
        documents = collect(cluster)
        yield {**documents, "operations": answers(cluster, documents)}


@pytest.fixture(scope="module")
def pgwarden(patroni: dict[str, dict[str, Any]]) -> Iterator[dict[str, dict[str, Any]]]:
    # After Patroni's cluster stopped: one cluster at a time on this machine.
    with PgwardenCluster() as cluster:
        documents = collect(cluster)
        yield {**documents, "operations": answers(cluster, documents)}


@pytest.mark.parametrize("role", ROLES)
def test_pgwarden_has_every_field_patroni_has_with_its_type(
    patroni: dict[str, dict[str, Any]], pgwarden: dict[str, dict[str, Any]], role: str
) -> None:
    found = []
    for endpoint in ENDPOINTS:
        theirs, ours = patroni[role][endpoint], pgwarden[role][endpoint]
        found += [f"/{endpoint} {problem}" for problem in missing_fields(_shape(endpoint, theirs), ours)]
    found = [line for line in found if not line.startswith(tuple(ON_PURPOSE))]
    assert found == [], f"{role}: pgwarden's documents differ from Patroni's:\n" + "\n".join(found)


@pytest.mark.parametrize("role", ROLES)
def test_pgwarden_answers_conform_to_the_published_schema(
    pgwarden: dict[str, dict[str, Any]], role: str
) -> None:
    documents = pgwarden[role]
    found = [f"/{e} {p}" for e, component in SCHEMAS.items() for p in problems(component, documents[e])]
    found += [f"/history {p}" for entry in documents["history"] for p in problems("HistoryEntry", entry)]
    assert found == [], "\n".join(found)


def test_roles_and_history_mean_what_patronis_do(
    patroni: dict[str, dict[str, Any]], pgwarden: dict[str, dict[str, Any]]
) -> None:
    def roles(documents: dict[str, Any]) -> list[str]:
        return sorted(m["role"] for m in documents["primary"]["cluster"]["members"])

    assert roles(pgwarden) == roles(patroni) == ["leader", "replica", "sync_standby"]
    for documents in (patroni, pgwarden):
        primary = documents["primary"]["patroni"]
        assert primary["role"] == "primary"
        assert documents["sync_standby"]["patroni"]["sync_standby"] is True
        # The switchover's entry: the new timeline's number minus one, the new leader's name.
        [entry] = [e for e in documents["primary"]["history"] if e[0] == primary["timeline"] - 1]
        assert entry[4] == primary["patroni"]["name"]
        rows = {r["sync_state"] for r in primary["replication"]}
        assert rows == {"sync", "async"}


def test_the_recorded_fixture_still_is_patronis_shape(patroni: dict[str, dict[str, Any]]) -> None:
    """Every field of the fixture is in the live Patroni's documents (and the other way round):
    otherwise re-record it (tests/support/documents.py says how)."""
    recorded = load_fixture()
    for role in ROLES:
        for endpoint in ENDPOINTS:
            live, fixture = (
                _shape(endpoint, patroni[role][endpoint]),
                _shape(endpoint, recorded[role][endpoint]),
            )
            assert missing_fields(fixture, live) == missing_fields(live, fixture) == [], (role, endpoint)


def test_operation_bodies_get_patronis_status_codes(
    patroni: dict[str, Any], pgwarden: dict[str, Any]
) -> None:
    """Each of Patroni's bodies (a condition not holding, a malformed field, /failover naming the
    leader) gets the status code Patroni answers; a condition not holding, Patroni's words too."""
    theirs, ours = patroni["operations"], pgwarden["operations"]
    differ = {case: (theirs[case], ours[case]) for case in theirs if theirs[case][0] != ours[case][0]}
    assert differ == {}, "\n".join(f"{c}: Patroni {p}, pgwarden {o}" for c, (p, o) in differ.items())
    for case, (status, sentence) in theirs.items():
        if status == 503:
            assert ours[case][1] == sentence == "restart conditions are not satisfied", case
