"""Decide-table rows decided by ``pgwarden.ha.rules.jobs``.

Background jobs (initdb, clone, rewind): wait while one runs, back off after one fails.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.ha.rules.jobs import RETRY_AFTER
from pgwarden.model import (
    JobKind,
    Role,
)
from tests.support.builders import (
    NOW,
    empty_local,
    failed,
    job,
    member,
    memory,
    observation,
    stopped_local,
    uninitialized_view,
)
from tests.unit.rules.table import (
    AFTER_FAILOVER,
    Expected,
    check,
    registered,
    row,
)

ROWS: list[Any] = [
    # --- who may join: slot names ------------------------------------------------------------------
    row(
        "slot_rival_bootstrapping_the_cluster_finishes_its_initdb",
        observation(
            "NODE2",
            view=replace(
                uninitialized_view(bootstrapping="NODE2"),
                members=registered(member("node2", Role.UNINITIALIZED), member("NODE2", Role.UNINITIALIZED)),
            ),
            local=empty_local(job=job(JobKind.INITDB, running=True)),
        ),
        Reason.JOB_IN_PROGRESS,
        [],
    ),
    # --- background jobs --------------------------------------------------------------------------
    row(
        "clone_in_progress_waits_and_reports_progress",
        observation(local=empty_local(job(JobKind.CLONE, running=True, progress="42%"))),
        Reason.JOB_IN_PROGRESS,
        [],
        job="clone",
        progress=" (42%)",
    ),
    row(
        "rewind_in_progress_waits",
        observation(view=AFTER_FAILOVER, local=stopped_local(job=job(JobKind.REWIND, running=True))),
        Reason.JOB_IN_PROGRESS,
        [],
        progress="",
    ),
    row(
        "clone_failed_seconds_ago_backs_off",
        observation(local=empty_local(failed(JobKind.CLONE)), memory=memory(job_failed_at=NOW - 2)),
        Reason.JOB_BACKOFF,
        [],
        wait=RETRY_AFTER - 2,
    ),
    row(
        "clone_failure_seen_for_the_first_time_backs_off",
        observation(local=empty_local(failed(JobKind.CLONE, "connection refused"))),
        Reason.JOB_BACKOFF,
        [],
        error="connection refused",
    ),
]


@pytest.mark.parametrize(("obs", "reason", "actions", "detail"), ROWS)
def test_decision(obs: Observation, reason: Reason, actions: Expected, detail: dict[str, object]) -> None:
    check(obs, reason, actions, detail)
