"""Frozen values describing the local PostgreSQL instance as the observer saw it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pgwarden.model.lsn import Lsn
from pgwarden.model.parameters import ParameterError


class DataDir(StrEnum):
    MISSING = "missing"  # absent or empty: safe to clone or initdb into
    INCOMPLETE = "incomplete"  # files but no usable pg_control (e.g. an interrupted clone)
    VALID = "valid"


@dataclass(frozen=True, slots=True)
class DataDirOrigin:
    """Who made the data directory, as far as the observer can tell, and what it holds.

    ``marked``: pgwarden's marker beside the directory names this very directory, so pgwarden
    created it (for a clone or initdb) and may empty it again; ``marker`` says what was found
    instead ("no marker /x/main.pgwarden"). ``found`` (filled only for a directory that is not
    usable) describes its contents in words an operator can act on ("contains 3 entries (a, b/,
    c), no PG_VERSION / pg_control"), and ``hint`` a likely fix ("main/ holds a PostgreSQL data
    directory: is postgresql.data_dir meant to be /x/main?").
    """

    path: str = ""
    marked: bool = False
    marker: str = ""
    found: str = ""
    hint: str = ""


class ControlState(StrEnum):
    """pg_controldata's "Database cluster state", which tells how the instance last stopped."""

    SHUT_DOWN = "shut down"  # clean stop of a primary
    SHUT_DOWN_IN_RECOVERY = "shut down in recovery"  # clean stop of a standby
    IN_PRODUCTION = "in production"  # running primary, or a primary that crashed
    IN_ARCHIVE_RECOVERY = "in archive recovery"  # running standby, or a standby that crashed
    IN_CRASH_RECOVERY = "in crash recovery"
    OTHER = "other"


class JobKind(StrEnum):
    INITDB = "initdb"
    CLONE = "clone"
    REWIND = "rewind"


@dataclass(frozen=True, slots=True)
class Job:
    """A slow action run in the background so the loop keeps renewing and reporting."""

    kind: JobKind
    running: bool
    ok: bool | None = None  # set once finished
    error: str | None = None
    progress: str = ""


@dataclass(frozen=True, slots=True)
class Slot:
    """One physical replication slot of the local PostgreSQL, as listed this cycle."""

    active: bool = False  # a walsender streams through it now
    restart_lsn: Lsn | None = None  # the oldest WAL it holds; None until it reserves WAL


@dataclass(frozen=True, slots=True)
class LocalState:
    """The local node: its data directory, and what probing PostgreSQL returned."""

    data_dir: DataDir = DataDir.MISSING
    origin: DataDirOrigin = field(default_factory=DataDirOrigin)
    system_id: str | None = None
    control_state: ControlState | None = None
    control_timeline: int | None = None  # pg_control's timeline, readable while stopped
    control_lsn: Lsn | None = None  # last checkpoint location in pg_control
    running: bool = False  # the postmaster is alive
    probe_ok: bool = False  # a SQL probe answered within its timeout
    in_recovery: bool | None = None
    timeline: int | None = None
    write_lsn: Lsn | None = None  # primary: pg_current_wal_lsn()
    received_lsn: Lsn | None = None  # standby: pg_last_wal_receive_lsn()
    replayed_lsn: Lsn | None = None  # standby: pg_last_wal_replay_lsn()
    streaming_from: str | None = None  # host:port of the WAL sender when the receiver streams
    configured_upstream: str | None = None  # member name in primary_conninfo, or None
    pending_restart: bool = False
    job: Job | None = None
    # On a primary: synchronous_standby_names in force, and each streaming standby's flush position
    # by application_name (the member name).
    sync_standby_names: str | None = None
    replication: Mapping[str, Lsn] = field(default_factory=dict)
    # Its physical replication slots by name (a primary's for its standbys, a relay's for the
    # members cascading from it); None when not observed (the list failed this cycle).
    slots: Mapping[str, Slot] | None = None
    # The cluster parameters this node last wrote into its configuration (pgwarden.conf records
    # them); None when not observed. Compared with the dynamic config to apply live edits.
    applied_parameters: Mapping[str, str | int | float | bool] | None = None
    # Settings changed in the files that only a restart applies: name -> (running, configured).
    pending_params: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    started_at: float | None = None  # epoch seconds when the running postmaster started
    replay_paused: bool = False  # a standby's WAL replay paused (pg_wal_replay_pause())
    replayed_at: float | None = None  # standby: epoch commit time of the last transaction replayed
    server_version: int | None = None  # server_version_num, once the server answered a probe
    # Settings PostgreSQL refuses here (gathered after each render or reload, not every probe).
    config_errors: tuple[ParameterError, ...] = ()

    @property
    def is_primary(self) -> bool:
        return self.running and self.probe_ok and self.in_recovery is False

    @property
    def is_standby(self) -> bool:
        return self.running and self.probe_ok and self.in_recovery is True

    @property
    def lsn(self) -> Lsn | None:
        """The furthest WAL position this node holds."""
        if self.is_primary:
            return self.write_lsn
        known = [x for x in (self.received_lsn, self.replayed_lsn, self.control_lsn) if x]
        return max(known) if known else None
