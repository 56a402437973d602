"""The loop's cadence (ha/cadence.py): when the next cycle comes, from what this one decided and did."""

from __future__ import annotations

import pytest

from pgwarden.ha.actions import EnsureSlots, Promote, RenewLeader
from pgwarden.ha.cadence import (
    AFTER_CHANGE,
    DEADLINE_FLOOR,
    RETRY_LEADING,
    SWITCHOVER_CYCLE,
    Carried,
    next_wait,
)
from pgwarden.ha.decision import Decision
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from tests.support.builders import WALL, config, intent, observation, view

STEADY = Decision((RenewLeader(), EnsureSlots(frozenset())), Reason.LEADER_HEALTHY)
PROMOTING = Decision((Promote(),), Reason.LEADER_PROMOTING)


def carried(
    succeeded: bool = True, leading: bool = True, elapsed: float = 0.3, deadline: float | None = None
) -> Carried:
    return Carried(succeeded=succeeded, leading=leading, elapsed=elapsed, until_deadline=deadline)


def obs(**kw: object) -> Observation:
    kw.setdefault("view", view(config=config(loop_wait=10.0)))
    return observation("node1", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("decision", "done", "expected"),
    [
        pytest.param(STEADY, carried(), 10.0 - 0.3, id="steady: the rest of loop_wait"),
        pytest.param(STEADY, carried(elapsed=12.0), 0.0, id="a cycle longer than loop_wait: at once"),
        pytest.param(PROMOTING, carried(), AFTER_CHANGE, id="a state change carried out: soon"),
        pytest.param(
            PROMOTING, carried(succeeded=False, leading=False), 10.0 - 0.3, id="failed, not leading"
        ),
        pytest.param(
            STEADY, carried(succeeded=False), RETRY_LEADING, id="a leader's failed step: retry soon"
        ),
        pytest.param(STEADY, carried(deadline=1.0), 1.0, id="never past the write deadline"),
        pytest.param(STEADY, carried(deadline=-3.0), DEADLINE_FLOOR, id="a deadline passed: no spinning"),
    ],
)
def test_next_wait(decision: Decision, done: Carried, expected: float) -> None:
    assert next_wait(obs(), decision, done) == pytest.approx(expected)


def test_a_switchover_naming_this_node_is_followed_closely_while_active() -> None:
    switching = obs(view=view(config=config(loop_wait=10.0), switchover=intent(leader="node1")))
    assert next_wait(switching, STEADY, carried()) == SWITCHOVER_CYCLE
    other = obs(
        view=view(config=config(loop_wait=10.0), switchover=intent(leader="node3", candidate="node2"))
    )
    assert next_wait(other, STEADY, carried()) == pytest.approx(10.0 - 0.3)
    expired = obs(
        view=view(config=config(loop_wait=10.0), switchover=intent(leader="node1", deadline=WALL - 1))
    )
    assert next_wait(expired, STEADY, carried()) == pytest.approx(10.0 - 0.3)
