"""``pgwarden list --watch`` and ``pgwarden events`` against a real cluster, as an operator uses them.

One cluster: a standby reinitialised (its clone's progress shows in the watched table, its
reason column says what each member does), then a switchover, after which ``events`` lists
what each agent decided, in time order, beside the history entry, and ``--member`` narrows it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import psycopg
import pytest
from typer.testing import CliRunner

from pgwarden.cli.main import app
from pgwarden.local.stack import Stack
from tests.support.cluster import conninfo, primary_name, running_stack, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as s:
        yield s


def cli(stack: Stack, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--dir", str(stack.spec.dir)])
    assert result.exit_code == 0, result.output
    return result.output


def roles(stack: Stack) -> tuple[str, list[str]]:
    wait_for(lambda: stack.healthy()[0], 120, "one primary and every standby streaming")
    primary = primary_name(stack)
    assert primary is not None
    return primary, sorted(n for n in stack.statuses() if n != primary)


def test_list_watch_shows_each_members_reason_and_a_clones_progress(stack: Stack) -> None:
    primary, standbys = roles(stack)
    # ~1 GB to copy, so that the clone lasts several refreshes even on a quiet machine (350 MB
    # were copied within one published cycle there: no frame could show a percentage).
    info = conninfo(stack, stack.spec.node_host(int(primary.removeprefix("node")) - 1), stack.spec.pg_port)
    with psycopg.connect(info, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE ballast AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 4500000) g"
        )
    target = standbys[0]
    cli(stack, "reinit", target, "--force")
    out = cli(stack, "list", "--watch", "0.25", "--count", "60")
    frames = out.count("Ctrl-C to stop")
    assert frames == 60, out[-2000:]
    # The reason column: the leader's and the healthy standby's own sentences.
    assert "I am the leader with the lock" in out and f"standby of {primary}; nothing to do" in out
    # The clone, from its start to its progress as pg_basebackup reports it.
    assert f"cloning from {primary}" in out or "clone in progress" in out, out[-3000:]
    assert re.search(r"\(\d+%\)|\d+%", out), "no clone progress in any frame"
    wait_for(lambda: stack.healthy()[0], 180, f"{target} streaming again")


def test_events_after_a_switchover(stack: Stack) -> None:
    primary, standbys = roles(stack)
    candidate = standbys[-1]

    # The ballast of the test above keeps the primary writing WAL for a while (autovacuum of a
    # fresh 1 GB table): a switchover to a standby whose published position is more than
    # maximum_lag_on_failover behind is refused (412, rightly). Asked again, as a user would.
    def switched() -> bool:
        args = ["switchover", "--leader", primary, "--candidate", candidate, "--force"]
        result = CliRunner().invoke(app, [*args, "--dir", str(stack.spec.dir)])
        assert result.exit_code == 0 or "bytes behind" in result.output, result.output
        return result.exit_code == 0

    wait_for(switched, 180, f"a switchover to {candidate}", interval=3.0)
    wait_for(lambda: primary_name(stack) == candidate and stack.healthy()[0], 120, f"{candidate} leads")

    doc = json.loads(cli(stack, "events", "--format", "json", "--limit", "500"))
    assert doc["unreachable"] == {}
    rows = doc["events"]
    stamps = [r["timestamp"] for r in rows]
    assert stamps == sorted(stamps), "events are not in time order"
    agents = {r["member"] for r in rows if r["source"] == "agent"}
    assert agents == {primary, *standbys}, agents
    codes = {(r["member"], r["reason_code"]) for r in rows}
    # The old leader handed over, the candidate took over, and the history says so too.
    assert any(m == primary and code.startswith("SWITCHOVER") for m, code in codes), codes
    assert (candidate, "LEADER_HEALTHY") in codes, codes
    assert any(r["source"] == "history" and r["member"] == candidate for r in rows), rows[-10:]

    mine = json.loads(cli(stack, "events", "--member", candidate, "--format", "json"))["events"]
    assert mine and {r["member"] for r in mine} == {candidate}
    table = cli(stack, "events", "--limit", "20")
    assert candidate in table and "Reason" in table
