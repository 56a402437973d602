"""Whether the local data has diverged from the leader's timeline, from the history kept in etcd."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from pgwarden.model import ControlState, HistoryEntry, LocalState, Lsn

_FORMER_PRIMARY_STATES = frozenset({ControlState.SHUT_DOWN, ControlState.IN_PRODUCTION})


def fork_point(history: Sequence[HistoryEntry], timeline: int) -> Lsn | None:
    """Where ``timeline`` ended: the switch point of the promotion that began ``timeline + 1``."""
    return next((e.switch_lsn for e in history if e.promotion and e.timeline == timeline + 1), None)


def remembered_timeline(
    local: LocalState, seen: tuple[float, int] | None
) -> tuple[LocalState, tuple[float, int] | None]:
    """A standby's timeline as the highest this postmaster was seen receiving, and what to remember.

    The WAL receiver's timeline vanishes whenever it reconnects (its upstream restarting, a
    switchover), and pg_control's lags until the next restartpoint, so without this memory a
    standby that already follows a newer timeline would read as diverged from it. A receiver only
    ever streams a timeline whose history contains its start point, so what it received once it
    follows for good. ``seen`` is (postmaster start time, timeline): a restart forgets it.
    """
    if not local.is_standby or local.timeline is None:
        return local, seen
    started = local.started_at
    timeline = max(local.timeline, seen[1]) if seen is not None and seen[0] == started else local.timeline
    return replace(local, timeline=timeline), ((started, timeline) if started is not None else seen)


def local_timeline(local: LocalState) -> int | None:
    return local.timeline if local.timeline is not None else local.control_timeline


def divergence(local: LocalState, leader_timeline: int | None, history: Sequence[HistoryEntry]) -> str | None:
    """Why the local data cannot simply follow the leader, or None when it can.

    A standby that only replayed what the leader also had can follow a newer timeline directly
    (recovery_target_timeline = latest). It has diverged when it holds WAL past the fork, which
    a former primary usually does: its last writes never reached the promoted standby.
    """
    # No exception for "just rewound": pg_rewind leaves a copy of the source's pg_control (its
    # timeline, "in archive recovery"), so a rewound member already reads as following; and the
    # job record outlives the rewind, so trusting it would excuse any later fork.
    mine = local_timeline(local)
    if mine is None or leader_timeline is None or mine == leader_timeline:
        return None
    if mine > leader_timeline:
        return f"my timeline {mine} is newer than the leader's {leader_timeline}"
    switch = fork_point(history, mine)
    if local.running and local.in_recovery:
        position = local.lsn
        if switch is not None and position is not None and position > switch:
            return f"received WAL up to {position}, past the fork at {switch}"
        return None
    if local.running:
        return None  # a running primary is handled as a rogue writer, not rewound
    if local.control_state in _FORMER_PRIMARY_STATES:
        clean = local.control_state is ControlState.SHUT_DOWN
        if clean and switch is not None and local.control_lsn is not None:
            # A clean shutdown writes its checkpoint last: if the fork lies beyond it, the
            # promoted standby received everything (planned switchover) and no rewind is due.
            return (
                None
                if local.control_lsn < switch
                else f"shut down at {local.control_lsn}, past the fork at {switch}"
            )
        return "former primary on an older timeline"
    return None
