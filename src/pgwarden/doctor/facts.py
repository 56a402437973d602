"""Everything ``pgwarden doctor`` judges, typed: the cluster, each node's diagnostics, etcd, HAProxy.

Gathered by ``doctor/gather.py`` (the only I/O) and judged by the pure checks in
``doctor/checks/``. A node's ``GET /diagnostics`` answer is parsed here (``node_facts``), field
by field, into bounded values; a field of the wrong type reads as unknown (None) rather than
failing the whole node, so one odd value costs one check, not the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pgwarden.dcs.etcd_admin import EtcdMember
from pgwarden.model import ClusterView, Lsn

MAX_ROWS = 100  # slots or WAL senders kept per node


@dataclass(frozen=True, slots=True)
class RoundTrips:
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True, slots=True)
class Slot:
    name: str
    active: bool
    retained_bytes: int | None
    wal_status: str | None  # reserved, extended, unreserved, lost
    safe_wal_size: int | None  # bytes left before PostgreSQL may remove WAL it needs


@dataclass(frozen=True, slots=True)
class Sender:
    """One WAL sender on a primary (pg_stat_replication)."""

    name: str
    state: str
    sync_state: str
    flush_lsn: Lsn | None
    replay_lag_s: float | None
    reply_age_s: float | None


@dataclass(frozen=True, slots=True)
class PostgresFacts:
    answered: bool
    error: str = ""
    data_checksums: bool | None = None
    wal_log_hints: bool | None = None
    archive_mode: str | None = None
    archive_command_set: bool | None = None
    max_slot_wal_keep_size: str | None = None  # as PostgreSQL shows it ("4GB", "-1")
    max_slot_wal_keep_bytes: int | None = None  # -1: no limit
    in_recovery: bool | None = None
    wal_path: str = ""
    wal_free_bytes: int | None = None
    wal_total_bytes: int | None = None
    senders: tuple[Sender, ...] = ()
    slots: tuple[Slot, ...] = ()


@dataclass(frozen=True, slots=True)
class Behind:
    """On the leader: how old the oldest write a member lacks is (``at_least``: older than the
    leader's memory of its WAL)."""

    seconds: float
    at_least: bool


@dataclass(frozen=True, slots=True)
class NodeFacts:
    name: str
    clock_offset: float  # this node's clock minus doctor's, seconds
    clock_uncertainty: float  # half the request's round trip: the offset is known to within it
    api_listen: str = ""
    api_auth: bool | None = None
    api_tls: bool | None = None
    api_verify_client: str = ""
    api_loopback: bool | None = None
    etcd_endpoints: tuple[str, ...] = ()
    etcd_reads: RoundTrips | None = None
    etcd_renewals: RoundTrips | None = None
    watchdog_mode: str = ""
    watchdog_armed: bool | None = None
    watchdog_problem: str | None = None
    watchdog_timeout: int | None = None
    fence_pid: int | None = None
    fence_state: str = ""  # running, stopped, absent
    failsafe_active: bool | None = None
    holds_leader_key: bool = False
    postgres: PostgresFacts = field(default_factory=lambda: PostgresFacts(answered=False))
    behind: Mapping[str, Behind] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EtcdFacts:
    endpoints: tuple[str, ...]
    members: tuple[EtcdMember, ...] | None = None  # None: the member list could not be read
    error: str = ""
    round_trips: Mapping[str, RoundTrips | str] = field(default_factory=dict)  # per endpoint, or why not


@dataclass(frozen=True, slots=True)
class HaproxyChecks:
    """How an HAProxy health-checks the agents: seconds, and how many checks change a state."""

    source: str
    inter: float = 2.0  # HAProxy's defaults
    fastinter: float | None = None
    downinter: float | None = None
    rise: int = 2
    fall: int = 3
    timeout_check: float | None = None

    @property
    def up_interval(self) -> float:
        """Between checks of a server that is down, until it is up (``downinter``, else ``inter``);
        once one check passed, HAProxy uses ``fastinter`` (else ``inter``) for the rest."""
        return self.downinter if self.downinter is not None else self.inter

    @property
    def marks_up_within(self) -> float:
        """Longest time from a server becoming healthy to HAProxy routing to it."""
        return self.up_interval + (self.rise - 1) * (self.fastinter or self.inter)

    @property
    def marks_down_within(self) -> float:
        """Longest time from a server failing its checks to HAProxy taking it out."""
        return self.inter + (self.fall - 1) * (self.fastinter or self.inter)


@dataclass(frozen=True, slots=True)
class Facts:
    cluster: str
    now: float  # doctor's wall clock when gathering ended
    view: ClusterView | None
    view_error: str = ""
    nodes: Mapping[str, NodeFacts] = field(default_factory=dict)
    unreachable: Mapping[str, str] = field(default_factory=dict)  # member -> why its API did not answer
    etcd: EtcdFacts = field(default_factory=lambda: EtcdFacts(()))
    haproxy: HaproxyChecks | None = None
    haproxy_note: str = ""  # where the HAProxy settings came from, or why there are none

    @property
    def leader_node(self) -> NodeFacts | None:
        """The diagnostics of the member holding the leader key (by etcd, else by its own word)."""
        if self.view is not None and self.view.leader is not None:
            return self.nodes.get(self.view.leader.name)
        return next((n for n in self.nodes.values() if n.holds_leader_key), None)


# --- parsing a node's GET /diagnostics --------------------------------------------------------------


def _get(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = doc.get(key)
    if isinstance(value, bool) and kind is not bool:
        return None  # JSON true is no number (Python's bool is an int)
    return value if isinstance(value, kind) else None


def _object(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, Mapping) else {}


def _text(doc: Mapping[str, Any], key: str, limit: int = 500) -> str:
    value = doc.get(key)
    return value[:limit] if isinstance(value, str) else ""


def _int(doc: Mapping[str, Any], key: str) -> int | None:
    value = _get(doc, key, int)
    return int(value) if value is not None else None


def _float(doc: Mapping[str, Any], key: str) -> float | None:
    value = _get(doc, key, (int, float))
    return float(value) if value is not None else None


def _on(doc: Mapping[str, Any], key: str) -> bool | None:
    value = doc.get(key)
    return value == "on" if value in ("on", "off") else None


def _lsn(text: object) -> Lsn | None:
    try:
        return Lsn.parse(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _rows(doc: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    rows = doc.get(key)
    return [r for r in rows[:MAX_ROWS] if isinstance(r, Mapping)] if isinstance(rows, list) else []


def round_trips(doc: object) -> RoundTrips | None:
    if not isinstance(doc, Mapping):
        return None
    count = _int(doc, "count")
    p50, p99, top = (_float(doc, k) for k in ("p50_ms", "p99_ms", "max_ms"))
    if count is None or p50 is None or p99 is None or top is None:
        return None
    return RoundTrips(count, p50, p99, top)


def postgres_facts(doc: Mapping[str, Any]) -> PostgresFacts:
    disk = _object(doc, "wal_disk")
    settings = _object(doc, "settings")
    base = PostgresFacts(
        answered=doc.get("answered") is True,
        error=_text(doc, "error"),
        wal_path=_text(disk, "path"),
        wal_free_bytes=_int(disk, "free_bytes"),
        wal_total_bytes=_int(disk, "total_bytes"),
    )
    if not base.answered:
        return base
    recovery = settings.get("in_recovery")
    return PostgresFacts(
        answered=True,
        wal_path=base.wal_path,
        wal_free_bytes=base.wal_free_bytes,
        wal_total_bytes=base.wal_total_bytes,
        data_checksums=_on(settings, "data_checksums"),
        wal_log_hints=_on(settings, "wal_log_hints"),
        archive_mode=_text(settings, "archive_mode", 20) or None,
        archive_command_set=_get(settings, "archive_command_set", bool),
        max_slot_wal_keep_size=_text(settings, "max_slot_wal_keep_size", 40) or None,
        max_slot_wal_keep_bytes=_int(settings, "max_slot_wal_keep_size_bytes"),
        in_recovery=recovery if isinstance(recovery, bool) else None,
        senders=tuple(
            Sender(
                name=_text(r, "application_name", 100),
                state=_text(r, "state", 40),
                sync_state=_text(r, "sync_state", 40),
                flush_lsn=_lsn(r.get("flush_lsn")),
                replay_lag_s=_float(r, "replay_lag_s"),
                reply_age_s=_float(r, "reply_age_s"),
            )
            for r in _rows(doc, "replication")
        ),
        slots=tuple(
            Slot(
                name=_text(r, "name", 100),
                active=r.get("active") is True,
                retained_bytes=_int(r, "retained_bytes"),
                wal_status=_text(r, "wal_status", 40) or None,
                safe_wal_size=_int(r, "safe_wal_size"),
            )
            for r in _rows(doc, "slots")
            if r.get("type") in (None, "physical")
        ),
    )


def node_facts(name: str, doc: Mapping[str, Any], sent: float, received: float) -> NodeFacts:
    """A node's diagnostics, asked at doctor's wall time ``sent`` and answered at ``received``."""
    api, etcd = _object(doc, "api"), _object(doc, "etcd")
    watchdog, fence = _object(doc, "watchdog"), _object(doc, "fence")
    stamp = _float(doc, "time")
    middle = (sent + received) / 2
    endpoints = etcd.get("endpoints")
    behind: dict[str, Behind] = {}
    for member, entry in _object(doc, "behind").items():
        seconds = _float(entry, "seconds") if isinstance(entry, Mapping) else None
        if seconds is not None and isinstance(member, str):
            behind[member] = Behind(seconds, entry.get("at_least") is True)
    return NodeFacts(
        name=name,
        clock_offset=stamp - middle if stamp is not None else 0.0,
        clock_uncertainty=(received - sent) / 2 if stamp is not None else float("inf"),
        api_listen=_text(api, "listen", 100),
        api_auth=_get(api, "auth", bool),
        api_tls=_get(api, "tls", bool),
        api_verify_client=_text(api, "verify_client", 20),
        api_loopback=_get(api, "loopback", bool),
        etcd_endpoints=tuple(str(e)[:100] for e in endpoints[:20]) if isinstance(endpoints, list) else (),
        etcd_reads=round_trips(etcd.get("reads")),
        etcd_renewals=round_trips(etcd.get("renewals")),
        watchdog_mode=_text(watchdog, "mode", 20),
        watchdog_armed=_get(watchdog, "armed", bool),
        watchdog_problem=_text(watchdog, "problem") or None,
        watchdog_timeout=_int(watchdog, "timeout"),
        fence_pid=_int(fence, "pid"),
        fence_state=_text(fence, "state", 20),
        failsafe_active=_get(doc, "failsafe_active", bool),
        holds_leader_key=doc.get("holds_leader_key") is True,
        postgres=postgres_facts(_object(doc, "postgres")),
        behind=behind,
    )
