"""Decide-table rows decided by ``pgwarden.ha.rules.store``.

What to do when etcd cannot be read: only a leader has something to protect (safety rule 1).
"""

from __future__ import annotations

from typing import Any

import pytest

from pgwarden.ha.actions import RenewFailsafe
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from tests.support.builders import (
    NOW,
    api_url,
    config,
    failsafe_view,
    member,
    observation,
    primary_local,
    primary_member,
    standby_local,
    stopped_local,
    unmarked,
    unprobed_local,
    view,
)
from tests.unit.rules.table import (
    ASKED,
    EXPIRED,
    IMMEDIATE,
    PAUSED,
    TUNED,
    Expected,
    applied,
    check,
    failsafe_leader,
    junk_topology,
    leader,
    promised,
    row,
)

ROWS: list[Any] = [
    # --- etcd unreachable -------------------------------------------------------------------------
    row("store_unreachable_standby_waits", observation(store_ok=False), Reason.STORE_UNREACHABLE, []),
    row(
        "store_unreachable_stopped_member_waits",
        observation(store_ok=False, local=stopped_local()),
        Reason.STORE_UNREACHABLE,
        [],
    ),
    row(
        "store_unreachable_primary_with_valid_lease_keeps_writing",
        leader(store_ok=False, local=primary_local(), lease_deadline=NOW + 2.5),
        Reason.STORE_UNREACHABLE_LEASE_VALID,
        [],
        remaining=2.5,
    ),
    row(
        "store_unreachable_primary_past_lease_deadline_demotes_immediately",
        leader(store_ok=False, local=primary_local(), lease_deadline=EXPIRED),
        Reason.STORE_UNREACHABLE_DEMOTING,
        [IMMEDIATE],
    ),
    row(
        "store_unreachable_primary_without_a_lease_demotes_immediately",
        leader(store_ok=False, local=primary_local(), lease_deadline=None),
        Reason.STORE_UNREACHABLE_DEMOTING,
        [IMMEDIATE],
    ),
    row(
        "store_unreachable_unprobed_postgres_counts_as_a_writer",
        leader(store_ok=False, local=unprobed_local(), lease_deadline=None),
        Reason.STORE_UNREACHABLE_DEMOTING,
        [IMMEDIATE],
    ),
    row(
        "store_unreachable_paused_primary_takes_no_action",
        leader(view=view(config=PAUSED), store_ok=False, local=primary_local(), lease_deadline=None),
        Reason.STORE_UNREACHABLE_PAUSED,
        [],
    ),
    # --- whose data directory: pgwarden empties only one it made or one of this cluster ------------
    row(
        "nothing_is_adopted_while_etcd_is_unreachable",
        observation(local=unmarked(standby_local()), store_ok=False),
        Reason.STORE_UNREACHABLE,
        [],
    ),
    # --- live dynamic config ------------------------------------------------------------------------
    row(
        "changed_parameters_are_not_applied_while_etcd_is_unreachable",
        observation(view=TUNED, local=applied(standby_local()), store_ok=False),
        Reason.STORE_UNREACHABLE,
        [],
    ),
    # --- the leader, etcd unreachable ---------------------------------------------------------
    row(
        "failsafe_leader_without_etcd_asks_every_member_to_promise",
        failsafe_leader(lease_deadline=NOW + 2.5),
        Reason.STORE_UNREACHABLE_FAILSAFE,
        [RenewFailsafe(ASKED)],
        members="node2, node3",
        remaining=2.5,
    ),
    row(
        "failsafe_leader_past_its_lease_keeps_writing_on_the_promises_and_asks_again",
        failsafe_leader(lease_deadline=EXPIRED, failsafe_deadline=NOW + 2.0),
        Reason.STORE_UNREACHABLE_FAILSAFE,
        [RenewFailsafe(ASKED)],
        remaining=2.0,
    ),
    row(
        "failsafe_leader_past_its_lease_and_its_promises_demotes",
        failsafe_leader(lease_deadline=EXPIRED, failsafe_deadline=NOW - 0.1),
        Reason.STORE_UNREACHABLE_DEMOTING,
        [IMMEDIATE],
    ),
    row(
        "failsafe_leader_with_unprobed_postgres_past_both_deadlines_demotes",
        failsafe_leader(local=unprobed_local(), lease_deadline=EXPIRED, failsafe_deadline=EXPIRED),
        Reason.STORE_UNREACHABLE_DEMOTING,
        [IMMEDIATE],
    ),
    row(
        "failsafe_leader_asks_a_topology_member_missing_from_its_view",
        failsafe_leader(view=failsafe_view(("node1", "node2", "node3", "node4")), lease_deadline=NOW + 2.0),
        Reason.STORE_UNREACHABLE_FAILSAFE,
        [RenewFailsafe((*ASKED, ("node4", api_url("node4"))))],
    ),
    row(
        "failsafe_leader_asks_a_member_that_joined_after_the_last_topology",
        failsafe_leader(
            view=failsafe_view(
                ("node1", "node2"), members=(primary_member(), member("node2"), member("node3"))
            ),
            lease_deadline=NOW + 2.0,
        ),
        Reason.STORE_UNREACHABLE_FAILSAFE,
        [RenewFailsafe(ASKED)],
    ),
    row(
        "failsafe_leader_alone_in_its_topology_needs_no_promise",
        failsafe_leader(
            view=failsafe_view(("node1",), members=(primary_member(),)), lease_deadline=NOW + 2.0
        ),
        Reason.STORE_UNREACHABLE_FAILSAFE,
        [RenewFailsafe(())],
        members="nobody (no other member)",
    ),
    row(
        "failsafe_without_a_published_topology_cannot_keep_the_primary",
        failsafe_leader(view=failsafe_view(None), lease_deadline=NOW + 2.0),
        Reason.STORE_UNREACHABLE_FAILSAFE_UNAVAILABLE,
        [],
        why="no failsafe topology published yet",
    ),
    row(
        "failsafe_primary_whose_last_view_names_no_leader_is_not_carried",
        failsafe_leader(view=failsafe_view(leader=None), lease_deadline=EXPIRED, failsafe_deadline=NOW + 1.0),
        Reason.STORE_UNREACHABLE_FAILSAFE_UNAVAILABLE,
        [],
        why="the last view I read does not name me as the leader",
        remaining=1.0,
    ),
    row(
        "failsafe_leader_with_a_junk_topology_asks_every_member_of_the_last_valid_one",
        failsafe_leader(
            view=junk_topology(failsafe_view(), ("node1", "node2", "node3", "node4")),
            lease_deadline=NOW + 2.0,
        ),
        Reason.STORE_UNREACHABLE_FAILSAFE,
        [RenewFailsafe((*ASKED, ("node4", api_url("node4"))))],
        members="node2, node3, node4",
    ),
    row(
        "failsafe_leader_with_a_junk_topology_and_no_valid_one_read_cannot_keep_the_primary",
        failsafe_leader(view=junk_topology(failsafe_view(), None), lease_deadline=NOW + 2.0),
        Reason.STORE_UNREACHABLE_FAILSAFE_UNAVAILABLE,
        [],
        why="the failsafe topology in etcd is unreadable and I read no valid one since I started",
    ),
    row(
        "failsafe_off_leader_without_etcd_does_not_ask_anyone",
        failsafe_leader(view=view(), lease_deadline=NOW + 2.0),
        Reason.STORE_UNREACHABLE_LEASE_VALID,
        [],
    ),
    row(
        "failsafe_paused_leader_without_etcd_takes_no_action",
        failsafe_leader(
            view=failsafe_view(config=config(failsafe_mode=True, pause=True)), lease_deadline=EXPIRED
        ),
        Reason.STORE_UNREACHABLE_PAUSED,
        [],
    ),
    # --- a member that promised ---------------------------------------------------------------
    row(
        "member_that_promised_and_cannot_read_etcd_waits",
        observation(view=failsafe_view(), store_ok=False, local=standby_local(), promise=promised()),
        Reason.STORE_UNREACHABLE,
        [],
    ),
]


@pytest.mark.parametrize(("obs", "reason", "actions", "detail"), ROWS)
def test_decision(obs: Observation, reason: Reason, actions: Expected, detail: dict[str, object]) -> None:
    check(obs, reason, actions, detail)
