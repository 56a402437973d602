"""failsafe_mode on a real cluster: etcd loses its quorum for 30 s (two of three members killed).

With the mode on, the primary keeps writing on its standbys' promises: writes through HAProxy
never pause long, nobody else promotes, nothing is lost, no two nodes ever accept writes; when
etcd is back the same primary renews its key and the history shows the outage. A standby lost
during the outage leaves a promise missing: the primary stops at its deadline (the last
confirmed round + ttl - margin), nothing is lost, and etcd back, the same primary starts again
under its key. Every check is the invariant checker's (tests/support/invariants.py): a writer
through HAProxy and a watcher of every node. No nftables: etcd members are killed by PID.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pgwarden.local.stack import Stack
from pgwarden.postgres.probe import postmaster_pid
from tests.support.cluster import primary_name, running_stack, wait_for
from tests.support.faults import etcd_healthy, etcd_leader, etcd_members_down
from tests.support.invariants import Invariants, routed_primary

pytestmark = pytest.mark.integration

OUTAGE_S = 30.0
TTL = 4.0  # the local stack's defaults (docs/timing.md): write deadline = round sent + ttl - 1 s
MAX_WRITE_PAUSE_S = 3.0  # the bound for writes through HAProxy during the outage


@pytest.fixture(scope="module")
def cluster() -> Iterator[Stack]:
    with running_stack(dcs={"failsafe_mode": True}) as s:
        yield s


@pytest.fixture
def stack(cluster: Stack, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The module's cluster; the agents' logs of the test are printed when it fails."""
    failed_before = request.session.testsfailed
    offsets = {p.name: p.stat().st_size for p in (cluster.spec.dir / "logs").glob("node*.log")}
    yield cluster
    if request.session.testsfailed > failed_before:
        for name, offset in sorted(offsets.items()):
            lines = (cluster.spec.dir / "logs" / name).read_text(errors="replace")[offset:].splitlines()
            print(f"----- {name} during the test (last 60 of {len(lines)} lines)")
            print("\n".join(lines[-60:]))


def _i(name: str) -> int:
    return int(name.removeprefix("node")) - 1


def _api(stack: Stack, name: str, path: str) -> Any:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        return httpx.get(f"{stack.spec.api_url(_i(name))}{path}", timeout=2).json()
    return None


def _status(stack: Stack, name: str) -> dict[str, Any]:
    return stack.statuses().get(name) or {}


def _others(stack: Stack, name: str) -> list[str]:
    return [n for n in (stack.spec.node_name(i) for i in range(stack.spec.nodes)) if n != name]


def _postmaster(stack: Stack, name: str) -> int | None:
    return postmaster_pid(str(stack.spec.data_dir(_i(name))))


def _quorum_members(stack: Stack) -> list[int]:
    """The etcd leader and one follower: killing both leaves one member without a quorum."""
    found: list[int] = []

    def known() -> bool:
        i = etcd_leader(stack)
        found.extend([] if i is None else [i])
        return i is not None  # member 0 may lead: the index itself can be falsy

    wait_for(known, 20, "an etcd leader")
    leader = found[-1]
    follower = next(i for i in range(3) if i != leader)
    return [follower, leader]


def _failsafe_history(stack: Stack, name: str) -> list[list[Any]]:
    """Patroni's arrays [timeline, lsn, reason, timestamp, new_leader] and pgwarden's event."""
    entries = _api(stack, name, "/history") or []
    return [e for e in entries if len(e) > 5 and e[5] == "failsafe" and e[4] == name]


def _ready(stack: Stack) -> str:
    primary = routed_primary(stack, 90)
    every = sorted(stack.spec.node_name(i) for i in range(stack.spec.nodes))
    wait_for(lambda: sorted(_api(stack, primary, "/failsafe") or {}) == every, 30, "the failsafe topology")
    return primary


def _gap(ack_times: list[float], start: float, end: float) -> tuple[float, float]:
    """The longest stretch in [start, end] without an acknowledged write, and when it began
    (seconds after ``start``)."""
    times = [start, *(t for t in ack_times if start <= t <= end), end]
    a, b = max(itertools.pairwise(times), key=lambda pair: pair[1] - pair[0])
    return b - a, a - start


def test_etcd_quorum_lost_for_30s_the_primary_keeps_writing(stack: Stack) -> None:
    primary = _ready(stack)
    postmaster = _postmaster(stack, primary)
    before = len(_failsafe_history(stack, primary))
    with Invariants(stack, "etcd quorum lost 30 s, failsafe_mode on") as check:
        with etcd_members_down(stack, _quorum_members(stack)):
            lost_at = time.monotonic()
            wait_for(lambda: etcd_healthy(stack) == 0, 10, "etcd without a quorum")
            time.sleep(max(0.0, lost_at + OUTAGE_S - time.monotonic()))
            assert primary_name(stack) == primary
            doc = _status(stack, primary)
            assert doc.get("reason_code") == "STORE_UNREACHABLE_FAILSAFE", doc.get("reason")
            assert doc.get("failsafe_mode_is_active") is True
            for standby in _others(stack, primary):
                promised = _status(stack, standby).get("failsafe") or {}
                assert promised.get("promised_to") == primary, (standby, promised)
            ended_at = time.monotonic()
        check.notes["outage_s"] = round(ended_at - lost_at, 1)
        pause, at = _gap(list(check.writer.report.ack_times), lost_at, ended_at)
        check.notes["longest_write_pause_in_outage_s"] = round(pause, 2)
        check.notes["longest_write_pause_began_s"] = round(at, 2)
        check.notes["acknowledged_in_outage"] = check.acked_since(lost_at)
        wait_for(lambda: len(_failsafe_history(stack, primary)) > before, 30, "the outage in the history")
        wait_for(
            lambda: _status(stack, primary).get("reason_code") == "LEADER_HEALTHY", 30, "the key renewed"
        )
        report = check.finish()
    report.publish()
    report.assert_invariants()  # healed, no two writers, nothing lost
    assert report.primary_after == primary
    assert check.notes["longest_write_pause_in_outage_s"] <= MAX_WRITE_PAUSE_S, check.notes
    assert _postmaster(stack, primary) == postmaster, "the primary's PostgreSQL was restarted"
    entry = _failsafe_history(stack, primary)[-1]
    assert "kept writing on the promises of" in entry[2], entry  # the reason


def test_a_standby_lost_during_the_outage_stops_the_primary_at_its_deadline(stack: Stack) -> None:
    primary = _ready(stack)
    standby = _others(stack, primary)[0]
    with Invariants(stack, "etcd quorum lost, a standby killed meanwhile") as check:
        with etcd_members_down(stack, _quorum_members(stack)):
            wait_for(lambda: etcd_healthy(stack) == 0, 10, "etcd without a quorum")
            wait_for(
                lambda: _status(stack, primary).get("failsafe_mode_is_active") is True, 10, "failsafe engaged"
            )
            time.sleep(2)
            killed_at = time.monotonic()
            stack.kill_node(_i(standby))
            wait_for(
                lambda: not check.watch.writable_at(primary, time.monotonic()),
                3 * TTL,
                "the primary stopping",
            )
            stopped_after = (check.watch.last_writable(primary) or killed_at) - killed_at
            time.sleep(5)  # etcd still without a quorum: nobody may write
            now = time.monotonic()
            writers = [n for n in check.watch.changes if check.watch.writable_between(n, now - 4, now)]
            assert writers == [], f"{writers} accepted writes after the primary stopped"
        back_at = time.monotonic()
        wait_for(lambda: primary_name(stack) == primary, 60, f"{primary} primary again under its key")
        check.notes.update(
            stopped_after_the_kill_s=round(stopped_after, 2),
            primary_again_after_etcd_s=round(time.monotonic() - back_at, 2),
        )
        stack.start_agent(_i(standby))
        report = check.finish()
    report.publish()
    report.assert_invariants()  # nothing lost: the same primary goes on with every write it took
    assert report.primary_after == primary
    # The standby's last promise was confirmed by the round before the kill, at most one loop_wait
    # earlier (+ the round's deadline): the write deadline is that round's send time + ttl - 1 s.
    assert stopped_after < TTL + 1.0, check.notes
    assert _failsafe_history(stack, primary), "the outage is not in the history"
