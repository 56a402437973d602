"""Decide-table rows decided by ``pgwarden.ha.rules.datadir``.

Whose data directory this is: pgwarden empties only one it made or one of this cluster.
"""

from __future__ import annotations

from typing import Any

import pytest

from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from tests.support.builders import (
    DATA_DIR,
    OTHER_SYSTEM_ID,
    SYSTEM_ID,
    incomplete_local,
    observation,
    stopped_local,
    uninitialized_view,
    unmarked,
    view,
)
from tests.unit.rules.table import (
    EXPIRED,
    LEADERLESS,
    Expected,
    check,
    leader,
    row,
)

ROWS: list[Any] = [
    # --- data directory of another cluster --------------------------------------------------------
    row(
        "foreign_data_directory_is_never_touched",
        observation(local=stopped_local(system_id=OTHER_SYSTEM_ID)),
        Reason.FOREIGN_DATA_DIRECTORY,
        [],
        local_id=OTHER_SYSTEM_ID,
        cluster_id=SYSTEM_ID,
    ),
    row(
        "foreign_data_directory_never_starts_for_a_failover",
        observation(view=LEADERLESS, local=stopped_local(system_id=OTHER_SYSTEM_ID)),
        Reason.FOREIGN_DATA_DIRECTORY,
        [],
    ),
    # --- whose data directory: pgwarden empties only one it made or one of this cluster ------------
    row(
        "files_pgwarden_did_not_make_are_never_wiped_or_cloned_over",
        observation(local=unmarked(incomplete_local(), found="contains 3 entries (a, b/, c)")),
        Reason.DATA_DIRECTORY_NOT_OURS,
        [],
        why=(
            f"{DATA_DIR} contains 3 entries (a, b/, c); not created by pgwarden "
            f"(no marker {DATA_DIR}.pgwarden)"
        ),
    ),
    row(
        "parent_of_a_real_cluster_is_refused_with_the_likely_fix",
        observation(
            local=unmarked(
                incomplete_local(),
                found="contains 1 entry (main/), no PG_VERSION / pg_control",
                hint="main/ holds a PostgreSQL data directory: is postgresql.data_dir meant to be /x/main?",
            )
        ),
        Reason.DATA_DIRECTORY_NOT_OURS,
        [],
        why=(
            f"{DATA_DIR} contains 1 entry (main/), no PG_VERSION / pg_control; not created by pgwarden "
            f"(no marker {DATA_DIR}.pgwarden); main/ holds a PostgreSQL data directory: "
            "is postgresql.data_dir meant to be /x/main?"
        ),
    ),
    row(
        "files_pgwarden_did_not_make_are_refused_before_the_bootstrap_race",
        observation(
            view=uninitialized_view(), local=unmarked(incomplete_local(), found="contains 1 entry (x)")
        ),
        Reason.DATA_DIRECTORY_NOT_OURS,
        [],
    ),
    row(
        "unmarked_data_directory_of_another_system_is_not_adopted",
        observation(local=unmarked(stopped_local(system_id=OTHER_SYSTEM_ID))),
        Reason.FOREIGN_DATA_DIRECTORY,
        [],
    ),
    row(
        "leader_whose_lease_ran_out_does_not_trust_its_data_against_etcds_identifier",
        leader(view=view(initialize=OTHER_SYSTEM_ID), local=stopped_local(), lease_deadline=EXPIRED),
        Reason.FOREIGN_DATA_DIRECTORY,
        [],
    ),
]


@pytest.mark.parametrize(("obs", "reason", "actions", "detail"), ROWS)
def test_decision(obs: Observation, reason: Reason, actions: Expected, detail: dict[str, object]) -> None:
    check(obs, reason, actions, detail)
