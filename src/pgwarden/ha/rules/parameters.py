"""Live dynamic config: the cluster's parameters changed in etcd reach this node on its next cycle.

What this node last applied is an observed fact (pgwarden.conf records the cluster parameters it
was written with, and the probe reads them back), so the rule is a comparison, not a flag: when
the dynamic config asks for something else, the steady-state decision is taken as it is and the
parameters are applied after it (``with_parameters``: the leader's and the follower's rules call
it on their steady decisions: LEADER_HEALTHY, LEADER_PAUSED, STANDBY_HEALTHY, FOLLOWER_PAUSED,
which leave PostgreSQL as it is). Only in a steady state: a node that is failing over, starting,
rewinding or switching over applies them when it next starts (every start writes them) or once
it is steady again.
"""

from __future__ import annotations

from collections.abc import Mapping

from pgwarden.ha.actions import ApplyParameters
from pgwarden.ha.decision import Decision, act
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.model import DynamicConfig

ParamValue = str | int | float | bool


def cluster_parameters(config: DynamicConfig) -> dict[str, ParamValue]:
    """The PostgreSQL settings the dynamic config gives every node (node parameters still win)."""
    return {**config.parameters, "max_slot_wal_keep_size": config.max_slot_wal_keep_size}


def changed_parameters(wanted: Mapping[str, ParamValue], applied: Mapping[str, ParamValue]) -> list[str]:
    """Names whose value differs, added or removed. ``1`` and ``1.0`` or ``true`` differ: PostgreSQL
    reads them as they are rendered, and the rendering follows the type."""
    return sorted(
        name
        for name in wanted.keys() | applied.keys()
        if name not in wanted
        or name not in applied
        or type(wanted[name]) is not type(applied[name])
        or wanted[name] != applied[name]
    )


def with_parameters(obs: Observation, steady: Decision) -> Decision:
    """``steady`` (a leader's or a follower's steady decision), with the dynamic config's parameters
    applied after it when they differ from those this node applied."""
    local, applied = obs.local, obs.local.applied_parameters
    if not obs.store_ok or applied is None or not local.probe_ok:
        return steady
    names = changed_parameters(cluster_parameters(obs.view.config), applied)
    if not names:
        return steady
    return act(
        Reason.PARAMETERS_APPLYING,
        *steady.actions,
        ApplyParameters(),
        steady=steady.message,
        names=", ".join(names),
    )
