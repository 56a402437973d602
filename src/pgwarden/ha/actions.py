"""What ``decide`` asks the agent to do: small frozen values, carried out in order by the executor.

The executor stops at the first action that fails and observes again, so each decision is ordered
to keep every prefix safe: demote before releasing the key, acquire the key before promoting.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pgwarden.model import PROMOTION, Lsn, SyncState


class StopMode(StrEnum):
    FAST = "fast"  # disconnect clients, checkpoint, stop: clean shutdown
    IMMEDIATE = "immediate"  # no checkpoint: the fastest way to stop accepting writes


@dataclass(frozen=True, slots=True)
class AcquireLeader:
    """Create the leader key on a fresh lease, only if absent (safety rule 2)."""


@dataclass(frozen=True, slots=True)
class RenewLeader:
    """Keep the lease alive and re-attach the key to it, only if its value is still this member.

    ``watchdog``: keep the watchdog device armed and alive (when one is configured); False
    disarms it (a paused cluster, as Patroni does).

    ``failsafe``: in failsafe mode, the members to ask at once (a RenewFailsafe round) when etcd
    does not answer the renewal, so that a leader stuck in etcd's timeouts for the rest of its
    cycle still has its promises before its deadline."""

    watchdog: bool = True
    failsafe: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True, slots=True)
class RewriteLeader:
    """Write this member's name over the unreadable leader key, on its lease, by compare-and-set on
    the key's ``revision``: only the holder of the leader lease does it (safety rule 2)."""

    revision: int


@dataclass(frozen=True, slots=True)
class ReleaseLeader:
    """Delete the leader key if it is still ours, and revoke the lease."""


@dataclass(frozen=True, slots=True)
class RenewFailsafe:
    """etcd is unreachable: ask every member (name, REST API URL) over ``POST /failsafe`` to promise
    not to promote or follow anyone else for ttl; when all confirm, the write deadline moves to
    this round's send time + ttl - margin, as a lease renewal would (safety rule 1)."""

    members: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class PublishFailsafe:
    """Publish the failsafe topology (every member and its REST API URL); None removes it."""

    topology: tuple[tuple[str, str], ...] | None


@dataclass(frozen=True, slots=True)
class RecordFailsafe:
    """Record in the history the etcd outage this leader rode out in failsafe mode."""

    timestamp: str  # ISO 8601, UTC: when the outage began (it also identifies the entry)
    reason: str


@dataclass(frozen=True, slots=True)
class BeginBootstrap:
    """Race for the cluster's initialize key; the winner runs initdb."""


@dataclass(frozen=True, slots=True)
class RunInitdb:
    """Background job: a new data directory with data checksums."""


@dataclass(frozen=True, slots=True)
class FinishBootstrap:
    """Create the replication user and publish the system identifier as the initialize key."""

    system_id: str


@dataclass(frozen=True, slots=True)
class CancelBootstrap:
    """Give up the initialize race after a failed initdb, so another member can try."""


@dataclass(frozen=True, slots=True)
class StartPrimary:
    """Start PostgreSQL read-write (only ever after the key is held). Does not wait for recovery."""


@dataclass(frozen=True, slots=True)
class StartStandby:
    """Start PostgreSQL as a standby of ``upstream`` (None: read-only with no upstream), streaming
    through the replication slot ``slot`` (None: none; the leader keeps one per member)."""

    upstream: str | None
    slot: str | None = None


@dataclass(frozen=True, slots=True)
class Follow:
    """Point a running standby at ``upstream`` through ``slot`` (primary_conninfo and
    primary_slot_name are reloadable: no restart)."""

    upstream: str | None
    slot: str | None = None


@dataclass(frozen=True, slots=True)
class Promote:
    """pg_ctl promote, then a checkpoint so pg_control carries the new timeline for pg_rewind."""


@dataclass(frozen=True, slots=True)
class Demote:
    """Stop PostgreSQL and leave it configured as a standby with no upstream (read-only if started)."""

    mode: StopMode


@dataclass(frozen=True, slots=True)
class StopPostgres:
    mode: StopMode


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """CHECKPOINT while writes still run, so the shutdown checkpoint that follows is short."""


@dataclass(frozen=True, slots=True)
class ReloadPostgres:
    """Re-apply the cluster's parameters and make PostgreSQL re-read its configuration."""


@dataclass(frozen=True, slots=True)
class ApplyParameters:
    """Write the cluster's parameters from the dynamic config and reload; postmaster-context ones
    then wait for a restart (pending_restart)."""


@dataclass(frozen=True, slots=True)
class ClearScheduledRestart:
    """Forget this node's restart scheduled for ``at`` (epoch seconds): carried out, or moot."""

    at: float


@dataclass(frozen=True, slots=True)
class ClearSwitchover:
    """Remove the switchover intent: done (``outcome`` None) or abandoned, saying why."""

    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class SetSyncStandbys:
    """Set PostgreSQL's synchronous_standby_names (reloadable): whom commits wait for."""

    value: str


@dataclass(frozen=True, slots=True)
class PublishSync:
    """Publish the synchronous claim in etcd: who holds every acknowledged commit (rule 4)."""

    state: SyncState


@dataclass(frozen=True, slots=True)
class AppendHistory:
    """Record this promotion (new timeline and switch point) in the cluster's history; or, with
    ``event`` and ``at``, another event at the primary's (timeline, position) ``at``."""

    reason: str
    event: str = PROMOTION
    # None for a promotion: its timeline exists only once the promotion before it is carried out,
    # so the executor reads it (and its switch point) from PostgreSQL then.
    at: tuple[int, Lsn] | None = None


@dataclass(frozen=True, slots=True)
class PublishStatus:
    """The leader publishes its WAL position; candidates bound their lag by it (safety rule 3).
    With it the membership it sees, which a cold start waits for (rules/cold_start.py)."""

    members: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class EnsureSlots:
    """Reconcile physical slots (safety rule 7) on the primary or a relay: create the slots
    ``create`` names, drop those ``drop`` names, and move each inactive slot in ``advance`` up to
    its position (decided by rules/slots.py from the slots observed)."""

    create: frozenset[str] = frozenset()
    drop: frozenset[str] = frozenset()
    advance: tuple[tuple[str, Lsn], ...] = ()  # (slot, position), by slot name


@dataclass(frozen=True, slots=True)
class Clone:
    """Background job: pg_basebackup from ``source`` into the empty data directory."""

    source: str


@dataclass(frozen=True, slots=True)
class Rewind:
    """Background job: pg_rewind from ``source`` (the data directory must be stopped)."""

    source: str


@dataclass(frozen=True, slots=True)
class WipeDataDir:
    """Empty the data directory: only one pgwarden made or one of this cluster (rules.datadir).

    The executor checks the same guard once more on a fresh look at the directory first."""


@dataclass(frozen=True, slots=True)
class AdoptDataDir:
    """Write pgwarden's marker beside a data directory of this cluster that has none yet (made
    before markers existed), so that it stays recognisably ours even if its pg_control is lost."""


Action = (
    AcquireLeader
    | RenewLeader
    | RewriteLeader
    | ReleaseLeader
    | RenewFailsafe
    | PublishFailsafe
    | RecordFailsafe
    | BeginBootstrap
    | RunInitdb
    | FinishBootstrap
    | CancelBootstrap
    | StartPrimary
    | StartStandby
    | Follow
    | Promote
    | Demote
    | StopPostgres
    | Checkpoint
    | ReloadPostgres
    | ApplyParameters
    | ClearScheduledRestart
    | ClearSwitchover
    | SetSyncStandbys
    | PublishSync
    | AppendHistory
    | PublishStatus
    | EnsureSlots
    | Clone
    | Rewind
    | WipeDataDir
    | AdoptDataDir
)

# Actions that write only to etcd (or ask the members): the local PostgreSQL is after them as
# the cycle's probe found it. A decision of only these (an idle leader's: renew, publish its
# status) needs no second probe before the cycle publishes what it saw (agent/loop.py).
_STORE_ONLY = (
    AcquireLeader, RenewLeader, RewriteLeader, ReleaseLeader, RenewFailsafe, PublishFailsafe,
    RecordFailsafe, ClearScheduledRestart, ClearSwitchover, PublishSync, AppendHistory, PublishStatus,
)  # fmt: skip


def changes_postgres(action: Action) -> bool:
    """Whether carrying out ``action`` may change what a probe of the local PostgreSQL shows."""
    if isinstance(action, EnsureSlots):
        # Advancing moves only a slot's restart_lsn, which no member record or status shows: a
        # leader advancing a cascading member's slot each cycle under writes probes once.
        return bool(action.create or action.drop)
    return not isinstance(action, _STORE_ONLY)
