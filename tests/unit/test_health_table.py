"""The one table of health endpoints (ha/health.py): routes, verdicts and openapi.json derive from it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pgwarden.agent.snapshot import Snapshot, SnapshotHolder
from pgwarden.api import openapi
from pgwarden.api.facts import facts_of
from pgwarden.api.routes import RestApi
from pgwarden.ha.health import HEALTH_PATHS, HEALTH_TABLE, Query, verdict
from pgwarden.model import SyncMode
from tests.support import api_fakes as fake


def _in_mode(snap: Snapshot, mode: SyncMode) -> Snapshot:
    view = replace(snap.view, config=replace(snap.view.config, synchronous_mode=mode))
    return replace(snap, view=view)


def test_every_path_and_alias_is_routed_and_described() -> None:
    routes = RestApi(fake.api_settings(), SnapshotHolder(fake.primary()), fake.FakeOperations()).routes
    for path, endpoint in HEALTH_PATHS.items():
        assert f"/{path}" in routes
        summary = openapi.DOCUMENT["paths"][f"/{path}"]["summary"]
        assert endpoint.meaning in summary, path
    assert {"quorum", "read-only-quorum"} <= set(HEALTH_PATHS)
    assert len({e.path for e in HEALTH_TABLE}) == len(HEALTH_TABLE)


@pytest.mark.parametrize(
    ("situation", "mode", "quorum", "read_only_quorum", "sync"),
    [
        ("quorum standby", SyncMode.QUORUM, 200, 200, 200),
        ("sync standby in mode on", SyncMode.ON, 503, 503, 200),
        ("listed while synchronous mode is off", SyncMode.OFF, 503, 503, 503),
    ],
)
def test_quorum_endpoints_answer_for_quorum_standbys_only(
    situation: str, mode: SyncMode, quorum: int, read_only_quorum: int, sync: int
) -> None:
    facts = facts_of(_in_mode(fake.sync_standby(), mode))
    answers = {e: 200 if verdict(e, facts, Query()) else 503 for e in ("quorum", "read-only-quorum", "sync")}
    assert answers == {"quorum": quorum, "read-only-quorum": read_only_quorum, "sync": sync}, situation


def test_the_primary_passes_read_only_quorum_not_quorum() -> None:
    facts = facts_of(_in_mode(fake.primary(), SyncMode.QUORUM))
    assert verdict("read-only-quorum", facts, Query()) and not verdict("quorum", facts, Query())


def test_an_unknown_path_fails_closed() -> None:
    assert not verdict("quorom", facts_of(fake.primary()), Query())
