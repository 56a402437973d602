"""Decide-table rows decided by ``pgwarden.ha.rules.failsafe``.

Failsafe mode: a leader keeps writing through an etcd outage only on every member's promise.
"""

from __future__ import annotations

from typing import Any

import pytest

from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from tests.support.builders import (
    failsafe_view,
    observation,
    peer,
    primary_local,
)
from tests.unit.rules.table import (
    FAILSAFE_LEADERLESS,
    IMMEDIATE,
    Expected,
    check,
    promised,
    row,
)

ROWS: list[Any] = [
    # --- a member that promised ---------------------------------------------------------------
    row(
        "member_that_promised_waits_while_etcd_holds_no_key",
        observation(view=FAILSAFE_LEADERLESS, peers=[peer("node3")], promise=promised()),
        Reason.FAILSAFE_PROMISE_HOLDING,
        [],
        leader="node1",
        remaining=3.0,
    ),
    row(
        "member_that_promised_does_not_follow_another_leader",
        observation(view=failsafe_view(leader="node3"), promise=promised()),
        Reason.FAILSAFE_PROMISE_HOLDING,
        [],
    ),
    row(
        "member_that_promised_yet_runs_read_write_demotes",
        observation(view=FAILSAFE_LEADERLESS, local=primary_local(), promise=promised()),
        Reason.FAILSAFE_PROMISE_DEMOTING,
        [IMMEDIATE],
    ),
]


@pytest.mark.parametrize(("obs", "reason", "actions", "detail"), ROWS)
def test_decision(obs: Observation, reason: Reason, actions: Expected, detail: dict[str, object]) -> None:
    check(obs, reason, actions, detail)
