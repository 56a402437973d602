"""Decide-table rows decided by ``pgwarden.ha.rules.restarts``.

A restart scheduled through the REST API (``POST /restart {"schedule": ...}``) falls due.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pgwarden.ha.actions import (
    ClearScheduledRestart,
    RenewLeader,
    StartPrimary,
    StartStandby,
    StopMode,
    StopPostgres,
)
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.model import ControlState, RestartConditions, Role
from tests.support.builders import (
    WALL,
    observation,
    primary_local,
    standby_local,
    stopped_local,
)
from tests.unit.rules.table import (
    Expected,
    check,
    leader,
    row,
    scheduled,
    started,
)

ROWS: list[Any] = [
    # --- scheduled restarts -------------------------------------------------------------------------
    row(
        "scheduled_restart_due_on_a_standby_restarts_it_following_the_leader",
        observation(view=scheduled("node2", WALL - 5), local=started(standby_local(), WALL - 600)),
        Reason.SCHEDULED_RESTART,
        [ClearScheduledRestart(WALL - 5), StopPostgres(StopMode.FAST), StartStandby("node1", slot="node2")],
        role="standby",
    ),
    row(
        "scheduled_restart_due_on_the_leader_keeps_the_key",
        leader(view=scheduled("node1", WALL - 5), local=started(primary_local(), WALL - 600)),
        Reason.SCHEDULED_RESTART,
        [ClearScheduledRestart(WALL - 5), RenewLeader(), StopPostgres(StopMode.FAST), StartPrimary()],
        role="primary",
    ),
    row(
        "scheduled_restart_is_moot_once_postgres_started_after_the_schedule",
        observation(view=scheduled("node2", WALL - 5), local=started(standby_local(), WALL - 1)),
        Reason.SCHEDULED_RESTART_MOOT,
        [ClearScheduledRestart(WALL - 5)],
    ),
    row(
        "scheduled_restart_whose_condition_no_longer_holds_is_dropped_as_patroni_does",
        replace(
            observation(view=scheduled("node2", WALL - 5), local=started(standby_local(), WALL - 600)),
            scheduled_restart_conditions=RestartConditions(only_if_pending=True),
        ),
        Reason.SCHEDULED_RESTART_MOOT,
        [ClearScheduledRestart(WALL - 5)],
        why="restart conditions are not satisfied: pending restart flag is not set",
    ),
    row(
        "scheduled_restart_whose_conditions_hold_restarts",
        replace(
            observation(
                view=scheduled("node2", WALL - 5),
                local=replace(started(standby_local(), WALL - 600), pending_restart=True),
            ),
            scheduled_restart_conditions=RestartConditions(role=Role.REPLICA, only_if_pending=True),
        ),
        Reason.SCHEDULED_RESTART,
        [ClearScheduledRestart(WALL - 5), StopPostgres(StopMode.FAST), StartStandby("node1", slot="node2")],
    ),
    row(
        "scheduled_restart_of_a_stopped_postgres_is_moot_and_the_leader_renews",
        leader(view=scheduled("node1", WALL - 5), local=stopped_local(ControlState.SHUT_DOWN)),
        Reason.SCHEDULED_RESTART_MOOT,
        [RenewLeader(), ClearScheduledRestart(WALL - 5)],
    ),
]


@pytest.mark.parametrize(("obs", "reason", "actions", "detail"), ROWS)
def test_decision(obs: Observation, reason: Reason, actions: Expected, detail: dict[str, object]) -> None:
    check(obs, reason, actions, detail)
