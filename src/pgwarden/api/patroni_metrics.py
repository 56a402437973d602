"""Patroni's ``patroni_*`` series, served by ``GET /metrics`` beside pgwarden's own, so that a
Patroni dashboard and its alerts work unchanged.

Names, types, help texts and labels (``scope`` and ``name`` on every series) are Patroni 4.1.5's,
as a real Patroni serves them (tests/fixtures/patroni/metrics-*.txt, compared by
tests/unit/test_patroni_metrics.py). Every series has a sample in every role, 0 when it does not
apply, as Patroni's do.

Rendered as text here rather than through prometheus_client: three of Patroni's series are
counters without the ``_total`` suffix (``patroni_xlog_location``, ...), which prometheus_client
always appends to a counter's name, and a dashboard queries the exact name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pgwarden import __version__
from pgwarden.agent.lease import monotonic
from pgwarden.agent.snapshot import Snapshot
from pgwarden.documents.status import status_document
from pgwarden.model import PgState, SyncMode

GAUGE = "gauge"
COUNTER = "counter"

# Patroni's postgres_state numbers (patroni/postgresql/misc.py PostgresqlState), by pgwarden state.
# pgwarden's own states without a Patroni twin: rewinding (PostgreSQL is down while pg_rewind
# runs: stopped) and promoting (Patroni stays "running" through a promotion).
POSTGRES_STATE: dict[PgState, int] = {
    PgState.INITIALIZING: 0,
    PgState.CREATING_REPLICA: 4,
    PgState.RUNNING: 5,
    PgState.PROMOTING: 5,
    PgState.STARTING: 6,
    PgState.RESTARTING: 9,
    PgState.STOPPING: 11,
    PgState.STOPPED: 12,
    PgState.REWINDING: 12,
    PgState.CRASHED: 14,
}
_STATE_HELP = (
    "Numeric representation of Postgres state.\n"
    "Values: 0=initdb, 1=initdb_failed, 2=custom_bootstrap, 3=custom_bootstrap_failed, "
    "4=creating_replica, 5=running, 6=starting, 7=bootstrap_starting, 8=start_failed, "
    "9=restarting, 10=restart_failed, 11=stopping, 12=stopped, 13=stop_failed, 14=crashed"
)

# name -> (type, help), in Patroni's order; docs/rest-api.md's Patroni table lists the same names.
PATRONI_METRICS: dict[str, tuple[str, str]] = {
    "patroni_version": (GAUGE, "Patroni semver without periods."),
    "patroni_postgres_running": (GAUGE, "Value is 1 if Postgres is running, 0 otherwise."),
    "patroni_postmaster_start_time": (GAUGE, "Epoch seconds since Postgres started."),
    "patroni_primary": (GAUGE, "Value is 1 if this node is the leader, 0 otherwise."),
    "patroni_xlog_location": (
        COUNTER,
        "Current location of the Postgres transaction log, 0 if this node is not the leader.",
    ),
    "patroni_standby_leader": (GAUGE, "Value is 1 if this node is the standby_leader, 0 otherwise."),
    "patroni_replica": (GAUGE, "Value is 1 if this node is a replica, 0 otherwise."),
    "patroni_sync_standby": (GAUGE, "Value is 1 if this node is a sync standby, 0 otherwise."),
    "patroni_quorum_standby": (GAUGE, "Value is 1 if this node is a quorum standby, 0 otherwise."),
    "patroni_xlog_received_location": (
        COUNTER,
        "Current location of the received Postgres transaction log, 0 if this node is not a replica.",
    ),
    "patroni_xlog_replayed_location": (
        COUNTER,
        "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.",
    ),
    "patroni_xlog_replayed_timestamp": (
        GAUGE,
        "Current timestamp of the replayed Postgres transaction log, 0 if null.",
    ),
    "patroni_xlog_paused": (GAUGE, "Value is 1 if the Postgres xlog is paused, 0 otherwise."),
    "patroni_postgres_streaming": (GAUGE, "Value is 1 if Postgres is streaming, 0 otherwise."),
    "patroni_postgres_in_archive_recovery": (
        GAUGE,
        "Value is 1 if Postgres is replicating from archive, 0 otherwise.",
    ),
    "patroni_postgres_server_version": (GAUGE, "Version of Postgres (if running), 0 otherwise."),
    "patroni_cluster_unlocked": (GAUGE, "Value is 1 if the cluster is unlocked, 0 if locked."),
    "patroni_failsafe_mode_is_active": (GAUGE, "Value is 1 if failsafe mode is active, 0 if inactive."),
    "patroni_postgres_timeline": (GAUGE, "Postgres timeline of this node (if running), 0 otherwise."),
    "patroni_dcs_last_seen": (GAUGE, "Epoch timestamp when DCS was last contacted successfully by Patroni."),
    "patroni_pending_restart": (GAUGE, "Value is 1 if the node needs a restart, 0 otherwise."),
    "patroni_is_paused": (GAUGE, "Value is 1 if auto failover is disabled, 0 otherwise."),
    "patroni_postgres_state": (GAUGE, _STATE_HELP),
}


def version_number(version: str) -> int:
    """``patroni_version``'s encoding (4.1.5 -> 40105) of pgwarden's version: major, minor and
    patch as two digits each; anything after a non-digit (``0.1.0rc1``) is left out."""
    parts: list[int] = []
    for piece in version.split(".")[:3]:
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        parts.append(int(digits) if digits else 0)
    parts += [0] * (3 - len(parts))
    return parts[0] * 10000 + parts[1] * 100 + parts[2]


def patroni_values(snap: Snapshot) -> dict[str, float]:
    """Every Patroni series' value for this snapshot; absent only where pgwarden cannot know it
    (``patroni_postgres_state`` while the state is unknown)."""
    doc = status_document(snap)  # the /patroni document: its role, replication state and xlog
    local, view = snap.local, snap.view
    role = doc["role"]
    xlog: dict[str, Any] = dict(doc.get("xlog") or {})
    replication_state = doc.get("replication_state")
    in_sync_set = view.in_sync_set(snap.config.name)  # the synchronous set in force
    mode = view.config.synchronous_mode
    standby = role == "replica" and local.is_standby
    values: dict[str, float] = {
        "patroni_version": float(version_number(__version__)),
        "patroni_postgres_running": _bit(local.running),
        "patroni_postmaster_start_time": local.started_at if local.running and local.started_at else 0.0,
        "patroni_primary": _bit(role == "primary"),
        "patroni_xlog_location": float(xlog.get("location") or 0),
        "patroni_standby_leader": _bit(role == "standby_leader"),
        "patroni_replica": _bit(role == "replica"),
        "patroni_sync_standby": _bit(standby and in_sync_set and mode is SyncMode.ON),
        "patroni_quorum_standby": _bit(standby and in_sync_set and mode is SyncMode.QUORUM),
        "patroni_xlog_received_location": float(xlog.get("received_location") or 0),
        "patroni_xlog_replayed_location": float(xlog.get("replayed_location") or 0),
        "patroni_xlog_replayed_timestamp": (local.replayed_at or 0.0) if local.is_standby else 0.0,
        "patroni_xlog_paused": _bit(bool(xlog.get("paused"))),
        "patroni_postgres_streaming": _bit(replication_state == "streaming"),
        "patroni_postgres_in_archive_recovery": _bit(replication_state == "in archive recovery"),
        "patroni_postgres_server_version": float(local.server_version or 0) if local.running else 0.0,
        "patroni_cluster_unlocked": _bit(view.leader is None),
        "patroni_failsafe_mode_is_active": _bit(snap.failsafe_active(monotonic())),
        "patroni_postgres_timeline": float(snap.member.timeline or 0) if local.running else 0.0,
        "patroni_dcs_last_seen": float(int(snap.store_seen_at or 0)),
        "patroni_pending_restart": _bit(local.pending_restart),
        "patroni_is_paused": _bit(view.config.pause),
    }
    state = POSTGRES_STATE.get(snap.member.state)
    if state is not None:
        values["patroni_postgres_state"] = float(state)
    return values


def render_patroni(snap: Snapshot) -> bytes:
    """The Prometheus text of Patroni's series for this snapshot."""
    return "".join(_lines(snap)).encode()


def _lines(snap: Snapshot) -> Iterator[str]:
    labels = f'{{scope="{_escape(snap.config.cluster)}",name="{_escape(snap.config.name)}"}}'
    values = patroni_values(snap)
    for name, (kind, text) in PATRONI_METRICS.items():
        # HELP escapes backslash and newline only (the text format's rule).
        yield f"# HELP {name} {text.replace(chr(92), chr(92) * 2).replace(chr(10), chr(92) + 'n')}\n"
        yield f"# TYPE {name} {kind}\n"
        if name in values:
            yield f"{name}{labels} {_number(values[name])}\n"


def _bit(flag: bool) -> float:
    return 1.0 if flag else 0.0


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _escape(label: str) -> str:
    return label.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
