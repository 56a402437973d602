"""Whose data directory this is: pgwarden empties only one it made or one of this cluster.

A directory is ours when pgwarden's marker beside it names it (written before every clone and
initdb, so an interrupted one is still recognised), or when it is a readable PostgreSQL data
directory whose system identifier is the cluster's. Anything else (a typo in ``data_dir``, the
parent of a real cluster, another cluster's data) is never used, overwritten or removed: the
rules below refuse with what was found, and ``guard_removal`` checks every decision once more.
"""

from __future__ import annotations

from pgwarden.ha.actions import Action, AdoptDataDir, Clone, Rewind, RunInitdb, WipeDataDir
from pgwarden.ha.decision import Decision, act
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.model import DataDir, LocalState

# Actions after which the directory holds other files than the ones the observer just saw.
_REPLACING = (WipeDataDir, Clone, Rewind, RunInitdb)


def removal_refusal(local: LocalState, cluster_id: str | None) -> str | None:
    """None when the data directory may be emptied; otherwise why not, naming the path and what
    is there. The executor asks the same question again right before removing anything."""
    origin = local.origin
    if local.data_dir is DataDir.MISSING or origin.marked:
        return None
    if local.data_dir is DataDir.VALID and local.system_id is not None:
        if cluster_id and local.system_id == cluster_id:
            return None
        theirs = f"not this cluster's {cluster_id}" if cluster_id else "and the cluster's is not known yet"
        what = f"holds the data of PostgreSQL system {local.system_id}, {theirs}"
    else:
        what = origin.found or "is not empty"
    marker = f" ({origin.marker})" if origin.marker else ""
    hint = f"; {origin.hint}" if origin.hint else ""
    return f"{origin.path or 'the data directory'} {what}; not created by pgwarden{marker}{hint}"


def unowned_data_directory(obs: Observation) -> Decision | None:
    """Files that are neither pgwarden's nor this cluster's data are never removed or cloned over."""
    local = obs.local
    if local.data_dir is not DataDir.INCOMPLETE:
        return None
    why = removal_refusal(local, obs.view.initialize)
    return None if why is None else act(Reason.DATA_DIRECTORY_NOT_OURS, why=why)


def foreign_data_directory(obs: Observation) -> Decision | None:
    """A data directory of another cluster is never used, overwritten or removed."""
    # An unreadable initialize key leaves the cluster's identifier unknown: nothing to compare.
    cluster_id, local_id = obs.view.initialize, obs.local.system_id
    if not cluster_id or obs.local.data_dir is not DataDir.VALID or local_id in (None, cluster_id):
        return None
    if obs.leader_is_me and obs.holds_lease:
        # The leader's data is the cluster's: a different identifier in etcd is a bad value
        # (the leader rules rewrite it), never a reason to stop renewing and serving.
        return None
    return act(Reason.FOREIGN_DATA_DIRECTORY, local_id=local_id, cluster_id=cluster_id)


def guard_removal(obs: Observation, decision: Decision) -> Decision:
    """Whatever rule asked for it, a decision that would empty a directory that is not ours
    becomes a refusal that does nothing at all (not even the stop before the removal)."""
    if not any(isinstance(a, WipeDataDir) for a in decision.actions):
        return decision
    why = removal_refusal(obs.local, obs.view.initialize)
    if why is None:
        return decision
    refused = act(Reason.DATA_DIRECTORY_NOT_OURS, why=why)
    answers = dict.fromkeys(decision.answers, why)
    return Decision(refused.actions, refused.reason, refused.detail, answers=answers)


def adoption(obs: Observation, actions: tuple[Action, ...]) -> tuple[Action, ...]:
    """A data directory of this cluster without the marker (made by an older pgwarden, or by
    hand) gets one, so that it is still recognised should its pg_control ever go missing. Not
    while its contents are being replaced: a clone or initdb writes its own marker first."""
    local, cluster_id = obs.local, obs.view.initialize
    ours = local.data_dir is DataDir.VALID and cluster_id is not None and local.system_id == cluster_id
    busy = (local.job is not None and local.job.running) or any(isinstance(a, _REPLACING) for a in actions)
    return (AdoptDataDir(),) if obs.store_ok and ours and not local.origin.marked and not busy else ()
