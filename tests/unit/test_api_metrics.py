"""``GET /metrics``: Prometheus text that parses, names every documented metric, and reads the snapshot."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pgwarden.agent.member_record import member_record
from pgwarden.agent.snapshot import Snapshot
from pgwarden.api.metrics import METRICS
from pgwarden.model import ClusterView, LocalState
from tests.support import api_fakes as fake


def _scrape(snap: Snapshot) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Each family's samples, keyed by their sorted labels."""
    with fake.running_api(snap) as (url, _, _ops):
        got = httpx.get(f"{url}/metrics")
    assert got.status_code == 200
    assert got.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {
        # A counter's family drops the _total its samples (and our docs) carry.
        family.name + ("_total" if family.type == "counter" else ""): {
            tuple(sorted(s.labels.items())): s.value for s in family.samples
        }
        for family in text_string_to_metric_families(got.text)
    }


def test_every_metric_is_exposed_and_the_primary_reads_right() -> None:
    got = _scrape(fake.primary())
    assert set(METRICS) <= set(got)
    assert got["pgwarden_info"] == {(("cluster", "demo"), ("name", "node1"), ("version", "0.1.0")): 1.0}
    assert got["pgwarden_role"][(("role", "primary"),)] == 1.0
    assert sum(got["pgwarden_role"].values()) == 1.0
    assert got["pgwarden_leader"][()] == 1.0
    assert got["pgwarden_postgres_running"][()] == 1.0
    assert got["pgwarden_timeline"][()] == 1.0
    assert got["pgwarden_wal_position_bytes"][()] == 0x3000000
    assert got["pgwarden_replication_lag_bytes"] == {}  # a primary lags nobody
    assert got["pgwarden_slot_retained_wal_bytes"] == {
        (("slot", "node2"),): 0x1000000,
        (("slot", "node3"),): 0.0,
    }
    assert got["pgwarden_loop_duration_seconds"][()] == pytest.approx(0.012)
    assert 0.5 <= got["pgwarden_loop_age_seconds"][()] < 5
    assert got["pgwarden_decision"] == {(("reason", "LEADER_HEALTHY"),): 1.0}
    assert got["pgwarden_pending_restart"][()] == 0.0
    assert got["pgwarden_pause"][()] == 0.0
    assert got["pgwarden_dcs_ok"][()] == 1.0
    config = fake.primary().view.config
    assert got["pgwarden_ttl_seconds"][()] == config.ttl
    assert got["pgwarden_loop_wait_seconds"][()] == config.loop_wait
    assert got["pgwarden_maximum_lag_on_failover_bytes"][()] == config.maximum_lag_on_failover
    assert got["pgwarden_max_slot_wal_keep_size_bytes"][()] == 4 * 1024**3  # the default 4GB


def test_no_slot_wal_limit_has_no_sample() -> None:
    snap = fake.primary()
    unlimited = replace(snap.view.config, max_slot_wal_keep_size="-1")
    got = _scrape(replace(snap, view=replace(snap.view, config=unlimited)))
    assert got["pgwarden_max_slot_wal_keep_size_bytes"] == {}


def test_a_lagging_standby_reports_its_lag_and_no_slots() -> None:
    got = _scrape(fake.lagging_standby())
    assert got["pgwarden_replication_lag_bytes"][()] == 32 * 1024 * 1024
    assert got["pgwarden_role"][(("role", "replica"),)] == 1.0
    assert got["pgwarden_leader"][()] == 0.0
    assert got["pgwarden_slot_retained_wal_bytes"] == {}
    assert got["pgwarden_decision"] == {(("reason", "STANDBY_HEALTHY"),): 1.0}


def test_standby_leader_role_and_paused_cluster() -> None:
    snap = fake.standby_leader()
    snap = replace(snap, view=replace(snap.view, config=replace(snap.view.config, pause=True)))
    got = _scrape(snap)
    assert got["pgwarden_role"][(("role", "standby_leader"),)] == 1.0
    assert got["pgwarden_pause"][()] == 1.0


def test_the_agents_first_snapshot_renders_before_anything_is_known() -> None:
    config = fake.node_config("node1")
    first = Snapshot(config, ClusterView(name="demo"), LocalState(), member_record(config, LocalState()))
    got = _scrape(first)
    assert set(METRICS) <= set(got)
    assert got["pgwarden_role"][(("role", "uninitialized"),)] == 1.0
    assert got["pgwarden_timeline"] == {}
    assert got["pgwarden_loop_age_seconds"] == {}
    assert got["pgwarden_decision"] == {}
    assert got["pgwarden_dcs_ok"][()] == 0.0


def test_two_servers_in_one_process_keep_their_own_metrics() -> None:
    with (
        fake.running_api(fake.primary()) as (first, _, _ops1),
        fake.running_api(fake.streaming_standby()) as (second, _, _ops2),
    ):
        one, two = httpx.get(f"{first}/metrics").text, httpx.get(f"{second}/metrics").text
    assert 'name="node1"' in one and 'name="node2"' not in one
    assert 'name="node2"' in two and 'name="node1"' not in two
