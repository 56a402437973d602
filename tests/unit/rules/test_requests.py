"""Decide-table rows decided by ``pgwarden.ha.rules.requests``.

Operator requests made through this node's REST API: restart, reload, reinitialize.
"""

from __future__ import annotations

from dataclasses import replace
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
from pgwarden.model import JobKind, ReinitializeOptions, RestartConditions, Role
from tests.support.builders import (
    DATA_DIR,
    OTHER_SYSTEM_ID,
    SYSTEM_ID,
    empty_local,
    incomplete_local,
    job,
    member,
    observation,
    primary_local,
    primary_member,
    standby_local,
    stopped_local,
    unmarked,
    view,
)
from tests.unit.rules.table import (
    Expected,
    cascade,
    check,
    leader,
    row,
)

PG15 = 150004  # server_version_num of the running server in the rows below
UNMET = "restart conditions are not satisfied"


def restart_if(obs: Observation, **conditions: Any) -> Observation:
    """``obs`` with a pending restart request carrying Patroni's ``conditions``; PostgreSQL 15.4."""
    local = replace(obs.local, server_version=PG15)
    return replace(
        obs,
        local=local,
        requests=frozenset({Request.RESTART}),
        restart_conditions=RestartConditions(**conditions),
    )


def reinitialize_with(obs: Observation, **options: bool) -> Observation:
    return replace(
        obs, requests=frozenset({Request.REINITIALIZE}), reinitialize_options=ReinitializeOptions(**options)
    )


PENDING_STANDBY = replace(standby_local(), pending_restart=True)
CLONEFROM_VIEW = view(members=(primary_member(), member("node2"), member("node3", clonefrom=True)))

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
        "restart_request_on_a_standby_waiting_for_its_relays_slot_restarts_it_where_it_streams",
        observation(
            "node5",
            view=replace(
                cascade(),
                members=tuple(
                    replace(m, slots=frozenset()) if m.name == "node4" else m for m in cascade().members
                ),
            ),
            local=replace(standby_local(upstream="node1"), streaming_from="127.0.0.1:5432"),
            requests=[Request.RESTART],
        ),
        Reason.RESTARTING,
        [StopPostgres(StopMode.FAST), StartStandby("node1", slot="node5")],
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
    # --- Patroni's restart conditions (POST /restart restart_pending, role, postgres_version) -----
    row(
        "restart_pending_only_when_nothing_is_pending_is_not_done",
        restart_if(observation(), only_if_pending=True),
        Reason.REQUEST_REFUSED,
        [],
        request="restart",
        why=f"{UNMET}: pending restart flag is not set",
    ),
    row(
        "restart_pending_only_when_a_restart_is_pending_restarts",
        restart_if(observation(local=PENDING_STANDBY), only_if_pending=True),
        Reason.RESTARTING,
        [StopPostgres(StopMode.FAST), StartStandby("node1", slot="node2")],
    ),
    row(
        "restart_of_replicas_only_is_not_done_on_the_leader_which_keeps_its_key",
        restart_if(leader(local=primary_local()), role=Role.REPLICA),
        Reason.REQUEST_REFUSED,
        [RenewLeader()],
        why=f"{UNMET}: host role mismatch (this node is primary, not replica)",
    ),
    row(
        "restart_of_the_primary_only_restarts_the_leader",
        restart_if(leader(local=primary_local()), role=Role.PRIMARY),
        Reason.RESTARTING,
        [RenewLeader(), StopPostgres(StopMode.FAST), StartPrimary()],
    ),
    row(
        "restart_of_the_primary_only_is_not_done_on_a_standby",
        restart_if(observation(), role=Role.PRIMARY),
        Reason.REQUEST_REFUSED,
        [],
        why=f"{UNMET}: host role mismatch (this node is replica, not primary)",
    ),
    row(
        "restart_below_a_newer_version_restarts",
        restart_if(observation(), below_version=160000),
        Reason.RESTARTING,
        [StopPostgres(StopMode.FAST), StartStandby("node1", slot="node2")],
    ),
    row(
        "restart_below_the_running_version_is_not_done",
        restart_if(observation(), below_version=PG15),
        Reason.REQUEST_REFUSED,
        [],
        why=f"{UNMET}: postgres version mismatch (the server runs {PG15}, not below {PG15})",
    ),
    row(
        "restart_below_a_version_is_not_done_while_the_servers_is_unknown",
        replace(restart_if(observation(), below_version=160000), local=standby_local()),
        Reason.REQUEST_REFUSED,
        [],
        why=f"{UNMET}: postgres version mismatch (the server's version is not known yet)",
    ),
    row(
        "restart_with_every_condition_holding_restarts",
        restart_if(
            observation(local=PENDING_STANDBY), role=Role.REPLICA, below_version=160000, only_if_pending=True
        ),
        Reason.RESTARTING,
        [StopPostgres(StopMode.FAST), StartStandby("node1", slot="node2")],
    ),
    # --- Patroni's reinitialize options (force, from_leader) -------------------------------------
    row(
        "reinitialize_clones_from_a_running_clonefrom_member",
        observation(view=CLONEFROM_VIEW, requests=[Request.REINITIALIZE]),
        Reason.REINITIALIZING,
        [StopPostgres(StopMode.IMMEDIATE), WipeDataDir(), Clone("node3")],
    ),
    row(
        "reinitialize_from_leader_clones_from_the_leader_despite_a_clonefrom_member",
        reinitialize_with(observation(view=CLONEFROM_VIEW), from_leader=True),
        Reason.REINITIALIZING,
        [StopPostgres(StopMode.IMMEDIATE), WipeDataDir(), Clone("node1")],
    ),
    row(
        "forced_reinitialize_on_the_leader_is_still_refused",
        reinitialize_with(leader(local=primary_local()), force=True),
        Reason.REQUEST_REFUSED,
        [RenewLeader()],
        request="reinitialize",
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


def test_forced_reinitialize_waits_for_the_running_clone_instead_of_being_refused() -> None:
    """Patroni's force cancels the running task; pgwarden does not kill a clone or rewind half-way:
    the request stays pending (no answer) while the job runs, and is done once it ended."""
    running = empty_local(job=job(JobKind.CLONE, running=True))
    waiting = decide(reinitialize_with(observation(local=running), force=True))
    assert waiting.reason is Reason.JOB_IN_PROGRESS
    assert waiting.answers == {}
    both = frozenset({Request.REINITIALIZE, Request.RELOAD})
    also_reload = replace(reinitialize_with(observation(local=running), force=True), requests=both)
    assert set(decide(also_reload).answers) == {Request.RELOAD}  # the others are still answered
    refused = decide(reinitialize_with(observation(local=running)))
    assert "force" in str(refused.answers[Request.REINITIALIZE])
    done = decide(reinitialize_with(observation(), force=True))
    assert done.reason is Reason.REINITIALIZING
    assert dict(done.answers) == {Request.REINITIALIZE: None}
