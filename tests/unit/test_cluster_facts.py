"""The cluster facts with one home in ``model/``: the leader's position, a member's lag, whether a
lease (or promise) still holds. The HA rules, the REST API, the health checks and the CLI all ask
these, so they cannot answer differently."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings

from pgwarden.cli import views
from pgwarden.documents.render import member_document as api_member_document
from pgwarden.model import ClusterView, Lsn, PgState, Role
from pgwarden.model.deadline import holds
from tests.support.builders import member, primary_member, status, view
from tests.unit.test_decide_properties import FAST
from tests.unit.test_decide_properties import views as cluster_views


def test_lag_is_the_leader_position_minus_the_member_lsn() -> None:
    v = view(
        members=[primary_member(lsn="0/5000000"), member("node2", lsn="0/3000000"), member("node3", lsn=None)]
    )
    assert [v.lag(m.name, m.lsn, m.timeline) for m in v.members] == [0, 0x2000000, None]


def test_the_published_leader_status_counts_when_it_is_further() -> None:
    v = view(status=status(lsn="0/6000000"))
    assert v.leader_position == Lsn(0x6000000)
    assert v.lag("node2", Lsn(0x3000000), 1) == 0x3000000


def test_the_leader_member_key_counts_when_it_is_further_than_the_status() -> None:
    """The member key is written after the status, from a fresher probe: the furthest counts."""
    v = view(members=[primary_member(lsn="0/7000000"), member("node2")], status=status(lsn="0/6000000"))
    assert v.leader_position == Lsn(0x7000000)
    assert v.lag("node2", Lsn(0x3000000), 1) == 0x4000000


def test_a_status_of_another_member_or_an_older_term_does_not_count() -> None:
    other = view(members=[primary_member(lsn="0/5000000")], status=status("node2", lsn="0/9000000"))
    assert other.leader_position == Lsn(0x5000000)
    earlier_term = view(
        members=[primary_member(lsn="0/5000000", timeline=3)], status=status(lsn="0/9000000", timeline=2)
    )
    assert earlier_term.leader_position == Lsn(0x5000000)


def test_a_member_ahead_of_the_published_position_lags_nothing() -> None:
    assert view().lag("node2", Lsn(0x9000000), 1) == 0


def test_without_a_leader_no_lag_is_known_except_for_a_failover() -> None:
    v = view(leader=None, status=status(lsn="0/5000000", timeline=2))
    assert v.leader_position is None
    assert v.lag("node2", Lsn(0x3000000), 2) is None
    assert v.lag("node2", Lsn(0x3000000), 2, failover=True) == 0x2000000
    # A standby still on an older timeline is at least that far behind (it has yet to catch up).
    assert v.lag("node2", Lsn(0x3000000), 1, failover=True) == 0x2000000


def test_a_failover_bound_from_an_older_timeline_or_from_oneself_is_none() -> None:
    """A leader that died before publishing its new timeline's position, or our own old status,
    would stall a failover for ever (safety rule 3 then compares the candidates with each other)."""
    v = view(leader=None, status=status("node1", lsn="0/5000000", timeline=1))
    assert v.lag("node2", Lsn(0x3000000), 2, failover=True) is None
    assert v.lag("node1", Lsn(0x3000000), 1, failover=True) is None


def test_the_api_and_the_cli_show_the_same_lag() -> None:
    v = view(
        members=[primary_member(lsn="0/7000000"), member("node2"), member("node3", state=PgState.STOPPED)],
        status=status(lsn="0/6000000"),
    )
    for m in v.members:
        api = api_member_document(v, m)["lag"]
        cli = views.member_document(v, m)["lag"]
        # The API gives a lag for replicas only (Patroni's member document); the CLI shows 0 for the leader.
        assert api == (cli if m.role is Role.REPLICA else None)
    assert views.member_document(v, v.members[1])["lag"] == 0x4000000


def test_lag_of_a_stopped_member_without_position_is_unknown() -> None:
    v = view(members=[primary_member(), replace(member("node2"), lsn=None)])
    assert v.lag("node2", None, 1) is None


def test_a_deadline_holds_only_while_known_and_not_reached() -> None:
    assert holds(10.0, 9.9)
    assert not holds(10.0, 10.0)  # at the deadline the lease may already be another member's
    assert not holds(None, 0.0)


@settings(FAST, max_examples=100)
@given(cluster_views())
def test_over_any_view_lag_is_never_negative_and_the_api_and_the_cli_agree(v: ClusterView) -> None:
    for m in v.members:
        for failover in (False, True):
            lag = v.lag(m.name, m.lsn, m.timeline, failover)
            assert lag is None or lag >= 0
            if v.leader is not None and m.name == v.leader.name:
                assert lag == 0
        cli = views.member_document(v, m)["lag"]
        # The API shows a lag for standbys only, none for the leader key's holder (a standby leader too).
        is_leader = v.leader is not None and m.name == v.leader.name
        shown = cli if m.role is Role.REPLICA and not is_leader else None
        assert api_member_document(v, m)["lag"] == shown
    position = v.leader_position
    assert position is None or v.leader is not None
