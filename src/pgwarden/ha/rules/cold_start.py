"""A full restart: the last leader gets a head start; the others wait for it and for a majority.

After every agent stopped (a power cut, or all nodes stopped for maintenance) the leader key is
gone, and no agent has seen a leader since it started. Racing at once would promote whichever
standby came up first, within ``maximum_lag_on_failover`` of the last *published* position, while
the member holding the most WAL, the last leader (its standbys only ever received what it had
written), may come up later and then be rewound, losing what only it had. So a member that was
not the last leader races only once the last leader and a majority of the last membership the
leader published (``LeaderStatus.members``) answer with a running PostgreSQL, whose positions the
race then compares as in any failover; or once ``cold_start_timeout`` has passed since it began
waiting, which its decision and the history report. The last leader races at once: its head
start.

A member that has seen a leader since its agent started is in an ordinary failover and never
waits here, so node-loss RTO is unchanged; nor does anyone wait on a status that names no
membership (written by an older agent).
"""

from __future__ import annotations

from dataclasses import dataclass

from pgwarden.ha.actions import AcquireLeader, AppendHistory
from pgwarden.ha.decision import Decision, act
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason


@dataclass(frozen=True, slots=True)
class GaveUp:
    """The wait ended at ``cold_start_timeout`` with ``missing`` still not answering."""

    missing: str
    waited: float


def remember(obs: Observation) -> tuple[bool, float | None]:
    """Memory.saw_leader and Memory.cold_start_since after this observation."""
    previous = obs.memory
    if previous.saw_leader or (obs.store_ok and obs.view.leader is not None):
        return True, None
    if obs.store_ok and obs.view.initialize:
        since = previous.cold_start_since
        return False, obs.now if since is None else since
    return False, previous.cold_start_since


def wait(obs: Observation) -> Decision | GaveUp | None:
    """For a standby about to race: wait (a Decision), race having waited long enough (GaveUp,
    to report), or race as usual (None)."""
    view, memory = obs.view, obs.memory
    status, timeout = view.status, view.config.cold_start_timeout
    if memory.saw_leader or status is None or not status.members or not view.initialize or timeout <= 0:
        return None
    last = view.last_leader
    if last is None or last == obs.name:
        return None
    members = status.members
    answered = {obs.name} | {
        p.name for p in obs.peers.values() if p.reachable and p.running and p.lsn is not None
    }
    needed = len(members) // 2 + 1
    counted = len(answered & members)
    missing = []
    if last not in answered:
        missing.append(f"{last} (the last leader)")
    if counted < needed:
        missing.append(f"a majority of {', '.join(sorted(members))} ({counted} of {needed} answered)")
    if not missing:
        return None
    since = obs.now if memory.cold_start_since is None else memory.cold_start_since
    waited = obs.now - since
    if waited >= timeout:
        return GaveUp(" and ".join(missing), waited)
    return act(Reason.COLD_START_WAITING, missing=" and ".join(missing), left=timeout - waited)


def gave_up(decision: Decision, why: GaveUp) -> Decision:
    """The race's decision, reported as the end of a cold-start wait (log, API and history)."""
    if not any(isinstance(action, AcquireLeader) for action in decision.actions):
        return decision
    note = f"cold start: {why.missing} did not answer within cold_start_timeout"
    actions = [
        AppendHistory(f"{note}; {action.reason}") if isinstance(action, AppendHistory) else action
        for action in decision.actions
    ]
    return act(
        Reason.COLD_START_GAVE_UP,
        *actions,
        missing=why.missing,
        waited=why.waited,
        candidates=decision.detail.get("candidates", 1),
    )
