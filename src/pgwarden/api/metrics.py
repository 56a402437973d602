"""Renders the agent's latest snapshot as Prometheus metrics for ``GET /metrics``.

Each server has its own registry (never prometheus_client's global one): several agents may share
a process in tests, and the values are read from the snapshot at scrape time, never stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from pgwarden import __version__
from pgwarden.agent.guard import LOOP
from pgwarden.agent.lease import monotonic
from pgwarden.agent.snapshot import Snapshot, SnapshotHolder
from pgwarden.api.facts import facts_of
from pgwarden.api.patroni_metrics import render_patroni
from pgwarden.documents.status import status_document
from pgwarden.model import DynamicConfig, Role, SyncMode

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# name -> help text; docs/rest-api.md lists the same names (a unit test checks it).
METRICS: dict[str, str] = {
    "pgwarden_info": "Always 1; labels name the cluster, this member and the pgwarden version.",
    "pgwarden_role": "1 for this member's current role, 0 for the others.",
    "pgwarden_leader": "1 when this member holds the leader key.",
    "pgwarden_postgres_running": "1 when the local postmaster is alive.",
    "pgwarden_timeline": "PostgreSQL timeline of this member (absent while unknown).",
    "pgwarden_wal_position_bytes": "Furthest WAL position this member holds, in bytes.",
    "pgwarden_replication_lag_bytes": "Standby only: leader's last known WAL position minus this member's.",
    "pgwarden_slot_retained_wal_bytes": "Leader only: WAL bytes each replication slot keeps from removal.",
    "pgwarden_loop_duration_seconds": "How long the last observe-decide-act cycle took.",
    "pgwarden_loop_age_seconds": "Seconds since the last cycle finished (absent before the first).",
    "pgwarden_decision": "1, labelled with the reason code of the last decision.",
    "pgwarden_pending_restart": "1 when PostgreSQL needs a restart to apply changed settings.",
    "pgwarden_pending_restart_parameter": "1 per setting waiting for a restart, labelled with its name.",
    "pgwarden_config_errors": "How many settings PostgreSQL refuses on this member (config_errors).",
    "pgwarden_config_error": "1 per setting PostgreSQL refuses on this member, labelled with its name.",
    "pgwarden_postmaster_start_time_seconds": "Epoch seconds when the running postmaster started.",
    "pgwarden_scheduled_restart_timestamp_seconds": "Epoch seconds of the restart scheduled on this member.",
    "pgwarden_pause": "1 when the cluster is paused (no automatic failover).",
    "pgwarden_synchronous_standby": "1 when this member is in the published synchronous set.",
    "pgwarden_sync_degraded": "1 while synchronous mode is on but degraded to asynchronous (no standby).",
    "pgwarden_sync_quorum": (
        "How many members of the synchronous set hold every acknowledged commit (0: no claim)."
    ),
    "pgwarden_dcs_ok": "1 when the last cycle reached etcd.",
    "pgwarden_untrusted_member": (
        "1 per member whose record in etcd names an address outside member_networks (left out)."
    ),
    "pgwarden_failsafe_mode": "1 when failsafe_mode is on in the cluster config.",
    "pgwarden_failsafe_active": (
        "1 while this leader writes on its members' failsafe promises, or this member holds one."
    ),
    # The cluster config in force, so that alert rules compare with the cluster's own limits
    # (deploy/prometheus/) rather than with numbers copied into them.
    "pgwarden_ttl_seconds": "ttl of the cluster config in force: the leader key's lease.",
    "pgwarden_loop_wait_seconds": "loop_wait of the cluster config in force.",
    "pgwarden_maximum_lag_on_failover_bytes": (
        "maximum_lag_on_failover of the cluster config in force: a standby further behind cannot take over."
    ),
    "pgwarden_max_slot_wal_keep_size_bytes": (
        "max_slot_wal_keep_size of the cluster config in force (absent when -1: no limit)."
    ),
    "pgwarden_dcs_unreadable": "1 per etcd key of the cluster whose value cannot be read, by key.",
    "pgwarden_loop_errors_total": "HA loop cycles that failed with an internal error (and were retried).",
    "pgwarden_thread_errors_total": "Internal errors each background thread survived, by thread.",
}


def _gauge(name: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, METRICS[name], labels=list(labels))


def _counter(name: str, labels: tuple[str, ...] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, METRICS[name], labels=list(labels))


def _flag(name: str, value: bool) -> GaugeMetricFamily:
    return _value(name, 1.0 if value else 0.0)


def _value(name: str, value: float | None) -> GaugeMetricFamily:
    """A gauge of one sample, or of none while ``value`` is unknown."""
    family = _gauge(name)
    if value is not None:
        family.add_metric([], float(value))
    return family


def _each(name: str, label: str, values: Iterable[str]) -> GaugeMetricFamily:
    """A gauge of 1 per value (a pending parameter, an unreadable key...), in sorted order."""
    family = _gauge(name, (label,))
    for value in sorted(values):
        family.add_metric([value], 1.0)
    return family


def snapshot_metrics(snap: Snapshot) -> Iterator[Metric]:
    """Every metric of one snapshot; families with nothing to report yet come out empty."""
    local, member, view = snap.local, snap.member, snap.view
    info = _gauge("pgwarden_info", ("cluster", "name", "version"))
    info.add_metric([snap.config.cluster, snap.config.name, __version__], 1.0)
    yield info

    current = status_document(snap)["role"]  # standby_leader as the status document shows it
    role = _gauge("pgwarden_role", ("role",))
    for known in Role:
        role.add_metric([known.value], 1.0 if known.value == current else 0.0)
    yield role

    yield _flag("pgwarden_leader", snap.holds_leader_key)
    yield _flag("pgwarden_postgres_running", local.running)

    yield _value("pgwarden_timeline", member.timeline)
    yield _value("pgwarden_wal_position_bytes", local.lsn.value if local.lsn is not None else None)
    yield _value("pgwarden_replication_lag_bytes", facts_of(snap).lag if local.is_standby else None)

    retained = _gauge("pgwarden_slot_retained_wal_bytes", ("slot",))
    status = view.status
    if snap.holds_leader_key and status is not None and status.name == snap.config.name:
        for slot, confirmed in sorted(status.slots.items()):
            retained.add_metric([slot], float(max(0, status.lsn - confirmed)))
    yield retained

    yield _value("pgwarden_loop_duration_seconds", snap.loop_seconds)
    yield _value("pgwarden_loop_age_seconds", max(0.0, monotonic() - snap.loop_at) if snap.loop_at else None)

    decision = _gauge("pgwarden_decision", ("reason",))
    if snap.decision is not None:
        decision.add_metric([snap.decision.reason.name], 1.0)
    yield decision

    yield _flag("pgwarden_pending_restart", local.pending_restart)
    yield _each("pgwarden_pending_restart_parameter", "parameter", local.pending_params)
    yield _value("pgwarden_config_errors", len(local.config_errors))
    yield _each("pgwarden_config_error", "parameter", {e.name for e in local.config_errors})
    yield _value("pgwarden_postmaster_start_time_seconds", local.started_at if local.running else None)
    yield _value("pgwarden_scheduled_restart_timestamp_seconds", member.scheduled_restart)
    yield _flag("pgwarden_pause", view.config.pause)
    claim = view.sync
    yield _flag("pgwarden_synchronous_standby", view.in_sync_set(snap.config.name))
    sync_on = view.config.synchronous_mode is not SyncMode.OFF
    yield _flag("pgwarden_sync_degraded", sync_on and claim is not None and claim.degraded_since is not None)
    yield _value("pgwarden_sync_quorum", claim.quorum if claim is not None and sync_on else 0.0)
    yield _flag("pgwarden_dcs_ok", snap.store_ok)
    yield _each("pgwarden_untrusted_member", "member", view.untrusted)
    yield _flag("pgwarden_failsafe_mode", view.config.failsafe_mode)
    yield _flag("pgwarden_failsafe_active", snap.failsafe_active(monotonic()))
    yield _each("pgwarden_dcs_unreadable", "key", view.unreadable)
    loop_errors = _counter("pgwarden_loop_errors_total")
    loop_errors.add_metric([], float(snap.errors.get(LOOP, 0)))
    yield loop_errors
    thread_errors = _counter("pgwarden_thread_errors_total", ("thread",))
    for thread, count in sorted(snap.errors.items()):
        if thread != LOOP:
            thread_errors.add_metric([thread], float(count))
    yield thread_errors
    yield from config_metrics(view.config)


def config_metrics(config: DynamicConfig) -> Iterator[Metric]:
    """The limits of the cluster config in force that alerts compare with."""
    for name, value in (
        ("pgwarden_ttl_seconds", config.ttl),
        ("pgwarden_loop_wait_seconds", config.loop_wait),
        ("pgwarden_maximum_lag_on_failover_bytes", config.maximum_lag_on_failover),
    ):
        yield _value(name, value)
    yield _value("pgwarden_max_slot_wal_keep_size_bytes", config.max_slot_wal_keep_bytes)


class SnapshotCollector(Collector):
    def __init__(self, snapshots: SnapshotHolder) -> None:
        self._snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        return snapshot_metrics(self._snapshots.get())


class Metrics:
    """One server's registry; ``render`` is the body of ``GET /metrics``: pgwarden's series, then
    Patroni's (api/patroni_metrics.py) from the same snapshot."""

    def __init__(self, snapshots: SnapshotHolder) -> None:
        self._snapshots = snapshots
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(snapshots))

    def render(self) -> bytes:
        return generate_latest(self.registry) + render_patroni(self._snapshots.get())
