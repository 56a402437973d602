"""Decide-table rows decided by ``pgwarden.ha.rules.requests``.

Operator requests made through this node's REST API: restart, reload, reinitialize.
"""

from __future__ import annotations

from typing import Any

import pytest

from pgwarden.ha.actions import (
    Clone,
    ReloadPostgres,
    RenewLeader,
    StartPrimary,
    StartStandby,
    StopMode,
    StopPostgres,
    WipeDataDir,
)
from pgwarden.ha.decide import decide
from pgwarden.ha.observation import Observation, Request
from pgwarden.ha.reasons import Reason
from pgwarden.model import JobKind
from tests.support.builders import (
    DATA_DIR,
    OTHER_SYSTEM_ID,
    SYSTEM_ID,
    empty_local,
    incomplete_local,
    job,
    observation,
    primary_local,
    standby_local,
    stopped_local,
    unmarked,
)
from tests.unit.rules.table import (
    Expected,
    check,
    leader,
    row,
)

ROWS: list[Any] = [
    # --- operator requests (REST API on this node) -----------------------------------------------
    row(
        "restart_request_on_the_leader_keeps_the_key_and_restarts_as_primary",
        leader(local=primary_local(), requests=[Request.RESTART]),
        Reason.RESTARTING,
        [RenewLeader(), StopPostgres(StopMode.FAST), StartPrimary()],
    ),
    row(
        "restart_request_on_a_standby_restarts_it_following_the_leader",
        observation(requests=[Request.RESTART]),
        Reason.RESTARTING,
        [StopPostgres(StopMode.FAST), StartStandby("node1", slot="node2")],
    ),
    row(
        "restart_request_refused_when_postgres_is_stopped",
        observation(local=stopped_local(), requests=[Request.RESTART]),
        Reason.REQUEST_REFUSED,
        [],
    ),
    row(
        "reinitialize_request_refused_on_the_leader_which_keeps_its_key",
        leader(local=primary_local(), requests=[Request.REINITIALIZE, Request.RESTART]),
        Reason.REQUEST_REFUSED,
        [RenewLeader()],
        request="reinitialize",
    ),
    row(
        "reinitialize_request_on_a_standby_wipes_and_clones_from_the_leader",
        observation(requests=[Request.REINITIALIZE]),
        Reason.REINITIALIZING,
        [StopPostgres(StopMode.IMMEDIATE), WipeDataDir(), Clone("node1")],
    ),
    row(
        "reinitialize_request_refused_for_another_systems_data_pgwarden_did_not_make",
        observation(
            local=unmarked(stopped_local(system_id=OTHER_SYSTEM_ID)), requests=[Request.REINITIALIZE]
        ),
        Reason.REQUEST_REFUSED,
        [],
        request="reinitialize",
        why=(
            f"{DATA_DIR} holds the data of PostgreSQL system {OTHER_SYSTEM_ID}, not this cluster's "
            f"{SYSTEM_ID}; not created by pgwarden (no marker {DATA_DIR}.pgwarden)"
        ),
    ),
    row(
        "reinitialize_request_refused_for_files_pgwarden_did_not_make",
        observation(
            local=unmarked(incomplete_local(), found="contains 2 entries (a, b)"),
            requests=[Request.REINITIALIZE],
        ),
        Reason.REQUEST_REFUSED,
        [],
    ),
    row(
        "reinitialize_request_for_an_unmarked_directory_of_this_cluster_goes_ahead",
        observation(local=unmarked(standby_local()), requests=[Request.REINITIALIZE]),
        Reason.REINITIALIZING,
        [StopPostgres(StopMode.IMMEDIATE), WipeDataDir(), Clone("node1")],
    ),
    row(
        "reinitialize_request_for_pgwardens_directory_of_an_earlier_cluster_goes_ahead",
        observation(local=stopped_local(system_id=OTHER_SYSTEM_ID), requests=[Request.REINITIALIZE]),
        Reason.REINITIALIZING,
        [WipeDataDir(), Clone("node1")],
    ),
    row(
        "reinitialize_request_refused_while_a_clone_runs",
        observation(local=empty_local(job=job(JobKind.CLONE, running=True)), requests=[Request.REINITIALIZE]),
        Reason.REQUEST_REFUSED,
        [],
    ),
    row(
        "reload_request_on_the_leader_renews_and_reloads",
        leader(local=primary_local(), requests=[Request.RELOAD]),
        Reason.RELOADING,
        [RenewLeader(), ReloadPostgres()],
    ),
]


@pytest.mark.parametrize(("obs", "reason", "actions", "detail"), ROWS)
def test_decision(obs: Observation, reason: Reason, actions: Expected, detail: dict[str, object]) -> None:
    check(obs, reason, actions, detail)


def test_request_rows_answer_exactly_the_request_they_handle() -> None:
    refused = decide(leader(local=primary_local(), requests=[Request.REINITIALIZE, Request.RESTART]))
    assert set(refused.answers) == {Request.REINITIALIZE}
    assert "primary" in str(refused.answers[Request.REINITIALIZE])
    done = decide(observation(requests=[Request.RESTART]))
    assert dict(done.answers) == {Request.RESTART: None}
    assert decide(observation()).answers == {}
