"""A request's options travel from the API thread to the loop's observation, and a restart whose
conditions do not hold answers Patroni's 503: RequestBox and AgentOperations with a loop played by
a thread that decides with the real ``decide``."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from pgwarden.agent.requests import RequestBox, RequestPending
from pgwarden.agent.snapshot import SnapshotHolder
from pgwarden.api.contract import OperationError
from pgwarden.api.operations import AgentOperations
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.memory import MemoryStore
from pgwarden.ha.decide import decide
from pgwarden.ha.observation import Request
from pgwarden.model import ReinitializeOptions, RestartConditions, Role
from tests.support import api_fakes as fake
from tests.support import builders as b
from tests.support.store_contract import VirtualClock


def test_options_are_kept_with_the_pending_request_and_other_options_wait() -> None:
    box = RequestBox()
    pending_only = RestartConditions(only_if_pending=True)
    first = box.submit(Request.RESTART, pending_only)
    assert box.submit(Request.RESTART, pending_only) is first  # the same ask shares the answer
    assert box.options(Request.RESTART) == pending_only
    with pytest.raises(RequestPending, match="restart request with other options is pending"):
        box.submit(Request.RESTART, RestartConditions(role=Role.REPLICA))
    box.submit(Request.REINITIALIZE, ReinitializeOptions(force=True))
    assert box.options(Request.REINITIALIZE) == ReinitializeOptions(force=True)
    assert box.options(Request.RELOAD) is None
    box.withdraw(first)
    assert box.options(Request.RESTART) is None


def test_scheduled_conditions_go_with_the_schedule() -> None:
    box = RequestBox()
    assert box.schedule_restart(100.0, RestartConditions(below_version=160000))
    assert box.scheduled_conditions() == RestartConditions(below_version=160000)


def _loop_once(box: RequestBox, conditions: RestartConditions) -> threading.Thread:
    """Play one agent cycle on a standby with nothing pending: wait for the request, decide, answer."""

    def cycle() -> None:
        for _ in range(500):
            if box.pending():
                break
            threading.Event().wait(0.01)
        obs = replace(b.observation(requests=box.pending()), restart_conditions=conditions)
        decision = decide(obs)
        box.answer(decision.answers, None, decision.message)

    thread = threading.Thread(target=cycle, daemon=True)
    thread.start()
    return thread


def test_a_restart_whose_condition_does_not_hold_answers_patronis_503() -> None:
    box = RequestBox()
    ops = AgentOperations(
        ClusterStore(MemoryStore(VirtualClock()), "demo"), SnapshotHolder(fake.primary()), box
    )
    conditions = RestartConditions(only_if_pending=True)
    thread = _loop_once(box, conditions)
    with pytest.raises(OperationError) as refused:
        ops.restart(5.0, conditions)
    thread.join(5)
    assert refused.value.status == 503
    assert refused.value.document() == {
        "error": "restart conditions are not satisfied",
        "why": "restart conditions are not satisfied: pending restart flag is not set",
    }
