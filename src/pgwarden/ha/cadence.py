"""When the next cycle comes: the loop's cadence, a pure function of what this cycle decided and did.

A controller's requeue-after: the agent's wiring (and the simulation) only waits what this says,
or less when etcd's watch or the postmaster wakes it. The policy lives here, beside the rules, so
the simulation runs on the same cadence as a node does.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgwarden.ha import actions as a
from pgwarden.ha.decision import Decision
from pgwarden.ha.observation import Observation

# Actions that change what PostgreSQL is doing: after them the next cycle comes quickly, so the
# new state is published (and a new primary's slots created) without waiting a full loop_wait.
STATE_CHANGING: tuple[type[a.Action], ...] = (
    a.Promote,
    a.StartPrimary,
    a.StartStandby,
    a.Demote,
    a.AcquireLeader,
    a.Follow,
    a.StopPostgres,
    a.ReleaseLeader,
    a.ApplyParameters,  # so the settings left pending a restart are published at once
)
AFTER_CHANGE = 0.2  # seconds: after a decision that changed PostgreSQL's state, carried out
RETRY_LEADING = 0.25  # seconds: a leader whose decision failed (its renewal, say) tries again soon
# While a switchover names this node (as leader or candidate), cycles come this often: the leader
# waits on the candidate's replay position, which the candidate's API reports from its last cycle.
SWITCHOVER_CYCLE = 0.05
DEADLINE_FLOOR = 0.05  # never spin: at least this long, even with the deadline right now


@dataclass(frozen=True, slots=True)
class Carried:
    """What happened after ``decide``: the facts the cadence needs from carrying the decision out."""

    succeeded: bool  # every action was carried out
    leading: bool  # this node holds a leader lease after the actions
    elapsed: float  # seconds this cycle took so far
    until_deadline: float | None  # seconds left before the write deadline (None: no deadline)


def next_wait(obs: Observation, decision: Decision, carried: Carried) -> float:
    """Seconds until the next cycle, at most: quick after a state change, soon after a leader's
    failed step, often during a switchover naming this node, never past the write deadline."""
    quick = carried.succeeded and any(isinstance(x, STATE_CHANGING) for x in decision.actions)
    # A leader whose renewal failed retries soon: its lease deadline is running out.
    retry = not carried.succeeded and carried.leading
    if quick:
        wait = AFTER_CHANGE
    elif retry:
        wait = RETRY_LEADING
    else:
        wait = max(0.0, obs.view.config.loop_wait - carried.elapsed)
    intent = obs.view.switchover
    if intent is not None and obs.name in (intent.leader, intent.candidate) and intent.active(obs.wall):
        wait = min(wait, SWITCHOVER_CYCLE)
    if carried.until_deadline is not None:
        # Decide again no later than the write deadline: demotion must not wait a tick.
        wait = min(wait, max(DEADLINE_FLOOR, carried.until_deadline))
    return wait
