"""The documents pgwarden renders, against Patroni 4.1.5's recorded ones and the published schema.

The situation is the one tests/support/documents.py puts both real clusters in (one switchover
done, synchronous_mode on): a primary, its synchronous standby and another standby. Each
document rendered from snapshots built that way must have every field Patroni's has, with its
type (pgwarden may add fields), and conform to docs/openapi.json. The same comparison runs
against a real Patroni cluster and a real pgwarden cluster in
tests/integration/test_patroni_documents.py; the fixture is re-recorded as
tests/support/documents.py says.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pgwarden.agent.snapshot import Snapshot
from pgwarden.config import ConfigError, merge_patch, parse_dynamic_config
from pgwarden.config.dynamic import normalize_patch
from pgwarden.documents.render import (
    cluster_document,
    config_document,
    history_entries,
    history_objects,
    member_document,
)
from pgwarden.documents.status import status_document
from pgwarden.model import DynamicConfig, Lsn, SyncMode
from pgwarden.model.cluster import SyncFallback
from tests.support import api_fakes as fake
from tests.support import builders as b
from tests.support.documents import ENDPOINTS, ROLES, load_fixture, missing_fields
from tests.support.schema import problems

SCHEMAS = {"patroni": "Status", "cluster": "Cluster", "config": "ConfigDocument"}
# Values a user chose (PostgreSQL parameters): their names are not a document's shape.
OPAQUE = ("config.postgresql.parameters",)


def _view() -> Any:
    at = Lsn.parse("0/4000258")
    members = [
        b.primary_member("node1", lsn="0/4000258", timeline=2),
        replace(b.member("node2", lsn=at, timeline=2), receive_lsn=at, replay_lsn=at, streaming=True),
        replace(b.member("node3", lsn=at, timeline=2), receive_lsn=at, replay_lsn=at, streaming=True),
    ]
    return b.view(
        members=members,
        config=DynamicConfig(
            ttl=20.0,  # floats, as the config parser makes them
            loop_wait=1.0,
            retry_timeout=3.0,
            synchronous_mode=SyncMode.ON,
            parameters={"max_connections": 50},
        ),
        status=b.status(lsn="0/4000258", timeline=2),
        sync=b.sync_set("node2"),
        history=[b.fork(2, "0/4000060", "node1")],
    )


def _snapshots() -> dict[str, Snapshot]:
    view = _view()
    primary = replace(
        b.primary_local("0/4000258"),
        timeline=2,
        replication={"node2": Lsn.parse("0/4000258"), "node3": Lsn.parse("0/4000258")},
        server_version=150018,
        started_at=1_800_000_000.0,
    )
    standby = replace(
        b.standby_local("0/4000258", "0/4000258"),
        timeline=2,
        streaming_from="127.0.0.1:5433",
        server_version=150018,
        started_at=1_800_000_000.0,
        replayed_at=1_800_000_100.0,
    )
    seen = {"store_seen_at": 1_800_000_200.0}
    return {
        "primary": replace(fake.snapshot("node1", primary, view), **seen),
        "sync_standby": replace(fake.snapshot("node2", standby, view), **seen),
        "replica": replace(fake.snapshot("node3", standby, view), **seen),
    }


def _documents(snap: Snapshot) -> dict[str, Any]:
    return {
        "patroni": status_document(snap),
        "cluster": cluster_document(snap.view),
        "history": history_entries(snap.view),
        "config": config_document(snap.view.config),
    }


def _without_opaque(endpoint: str, document: Any) -> Any:
    if endpoint == "config":
        return {
            **document,
            "postgresql": {k: v for k, v in document["postgresql"].items() if k != "parameters"},
        }
    return document


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_patroni_field_is_there_with_its_type(role: str, endpoint: str) -> None:
    theirs = _without_opaque(endpoint, load_fixture()[role][endpoint])
    ours = _without_opaque(endpoint, _documents(_snapshots()[role])[endpoint])
    assert missing_fields(theirs, ours) == [], f"{role} {endpoint}"


@pytest.mark.parametrize("role", ROLES)
def test_rendered_documents_conform_to_the_published_schema(role: str) -> None:
    documents = _documents(_snapshots()[role])
    for endpoint, component in SCHEMAS.items():
        assert problems(component, documents[endpoint]) == [], f"{role} {endpoint}"
    for entry in documents["history"]:
        assert problems("HistoryEntry", list(entry)) == []
    for entry in history_objects(_snapshots()[role].view):
        assert problems("HistoryObject", entry) == []


def test_roles_read_as_patroni_writes_them() -> None:
    snaps = _snapshots()
    members = {m["name"]: m for m in cluster_document(snaps["primary"].view)["members"]}
    assert [members[n]["role"] for n in ("node1", "node2", "node3")] == ["leader", "sync_standby", "replica"]
    assert [members[n]["state"] for n in ("node1", "node2", "node3")] == ["running", "streaming", "streaming"]
    assert "lag" not in members["node1"] or members["node1"]["lag"] is None
    assert status_document(snaps["sync_standby"])["sync_standby"] is True
    assert status_document(snaps["replica"])["sync_standby"] is False
    rows = {r["application_name"]: r for r in status_document(snaps["primary"])["replication"]}
    assert (rows["node2"]["sync_state"], rows["node3"]["sync_state"]) == ("sync", "async")
    assert status_document(snaps["primary"])["dcs_last_seen"] == 1_800_000_200


def test_the_differential_check_catches_a_missing_or_retyped_field() -> None:
    """The comparison itself can fail: a field gone, a type changed, an empty list."""
    theirs = {"a": 1, "b": {"c": "x"}, "d": [{"e": True}]}
    assert missing_fields(theirs, {"a": 1, "b": {"c": "y"}, "d": [{"e": False}], "extra": 0}) == []
    found = missing_fields(theirs, {"a": "1", "b": {}, "d": []})
    assert found == [
        ".a: Patroni has integer 1, pgwarden string",
        '.b.c: missing (Patroni: "x")',
        ".d[]: Patroni lists 1 entries, pgwarden none",
    ]


def test_quorum_mode_shows_quorum_standbys() -> None:
    snap = _snapshots()["sync_standby"]
    view = replace(snap.view, config=replace(snap.view.config, synchronous_mode=SyncMode.QUORUM))
    quorum = replace(snap, view=view)
    assert status_document(quorum)["quorum_standby"] is True
    members = {m["name"]: m["role"] for m in cluster_document(view)["members"]}
    assert members["node2"] == "quorum_standby"


@pytest.mark.parametrize(
    "config",
    [
        DynamicConfig(),
        DynamicConfig(synchronous_mode=SyncMode.ON, synchronous_fallback=SyncFallback.BLOCK, ttl=30.0),
        DynamicConfig(synchronous_mode=SyncMode.QUORUM, synchronous_node_count=2, retry_timeout=1.5),
        DynamicConfig(synchronous_fallback=SyncFallback.BLOCK, parameters={"work_mem": "8MB"}, pause=True),
    ],
)
def test_get_config_reads_back_as_the_same_config(config: DynamicConfig) -> None:
    """What GET /config shows (Patroni's shape), PUT takes back unchanged: edit-config relies on it."""
    assert parse_dynamic_config(config_document(config), "test") == config


def test_patch_takes_patronis_nested_parameters_and_the_flat_spelling() -> None:
    current = config_document(DynamicConfig(parameters={"work_mem": "4MB"}))
    for patch in ({"postgresql": {"parameters": {"work_mem": "8MB"}}}, {"parameters": {"work_mem": "8MB"}}):
        merged = merge_patch(current, normalize_patch(patch))
        assert parse_dynamic_config(merged, "test").parameters == {"work_mem": "8MB"}
    with pytest.raises(ConfigError, match="use_slots"):
        parse_dynamic_config({**current, "postgresql": {"use_slots": False}}, "test")


def test_a_standby_shows_its_two_positions_and_whether_it_streams() -> None:
    view = _view()
    behind = replace(
        view.members[2],
        lsn=Lsn.parse("0/4000258"),
        receive_lsn=Lsn.parse("0/4000258"),
        replay_lsn=Lsn.parse("0/4000058"),
        streaming=False,
    )
    doc = member_document(replace(view, members=(*view.members[:2], behind)), behind)
    assert (doc["receive_lag"], doc["replay_lag"], doc["state"]) == (0, 0x200, "in archive recovery")
    older = replace(behind, receive_lsn=None, replay_lsn=None, streaming=None)  # an older agent's record
    doc = member_document(replace(view, members=(*view.members[:2], older)), older)
    assert (doc["receive_lsn"], doc["replay_lsn"], doc["state"]) == ("0/4000258", "0/4000258", "running")
