"""Patroni's series in pgwarden's ``GET /metrics``: every series a real Patroni 4.1.5 serves in
each role (tests/fixtures/patroni/metrics-*.txt, re-recorded with
``python -m tests.support.record_patroni``) is served with the same type and labels, with
values a Patroni dashboard reads right.

The same comparison runs against a real pgwarden cluster in tests/integration/test_patronictl.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pgwarden.agent.snapshot import Snapshot
from pgwarden.api.patroni_metrics import PATRONI_METRICS, version_number
from pgwarden.model import Leader, PgState, SyncMode
from tests.support import api_fakes as fake

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "patroni"
ROLES = ("primary", "sync_standby", "replica")

Series = dict[str, tuple[str, frozenset[str]]]  # name -> (type, label names)


def series_of(text: str) -> Series:
    """Each family with at least one sample: its type and its samples' label names, by the name
    its samples carry in the text (the parser adds ``_total`` to a counter's; Patroni's have none)."""
    written = sample_names(text)
    found: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = family.name if family.name in written else sample.name
            found[name] = (family.type, frozenset(sample.labels))
    return found


def sample_names(text: str) -> set[str]:
    """The series names as written on the sample lines."""
    return {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")
    }


def values_of(text: str) -> dict[str, float]:
    return {
        s.name.removesuffix("_total"): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def patroni_series(role: str) -> Series:
    return series_of((FIXTURES / f"metrics-{role}.txt").read_text())


def scrape(snap: Snapshot) -> str:
    with fake.running_api(snap) as (url, _, _ops):
        got = httpx.get(f"{url}/metrics")
    assert got.status_code == 200
    return got.text


def _with_sync(snap: Snapshot, mode: SyncMode) -> Snapshot:
    return replace(snap, view=replace(snap.view, config=replace(snap.view.config, synchronous_mode=mode)))


def pgwarden_in(role: str) -> Snapshot:
    if role == "primary":
        return fake.primary()
    if role == "sync_standby":
        return _with_sync(fake.sync_standby(), SyncMode.ON)
    return fake.streaming_standby()


def test_the_fixtures_hold_what_patroni_serves_in_every_role() -> None:
    for role in ROLES:
        served = patroni_series(role)
        assert len(served) >= 20, f"metrics-{role}.txt holds {len(served)} series: re-record it"
        assert all(labels == {"scope", "name"} for _, labels in served.values())


@pytest.mark.parametrize("role", ROLES)
def test_every_patroni_series_is_served_with_its_type_and_labels(role: str) -> None:
    text = scrape(pgwarden_in(role))
    ours = series_of(text)
    assert set(patroni_series(role)) <= sample_names(text), "a series is named otherwise than Patroni's"
    for name, (kind, labels) in patroni_series(role).items():
        assert name in ours, f"{name} (served by Patroni as a {role}) is missing"
        assert ours[name] == (kind, labels), f"{name}: Patroni {kind} {sorted(labels)}, pgwarden {ours[name]}"


def test_our_table_names_exactly_what_patroni_serves() -> None:
    assert set(PATRONI_METRICS) == set(patroni_series("primary"))


def test_a_primary_reads_like_patronis() -> None:
    got = values_of(scrape(fake.primary()))
    assert got["patroni_primary"] == 1 and got["patroni_replica"] == 0
    assert got["patroni_xlog_location"] == 0x3000000
    assert got["patroni_xlog_received_location"] == 0 and got["patroni_xlog_replayed_location"] == 0
    assert got["patroni_postgres_streaming"] == 0 and got["patroni_postgres_in_archive_recovery"] == 0
    assert got["patroni_cluster_unlocked"] == 0
    assert got["patroni_postgres_running"] == 1 and got["patroni_postgres_state"] == 5
    assert got["patroni_postgres_timeline"] == 1
    assert got["patroni_version"] == version_number("0.1.0") == 100


def test_a_streaming_standby_reads_like_patronis() -> None:
    snap = fake.streaming_standby()
    snap = replace(snap, local=replace(snap.local, server_version=150018, replayed_at=1796282659.5))
    got = values_of(scrape(replace(snap, store_seen_at=1796282665.7)))
    assert got["patroni_replica"] == 1 and got["patroni_primary"] == 0
    assert got["patroni_xlog_location"] == 0
    assert got["patroni_xlog_received_location"] == 0x3000000
    assert got["patroni_xlog_replayed_location"] == 0x3000000
    assert got["patroni_xlog_replayed_timestamp"] == 1796282659.5
    assert got["patroni_postgres_streaming"] == 1 and got["patroni_postgres_in_archive_recovery"] == 0
    assert got["patroni_postgres_server_version"] == 150018
    assert got["patroni_dcs_last_seen"] == 1796282665  # whole seconds, as Patroni's
    assert got["patroni_sync_standby"] == 0 and got["patroni_quorum_standby"] == 0


def test_a_standby_without_a_wal_receiver_is_in_archive_recovery() -> None:
    snap = fake.streaming_standby()
    got = values_of(scrape(replace(snap, local=replace(snap.local, streaming_from=None, replay_paused=True))))
    assert got["patroni_postgres_streaming"] == 0 and got["patroni_postgres_in_archive_recovery"] == 1
    assert got["patroni_xlog_paused"] == 1


def test_sync_and_quorum_standbys_are_told_apart_by_the_mode() -> None:
    on = values_of(scrape(_with_sync(fake.sync_standby(), SyncMode.ON)))
    assert on["patroni_sync_standby"] == 1 and on["patroni_quorum_standby"] == 0
    quorum = values_of(scrape(_with_sync(fake.sync_standby(), SyncMode.QUORUM)))
    assert quorum["patroni_sync_standby"] == 0 and quorum["patroni_quorum_standby"] == 1


def test_no_leader_key_unlocks_the_cluster_and_pause_shows() -> None:
    snap = fake.streaming_standby()
    view = replace(snap.view, leader=None, config=replace(snap.view.config, pause=True))
    got = values_of(scrape(replace(snap, view=view)))
    assert got["patroni_cluster_unlocked"] == 1 and got["patroni_is_paused"] == 1
    held = replace(snap.view, leader=Leader("node1"))
    assert values_of(scrape(replace(snap, view=held)))["patroni_cluster_unlocked"] == 0


def test_a_stopped_member_reads_zero_and_stopped() -> None:
    got = values_of(scrape(fake.stopped()))
    assert got["patroni_postgres_running"] == 0 and got["patroni_postmaster_start_time"] == 0
    assert got["patroni_postgres_state"] == 12
    assert got["patroni_postgres_server_version"] == 0 and got["patroni_postgres_timeline"] == 0


def test_standby_leader() -> None:
    got = values_of(scrape(fake.standby_leader()))
    assert got["patroni_standby_leader"] == 1 and got["patroni_primary"] == 0 and got["patroni_replica"] == 0


def test_scope_and_name_label_every_series_and_are_escaped() -> None:
    snap = fake.primary()
    odd = replace(snap, config=replace(snap.config, cluster='a"b\\c'))
    families = list(text_string_to_metric_families(scrape(odd)))
    patroni = [s for f in families for s in f.samples if s.name.startswith("patroni_")]
    assert len(patroni) == len(PATRONI_METRICS)
    assert {s.labels["scope"] for s in patroni} == {'a"b\\c'}
    assert {s.labels["name"] for s in patroni} == {"node1"}


def test_every_pgwarden_state_has_patronis_number_but_unknown() -> None:
    from pgwarden.api.patroni_metrics import POSTGRES_STATE

    assert set(POSTGRES_STATE) == set(PgState) - {PgState.UNKNOWN}


@pytest.mark.parametrize(
    ("text", "number"), [("4.1.5", 40105), ("0.1.0", 100), ("1.2", 10200), ("2.0.1rc3", 20001)]
)
def test_version_number(text: str, number: int) -> None:
    assert version_number(text) == number
