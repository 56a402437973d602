"""Dynamic config refusals on a real cluster (etcd x3, three agents with PostgreSQL 15, HAProxy).

What would break PostgreSQL or fight pgwarden is refused through the API (on the primary and on a
standby) and through `pgwarden edit-config`, naming the key, with etcd untouched (same value, same
revision); values PostgreSQL itself refuses are refused by the receiving node's PostgreSQL before
etcd; each node still restarts afterwards. A bad value written to etcd directly is left out of
every node's pgwarden.conf and reported on every node (/patroni, `list`), and a node restarted
with it in place still starts; a bad line PostgreSQL reads from a file pgwarden does not render
shows up through pg_file_settings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner, Result

from pgwarden.cli.main import app
from pgwarden.config.fields import parse_address
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.codec import encode_config
from pgwarden.dcs.etcd import EtcdStore
from pgwarden.local.stack import Stack
from pgwarden.model import DynamicConfig
from pgwarden.model.parameters import OWNED
from tests.support.api import api_url, call, credentials
from tests.support.cluster import conninfo, primary_name, running_stack, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as stack:
        yield stack


def names(stack: Stack) -> list[str]:
    return [stack.spec.node_name(i) for i in range(stack.spec.nodes)]


def roles(stack: Stack) -> tuple[str, list[str]]:
    wait_for(lambda: stack.healthy()[0], 90, "one primary and every standby streaming")
    primary = primary_name(stack)
    assert primary is not None
    return primary, [n for n in names(stack) if n != primary]


def cli(stack: Stack, *args: str) -> Result:
    return CliRunner().invoke(app, [*args, "-c", str(stack.spec.config_path(0))], env={"COLUMNS": "250"})


def etcd(stack: Stack) -> EtcdStore:
    return EtcdStore([parse_address(e) for e in stack.spec.etcd_endpoints()], timeout=2.0)


def config_key(stack: Stack) -> tuple[str, int]:
    """The config key exactly as etcd holds it: raw value and mod_revision."""
    with etcd(stack) as store:
        key = ClusterStore(store, stack.spec.cluster).keys.config
        kv = store.get_prefix(key).get(key)
    assert kv is not None
    return kv.value, kv.mod_revision


def status(stack: Stack, name: str) -> dict[str, Any]:
    return dict(httpx.get(f"{api_url(stack, name)}/patroni", timeout=5).json())


def postmaster_started(stack: Stack, name: str) -> str | None:
    index = names(stack).index(name)
    try:
        with psycopg.connect(conninfo(stack, stack.spec.node_host(index), stack.spec.pg_port)) as conn:
            row = conn.execute("SELECT pg_postmaster_start_time()::text").fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else None


def restart_and_check_it_serves(stack: Stack, name: str) -> None:
    before = postmaster_started(stack, name)
    assert before is not None
    reply = call(stack, name, "POST", "/restart", body={"timeout": 60}, timeout=90)
    assert reply.status_code == 200, reply.text
    wait_for(lambda: postmaster_started(stack, name) not in (None, before), 30, f"{name} running again")


# Refused by validation: (PATCH body, the key the 400 names).
STATIC_REFUSALS: list[tuple[dict[str, Any], str]] = [
    ({"parameters": {"include": "/etc/passwd"}}, "parameters.include"),
    ({"parameters": {"include_dir": "/etc"}}, "parameters.include_dir"),
    ({"parameters": {"INCLUDE_IF_EXISTS": "/etc/passwd"}}, "parameters.INCLUDE_IF_EXISTS"),
    *[({"parameters": {name: "x"}}, f"parameters.{name}") for name in sorted(OWNED)],
    ({"parameters": {"work mem": "8MB"}}, "parameters.work mem"),
    ({"parameters": {"work_mem": "8MB\nfsync = off"}}, "parameters.work_mem"),
    ({"parameters": {"application_name": "x\ry"}}, "parameters.application_name"),
    ({"parameters": {"wal_level": "minimal"}}, "parameters"),
    ({"loop_wait": 1e-6}, "loop_wait"),
    ({"ttl": 1e12}, "ttl"),
    ({"retry_timeout": -3}, "retry_timeout"),
    ({"primary_start_timeout": 1e9}, "primary_start_timeout"),
    ({"member_slots_ttl": 0.5}, "member_slots_ttl"),
    ({"synchronous_fallback_after": -1}, "synchronous_fallback_after"),
    ({"maximum_lag_on_failover": "4096GB"}, "maximum_lag_on_failover"),
]
# Refused by the receiving node's PostgreSQL: (PATCH body, key, PostgreSQL's words).
POSTGRES_REFUSALS: list[tuple[dict[str, Any], str, str]] = [
    ({"parameters": {"work_mem": "lots"}}, "parameters.work_mem", 'invalid value for parameter "work_mem"'),
    ({"parameters": {"max_connections": -5}}, "parameters.max_connections", "outside the valid range"),
    ({"parameters": {"shared_buffers": "1 lot"}}, "parameters.shared_buffers", "invalid value"),
    ({"parameters": {"log_min_messages": "loud"}}, "parameters.log_min_messages", "Available values"),
    ({"parameters": {"no_such_setting": 1}}, "parameters.no_such_setting", "unrecognized configuration"),
]


def test_every_refused_change_through_the_api_leaves_etcd_untouched(stack: Stack) -> None:
    primary, standbys = roles(stack)
    before = config_key(stack)
    targets = [primary, *standbys]
    for i, (patch, key) in enumerate(STATIC_REFUSALS):
        reply = call(stack, targets[i % len(targets)], "PATCH", "/config", body=patch)
        assert reply.status_code == 400, (patch, reply.text)
        assert f"request body: {key}: " in reply.json()["error"], reply.text
    for i, (patch, key, words) in enumerate(POSTGRES_REFUSALS):
        target = targets[i % len(targets)]
        reply = call(stack, target, "PATCH", "/config", body=patch)
        assert reply.status_code == 400, (patch, reply.text)
        error = reply.json()["error"]
        assert f"request body: {key}: PostgreSQL refuses" in error and words in error, error
        assert key in reply.json()["refused"]
    assert config_key(stack) == before, "a refused change reached etcd"
    print(f"{len(STATIC_REFUSALS) + len(POSTGRES_REFUSALS)} refusals, etcd revision {before[1]} unchanged")


def test_refused_changes_through_the_cli_write_nothing(stack: Stack) -> None:
    before = config_key(stack)
    cases = [
        ("parameters.include=/etc/passwd", "parameters.include", "nothing written"),
        ("parameters.port=6543", "parameters.port", "nothing written"),
        ("parameters.primary_conninfo=host=127.0.0.9", "parameters.primary_conninfo", "nothing written"),
        ("loop_wait=1e-6", "loop_wait", "nothing written"),
        ("ttl=1e12", "ttl", "nothing written"),
        ("parameters.work_mem=lots", "parameters.work_mem", "refused by node"),
        ("parameters.no_such_setting=1", "parameters.no_such_setting", "refused by node"),
    ]
    for assignment, key, words in cases:
        result = cli(stack, "edit-config", "--set", assignment, "--force")
        assert result.exit_code == 1, (assignment, result.output)
        assert key in result.stderr and words in result.stderr, result.stderr
    assert config_key(stack) == before


def test_an_accepted_change_says_postgresql_checked_it(stack: Stack) -> None:
    result = cli(stack, "edit-config", "--set", "parameters.work_mem=9MB", "--force")
    assert result.exit_code == 0, result.output
    assert "parameter check: accepted by PostgreSQL on node" in result.stdout
    assert json.loads(config_key(stack)[0])["parameters"]["work_mem"] == "9MB"


def test_a_config_that_moved_since_it_was_read_is_412(stack: Stack) -> None:
    primary, standbys = roles(stack)

    # GET answers from the agent's last cycle: its ETag catches up with etcd within a cycle.
    def fresh() -> httpx.Response | None:
        got = call(stack, standbys[0], "GET", "/config", auth=False)
        return got if got.headers["etag"] == f'"{config_key(stack)[1]}"' else None

    got = wait_for(fresh, 10, "GET /config's ETag at etcd's revision")
    etag = got.headers["etag"]
    assert (
        call(stack, primary, "PATCH", "/config", body={"parameters": {"work_mem": "10MB"}}).status_code == 200
    )
    before = config_key(stack)
    stale = httpx.put(
        f"{api_url(stack, standbys[0])}/config",
        json={**got.json(), "ttl": 20},
        headers={"If-Match": etag},
        auth=credentials(stack),
        timeout=10,
    )
    assert stale.status_code == 412, stale.text
    assert config_key(stack) == before


def test_every_node_restarts_after_the_refused_changes(stack: Stack) -> None:
    primary, standbys = roles(stack)
    for name in [*standbys, primary]:
        restart_and_check_it_serves(stack, name)
        assert status(stack, name)["config_errors"] == []
    roles(stack)


def test_a_bad_value_written_to_etcd_is_left_out_and_reported_on_every_node(stack: Stack) -> None:
    """Behind the API's back (etcdctl, an older version): agents never render what their
    PostgreSQL refuses, so a restart still works, and every node says what it left out."""
    primary, standbys = roles(stack)
    raw, revision = config_key(stack)
    good = json.loads(raw)
    bad = DynamicConfig(
        ttl=good["ttl"],
        loop_wait=good["loop_wait"],
        retry_timeout=good["retry_timeout"],
        parameters={
            **good["parameters"],
            "work_mem": "lots",
            "no_such_setting": 1,
            "log_min_duration_statement": 250,
        },
    )
    with etcd(stack) as store:
        assert store.replace_at(
            ClusterStore(store, stack.spec.cluster).keys.config, encode_config(bad), revision
        )

    def refused_everywhere() -> bool:
        for name in names(stack):
            found = {e["name"] for e in status(stack, name)["config_errors"]}
            if found != {"work_mem", "no_such_setting"}:
                return False
        return True

    wait_for(refused_everywhere, 30, "work_mem and no_such_setting reported on every node")
    for name in names(stack):
        errors = {e["name"]: e for e in status(stack, name)["config_errors"]}
        assert errors["work_mem"]["value"] == "'lots'"
        assert 'invalid value for parameter "work_mem"' in errors["work_mem"]["error"]
        assert "left out of pgwarden.conf" in errors["work_mem"]["error"]
        assert "unrecognized configuration parameter" in errors["no_such_setting"]["error"]
    # The good setting beside them was applied: an unknown name would otherwise block every change.
    index = names(stack).index(primary)
    with psycopg.connect(conninfo(stack, stack.spec.node_host(index), stack.spec.pg_port)) as conn:
        wait_for(
            lambda: conn.execute("SHOW log_min_duration_statement").fetchone() == ("250ms",),
            20,
            "log_min_duration_statement applied",
        )
    listed = cli(stack, "members", "--format", "json")
    assert listed.exit_code == 0, listed.output
    members = {m["name"]: m for m in json.loads(listed.stdout)["members"]}
    assert all(
        {e["name"] for e in members[n]["config_errors"]} == {"work_mem", "no_such_setting"} for n in members
    )
    table = cli(stack, "list")
    assert "CONFIG ERRORS on node1, node2, node3 (!)" in table.stdout, table.stdout
    assert f"! {standbys[0]}: work_mem = 'lots': " in table.stdout
    metrics = httpx.get(f"{api_url(stack, standbys[0])}/metrics", timeout=5).text
    assert "pgwarden_config_errors 2.0" in metrics

    restart_and_check_it_serves(stack, standbys[0])  # with the bad value in etcd, it still starts

    repaired = cli(
        stack,
        "edit-config",
        "--set",
        "parameters.work_mem=null",
        "--set",
        "parameters.no_such_setting=null",
        "--force",
    )
    assert repaired.exit_code == 0, repaired.output
    wait_for(
        lambda: all(status(stack, n)["config_errors"] == [] for n in names(stack)),
        30,
        "errors cleared everywhere",
    )


def test_a_bad_line_in_a_file_pgwarden_does_not_render_shows_through_pg_file_settings(stack: Stack) -> None:
    _, standbys = roles(stack)
    name = standbys[-1]
    conf = Path(stack.spec.data_dir(names(stack).index(name))) / "postgresql.conf"
    original = conf.read_text()
    try:
        conf.write_text(original + "statement_timeout = 'soon'  # added by hand\n")
        assert call(stack, name, "POST", "/reload", body={}).status_code == 200

        def reported() -> list[dict[str, str]]:
            return [e for e in status(stack, name)["config_errors"] if e["name"] == "statement_timeout"]

        [error] = wait_for(reported, 20, "statement_timeout reported from pg_file_settings")
        assert error["value"] == "soon"
        assert error["error"].startswith("setting could not be applied")
        assert "refuses to start" in error["error"]
    finally:
        conf.write_text(original)
        call(stack, name, "POST", "/reload", body={})
    wait_for(lambda: status(stack, name)["config_errors"] == [], 20, "the error cleared after the fix")
