"""Decide-table rows decided by ``pgwarden.ha.rules.switchover``.

Planned switchover (safety rule 5): the leader's half, and which intent the others must respect.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pgwarden.ha.actions import (
    Checkpoint,
    ClearSwitchover,
    EnsureSlots,
    PublishStatus,
    ReleaseLeader,
    RenewLeader,
    StartPrimary,
    StopMode,
    StopPostgres,
)
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.model import (
    ControlState,
    Lsn,
    PgState,
)
from tests.support.builders import (
    WALL,
    intent,
    member,
    peer,
    primary_local,
    primary_member,
    stopped_local,
    unreachable,
    view,
    with_junk,
)
from tests.unit.rules.table import (
    CLEANLY_STOPPED,
    STREAMING_TO_BOTH,
    SWITCHING,
    Expected,
    check,
    leader,
    row,
)

ROWS: list[Any] = [
    # --- the leader key holds junk (docs/faults.md, "bad input") -----------------------------------
    row(
        "leader_removes_an_unreadable_switchover_intent",
        leader(view=with_junk(view(), switchover="42 is not an object"), local=primary_local()),
        Reason.SWITCHOVER_ABANDONED,
        [RenewLeader, ClearSwitchover("its value in etcd is unreadable (42 is not an object)")],
    ),
    # --- planned switchover: the leader's half (safety rule 5) ------------------------------------
    row(
        "switchover_due_primary_checkpoints_then_stops_cleanly_keeping_the_key",
        leader(view=SWITCHING, local=STREAMING_TO_BOTH),
        Reason.SWITCHOVER_STOPPING,
        [RenewLeader(), Checkpoint(), StopPostgres(StopMode.FAST)],
        candidate="node2",
    ),
    row(
        "switchover_waits_for_the_candidate_to_stream_before_stopping_the_primary",
        leader(view=SWITCHING, local=replace(primary_local(), replication={"node3": Lsn.parse("0/3000000")})),
        Reason.SWITCHOVER_WAITING_FOR_STREAMING,
        [RenewLeader, PublishStatus, EnsureSlots],
        candidate="node2",
    ),
    row(
        "switchover_waits_while_the_candidate_has_not_replayed_the_shutdown_checkpoint",
        leader(view=SWITCHING, local=CLEANLY_STOPPED, peers=[peer("node2", replayed="0/3000000")]),
        Reason.SWITCHOVER_WAITING_FOR_CANDIDATE,
        [RenewLeader()],
    ),
    row(
        "switchover_waits_when_the_candidate_replayed_only_up_to_the_checkpoint_start",
        leader(view=SWITCHING, local=CLEANLY_STOPPED, peers=[peer("node2", replayed="0/3000100")]),
        Reason.SWITCHOVER_WAITING_FOR_CANDIDATE,
        [RenewLeader()],
    ),
    row(
        "switchover_waits_when_the_candidate_does_not_answer",
        leader(view=SWITCHING, local=CLEANLY_STOPPED, peers=[unreachable("node2")]),
        Reason.SWITCHOVER_WAITING_FOR_CANDIDATE,
        [RenewLeader()],
        replayed="unknown",
    ),
    row(
        "switchover_hands_over_the_key_once_the_candidate_replayed_past_the_checkpoint",
        leader(view=SWITCHING, local=CLEANLY_STOPPED, peers=[peer("node2", replayed="0/3000178")]),
        Reason.SWITCHOVER_HANDING_OVER,
        [ReleaseLeader()],
    ),
    row(
        "switchover_to_an_unknown_member_is_abandoned_before_stopping",
        leader(view=view(switchover=intent("node9")), local=primary_local()),
        Reason.SWITCHOVER_ABANDONED,
        [RenewLeader(), ClearSwitchover],
    ),
    row(
        "switchover_to_a_candidate_with_replay_paused_is_abandoned_before_stopping",
        leader(
            view=SWITCHING,
            local=STREAMING_TO_BOTH,
            peers=[replace(peer("node2"), replay_paused=True)],
        ),
        Reason.SWITCHOVER_ABANDONED,
        [RenewLeader(), ClearSwitchover],
    ),
    row(
        "switchover_to_a_nofailover_member_is_abandoned",
        leader(
            view=view(members=(primary_member(), member("node2", nofailover=True)), switchover=intent()),
            local=primary_local(),
        ),
        Reason.SWITCHOVER_ABANDONED,
        [RenewLeader(), ClearSwitchover],
    ),
    row(
        "switchover_candidate_stopped_meanwhile_abandoned_and_primary_restarted",
        leader(
            view=view(
                members=(primary_member(), member("node2", state=PgState.STOPPED)), switchover=intent()
            ),
            local=CLEANLY_STOPPED,
            peers=[peer("node2", running=False, replayed=None)],
        ),
        Reason.SWITCHOVER_ABANDONED,
        [RenewLeader(), ClearSwitchover, StartPrimary()],
    ),
    row(
        "switchover_past_its_deadline_is_abandoned_and_the_primary_restarted",
        leader(view=view(switchover=intent(deadline=WALL - 1)), local=CLEANLY_STOPPED),
        Reason.SWITCHOVER_ABANDONED,
        [RenewLeader(), ClearSwitchover, StartPrimary()],
    ),
    row(
        "switchover_naming_another_leader_is_dropped",
        leader(view=view(switchover=intent(leader="node3")), local=primary_local()),
        Reason.SWITCHOVER_ABANDONED,
        [RenewLeader(), ClearSwitchover],
    ),
    row(
        "switchover_after_an_unclean_stop_is_abandoned_and_the_primary_restarted",
        leader(view=SWITCHING, local=stopped_local(ControlState.IN_PRODUCTION)),
        Reason.SWITCHOVER_ABANDONED,
        [RenewLeader(), ClearSwitchover, StartPrimary()],
    ),
]


@pytest.mark.parametrize(("obs", "reason", "actions", "detail"), ROWS)
def test_decision(obs: Observation, reason: Reason, actions: Expected, detail: dict[str, object]) -> None:
    check(obs, reason, actions, detail)
