"""Which actions may change what a probe of the local PostgreSQL shows (ha/actions.py): the cycle
probes again before publishing only after those (agent/loop.py), so an idle leader probes once."""

from __future__ import annotations

import pytest

from pgwarden.ha import actions as a
from pgwarden.model import Lsn


@pytest.mark.parametrize(
    ("action", "changes"),
    [
        (a.RenewLeader(), False),
        (a.PublishStatus(), False),
        (a.AcquireLeader(), False),
        (a.ReleaseLeader(), False),
        (a.ClearSwitchover(), False),
        (a.EnsureSlots(), False),  # nothing to create or drop: a leader's usual cycle
        (a.EnsureSlots(create=frozenset({"node2"})), True),
        (a.EnsureSlots(drop=frozenset({"node9"})), True),
        (a.EnsureSlots(advance=(("node5", Lsn(0x4000000)),)), False),  # a restart_lsn, never published
        (a.Promote(), True),
        (a.Demote(a.StopMode.FAST), True),
        (a.StopPostgres(a.StopMode.FAST), True),
        (a.StartStandby(None), True),
        (a.Follow("node1"), True),
        (a.SetSyncStandbys("node2"), True),
        (a.ReloadPostgres(), True),
        (a.Checkpoint(), True),
        (a.Clone("node1"), True),
    ],
)
def test_an_action_changes_postgres_or_only_etcd(action: a.Action, changes: bool) -> None:
    assert a.changes_postgres(action) is changes
