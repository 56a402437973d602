"""/config end to end without sockets: RestApi -> AgentOperations -> ClusterStore over an in-memory etcd.

Every refused write answers 400 naming the key and leaves etcd untouched (same revision, same
value); PostgreSQL's verdict comes from a stand-in checker with PostgreSQL's own messages (the
real one runs the node's binaries: tests/integration/test_config_refusals.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from pgwarden.agent.last_good import LastGood
from pgwarden.agent.requests import RequestBox
from pgwarden.agent.snapshot import Snapshot, SnapshotHolder
from pgwarden.api.contract import PARAMETER_CHECK_HEADER
from pgwarden.api.operations import AgentOperations
from pgwarden.api.routes import Request, Response, RestApi
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.memory import MemoryStore
from pgwarden.model import DynamicConfig
from pgwarden.model.parameters import OWNED, ParamValue
from pgwarden.postgres.parameter_check import ParameterCheck
from tests.support import api_fakes as fake
from tests.support.store_contract import VirtualClock

STORED = DynamicConfig(ttl=30, loop_wait=10, retry_timeout=10, parameters={"work_mem": "4MB"})


def postgres_verdict(parameters: Mapping[str, ParamValue]) -> ParameterCheck:
    """What PostgreSQL 15 answers for these values (messages as its trial run prints them)."""
    problems: dict[str, str] = {}
    for name, value in parameters.items():
        if name == "no_such_setting":
            problems[name] = f'unrecognized configuration parameter "{name}"'
        elif value == "lots":
            problems[name] = f'invalid value for parameter "{name}": "{value}"'
        elif name == "max_connections" and isinstance(value, int) and value < 1:
            problems[name] = (
                f'{value} is outside the valid range for parameter "max_connections" (1 .. 262143)'
            )
    return ParameterCheck(problems)


class LiveSnapshots(SnapshotHolder):
    """The agent's snapshot as its loop keeps it: the cluster view read from the store at once (the
    real loop reads it again at most loop_wait later, at once on a watch event)."""

    def __init__(self, base: Snapshot, cluster: ClusterStore) -> None:
        super().__init__(base)
        self._cluster = cluster
        self._kept = LastGood(base.config.bootstrap)  # as the observer: the last valid values in force

    def get(self) -> Snapshot:
        view, snapshot = self._cluster.read_with_leases()
        config = snapshot.get(self._cluster.keys.config)
        view = self._kept.apply(view, config is not None, config.mod_revision if config else 0)
        return replace(super().get(), view=view)


@dataclass
class ConfigApi:
    store: MemoryStore = field(default_factory=lambda: MemoryStore(VirtualClock()))
    checked: list[dict[str, ParamValue]] = field(default_factory=list)
    skipped: str | None = None

    def __post_init__(self) -> None:
        self.cluster = ClusterStore(self.store, "demo")
        assert self.cluster.write_config(STORED, 0)
        snapshots = LiveSnapshots(fake.primary(), self.cluster)
        operations = AgentOperations(self.cluster, snapshots, RequestBox(), check_parameters=self.check)
        self.api = RestApi(fake.api_settings(), snapshots, operations)

    def check(self, parameters: Mapping[str, ParamValue]) -> ParameterCheck:
        self.checked.append(dict(parameters))
        if self.skipped is not None:
            return ParameterCheck(skipped=self.skipped)
        return postgres_verdict(parameters)

    def call(self, method: str, body: Any = None, if_match: str | None = None) -> Response:
        raw = b"" if body is None else json.dumps(body).encode()
        return self.api.answer(Request(method, "/config", raw, None, "application/json", if_match))

    def stored(self) -> tuple[DynamicConfig | None, int]:
        return self.cluster.read_config()


def document(response: Response) -> Any:
    return json.loads(response.body)


def header(response: Response, name: str) -> str | None:
    return next((value for key, value in response.headers if key.lower() == name.lower()), None)


@pytest.fixture
def config_api() -> ConfigApi:
    return ConfigApi()


def params(name: str, value: object) -> dict[str, Any]:
    return {"parameters": {name: value}}


PG = "parameters"  # the key the 400 names for rules across several parameters
# Each refused change: (case, PATCH body, the key the 400 names, words of the reason).
REFUSALS: list[tuple[str, dict[str, Any], str, str]] = [
    ("include", params("include", "/etc/passwd"), "parameters.include", "includes another file"),
    ("include_dir", params("include_dir", "conf.d"), "parameters.include_dir", "includes another"),
    ("include_if_exists", params("Include_If_Exists", "x"), "parameters.Include_If_Exists", "directive"),
    *[(f"owned {n}", params(n, "x"), f"parameters.{n}", "is set by pgwarden") for n in sorted(OWNED)],
    ("owned in another case", params("PORT", 5433), "parameters.PORT", "is set by pgwarden"),
    ("bad name", params("work mem", "8MB"), "parameters.work mem", "not a PostgreSQL parameter name"),
    ("two dots", params("a.b.c", 1), "parameters.a.b.c", "not a PostgreSQL parameter name"),
    ("newline", params("work_mem", "8MB\nfsync = off"), "parameters.work_mem", "line break"),
    ("carriage return", params("work_mem", "8MB\r"), "parameters.work_mem", "carriage return"),
    ("NUL", params("application_name", "a\u0000b"), "parameters.application_name", "NUL"),
    ("wal_level minimal", params("wal_level", "minimal"), PG, "cannot stream WAL"),
    ("same name twice", params("Work_Mem", "8MB"), PG, "name the same setting"),
    ("loop_wait 1e-6", {"loop_wait": 1e-6}, "loop_wait", "below the lowest accepted value, 0.1 s"),
    ("ttl 1e12", {"ttl": 1e12}, "ttl", "above the highest accepted value, 600 s"),
    ("negative retry_timeout", {"retry_timeout": -1}, "retry_timeout", "below the lowest"),
    ("absurd retry_timeout", {"retry_timeout": 1e9}, "retry_timeout", "above the highest"),
    ("primary_start_timeout 0", {"primary_start_timeout": 0}, "primary_start_timeout", "below the lowest"),
    ("member_slots_ttl 1 s", {"member_slots_ttl": 1}, "member_slots_ttl", "lose its replication slot"),
    ("member_slots_ttl a year", {"member_slots_ttl": 3.2e7}, "member_slots_ttl", "above the highest"),
    ("fallback after -1", {"synchronous_fallback_after": -1}, "synchronous_fallback_after", "below"),
    ("fallback after 1 day", {"synchronous_fallback_after": 86400}, "synchronous_fallback_after", "block"),
    ("lag 2 TiB", {"maximum_lag_on_failover": "2048GB"}, "maximum_lag_on_failover", "above the highest"),
    ("pg: bad value", params("work_mem", "lots"), "parameters.work_mem", 'value for parameter "work_mem"'),
    ("pg: out of range", params("max_connections", -5), "parameters.max_connections", "outside the valid"),
    ("pg: unknown name", params("no_such_setting", 1), "parameters.no_such_setting", "SHOW ALL"),
    ("slot WAL size", {"max_slot_wal_keep_size": "lots"}, "max_slot_wal_keep_size", "PostgreSQL size"),
]


@pytest.mark.parametrize(("case", "patch", "key", "words"), REFUSALS, ids=[r[0] for r in REFUSALS])
@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_a_refused_change_is_400_naming_the_key_and_etcd_is_untouched(
    config_api: ConfigApi, method: str, case: str, patch: dict[str, Any], key: str, words: str
) -> None:
    before = config_api.stored()
    body = patch if method == "PATCH" else {**json.loads(config_api.call("GET").body), **patch}
    if method == "PUT" and "parameters" in patch:  # GET /config nests them the Patroni way
        del body["parameters"]
        body["postgresql"]["parameters"] = {**STORED.parameters, **patch["parameters"]}
    answer = config_api.call(method, body)
    assert answer.status == 400, (case, answer.body)
    error = document(answer)["error"]
    assert f"request body: {key}: " in error, error
    assert words in error and "Fix: " in error, error
    assert config_api.stored() == before


def test_postgresql_refusals_list_every_refused_key_for_scripts(config_api: ConfigApi) -> None:
    answer = config_api.call("PATCH", {"parameters": {"work_mem": "lots", "max_connections": 0}})
    assert answer.status == 400
    assert document(answer)["refused"] == {
        "parameters.work_mem": 'invalid value for parameter "work_mem": "lots"',
        "parameters.max_connections": (
            '0 is outside the valid range for parameter "max_connections" (1 .. 262143)'
        ),
    }


def test_only_the_parameters_that_change_are_asked_about(config_api: ConfigApi) -> None:
    assert config_api.call("PATCH", {"pause": True}).status == 200
    assert config_api.checked == []  # pause works whatever PostgreSQL would say
    ok = config_api.call("PATCH", {"parameters": {"shared_buffers": "256MB"}})
    assert ok.status == 200
    assert config_api.checked == [{"shared_buffers": "256MB"}]
    assert header(ok, PARAMETER_CHECK_HEADER) == "accepted by PostgreSQL on node1: shared_buffers"


def test_a_check_that_cannot_run_says_so_and_does_not_refuse(config_api: ConfigApi) -> None:
    config_api.skipped = "postgres could not be started: no such file"
    answer = config_api.call("PATCH", {"parameters": {"work_mem": "16MB"}})
    assert answer.status == 200
    assert (
        header(answer, PARAMETER_CHECK_HEADER)
        == "skipped on node1: postgres could not be started: no such file"
    )
    stored = config_api.stored()[0]
    assert stored is not None and stored.parameters["work_mem"] == "16MB"


def test_get_carries_the_revision_as_etag_and_put_with_it_succeeds(config_api: ConfigApi) -> None:
    got = config_api.call("GET")
    revision = config_api.stored()[1]
    assert header(got, "ETag") == f'"{revision}"'
    put = config_api.call("PUT", {**document(got), "ttl": 40}, if_match=f'"{revision}"')
    assert put.status == 200, put.body
    assert config_api.stored()[0].ttl == 40  # type: ignore[union-attr]


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_if_match_on_an_older_revision_is_412_and_writes_nothing(config_api: ConfigApi, method: str) -> None:
    old = header(config_api.call("GET"), "ETag")
    assert config_api.call("PATCH", {"ttl": 40}).status == 200  # someone else's edit
    before = config_api.stored()
    answer = config_api.call(method, {"ttl": 50}, if_match=old)
    assert answer.status == 412
    assert "someone changed it since you read it" in document(answer)["error"]
    assert document(answer)["revision"] == before[1]
    assert config_api.stored() == before


@pytest.mark.parametrize(
    ("if_match", "status"), [("*", 200), ('W/"1", "999999"', 412), ("banana", 400), ('"-1"', 400)]
)
def test_if_match_forms(config_api: ConfigApi, if_match: str, status: int) -> None:
    assert config_api.call("PATCH", {"ttl": 40}, if_match=if_match).status == status


def test_a_stored_config_this_version_refuses_can_be_replaced_with_put(config_api: ConfigApi) -> None:
    """An out-of-bounds value written to etcd directly: PATCH has nothing to merge into and says
    so with the revision; PUT with If-Match on that revision (GET's ETag) repairs it."""
    key = config_api.cluster.keys.config
    config_api.store.put(key, json.dumps({"ttl": 1e12}))
    revision = config_api.stored()[1]
    assert header(config_api.call("GET"), "ETag") == f'"{revision}"'
    patched = config_api.call("PATCH", {"ttl": 30})
    assert patched.status == 409 and document(patched)["revision"] == revision
    assert "PUT /config" in document(patched)["error"]
    fixed = config_api.call(
        "PUT", {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}, if_match=f'"{revision}"'
    )
    assert fixed.status == 200, fixed.body
    assert config_api.stored()[0] == DynamicConfig(ttl=30, loop_wait=10, retry_timeout=10)
