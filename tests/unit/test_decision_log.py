"""The agent's ring of decision runs (GET /events) and the primary's WAL clock (seconds behind)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from pgwarden.agent.decision_log import DecisionLog, DecisionRun, read_run
from pgwarden.agent.round_trips import RoundTrips
from pgwarden.agent.wal_clock import Behind, WalClock
from pgwarden.api.inspection import run_document
from pgwarden.ha import actions as a
from pgwarden.ha.decision import Decision
from pgwarden.ha.reasons import Reason
from pgwarden.model import Lsn


def decision(reason: Reason, *actions: a.Action, **detail: object) -> Decision:
    return Decision(actions=actions, reason=reason, detail=detail)


def test_consecutive_decisions_with_one_reason_are_one_run_with_the_latest_sentence() -> None:
    ticks = itertools.count(100)
    log = DecisionLog(clock=lambda: float(next(ticks)))
    log.record(decision(Reason.JOB_IN_PROGRESS, job="clone", progress=" (10%)"))
    log.record(decision(Reason.JOB_IN_PROGRESS, job="clone", progress=" (60%)"))
    log.record(decision(Reason.STARTING_AS_STANDBY, a.StartStandby(None), upstream="node1"))
    first, second = log.runs()
    assert (first.reason_code, first.decisions, first.since, first.last) == ("JOB_IN_PROGRESS", 2, 100, 101)
    assert first.message == "clone in progress (60%)"
    assert second.reason_code == "STARTING_AS_STANDBY"
    assert second.actions == ("StartStandby",)


def test_the_ring_keeps_the_newest_runs_only() -> None:
    log = DecisionLog(size=3)
    for reason in (Reason.BOOTSTRAP_RACING, Reason.BOOTSTRAP_INITDB, Reason.LEADER_HEALTHY, Reason.RELOADING):
        for _ in range(5):  # repeats never grow the ring
            log.record(decision(reason))
    assert [r.reason_code for r in log.runs()] == ["BOOTSTRAP_INITDB", "LEADER_HEALTHY", "RELOADING"]


def test_a_standby_lacks_writes_as_old_as_the_first_position_the_primary_passed_after_its_own() -> None:
    clock = WalClock()
    for second, lsn in ((10.0, "0/1000000"), (11.0, "0/2000000"), (12.0, "0/2000000"), (13.0, "0/3000000")):
        clock.note(second, Lsn.parse(lsn))
    assert clock.behind(Lsn.parse("0/3000000"), now=20.0) == Behind(0.0)
    assert clock.behind(Lsn.parse("0/2000000"), now=20.0) == Behind(7.0)  # lacks what came at 13 s
    assert clock.behind(Lsn.parse("0/1800000"), now=20.0) == Behind(9.0)
    assert clock.behind(Lsn.parse("0/0800000"), now=20.0) == Behind(10.0, at_least=True)


def test_the_wal_clock_knows_nothing_before_a_primary_noted_and_starts_again_on_a_new_timeline() -> None:
    clock = WalClock()
    assert clock.behind(Lsn.parse("0/1000000"), now=5.0) is None
    clock.note(1.0, Lsn.parse("0/5000000"))
    clock.note(2.0, Lsn.parse("0/1000000"))  # a lower position: another primary's history
    assert clock.behind(Lsn.parse("0/0800000"), now=5.0) == Behind(3.0, at_least=True)


def test_the_wal_clock_is_bounded() -> None:
    clock = WalClock(size=4)
    for i in range(10):
        clock.note(float(i), Lsn(1000 * (i + 1)))
    assert clock.behind(Lsn(0), now=10.0) == Behind(4.0, at_least=True)  # the oldest kept: 6 s


def test_round_trips_summarise_the_kept_ones() -> None:
    trips = RoundTrips(size=100)
    assert trips.summary() is None
    for ms in range(1, 201):
        trips.add(ms / 1000)
    summary = trips.summary()
    assert summary == {"count": 100, "p50_ms": 150.5, "p99_ms": 200.0, "max_ms": 200.0, "total": 200}


def test_a_run_read_back_from_its_document_is_the_same_run() -> None:
    run = DecisionRun(
        1700000000.25,
        "STANDBY_HEALTHY",
        "standby of node1; nothing to do",
        ("StartPostgres",),
        1700000100.5,
        7,
    )
    assert read_run(run_document(run)) == run


GOOD: dict[str, Any] = {
    "timestamp": 10.0,
    "reason_code": "LEADER_HEALTHY",
    "message": "ok",
    "actions": [],
    "decisions": 1,
}


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        "LEADER_HEALTHY",
        {**GOOD, "timestamp": "yesterday"},
        {**GOOD, "timestamp": float("nan")},
        {**GOOD, "timestamp": True},
        {**GOOD, "reason_code": "<script>"},
        {**GOOD, "reason_code": "A" * 101},
        {**GOOD, "message": 3},
        {**GOOD, "actions": "StopPostgres"},
        {**GOOD, "actions": ["x"] * 21},
        {**GOOD, "actions": [{"a": 1}]},
        {**GOOD, "decisions": 0},
        {**GOOD, "decisions": "many"},
    ],
)
def test_a_peer_answer_that_is_no_run_is_dropped(bad: object) -> None:
    assert read_run(GOOD) is not None
    assert read_run(bad) is None


def test_a_long_message_from_a_peer_is_cut() -> None:
    run = read_run({**GOOD, "message": "x" * 5000})
    assert run is not None and len(run.message) == 1000
