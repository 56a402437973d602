"""Decide-table rows decided by ``pgwarden.ha.rules.parameters``.

Live dynamic config: the cluster's parameters changed in etcd reach this node on its next cycle.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pgwarden.ha.actions import (
    ApplyParameters,
    EnsureSlots,
    PublishStatus,
    RenewLeader,
)
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from tests.support.builders import (
    config,
    observation,
    primary_local,
    standby_local,
)
from tests.unit.rules.table import (
    TUNED,
    Expected,
    applied,
    check,
    leader,
    row,
)

ROWS: list[Any] = [
    # --- live dynamic config ------------------------------------------------------------------------
    row(
        "changed_parameters_reach_a_healthy_leader_after_its_usual_duties",
        leader(view=TUNED, local=applied(primary_local())),
        Reason.PARAMETERS_APPLYING,
        [RenewLeader, PublishStatus, EnsureSlots, ApplyParameters()],
        names="work_mem",
    ),
    row(
        "changed_parameters_reach_a_streaming_standby",
        observation(view=TUNED, local=applied(standby_local())),
        Reason.PARAMETERS_APPLYING,
        [ApplyParameters()],
    ),
    row(
        "removed_cluster_parameter_is_applied_too",
        observation(local=applied(standby_local(), work_mem="8MB")),
        Reason.PARAMETERS_APPLYING,
        [ApplyParameters()],
        names="work_mem",
    ),
    row(
        "changed_parameters_reach_a_paused_leader_which_keeps_its_key",
        leader(
            view=replace(TUNED, config=config(pause=True, parameters={"work_mem": "8MB"})),
            local=applied(primary_local()),
        ),
        Reason.PARAMETERS_APPLYING,
        [RenewLeader(watchdog=False), ApplyParameters()],
    ),
]


@pytest.mark.parametrize(("obs", "reason", "actions", "detail"), ROWS)
def test_decision(obs: Observation, reason: Reason, actions: Expected, detail: dict[str, object]) -> None:
    check(obs, reason, actions, detail)
