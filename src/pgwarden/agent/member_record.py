"""What this agent publishes about itself: role, state, timeline and WAL position of its PostgreSQL."""

from __future__ import annotations

from pgwarden import __version__
from pgwarden.ha.decision import Decision
from pgwarden.model import ControlState, DataDir, JobKind, LocalState, Member, NodeConfig, PgState, Role
from pgwarden.model.cluster import MAX_PROGRESS, MAX_REASON, MAX_REASON_CODE

_JOB_STATES = {
    JobKind.CLONE: PgState.CREATING_REPLICA,
    JobKind.REWIND: PgState.REWINDING,
    JobKind.INITDB: PgState.INITIALIZING,
}
_CRASH_STATES = frozenset({ControlState.IN_PRODUCTION, ControlState.IN_ARCHIVE_RECOVERY})


def role_of(local: LocalState) -> Role:
    if local.is_primary:
        return Role.PRIMARY
    if local.data_dir is DataDir.VALID:
        return Role.REPLICA
    return Role.UNINITIALIZED


def state_of(local: LocalState) -> PgState:
    if local.job is not None and local.job.running:
        return _JOB_STATES[local.job.kind]
    if local.running:
        return PgState.RUNNING if local.probe_ok else PgState.STARTING
    if local.control_state in _CRASH_STATES:
        return PgState.CRASHED
    return PgState.STOPPED


def member_record(
    config: NodeConfig,
    local: LocalState,
    scheduled_restart: float | None = None,
    decision: Decision | None = None,
) -> Member:
    pg = config.postgresql
    job = local.job
    return Member(
        name=config.name,
        api_url=config.api.url,
        host=pg.connect_address.host,
        port=pg.connect_address.port,
        role=role_of(local),
        state=state_of(local),
        timeline=local.timeline if local.timeline is not None else local.control_timeline,
        lsn=local.lsn,
        tags=config.tags,
        pending_restart=local.pending_restart,
        version=__version__,
        pending_restart_reason=dict(local.pending_params),
        scheduled_restart=scheduled_restart,
        config_errors=local.config_errors,
        reason_code=decision.reason.name[:MAX_REASON_CODE] if decision is not None else "",
        reason=decision.message[:MAX_REASON] if decision is not None else "",
        progress=job.progress[:MAX_PROGRESS] if job is not None and job.running else "",
        receive_lsn=local.received_lsn if local.is_standby else None,
        replay_lsn=local.replayed_lsn if local.is_standby else None,
        streaming=bool(local.streaming_from) if local.is_standby else None,
        # A relay says which slots it holds, so a member retagged to it switches once its slot
        # is there (ha/rules/topology.py); a primary keeps one for every member anyway.
        slots=frozenset(local.slots) if local.is_standby and local.slots is not None else None,
    )
