"""Deadlines on the monotonic clock: the one answer to "does the lease (or a promise) still hold".

The leader key's lease, the members' failsafe promises to a leader and the promise one member gave
all end at a deadline the agent reckons on its monotonic clock; every check of whether one still
holds asks ``holds`` (the fence, a process that imports nothing of pgwarden, keeps its own copy).
"""

from __future__ import annotations


def holds(deadline: float | None, now: float) -> bool:
    """The deadline is known and not yet reached: what it guards is certainly still ours at ``now``.

    Strict: at the deadline itself the lease may already be another member's (safety rule 1).
    """
    return deadline is not None and now < deadline
