"""Which member a switchover or manual failover may hand over to, as the REST API checks before acting."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pgwarden.ha.rules.switchover import Refused, choose_candidate
from pgwarden.model import PgState
from tests.support.builders import config, member, primary_member, status, sync_config, sync_set, view

THREE = view(
    members=(
        primary_member(lsn="0/3000000"),
        member("node2", lsn="0/2FFFF00"),
        member("node3", lsn="0/3000000"),
    )
)


def test_named_healthy_standby_is_accepted() -> None:
    assert choose_candidate(THREE, "node2") == "node2"


def test_without_a_name_the_most_advanced_standby_is_chosen() -> None:
    assert choose_candidate(THREE, None) == "node3"


def test_without_a_name_failover_priority_breaks_ties() -> None:
    tied = view(members=(primary_member(), member("node2", failover_priority=5), member("node3")))
    assert choose_candidate(tied, None) == "node2"


@pytest.mark.parametrize(
    ("cluster", "candidate", "words"),
    [
        pytest.param(THREE, "node9", "not a member", id="unknown_member_lists_the_known_ones"),
        pytest.param(THREE, "node1", "already the leader", id="the_leader_itself"),
        pytest.param(
            view(members=(primary_member(), member("node2", state=PgState.STOPPED))),
            "node2",
            "not a running standby",
            id="stopped_standby",
        ),
        pytest.param(
            view(members=(primary_member(), member("node2", nofailover=True))),
            "node2",
            "nofailover",
            id="nofailover_tag",
        ),
        pytest.param(
            view(members=(primary_member(timeline=2), member("node2", timeline=1))),
            "node2",
            "timeline",
            id="other_timeline",
        ),
        pytest.param(
            view(members=(primary_member(), member("node2", lsn="0/1000000"))),
            "node2",
            "lags",
            id="lagging_beyond_maximum_lag_on_failover",
        ),
        pytest.param(
            view(
                members=(primary_member(), member("node2"), member("node3")),
                config=sync_config(),
                sync=sync_set("node3"),
            ),
            "node2",
            "synchronous set",
            id="outside_the_synchronous_set",
        ),
        pytest.param(replace(THREE, config=config(pause=True)), None, "paused", id="paused_without_a_name"),
        pytest.param(view(leader=None), "node2", "no leader", id="switchover_without_a_leader"),
        pytest.param(
            view(members=(primary_member(), member("node2", state=PgState.STOPPED))),
            None,
            "no healthy standby",
            id="nobody_qualifies",
        ),
    ],
)
def test_refusals_say_why(cluster: object, candidate: str | None, words: str) -> None:
    with pytest.raises(Refused, match=words):
        choose_candidate(cluster, candidate)  # type: ignore[arg-type]


def test_unknown_member_refusal_names_the_members() -> None:
    with pytest.raises(Refused, match="node1, node2, node3"):
        choose_candidate(THREE, "node9")


def test_paused_cluster_still_switches_over_to_a_named_candidate() -> None:
    assert choose_candidate(replace(THREE, config=config(pause=True)), "node2") == "node2"


def test_lag_is_measured_from_the_leaders_published_position() -> None:
    ahead = replace(THREE, status=status(lsn="0/9000000"))
    with pytest.raises(Refused, match="lags"):
        choose_candidate(ahead, "node2")


def test_failover_without_a_leader_accepts_a_running_standby() -> None:
    leaderless = view(leader=None, members=(member("node2"), member("node3")))
    assert choose_candidate(leaderless, "node2", failover=True) == "node2"


def test_failover_refuses_a_standby_far_behind_the_dead_leaders_last_position() -> None:
    leaderless = view(leader=None, members=(member("node2"),), status=status(lsn="0/9000000"))
    with pytest.raises(Refused, match="lags"):
        choose_candidate(leaderless, "node2", failover=True)


def test_a_degraded_claim_restricts_no_candidate() -> None:
    """Quorum 0 is no claim (asynchronous, or degraded): as for the candidates' own race
    (ClusterView.sync_set, one home), it keeps no standby from being chosen."""
    degraded = view(config=sync_config(), sync=sync_set("node3", quorum=0))
    assert choose_candidate(degraded, "node2") == "node2"
    in_force = view(config=sync_config(), sync=sync_set("node3"))
    with pytest.raises(Refused, match="candidate node2 is not in the synchronous set"):
        choose_candidate(in_force, "node2")
