"""`pgwarden drill` against a real local stack (planned and unplanned), and its verdict rules alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pgwarden.cli.main import app
from pgwarden.drill.report import DrillReport, RoundResult, healed_primary
from pgwarden.local.stack import Stack
from tests.support.cluster import running_stack

PRIMARY = {"role": "primary", "state": "running"}


def _standby(upstream: str) -> dict[str, Any]:
    return {"role": "replica", "state": "running", "replication_state": "streaming", "upstream": upstream}


def _round(healed: bool = True, lost: int = 0) -> RoundResult:
    return RoundResult(1, "kill", "node1", "node2", healed, 3.0, 4.0, 100, lost, 9.0)


# --- the verdict, without a cluster ----------------------------------------------------------


def test_healed_means_one_primary_and_every_other_member_streaming_from_it() -> None:
    members = ["node1", "node2", "node3"]
    assert healed_primary(
        {"node1": PRIMARY, "node2": _standby("node1"), "node3": _standby("node1")}, members
    ) == ("node1")
    assert healed_primary({"node1": PRIMARY, "node2": _standby("node1"), "node3": None}, members) is None
    assert (
        healed_primary({"node1": PRIMARY, "node2": _standby("node3"), "node3": _standby("node1")}, members)
        is None
    )
    assert healed_primary({"node1": PRIMARY, "node2": PRIMARY, "node3": _standby("node1")}, members) is None


@pytest.mark.parametrize(
    ("rounds", "synchronous", "ok"),
    [
        pytest.param((_round(),), False, True, id="healed"),
        pytest.param((_round(lost=3),), False, True, id="asynchronous_loss_is_reported_not_failed"),
        pytest.param((_round(lost=3),), True, False, id="synchronous_loss_fails"),
        pytest.param((_round(), _round(healed=False)), False, False, id="not_healed_fails"),
    ],
)
def test_the_exit_status_fails_on_no_heal_and_on_a_synchronous_loss(
    rounds: tuple[RoundResult, ...], synchronous: bool, ok: bool
) -> None:
    assert DrillReport("c", "kill", synchronous, rounds).ok is ok


def test_unplanned_needs_a_local_stack_and_a_config_needs_a_dsn(tmp_path: Path) -> None:
    config = tmp_path / "node.yml"
    config.write_text("cluster: c\nname: n\n")
    runner = CliRunner()
    refused = runner.invoke(app, ["drill", "--unplanned", "-c", str(config)])
    assert refused.exit_code == 2 and "local stack" in refused.output
    refused = runner.invoke(app, ["drill", "-c", str(config)])
    assert refused.exit_code == 2 and "--dsn" in refused.output


# --- against a real stack --------------------------------------------------------------------


def _drill(stack: Stack, *args: str) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-m", "pgwarden", "drill", "--dir", str(stack.spec.dir), "--format", "json", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        doc = json.loads(done.stdout)
    except ValueError:
        doc = {}
    return done.returncode, doc, done.stderr


@pytest.mark.integration
def test_drill_planned_then_unplanned_reports_every_round() -> None:
    with running_stack() as stack:
        code, doc, err = _drill(stack, "--rounds", "2")
        assert code == 0, (doc, err)
        assert doc["kind"] == "switchover" and doc["ok"] is True and doc["synchronous_mode"] is False
        assert [r["round"] for r in doc["rounds"]] == [1, 2]
        for r in doc["rounds"]:
            assert r["healed"] is True and r["error"] is None
            assert r["old_primary"] != r["new_primary"]
            assert r["writes_acknowledged"] > 0
            assert r["writes_lost"] == 0, "a planned switchover lost acknowledged writes"
            assert r["old_primary_streams_after_seconds"] is not None
            assert set(r["reason_codes"]) == {"node1", "node2", "node3"}
            assert r["reason_codes"][r["new_primary"]] == "LEADER_HEALTHY"
        summary = doc["summary"]
        assert summary["rounds"] == summary["healed"] == 2 and summary["writes_lost"] == 0
        assert summary["max_rto_seconds"] == max(r["rto_seconds"] for r in doc["rounds"])

        code, doc, err = _drill(stack, "--unplanned", "--rounds", "1")
        assert code == 0, (doc, err)
        [r] = doc["rounds"]
        assert doc["kind"] == "kill" and r["healed"] is True
        assert r["old_primary"] != r["new_primary"]
        assert r["old_primary_streams_after_seconds"] is not None  # restarted, rewound, streaming
        assert r["rto_seconds"] > 0 and r["writes_acknowledged"] > 0
        print(f"drill figures: {json.dumps(doc['summary'])}; unplanned lost {r['writes_lost']}")
