"""Decide-table rows decided by ``pgwarden.ha.rules.membership``.

Who may join the cluster: a newcomer whose replication slot name another member has stays out.
"""

from __future__ import annotations

from typing import Any

import pytest

from pgwarden.ha.decide import decide
from pgwarden.ha.observation import Observation, Request
from pgwarden.ha.reasons import Reason
from pgwarden.model import Role
from tests.support.builders import (
    empty_local,
    incomplete_local,
    member,
    observation,
    primary_member,
    view,
)
from tests.unit.rules.table import (
    CROWDED,
    CROWDED_LATER,
    CROWDED_LEADERLESS,
    LATELY,
    RESTARTED,
    TWO_NEWCOMERS,
    WITHOUT_NODE3,
    Expected,
    check,
    leaderless,
    registered,
    row,
)

ROWS: list[Any] = [
    # --- who may join: slot names ------------------------------------------------------------------
    row(
        "newcomer_whose_slot_name_a_member_has_neither_clones_nor_takes_a_slot",
        observation("NODE2", view=CROWDED, local=empty_local()),
        Reason.SLOT_NAME_TAKEN,
        [],
        name="NODE2",
        slot="node2",
        rival="node2",
    ),
    row(
        "newcomer_whose_slot_name_is_taken_stays_out_of_a_race_too",
        leaderless("NODE2", view=CROWDED_LEADERLESS, local=empty_local()),
        Reason.SLOT_NAME_TAKEN,
        [],
    ),
    row(
        "newcomer_with_an_interrupted_clone_stays_out",
        observation("NODE2", view=CROWDED_LATER, local=incomplete_local()),
        Reason.SLOT_NAME_TAKEN,
        [],
    ),
    row(
        "newcomer_registered_first_still_yields_to_a_member_with_data",
        observation("NODE2", view=RESTARTED, local=empty_local()),
        Reason.SLOT_NAME_TAKEN,
        [],
        rival="node2",
    ),
    row(
        "of_two_newcomers_sharing_a_slot_name_the_second_stays_out",
        observation("Node-4", view=TWO_NEWCOMERS, local=empty_local()),
        Reason.SLOT_NAME_TAKEN,
        [],
        rival="node_4",
        slot="node_4",
    ),
    row(
        "newcomer_stays_out_while_the_leader_still_keeps_the_slot_of_a_member_gone_lately",
        observation("NODE3", view=WITHOUT_NODE3, local=empty_local(), memory=LATELY),
        Reason.SLOT_NAME_TAKEN,
        [],
        rival="node3",
    ),
    row(
        "rival_of_the_leader_stays_out_though_registered_first",
        observation(
            "Node1",
            view=view(
                members=registered(
                    member("Node1", Role.UNINITIALIZED), primary_member("node1"), member("node2")
                )
            ),
            local=empty_local(),
        ),
        Reason.SLOT_NAME_TAKEN,
        [],
        rival="node1",
    ),
]


@pytest.mark.parametrize(("obs", "reason", "actions", "detail"), ROWS)
def test_decision(obs: Observation, reason: Reason, actions: Expected, detail: dict[str, object]) -> None:
    check(obs, reason, actions, detail)


def test_a_member_kept_out_for_its_slot_name_refuses_every_request_naming_both_members() -> None:
    decision = decide(
        observation(
            "NODE2", view=CROWDED, local=empty_local(), requests=[Request.REINITIALIZE, Request.RESTART]
        )
    )
    assert decision.actions == () and set(decision.answers) == {Request.REINITIALIZE, Request.RESTART}
    why = str(decision.answers[Request.REINITIALIZE])
    assert "node2" in why and "NODE2" in why
    assert "NODE2" in decision.message and "node2" in decision.message
