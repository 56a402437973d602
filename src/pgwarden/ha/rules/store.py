"""What to do when etcd cannot be read: only a leader has something to protect (safety rule 1).

With failsafe_mode on, the leader's write deadline can also move on its members' promises
(rules/failsafe.py); without them it stops when its lease runs out, as ever.
"""

from __future__ import annotations

from pgwarden.ha.actions import Demote, StopMode
from pgwarden.ha.decision import Decision, act
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.ha.rules.failsafe import keep_writing


def store_unreachable(obs: Observation) -> Decision | None:
    """etcd unreadable: a primary keeps writing only while its lease is certainly valid, then demotes."""
    if obs.store_ok:
        return None
    if not obs.local.running or obs.local.in_recovery:
        return act(Reason.STORE_UNREACHABLE)
    # PostgreSQL runs read-write (or we cannot tell, the probe failing): it may only go on while
    # the lease we last renewed is certainly still ours.
    if obs.view.config.pause:
        return act(Reason.STORE_UNREACHABLE_PAUSED)
    deadline = obs.write_deadline
    if not obs.may_write or deadline is None:
        return act(Reason.STORE_UNREACHABLE_DEMOTING, Demote(StopMode.IMMEDIATE))
    return keep_writing(obs) or act(Reason.STORE_UNREACHABLE_LEASE_VALID, remaining=deadline - obs.now)
