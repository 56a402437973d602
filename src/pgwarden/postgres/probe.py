"""Observe the local instance: data directory, pg_control, postmaster liveness and a bounded SQL probe."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pgwarden.fence.postmaster import postmaster_pid
from pgwarden.model.local import ControlState, DataDir, LocalState
from pgwarden.model.lsn import Lsn
from pgwarden.model.node import PostgresSettings
from pgwarden.postgres import sql
from pgwarden.postgres.commands import PostgresError
from pgwarden.postgres.controldata import classify
from pgwarden.postgres.origin import origin
from pgwarden.postgres.session import Connection, LocalSession
from pgwarden.postgres.settings import ManagedConf, read_managed

DEFAULT_PROBE_TIMEOUT = 2.0

# One round trip. CASE keeps primary-only functions from running during recovery. On a fresh
# primary pg_control_checkpoint() still shows the old timeline until the first checkpoint, so
# the current timeline is read from the WAL file name of the insert position. pg_control_*()
# read global/pg_control as pg_controldata does: while the server answers, that tool need not run.
PROBE_SQL = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
       pg_last_wal_receive_lsn()::text,
       pg_last_wal_replay_lsn()::text,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
       c.timeline_id,
       (SELECT min_recovery_end_timeline FROM pg_control_recovery()),
       r.status, r.received_tli, r.sender_host, r.sender_port,
       (SELECT coalesce(bool_or(pending_restart), false) FROM pg_settings),
       extract(epoch FROM pg_postmaster_start_time())::float8,
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END,
       c.checkpoint_lsn::text,
       (SELECT system_identifier FROM pg_control_system())::text,
       current_setting('server_version_num')::int,
       extract(epoch FROM pg_last_xact_replay_timestamp())::float8
FROM pg_control_checkpoint() AS c LEFT JOIN pg_stat_wal_receiver AS r ON true
"""

# Only when a restart is pending: each such setting's running value and the one the files now
# give it (the last line that sets it wins; none left means its built-in default).
PENDING_SQL = """
SELECT s.name, current_setting(s.name),
       coalesce((SELECT f.setting FROM pg_file_settings AS f WHERE lower(f.name) = lower(s.name)
                 ORDER BY f.seqno DESC LIMIT 1), s.boot_val)
FROM pg_settings AS s WHERE s.pending_restart ORDER BY s.name
"""

# On a primary only: whom commits wait for, and how far each streaming standby has flushed. A
# standby that sent no reply for 5 s (it replies every second: wal_receiver_status_interval) is
# not streaming, whatever its WAL sender still says until wal_sender_timeout (60 s).
REPLICATION_SQL = """
SELECT current_setting('synchronous_standby_names'),
       coalesce(json_object_agg(application_name, flush_lsn::text)
                FILTER (WHERE state = 'streaming' AND flush_lsn IS NOT NULL
                        AND reply_time > now() - interval '5 seconds'), '{}'::json)
FROM pg_stat_replication
"""


def stopped(pid: int) -> bool:
    """The process is stopped (SIGSTOP, or a debugger): it answers nothing until continued.

    A kept session's backend still answers while its postmaster is stopped, but no client can
    connect: the probe must not call that server answering (one-shot sessions found it out by
    their connection attempt timing out, 2 s later).
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def _lsn(text: object) -> Lsn | None:
    return Lsn.parse(str(text)) if text else None


@dataclass(frozen=True, slots=True)
class _Answer:
    row: tuple[object, ...]
    replication: tuple[object, ...] | None
    pending: list[tuple[object, ...]]


def _ask(conn: Connection) -> _Answer:
    row = conn.execute(PROBE_SQL).fetchone()
    if row is None:
        raise PostgresError("the probe query returned no row")
    replication = None if row[0] else conn.execute(REPLICATION_SQL).fetchone()
    pending = conn.execute(PENDING_SQL).fetchall() if row[11] else []
    return _Answer(row, replication, pending)


def _answered(settings: PostgresSettings, managed: ManagedConf, answer: _Answer) -> LocalState:
    """What the server said, pg_control's fields included, with pgwarden's own files' facts."""
    (
        in_recovery,
        write_lsn,
        received,
        replayed,
        wal_tli,
        checkpoint_tli,
        min_recovery_tli,
        status,
        received_tli,
        sender_host,
        sender_port,
        pending_restart,
        started_at,
        replay_paused,
        checkpoint_lsn,
        system_id,
        server_version,
        replayed_at,
    ) = answer.row
    if in_recovery:
        known = [t for t in (received_tli, checkpoint_tli, min_recovery_tli) if isinstance(t, int)]
        timeline = max(known) if known else None
    else:
        timeline = wal_tli if isinstance(wal_tli, int) else None
    streaming = status == "streaming" and sender_host
    replication = answer.replication
    return dataclasses.replace(
        _configured(managed),
        data_dir=DataDir.VALID,
        origin=origin(settings, DataDir.VALID),
        # pg_control_system() shows the identifier as a signed bigint; pg_controldata unsigned.
        system_id=str(int(str(system_id)) % (1 << 64)),
        # What pg_controldata prints for a server that answers: a hot standby is in archive
        # recovery (connections are refused in crash recovery), anything else in production.
        control_state=ControlState.IN_ARCHIVE_RECOVERY if in_recovery else ControlState.IN_PRODUCTION,
        control_timeline=checkpoint_tli if isinstance(checkpoint_tli, int) else None,
        control_lsn=_lsn(checkpoint_lsn),
        running=True,
        probe_ok=True,
        in_recovery=bool(in_recovery),
        timeline=timeline,
        write_lsn=_lsn(write_lsn),
        received_lsn=_lsn(received),
        replayed_lsn=_lsn(replayed),
        streaming_from=f"{sender_host}:{sender_port}" if streaming else None,
        pending_restart=bool(pending_restart),
        sync_standby_names=str(replication[0]) if replication else None,
        replication=_flushed(replication[1]) if replication else {},
        pending_params={
            str(name): (str(running), str(configured)) for name, running, configured in answer.pending
        },
        started_at=float(started_at) if isinstance(started_at, int | float) else None,
        replay_paused=bool(replay_paused),
        server_version=server_version if isinstance(server_version, int) else None,
        replayed_at=float(replayed_at) if isinstance(replayed_at, int | float) else None,
        applied_parameters=dict(managed.cluster_parameters),
    )


def _flushed(positions: object) -> dict[str, Lsn]:
    if not isinstance(positions, dict):
        return {}
    return {str(name): Lsn.parse(str(lsn)) for name, lsn in positions.items() if lsn}


def _from_files(settings: PostgresSettings, managed: ManagedConf) -> LocalState:
    """What the data directory and pg_control say, the server aside."""
    data = classify(settings)
    control = data.control
    return dataclasses.replace(
        _configured(managed),
        data_dir=data.kind,
        origin=origin(settings, data.kind, data.reason),
        system_id=control.system_id if control else None,
        control_state=control.state if control else None,
        control_timeline=control.timeline if control else None,
        control_lsn=control.checkpoint_lsn if control else None,
        applied_parameters=dict(managed.cluster_parameters) if data.kind is DataDir.VALID else None,
    )


def _configured(managed: ManagedConf) -> LocalState:
    upstream = managed.upstream
    return LocalState(configured_upstream=upstream.name if upstream else None)


def probe(
    settings: PostgresSettings, timeout: float = DEFAULT_PROBE_TIMEOUT, session: LocalSession | None = None
) -> LocalState:
    """Everything the agent knows about its PostgreSQL, gathered in bounded time.

    A server that answers SQL tells its state, pg_control's included. pg_controldata runs only
    when it does not (stopped, frozen, starting, or not answering in time: then ``running=True,
    probe_ok=False``), or when nothing runs. ``session``: the kept connection to use (else a
    one-shot one). Raises PostgresError only when pg_controldata itself cannot be run (then
    nothing reliable is known about the data directory).
    """
    managed = read_managed(settings)
    pid = postmaster_pid(settings.data_dir)
    if pid is not None and not stopped(pid):
        try:
            if session is not None:
                answer = session.run(_ask, timeout, postmaster=pid)
            else:
                with sql.local_session(settings, timeout) as conn:
                    answer = _ask(conn)
        except PostgresError:
            pass
        else:
            return _answered(settings, managed, answer)
    state = _from_files(settings, managed)
    return state if pid is None else dataclasses.replace(state, running=True)
