"""Live dynamic config and callbacks on a real cluster (one cluster for the module, tests in file order).

A reloadable setting changed with PATCH /config reaches every node without a restart; a
postmaster setting shows as pending (old and new value) in /patroni and `pgwarden list`, and
`pgwarden restart --pending` applies it everywhere, standbys first, the primary in place. Every
node runs a callback script that records its arguments, so a switchover shows the new primary's
`on_role_change primary` and the old one's `on_role_change replica`.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from pgwarden.cli.main import app
from pgwarden.local.spec import StackSpec
from pgwarden.local.stack import Stack
from tests.support.cluster import conninfo, primary_name, running_stack, wait_for

pytestmark = pytest.mark.integration

CALLBACK = """#!/bin/sh
# Records each call as "<event> <role> <cluster>", one file per node.
echo "$2 $3 $4" >> "$1"
"""


@dataclass(frozen=True)
class CallbackSpec(StackSpec):
    """The local stack, with a recording callback on every node and max_connections left to the
    cluster (the stack's node configs set it per node, which would win over the dynamic config).
    The script and the records live in the stack's base directory (``write_callback``)."""

    @property
    def callback_dir(self) -> Path:
        return self.dir.parent

    def node_config(self, i: int, run_as: str | None) -> dict[str, Any]:
        doc = super().node_config(i, run_as)
        doc["postgresql"]["parameters"].pop("max_connections", None)
        base = self.callback_dir
        record = f"{base}/record.sh {base}/{self.node_name(i)}.events"
        doc["callbacks"] = {e: record for e in ("on_start", "on_stop", "on_restart", "on_role_change")}
        doc["callback_timeout"] = 10
        return doc


def write_callback(base: Path) -> None:
    script = base / "record.sh"
    script.write_text(CALLBACK)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack(spec_type=CallbackSpec, before_up=write_callback) as s:
        yield s


# --- helpers -----------------------------------------------------------------------------------


def _names(stack: Stack) -> list[str]:
    return [stack.spec.node_name(i) for i in range(stack.spec.nodes)]


def _index(name: str) -> int:
    return int(name.removeprefix("node")) - 1


def _auth(stack: Stack) -> tuple[str, str] | None:
    creds = stack.describe().get("api_auth")
    return (creds["username"], creds["password"]) if creds else None


def _api(stack: Stack, name: str) -> str:
    return stack.spec.api_url(_index(name))


def _show(stack: Stack, name: str, setting: str) -> str:
    with psycopg.connect(conninfo(stack, stack.spec.node_host(_index(name)), stack.spec.pg_port)) as conn:
        row = conn.execute(f"SHOW {setting}").fetchone()
    assert row is not None
    return str(row[0])


def _started(stack: Stack, name: str) -> str | None:
    """When the node's postmaster started; None while it does not answer (restarting)."""
    try:
        with psycopg.connect(conninfo(stack, stack.spec.node_host(_index(name)), stack.spec.pg_port)) as conn:
            row = conn.execute("SELECT pg_postmaster_start_time()::text").fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else None


def _status(stack: Stack, name: str) -> dict[str, Any]:
    return dict(httpx.get(f"{_api(stack, name)}/patroni", timeout=5).json())


def _patch(stack: Stack, name: str, patch: dict[str, Any]) -> None:
    reply = httpx.patch(f"{_api(stack, name)}/config", json=patch, auth=_auth(stack), timeout=10)
    assert reply.status_code == 200, reply.text


def _cli(stack: Stack, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, "-c", str(stack.spec.config_path(0))], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def _listed(stack: Stack) -> dict[str, dict[str, Any]]:
    doc = json.loads(_cli(stack, "members", "--format", "json"))
    return {m["name"]: m for m in doc["members"]}


def _events(stack: Stack, name: str) -> list[str]:
    spec = stack.spec
    assert isinstance(spec, CallbackSpec)
    path = spec.callback_dir / f"{name}.events"
    return path.read_text().splitlines() if path.exists() else []


def _healthy(stack: Stack) -> None:
    wait_for(lambda: stack.healthy()[0], 60, "one primary and every standby streaming")
    # Asked of the primary itself: right after it restarted, the standbys' snapshots may still show
    # the stream it cut, and a switchover needs its candidate connected to ship the last WAL.
    wait_for(lambda: _streaming_standbys(stack) == stack.spec.nodes - 1, 30, "every standby connected")


def _streaming_standbys(stack: Stack) -> int:
    primary = primary_name(stack)
    if primary is None:
        return 0
    host = stack.spec.node_host(_index(primary))
    try:
        with psycopg.connect(conninfo(stack, host, stack.spec.pg_port)) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
            ).fetchone()
    except psycopg.Error:
        return 0
    return int(row[0]) if row else 0


# --- the tests ---------------------------------------------------------------------------------


def test_every_node_ran_its_on_start_callback_with_role_and_cluster(stack: Stack) -> None:
    _healthy(stack)
    primary = primary_name(stack)
    for name in _names(stack):
        role = "primary" if name == primary else "replica"
        wait_for(lambda n=name, r=role: f"on_start {r} local" in _events(stack, n), 15, f"{name}'s on_start")


def test_a_reloadable_setting_reaches_every_node_without_a_restart(stack: Stack) -> None:
    _healthy(stack)
    names = _names(stack)
    started = {n: _started(stack, n) for n in names}
    assert all(_show(stack, n, "work_mem") != "7MB" for n in names)
    _patch(stack, primary_name(stack) or names[0], {"parameters": {"work_mem": "7MB"}})
    wait_for(lambda: all(_show(stack, n, "work_mem") == "7MB" for n in names), 20, "work_mem on every node")
    assert {n: _started(stack, n) for n in names} == started, "a reloadable setting restarted PostgreSQL"
    assert not any(_status(stack, n)["pending_restart"] for n in names)


def test_a_postmaster_setting_waits_for_restart_pending_which_applies_it_everywhere(stack: Stack) -> None:
    _healthy(stack)
    names = _names(stack)
    primary = primary_name(stack)
    assert primary is not None
    old = _show(stack, primary, "max_connections")
    new = str(int(old) + 20)
    _patch(stack, primary, {"parameters": {"max_connections": int(new)}})
    reason = {"max_connections": {"old_value": old, "new_value": new}}

    def pending_everywhere() -> bool:
        return all(_status(stack, n).get("pending_restart_reason") == reason for n in names)

    wait_for(pending_everywhere, 20, f"max_connections {old}->{new} pending on every node")
    assert all(_status(stack, n)["pending_restart"] is True for n in names)
    listed = _listed(stack)
    assert all(listed[n]["pending_restart"] and listed[n]["pending_restart_reason"] == reason for n in names)
    assert all(_show(stack, n, "max_connections") == old for n in names)

    output = _cli(stack, "restart", "--pending", "--force", "--timeout", "60")
    standbys = [n for n in names if n != primary]
    plan = "; then ".join([*(f"restart {n}" for n in standbys), f"restart {primary} (primary)"])
    assert f"rolling restart: {plan}" in output, output
    assert all(_show(stack, n, "max_connections") == new for n in names)
    assert primary_name(stack) == primary, "the primary changed without --switchover"
    listed = _listed(stack)
    assert not any(listed[n]["pending_restart"] or listed[n]["pending_restart_reason"] for n in names)
    for name in names:
        role = "primary" if name == primary else "replica"
        wait_for(
            lambda n=name, r=role: f"on_restart {r} local" in _events(stack, n), 15, f"{name}'s on_restart"
        )


def test_a_switchover_runs_on_role_change_on_both_sides(stack: Stack) -> None:
    _healthy(stack)
    old = primary_name(stack)
    assert old is not None
    candidate = next(n for n in _names(stack) if n != old)
    reply = httpx.post(
        f"{_api(stack, old)}/switchover",
        json={"leader": old, "candidate": candidate},
        auth=_auth(stack),
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    wait_for(
        lambda: "on_role_change primary local" in _events(stack, candidate),
        15,
        "the new primary's on_role_change",
    )
    wait_for(
        lambda: "on_role_change replica local" in _events(stack, old), 30, "the old primary's on_role_change"
    )
    # The old primary stopped as primary before it came back as a standby.
    old_events = _events(stack, old)
    assert old_events.index("on_stop primary local") < old_events.index("on_role_change replica local")
    _healthy(stack)


def test_restart_pending_with_switchover_hands_the_primary_over_first(stack: Stack) -> None:
    _healthy(stack)
    names = _names(stack)
    primary = primary_name(stack)
    assert primary is not None
    new = str(int(_show(stack, primary, "max_connections")) + 10)
    _patch(stack, primary, {"parameters": {"max_connections": int(new)}})
    wait_for(lambda: all(_status(stack, n)["pending_restart"] for n in names), 20, "pending on every node")
    output = _cli(stack, "restart", "--pending", "--switchover", "--force", "--timeout", "60")
    assert f"switch over from {primary} (primary)" in output, output
    assert primary_name(stack) not in (None, primary)
    assert all(_show(stack, n, "max_connections") == new for n in names)
    assert not any(m["pending_restart"] for m in _listed(stack).values())


def test_a_scheduled_restart_is_shown_then_carried_out_by_the_agent(stack: Stack) -> None:
    _healthy(stack)
    standby = next(n for n in _names(stack) if n != primary_name(stack))
    before = _started(stack, standby)
    assert before is not None
    # Far enough ahead that the two CLI calls below see the schedule before it falls due, even on a
    # loaded machine (4 s was not: the restart could come first, and the schedule never showed).
    when = (datetime.now(UTC) + timedelta(seconds=15)).isoformat(timespec="seconds")
    output = _cli(stack, "restart", standby, "--scheduled", when, "--force")
    assert f"restart scheduled for {datetime.fromisoformat(when).isoformat()}" in output, output
    wait_for(lambda: _listed(stack)[standby]["scheduled_restart"], 10, "the schedule in the member record")
    assert _started(stack, standby) == before, "restarted before its time"
    wait_for(lambda: _started(stack, standby) not in (None, before), 60, f"{standby} restarted in time")
    wait_for(lambda: _listed(stack)[standby]["scheduled_restart"] is None, 10, "the schedule forgotten")
    _healthy(stack)
