"""Agent.run under internal errors: failed cycles are reported and retried; only a stop stops PostgreSQL.

The agent runs for real (its API, watch, lease guard and postmaster watch threads) against an etcd
and a PostgreSQL that are not there; its observer is wrapped to raise in the first cycles, the
way a bug or an unforeseen input did (issue 11: one nested etcd value, and every agent exited and
stopped its PostgreSQL).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from pgwarden.agent.adoption import is_subreaper
from pgwarden.agent.snapshot import Snapshot
from pgwarden.daemon.agent import Agent
from pgwarden.documents.status import status_document
from pgwarden.ha.observation import Memory, Observation
from pgwarden.ha.reasons import Reason
from pgwarden.model import Address, EtcdSettings
from tests.support import api_fakes as fake
from tests.support.etcd import free_port

FAILURES = 4


class FailingObserver:
    """The agent's observer, raising in its first ``failures`` cycles, then asking the agent to stop."""

    def __init__(self, agent: Agent, failures: int) -> None:
        self._real = agent.cycle.observer
        self._agent = agent
        self._failures = failures
        self.calls = 0
        self.seen: list[Snapshot] = []  # the snapshot the API served before each cycle

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def observe(self, memory: Memory) -> Observation:
        self.calls += 1
        self.seen.append(self._agent.snapshots.get())
        if self.calls <= self._failures:
            raise KeyError("xlog")  # what a peer's {"xlog": "a"} raised in agent/snapshot.py
        if self.calls == self._failures + 2:
            self._agent.stop()
        return self._real.observe(memory)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    config = fake.node_config("node1")
    host = "127.0.0.1"
    config = replace(
        config,
        etcd=EtcdSettings(hosts=(Address(host, free_port(host)),)),  # nobody listens: etcd unreachable
        api=replace(config.api, listen=Address(host, free_port(host))),
        # An empty data directory of the test's own: the agent starts its fence beside it.
        postgresql=replace(config.postgresql, data_dir=str(tmp_path / "data")),
    )
    agent = Agent(config)
    yield agent
    agent.fence.stop()  # the agent's own stop ends it too; this covers a test that failed first


def test_failed_cycles_are_retried_reported_and_never_stop_postgres(agent: Agent) -> None:
    stops: list[tuple[float, str]] = []
    stop_requested: list[float] = []
    agent.postgres.stop = lambda mode="fast", *a, **k: stops.append((time.monotonic(), mode))  # type: ignore[method-assign]
    original_stop = agent.stop

    def stop() -> None:
        stop_requested.append(time.monotonic())
        original_stop()

    agent.stop = stop  # type: ignore[method-assign]
    observer = FailingObserver(agent, FAILURES)
    agent.cycle.observer = observer  # type: ignore[assignment]
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    runner.join(30)
    assert not runner.is_alive(), "the agent did not stop when asked"
    # Running an agent in a thread does not make the host process a subreaper: it would collect
    # the orphans below it (a killed agent's postmaster) and never wait for them, and that
    # PostgreSQL could not start again while its zombie lived (make test: 3 node-kill tests).
    assert not is_subreaper(), "Agent.run made this process a subreaper"
    assert observer.calls == FAILURES + 2  # every failed cycle was retried
    # While cycles failed, the API showed the crash loop, counted, with a fresh probe.
    during = observer.seen[FAILURES]
    assert during.decision is not None and during.decision.reason is Reason.INTERNAL_ERROR
    assert during.decision.detail["count"] == FAILURES and "KeyError: 'xlog'" in during.decision.message
    assert during.errors == {"loop": FAILURES}
    assert during.member.loop_error is not None and "4 cycles failed in a row" in during.member.loop_error
    doc = status_document(during)
    assert doc["reason_code"] == "INTERNAL_ERROR" and doc["loop_errors"] == FAILURES
    # The member record (list --watch, the web view) and GET /events say so too.
    assert during.member.reason_code == "INTERNAL_ERROR" and "KeyError: 'xlog'" in during.member.reason
    runs = agent.decisions.runs()
    assert any(r.reason_code == "INTERNAL_ERROR" and r.decisions == FAILURES for r in runs), runs
    # Then a cycle completed: the reason is a decision again and the member record is clean.
    after = observer.seen[FAILURES + 1]
    assert after.decision is not None and after.decision.reason is not Reason.INTERNAL_ERROR
    assert after.member.loop_error is None and after.errors == {"loop": FAILURES}
    # PostgreSQL was stopped only by the requested shutdown.
    assert stops and all(at >= stop_requested[0] for at, _ in stops)


def test_the_backoff_between_failed_cycles_is_short_and_bounded(agent: Agent) -> None:
    observer = FailingObserver(agent, FAILURES)
    agent.cycle.observer = observer  # type: ignore[assignment]
    agent.postgres.stop = lambda *a, **k: None  # type: ignore[method-assign]
    started = time.monotonic()
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    runner.join(30)
    # 0.1 + 0.25 + 0.5 + 1.0 s of backoff, loop_wait (1 s) at most each, plus the two real cycles.
    assert time.monotonic() - started < 15
    assert [s.decision.detail["wait"] for s in observer.seen[2 : FAILURES + 1] if s.decision] == [
        0.25,
        0.5,
        1.0,
    ]


def test_metrics_count_the_failed_cycles(agent: Agent) -> None:
    observer = FailingObserver(agent, 2)
    agent.cycle.observer = observer  # type: ignore[assignment]
    agent.postgres.stop = lambda *a, **k: None  # type: ignore[method-assign]
    scraped: list[str] = []
    real_observe = observer.observe

    def observe(memory: Memory) -> Observation:
        if observer.calls == 1:  # after the first failure, before the second cycle
            scraped.append(httpx.get(f"http://{agent.config.api.listen}/metrics", timeout=5).text)
        return real_observe(memory)

    observer.observe = observe  # type: ignore[method-assign]
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    runner.join(30)
    assert "pgwarden_loop_errors_total 1.0" in scraped[0]
    assert 'pgwarden_decision{reason="INTERNAL_ERROR"} 1.0' in scraped[0]
