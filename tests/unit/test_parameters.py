"""Live dynamic config: what counts as changed; pending restarts in etcd, /patroni, list and metrics."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, RenderableType

from pgwarden.agent.member_record import member_record
from pgwarden.agent.snapshot import Snapshot, SnapshotHolder
from pgwarden.api.metrics import Metrics
from pgwarden.cli import views
from pgwarden.dcs.codec import decode_member, encode_member
from pgwarden.documents.render import member_document as api_member_document
from pgwarden.documents.status import status_document
from pgwarden.ha.rules.parameters import changed_parameters, cluster_parameters
from pgwarden.model import DynamicConfig, LocalState
from tests.support import api_fakes as fake
from tests.support.builders import WALL, member, primary_local, standby_local, view

Value = str | int | float | bool
PENDING = {"max_connections": ("100", "120"), "shared_buffers": ("128MB", "256MB")}


def test_cluster_parameters_carry_max_slot_wal_keep_size() -> None:
    config = DynamicConfig(parameters={"work_mem": "8MB"}, max_slot_wal_keep_size="1GB")
    assert cluster_parameters(config) == {"work_mem": "8MB", "max_slot_wal_keep_size": "1GB"}


@pytest.mark.parametrize(
    ("wanted", "applied", "changed"),
    [
        pytest.param({"a": "1"}, {"a": "1"}, [], id="same"),
        pytest.param({"a": "1", "b": 2}, {"a": "1"}, ["b"], id="added"),
        pytest.param({"a": "1"}, {"a": "1", "b": 2}, ["b"], id="removed"),
        pytest.param({"a": 200}, {"a": 100}, ["a"], id="value"),
        pytest.param({"a": 1}, {"a": True}, ["a"], id="a_type_renders_differently"),
        pytest.param({"a": 1.0}, {"a": 1}, ["a"], id="float_and_int_render_differently"),
    ],
)
def test_what_counts_as_changed(
    wanted: dict[str, str | int | float | bool],
    applied: dict[str, str | int | float | bool],
    changed: list[str],
) -> None:
    assert changed_parameters(wanted, applied) == changed


def test_the_member_record_carries_pending_settings_and_a_schedule_through_etcd() -> None:
    local = replace(primary_local(), pending_restart=True, pending_params=PENDING)
    record = member_record(fake.node_config("node1"), local, scheduled_restart=WALL + 60)
    assert record.pending_restart_reason == PENDING and record.scheduled_restart == WALL + 60
    assert decode_member(encode_member(record)) == record
    # A record written before these fields existed still reads, with the defaults.
    old = encode_member(replace(record, pending_restart_reason={}, scheduled_restart=None))
    old = old.replace(',"pending_restart_reason":{}', "").replace(',"scheduled_restart":null', "")
    assert "scheduled_restart" not in old
    decoded = decode_member(old)
    assert decoded is not None and decoded.pending_restart_reason == {} and decoded.scheduled_restart is None


def _snapshot(local: LocalState, scheduled: float | None = None) -> Snapshot:
    snap = fake.snapshot("node2", local)
    return replace(snap, member=member_record(snap.config, local, scheduled))


def test_patroni_document_shows_old_and_new_values_like_patroni() -> None:
    local = replace(standby_local(), pending_restart=True, pending_params=PENDING, started_at=WALL)
    doc = status_document(_snapshot(local, WALL + 3600))
    assert doc["pending_restart"] is True
    assert doc["pending_restart_reason"] == {
        "max_connections": {"old_value": "100", "new_value": "120"},
        "shared_buffers": {"old_value": "128MB", "new_value": "256MB"},
    }
    assert doc["postmaster_start_time"] == "2027-01-15T08:00:00+00:00"
    assert doc["scheduled_restart"] == {"schedule": "2027-01-15T09:00:00+00:00"}
    assert "pending_restart_reason" not in status_document(_snapshot(standby_local()))


def test_cluster_and_list_documents_show_the_pending_settings() -> None:
    pending = replace(member("node2"), pending_restart=True, pending_restart_reason=PENDING)
    v = view(members=[member("node1"), pending])
    api_doc = api_member_document(v, pending)
    assert api_doc["pending_restart_reason"]["max_connections"] == {"old_value": "100", "new_value": "120"}
    list_doc = views.member_document(v, pending)
    assert list_doc["pending_restart"] is True
    assert list_doc["pending_restart_reason"] == api_doc["pending_restart_reason"]
    assert list_doc["scheduled_restart"] is None


def test_the_list_table_marks_pending_settings_and_scheduled_restarts() -> None:
    pending = replace(member("node2"), pending_restart=True, pending_restart_reason=PENDING)
    later = replace(member("node3"), scheduled_restart=WALL)
    out = fake_text(views.members_table(view(members=[member("node1"), pending, later])))
    row2 = next(line for line in out.splitlines() if "127.0.0.1:5434" in line)
    assert "* max_connections 100->120, shared_buffers 128MB->256MB" in row2
    row3 = next(line for line in out.splitlines() if "127.0.0.1:5435" in line)
    assert "restart at 2027-01-15T08:00:00+00:00" in row3


def fake_text(renderable: RenderableType) -> str:
    console = Console(width=250, record=True)
    console.print(renderable)
    return console.export_text()


def test_metrics_name_each_pending_setting_the_start_time_and_the_schedule() -> None:
    local = replace(standby_local(), pending_restart=True, pending_params=PENDING, started_at=WALL)
    text = Metrics(SnapshotHolder(_snapshot(local, WALL + 60))).render().decode()
    got = {
        family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples}
        for family in text_string_to_metric_families(text)
    }
    assert got["pgwarden_pending_restart"][()] == 1.0
    assert got["pgwarden_pending_restart_parameter"] == {
        (("parameter", "max_connections"),): 1.0,
        (("parameter", "shared_buffers"),): 1.0,
    }
    assert got["pgwarden_postmaster_start_time_seconds"][()] == WALL
    assert got["pgwarden_scheduled_restart_timestamp_seconds"][()] == WALL + 60
