"""The typed shapes of the REST API's documents: what ``documents.render`` returns, field by field.

One source for three things: mypy checks that the renderer builds exactly these fields, the
OpenAPI schemas in docs/openapi.json are generated from these classes (``api/openapi.py`` through
pydantic's ``TypeAdapter``), and the contract tests validate live answers against that schema.
Patroni's fields (4.1.5, checked against a running Patroni by tests/integration/
test_patroni_documents.py) keep Patroni's names, nesting and types; pgwarden's own fields are
additions, each described here. ``typing_extensions.TypedDict``: pydantic reads it on Python 3.11.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

# Attribute docstrings become the schema's descriptions; every field is listed (no extras).
_DOCUMENTED = ConfigDict(use_attribute_docstrings=True, extra="forbid")

Tags = dict[str, Any]
"""Member tags: nofailover, noloadbalance, nosync, failover_priority (always), clonefrom and
replicatefrom (when set), and custom tags (values as written)."""


@with_config(_DOCUMENTED)
class PendingValue(TypedDict):
    old_value: str
    """the value PostgreSQL runs with"""
    new_value: str
    """the value in the files, applied at the next restart"""


@with_config(_DOCUMENTED)
class ConfigErrorDoc(TypedDict):
    name: str
    value: str
    error: str
    """PostgreSQL's message about the value (docs/rest-api.md#config-errors)"""


@with_config(_DOCUMENTED)
class UntrustedDoc(TypedDict):
    name: str
    reason: str
    """why the record is ignored: it names an address outside member_networks"""


@with_config(_DOCUMENTED)
class ScheduledRestartDoc(TypedDict):
    schedule: str
    """when, ISO 8601 UTC"""


@with_config(_DOCUMENTED)
class IntentDoc(TypedDict):
    """A pending switchover or failover (pgwarden's shape, beside Patroni's scheduled_switchover)."""

    leader: str | None
    candidate: str | None
    scheduled_at: str | None
    """ISO 8601 UTC; null: now"""
    failover: bool
    deadline: str | None
    """ISO 8601 UTC: when the leader gives up on it"""


# Patroni's ``scheduled_switchover {at, from, to}``: a switchover waiting for its time ("from" is a
# Python keyword, hence the functional form).
ScheduledSwitchoverDoc = TypedDict(
    "ScheduledSwitchoverDoc", {"at": str, "from": NotRequired[str], "to": NotRequired[str]}
)
ScheduledSwitchoverDoc.__pydantic_config__ = _DOCUMENTED  # type: ignore[attr-defined]


MemberRole = Literal["leader", "standby_leader", "sync_standby", "quorum_standby", "replica", "uninitialized"]


@with_config(_DOCUMENTED)
class MemberDoc(TypedDict):
    """One member in ``GET /cluster`` (Patroni's fields first)."""

    name: str
    role: MemberRole
    """Patroni's roles: the leader key's holder, a member of the synchronous set in force (quorum_standby
    in quorum mode), or a replica"""
    state: str
    """running, streaming (a standby whose WAL receiver streams), starting, stopped, crashed, ..."""
    api_url: str
    host: str
    port: int
    timeline: int | None
    tags: NotRequired[Tags]
    """Patroni shows tags only when set; pgwarden always shows them"""
    lsn: NotRequired[str | None]
    """standbys: the furthest WAL position received or replayed, as PostgreSQL prints it (0/3000060)"""
    receive_lsn: NotRequired[str | None]
    replay_lsn: NotRequired[str | None]
    lag: NotRequired[int | None]
    """standbys: bytes behind the leader's last published position; null when unknown"""
    receive_lag: NotRequired[int | None]
    replay_lag: NotRequired[int | None]
    pending_restart: NotRequired[bool]
    pending_restart_reason: NotRequired[dict[str, PendingValue]]
    config_errors: NotRequired[list[ConfigErrorDoc]]
    scheduled_restart: NotRequired[ScheduledRestartDoc]
    reason: NotRequired[str | None]
    """pgwarden: the member's last decision (ha/reasons.py), as its record in etcd says"""
    reason_code: NotRequired[str | None]
    progress: NotRequired[str]
    """pgwarden: a running clone's or rewind's progress, as its tool last reported it"""


@with_config(_DOCUMENTED)
class ClusterDoc(TypedDict):
    """``GET /cluster``: every member, as this agent's last cycle read etcd."""

    scope: str
    """the cluster's name (Patroni's key)"""
    members: list[MemberDoc]
    pause: NotRequired[bool]
    """Patroni: present when paused; pgwarden: always"""
    scheduled_switchover: NotRequired[ScheduledSwitchoverDoc]
    cluster: str
    """pgwarden: the cluster's name (= scope), kept for earlier clients"""
    leader: str | None
    """pgwarden: the leader key's holder"""
    untrusted_members: list[UntrustedDoc]
    switchover: NotRequired[IntentDoc]
    synchronous: NotRequired[list[str]]
    """pgwarden: the synchronous set in force (absent before the leader published one)"""


HistoryEntry = tuple[int, int, str, str, str, str]
"""Patroni's ``[timeline ended, lsn (bytes) where it ended, reason, timestamp, new_leader]``, and
pgwarden's event (``promotion``, ``sync degraded``, ...) as a sixth element."""


@with_config(_DOCUMENTED)
class HistoryObject(TypedDict):
    """One history entry with named fields (``pgwarden history -f json``, the web view)."""

    timeline: int
    lsn: str
    reason: str
    timestamp: str
    new_leader: str
    event: str


@with_config(_DOCUMENTED)
class PatroniInfo(TypedDict):
    version: str
    """the pgwarden version (Patroni's field holds Patroni's)"""
    scope: str
    name: str


@with_config(_DOCUMENTED)
class Xlog(TypedDict):
    location: NotRequired[int]
    """primary: the WAL write position, in bytes"""
    received_location: NotRequired[int | None]
    replayed_location: NotRequired[int | None]
    replayed_timestamp: NotRequired[str | None]
    """standby: commit time of the last transaction replayed"""
    paused: NotRequired[bool]


@with_config(_DOCUMENTED)
class ReplicationRow(TypedDict):
    """A standby streaming from this primary (Patroni's rows of pg_stat_replication)."""

    usename: str
    application_name: str
    client_addr: str
    """the member's address as its record in etcd gives it"""
    state: str
    sync_state: Literal["sync", "quorum", "async"]
    sync_priority: int


@with_config(_DOCUMENTED)
class SynchronousDoc(TypedDict):
    members: list[str]
    quorum: int
    degraded_since: str | None
    synchronous_standby_names: str | None


@with_config(_DOCUMENTED)
class FailsafeDoc(TypedDict):
    topology: list[str]
    confirmed_for_s: NotRequired[float]
    """leader: seconds its members' last promises still cover"""
    promised_to: NotRequired[str]
    """member: the leader it promised"""
    promise_for_s: NotRequired[float]


@with_config(_DOCUMENTED)
class StatusDoc(TypedDict):
    """``GET /patroni`` and every health endpoint's body: this node (Patroni's fields first)."""

    state: str
    role: str
    """primary, replica, standby_leader or uninitialized (Patroni's /patroni roles)"""
    timeline: int | None
    patroni: PatroniInfo
    database_system_identifier: str | None
    dcs_last_seen: int | None
    """epoch seconds of this agent's last successful etcd read"""
    server_version: NotRequired[int]
    """PostgreSQL's server_version_num, once PostgreSQL answered"""
    xlog: NotRequired[Xlog]
    replication: NotRequired[list[ReplicationRow]]
    """primary: each standby streaming from it"""
    replication_state: NotRequired[Literal["streaming", "in archive recovery"]]
    postmaster_start_time: NotRequired[str]
    pending_restart: bool
    pending_restart_reason: NotRequired[dict[str, PendingValue]]
    scheduled_restart: NotRequired[ScheduledRestartDoc]
    sync_standby: NotRequired[bool]
    """synchronous mode on: whether this member is in the synchronous set in force"""
    quorum_standby: NotRequired[bool]
    cluster_unlocked: NotRequired[bool]
    """present (true) when no member holds the leader key"""
    pause: bool
    tags: Tags
    failsafe_mode_is_active: NotRequired[bool]
    # pgwarden's own fields
    name: str
    cluster: str
    synchronous_mode: str
    reason: str
    """the last decision, in one sentence"""
    reason_code: str | None
    leader: str | None
    dcs_last_seen_ok: bool
    loop_errors: int
    """HA loop cycles failed with an internal error since the agent started"""
    thread_errors: NotRequired[dict[str, int]]
    unreadable_keys: NotRequired[dict[str, str]]
    config_ignored_keys: NotRequired[list[str]]
    config_errors: list[ConfigErrorDoc]
    untrusted_members: list[UntrustedDoc]
    failsafe: NotRequired[FailsafeDoc]
    synchronous: NotRequired[SynchronousDoc]
    """the leader: the synchronous set it published and the setting in force"""
    upstream: NotRequired[str | None]
    """standby: the member named in primary_conninfo"""
