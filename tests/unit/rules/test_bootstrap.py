"""Decide-table rows decided by ``pgwarden.ha.rules.bootstrap``.

Creating a new cluster: race for the initialize key; the winner runs initdb and becomes leader.
"""

from __future__ import annotations

from typing import Any

import pytest

from pgwarden.ha.actions import (
    AcquireLeader,
    BeginBootstrap,
    CancelBootstrap,
    FinishBootstrap,
    RenewLeader,
    RunInitdb,
    StartPrimary,
)
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.model import (
    ControlState,
    JobKind,
)
from tests.support.builders import (
    SYSTEM_ID,
    empty_local,
    failed,
    incomplete_local,
    memory,
    observation,
    primary_local,
    standby_local,
    stopped_local,
    uninitialized_view,
    unprobed_local,
)
from tests.unit.rules.table import (
    LEASED,
    LONG_AGO,
    Expected,
    check,
    row,
)

ROWS: list[Any] = [
    # --- bootstrap --------------------------------------------------------------------------------
    row(
        "uninitialized_cluster_member_races_to_bootstrap",
        observation(view=uninitialized_view(), local=empty_local()),
        Reason.BOOTSTRAP_RACING,
        [BeginBootstrap],
    ),
    row(
        "member_waits_while_another_bootstraps",
        observation(view=uninitialized_view(bootstrapping="node1"), local=empty_local()),
        Reason.BOOTSTRAP_BY_OTHER,
        [],
        member="node1",
    ),
    row(
        "nofailover_member_never_bootstraps",
        observation(view=uninitialized_view(), local=empty_local(), nofailover=True),
        Reason.NOT_BOOTSTRAPPING_NOFAILOVER,
        [],
    ),
    row(
        "incomplete_data_dir_is_never_bootstrapped_over",
        observation(view=uninitialized_view(), local=incomplete_local()),
        Reason.NOT_BOOTSTRAPPING_DATA_INCOMPLETE,
        [],
    ),
    row(
        "bootstrap_winner_runs_initdb",
        observation(view=uninitialized_view(bootstrapping="node2"), local=empty_local()),
        Reason.BOOTSTRAP_INITDB,
        [RunInitdb],
    ),
    row(
        "failed_initdb_gives_up_the_bootstrap_after_the_backoff",
        observation(
            view=uninitialized_view(bootstrapping="node2"),
            local=empty_local(failed(JobKind.INITDB, "disk full")),
            memory=memory(job_failed_at=LONG_AGO),
        ),
        Reason.BOOTSTRAP_INITDB_FAILED,
        [CancelBootstrap],
        error="disk full",
    ),
    row(
        "bootstrap_winner_takes_the_key_before_starting_the_new_primary",
        observation(
            view=uninitialized_view(bootstrapping="node2"), local=stopped_local(ControlState.SHUT_DOWN)
        ),
        Reason.BOOTSTRAP_STARTING,
        [AcquireLeader, StartPrimary],
    ),
    row(
        "bootstrap_leader_with_running_primary_publishes_the_system_id",
        observation(
            view=uninitialized_view(bootstrapping="node2", leader="node2"),
            local=primary_local(),
            lease_deadline=LEASED,
        ),
        Reason.BOOTSTRAP_FINISHING,
        [RenewLeader, FinishBootstrap(SYSTEM_ID)],
    ),
    row(
        "running_primary_unknown_to_etcd_takes_the_key_and_publishes_its_system_id",
        observation(view=uninitialized_view(), local=primary_local()),
        Reason.BOOTSTRAP_ADOPTING_PRIMARY,
        [AcquireLeader, FinishBootstrap(SYSTEM_ID)],
    ),
    row(
        "running_primary_unknown_to_etcd_does_not_wait_for_another_bootstrapper",
        observation(view=uninitialized_view(bootstrapping="node3"), local=primary_local()),
        Reason.BOOTSTRAP_ADOPTING_PRIMARY,
        [AcquireLeader, FinishBootstrap(SYSTEM_ID)],
    ),
    row(
        "running_standby_unknown_to_etcd_waits_for_its_primary_instead_of_bootstrapping",
        observation(view=uninitialized_view(), local=standby_local(upstream=None)),
        Reason.BOOTSTRAP_STANDBY_WAITING,
        [],
    ),
    row(
        "stopped_standby_unknown_to_etcd_never_bootstraps_even_if_another_races",
        observation(view=uninitialized_view(bootstrapping="node3"), local=stopped_local()),
        Reason.BOOTSTRAP_STANDBY_WAITING,
        [],
    ),
    row(
        "bootstrap_leader_with_stopped_primary_starts_it",
        observation(
            view=uninitialized_view(bootstrapping="node2", leader="node2"),
            local=stopped_local(ControlState.SHUT_DOWN),
            lease_deadline=LEASED,
        ),
        Reason.BOOTSTRAP_STARTING,
        [RenewLeader, StartPrimary],
    ),
    row(
        "bootstrap_leader_waits_for_the_new_primary_to_accept_connections",
        observation(
            view=uninitialized_view(bootstrapping="node2", leader="node2"),
            local=unprobed_local(),
            lease_deadline=LEASED,
        ),
        Reason.BOOTSTRAP_WAITING_FOR_START,
        [RenewLeader],
    ),
]


@pytest.mark.parametrize(("obs", "reason", "actions", "detail"), ROWS)
def test_decision(obs: Observation, reason: Reason, actions: Expected, detail: dict[str, object]) -> None:
    check(obs, reason, actions, detail)
