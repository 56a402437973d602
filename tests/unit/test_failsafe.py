"""Failsafe mode outside ``decide``: the write deadline, the promise a member may give, the interlock
with its own racing, and a leader's round of POST /failsafe against real API servers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace

import httpx
import pytest

from pgwarden.agent.execute import AskFailsafe, Executor
from pgwarden.agent.failsafe import FailsafeClient, PromiseBox
from pgwarden.agent.lease import LeaderLease
from pgwarden.agent.lease_guard import LeaseGuard
from pgwarden.agent.requests import RequestBox
from pgwarden.agent.snapshot import SnapshotHolder
from pgwarden.api.metrics import Metrics
from pgwarden.api.operations import AgentOperations
from pgwarden.api.server import ApiServer
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.memory import MemoryStore
from pgwarden.documents.status import status_document
from pgwarden.ha.actions import PublishStatus, RenewLeader
from pgwarden.ha.observation import Promise
from pgwarden.ha.rules.failsafe import refuse_promise
from pgwarden.model import ClusterView, LocalState
from tests.support import api_fakes as fake
from tests.support import builders as b

FAILSAFE_ON = b.failsafe_view()


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- the one write deadline ----------------------------------------------------------------------


def test_promises_extend_the_write_deadline_by_the_lease_arithmetic() -> None:
    lease = LeaderLease()
    lease.renewed(7, sent_at=100.0, ttl=4.0)
    assert lease.deadline() == lease.lease_deadline() == 103.0
    lease.failsafe_confirmed(sent_at=102.5, ttl=4.0)
    assert lease.failsafe_deadline() == 105.5
    assert lease.deadline() == 105.5  # what the guard, /primary and the fence read


def test_a_lost_etcd_lease_keeps_the_promises_and_a_forgotten_one_drops_everything() -> None:
    lease = LeaderLease()
    lease.renewed(7, sent_at=100.0, ttl=4.0)
    lease.failsafe_confirmed(sent_at=101.0, ttl=4.0)
    lease.lease_lost()
    assert lease.lease_deadline() is None and lease.deadline() == 104.0
    lease.forget()
    assert lease.deadline() is None


class _Postgres:
    def __init__(self) -> None:
        self.stops: list[str] = []

    def stop(self, mode: str) -> None:
        self.stops.append(mode)

    def configure_standby(self, source: object, slot: object) -> None:
        pass


def test_the_lease_guard_honours_the_promises_and_stops_when_they_run_out() -> None:
    lease, clock, pg = LeaderLease(), Clock(100.0), _Postgres()
    lease.renewed(7, sent_at=100.0, ttl=4.0)
    lease.failsafe_confirmed(sent_at=101.0, ttl=4.0)
    guard = LeaseGuard(lease, pg, lambda: True, clock=clock)  # type: ignore[arg-type]
    clock.now = 103.5  # past the etcd lease's deadline, within the promises
    assert not guard.check() and pg.stops == []
    clock.now = 104.0
    assert guard.check() and pg.stops == ["immediate"]
    assert lease.deadline() is None


def _executor(store: MemoryStore, lease: LeaderLease, ask: AskFailsafe) -> Executor:
    config = fake.node_config("node1")
    cluster = ClusterStore(store, "demo")
    return Executor(config, store, cluster, None, None, lease, lambda: 0, clock=store_clock, ask_failsafe=ask)  # type: ignore[arg-type]


def store_clock() -> float:
    return 100.0


def test_a_renewal_etcd_does_not_answer_falls_back_to_a_round_of_promises_at_once() -> None:
    store = MemoryStore(store_clock)
    lease = LeaderLease()
    lease.renewed(store.grant_lease(4.0), sent_at=99.0, ttl=4.0)
    asked: list[tuple[tuple[str, str], ...]] = []

    def ask(members: Sequence[tuple[str, str]], seconds: float) -> Mapping[str, str]:
        asked.append(tuple(members))
        return {}

    store.available = False
    obs = b.observation("node1", view=FAILSAFE_ON, lease_deadline=lease.lease_deadline())
    members = (("node2", b.api_url("node2")),)
    outcome = _executor(store, lease, ask).run((RenewLeader(failsafe=members), PublishStatus()), obs)
    assert outcome.failed is not None and "every member promised instead" in outcome.failed
    assert asked == [members]
    assert lease.failsafe_deadline() == 103.0 and lease.deadline() == 103.0
    # Without failsafe mode there is nothing to fall back on: the renewal just fails.
    plain = LeaderLease()
    plain.renewed(1, sent_at=99.0, ttl=4.0)
    outcome = _executor(store, plain, ask).run((RenewLeader(failsafe=None),), obs)
    assert outcome.failed is not None and plain.failsafe_deadline() is None and len(asked) == 1


# --- which promise a member may give -------------------------------------------------------------

STANDBY = b.standby_local()
REFUSALS = [
    ("the_asker_itself", "node2", FAILSAFE_ON, STANDBY, None, False, "own failsafe request"),
    ("failsafe_mode_off", "node1", b.view(), STANDBY, None, False, "failsafe_mode is off"),
    ("running_read_write", "node1", FAILSAFE_ON, b.primary_local(), None, False, "read-write"),
    ("probe_silent_maybe_read_write", "node1", FAILSAFE_ON, b.unprobed_local(), None, False, "read-write"),
    ("another_leader_seen", "node3", FAILSAFE_ON, STANDBY, None, False, "sees node1 as the leader"),
    (
        "promised_another",
        "node3",
        b.failsafe_view(leader=None),
        STANDBY,
        Promise("node1", 103.0),
        False,
        "promised node1",
    ),
    ("racing", "node1", FAILSAFE_ON, STANDBY, None, True, "racing"),
]
LONGER_THAN_TTL = refuse_promise("node2", "node1", 4.5, FAILSAFE_ON, STANDBY, None, False, 100.0)


@pytest.mark.parametrize(
    ("leader", "view", "local", "held", "racing", "says"),
    [pytest.param(*r[1:], id=r[0]) for r in REFUSALS],
)
def test_a_member_refuses_to_promise_when_it_cannot_keep_the_promise(
    leader: str, view: ClusterView, local: LocalState, held: Promise | None, racing: bool, says: str
) -> None:
    why = refuse_promise("node2", leader, 4.0, view, local, held, racing, 100.0)
    assert why is not None and says in why


def test_a_member_refuses_a_promise_longer_than_ttl() -> None:
    # A restarted agent keeps the promises it forgot by not racing for ttl: no longer.
    assert LONGER_THAN_TTL is not None and "longer than ttl" in LONGER_THAN_TTL


@pytest.mark.parametrize(
    ("view", "local", "held"),
    [
        pytest.param(FAILSAFE_ON, STANDBY, None, id="the_leader_it_follows"),
        pytest.param(b.failsafe_view(leader=None), STANDBY, None, id="no_leader_seen"),
        pytest.param(FAILSAFE_ON, b.stopped_local(), None, id="postgres_stopped"),
        pytest.param(FAILSAFE_ON, STANDBY, Promise("node1", 103.0), id="renewal"),
        pytest.param(FAILSAFE_ON, STANDBY, Promise("node3", 99.0), id="an_older_promise_ran_out"),
    ],
)
def test_a_member_promises_the_leader_it_sees_or_when_it_sees_none(
    view: ClusterView, local: LocalState, held: Promise | None
) -> None:
    assert refuse_promise("node2", "node1", 4.0, view, local, held, False, 100.0) is None


def test_a_promise_is_kept_whole_and_never_shortened() -> None:
    clock = Clock()
    box = PromiseBox(clock)
    assert box.grant("node1", 4.0, "node2", FAILSAFE_ON, STANDBY) == (4.0, None)
    clock.now += 1
    assert box.grant("node1", 1.0, "node2", FAILSAFE_ON, STANDBY) == (3.0, None)
    promised, why = box.grant("node3", 4.0, "node2", b.failsafe_view(leader=None), STANDBY)
    assert promised == 0.0 and why is not None and "promised node1" in why
    assert box.current() == Promise("node1", 104.0)
    clock.now = 104.0
    assert box.current() is None


def test_racing_and_promising_exclude_each_other() -> None:
    clock = Clock()
    box = PromiseBox(clock)
    box.grant("node1", 4.0, "node2", FAILSAFE_ON, STANDBY)
    why = box.begin_race(4.0)
    assert why is not None and "promised node1" in why  # the executor's AcquireLeader gives up
    clock.now += 4.0
    assert box.begin_race(4.0) is None  # the promise ran out: racing allowed
    leaderless = b.failsafe_view(leader=None)
    assert (
        box.grant("node1", 4.0, "node2", leaderless, STANDBY)[1] == "this member is racing for the leader key"
    )
    box.end_race()  # the race was lost: the key went to someone else
    assert box.grant("node1", 4.0, "node2", leaderless, STANDBY) == (4.0, None)


# --- the REST side: a member answering, a leader asking ------------------------------------------


def _member_ops(name: str, view: ClusterView, local: LocalState) -> tuple[AgentOperations, PromiseBox]:
    snap = fake.snapshot(name, local, view)
    box = PromiseBox()
    ops = AgentOperations(
        ClusterStore(MemoryStore(lambda: 0.0), "demo"), SnapshotHolder(snap), RequestBox(), promises=box
    )
    return ops, box


@contextmanager
def _members(*specs: tuple[str, ClusterView, LocalState]) -> Iterator[list[tuple[str, str, PromiseBox]]]:
    """A real API server per member (basic auth on), answering from its PromiseBox."""
    with ExitStack() as stack:
        found = []
        for name, view, local in specs:
            ops, box = _member_ops(name, view, local)
            holder = SnapshotHolder(fake.snapshot(name, local, view))
            server = ApiServer(fake.api_settings(username="admin", password="s3cret"), holder, ops)
            server.start()
            stack.callback(server.stop)
            found.append((name, f"http://127.0.0.1:{server.port}", box))
        yield found


def test_a_leader_round_counts_only_promises_and_says_why_the_others_failed() -> None:
    specs = [
        ("node2", FAILSAFE_ON, STANDBY),
        ("node3", b.failsafe_view(leader="node3"), b.primary_local()),
    ]
    with _members(*specs) as members:
        asked = [(name, url) for name, url, _ in members] + [("node4", "http://127.0.0.1:9")]
        client = FailsafeClient("node1", "http://127.0.0.1:8009", "postgres://x", ("admin", "s3cret"), 1.0)
        try:
            refused = client.ask(asked, 4.0)
        finally:
            client.close()
        assert set(refused) == {"node3", "node4"}
        assert "412" in refused["node3"] and "read-write" in refused["node3"]
        assert "unreachable" in refused["node4"]
        promise = members[0][2].current()
        assert promise is not None and promise.leader == "node1"


def test_a_round_without_the_api_credentials_gets_no_promise() -> None:
    with _members(("node2", FAILSAFE_ON, STANDBY)) as members:
        client = FailsafeClient("node1", "http://127.0.0.1:8009", "postgres://x", None, 1.0)
        try:
            refused = client.ask([(n, u) for n, u, _ in members], 4.0)
        finally:
            client.close()
        assert "401" in refused["node2"] and members[0][2].current() is None


def test_get_failsafe_shows_the_topology_and_503_when_the_mode_is_off() -> None:
    ops, _ = _member_ops("node2", FAILSAFE_ON, STANDBY)
    assert ops.failsafe_topology() == {n: b.api_url(n) for n in ("node1", "node2", "node3")}
    off, _ = _member_ops("node2", b.view(), STANDBY)
    with pytest.raises(Exception, match="failsafe_mode is off"):
        off.failsafe_topology()


def test_get_failsafe_and_status_show_the_last_valid_topology_while_etcd_holds_junk() -> None:
    """What the leader still asks, not the racers' reading of junk (nobody); the junk itself is
    in unreadable_keys."""
    junk = b.with_junk(FAILSAFE_ON, failsafe="not JSON")
    kept = replace(junk, failsafe_last_good={"node1": b.api_url("node1"), "node4": b.api_url("node4")})
    ops, _ = _member_ops("node2", kept, STANDBY)
    assert ops.failsafe_topology() == {"node1": b.api_url("node1"), "node4": b.api_url("node4")}
    doc = status_document(fake.snapshot("node2", STANDBY, kept))
    assert doc["failsafe"]["topology"] == ["node1", "node4"] and "failsafe" in doc["unreadable_keys"]
    none_read, _ = _member_ops("node2", junk, STANDBY)
    assert none_read.failsafe_topology() == {}


def test_status_and_metrics_show_an_active_promise() -> None:
    snap = replace(fake.snapshot("node2", STANDBY, FAILSAFE_ON), promise=Promise("node1", 1e12))
    doc = status_document(snap)
    assert doc["failsafe_mode_is_active"] is True
    assert doc["failsafe"]["promised_to"] == "node1"
    assert doc["failsafe"]["topology"] == ["node1", "node2", "node3"]
    text = Metrics(SnapshotHolder(snap)).render().decode()
    assert "pgwarden_failsafe_active 1.0" in text and "pgwarden_failsafe_mode 1.0" in text
    off = fake.snapshot("node2", STANDBY, b.view())
    assert "failsafe_mode_is_active" not in status_document(off)


def test_post_failsafe_through_http_promises_or_explains() -> None:
    with fake.running_api() as (url, _, ops):
        with httpx.Client(base_url=url) as client:
            ok = client.post("/failsafe", json={"name": "node1", "api_url": "x", "promise_seconds": 4})
            no = client.post("/failsafe", json={"name": "node3"})
            bad = client.post("/failsafe", json={"name": "node1", "promise_seconds": 0})
            topology = client.get("/failsafe")
        assert (ok.status_code, ok.json()["message"]) == (200, "Accepted")
        assert no.status_code == 412 and "sees node1" in no.json()["error"]
        assert bad.status_code == 400 and "promise_seconds" in bad.json()["error"]
        assert topology.status_code == 200 and "node1" in topology.json()
        assert ops.calls[:2] == [("failsafe", ("node1", 4.0)), ("failsafe", ("node3", None))]
