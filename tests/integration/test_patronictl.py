"""Every command of docs/cli.md's Patroni compatibility table, typed as a patronictl user types it
(``pgwarden -c node.yml COMMAND CLUSTER ...``, the installed ``pgwarden`` command in a subprocess),
against one real pgwarden cluster (etcd x3, three agents, HAProxy); each checks the effect a user
would look for, through the REST API, PostgreSQL or etcd rather than the command's own words.

Also the real side of the metrics differential test: every series a real Patroni 4.1.5 serves
(tests/fixtures/patroni/metrics-*.txt) is in each pgwarden member's ``/metrics`` with the same
type and labels. The tests share the cluster and run in file order (``remove`` last).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from pgwarden.config.fields import parse_address
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.etcd import EtcdStore
from pgwarden.local.stack import Stack
from pgwarden.model.cluster import ClusterView
from tests.support.cluster import running_stack, wait_for
from tests.unit.test_patroni_metrics import ROLES, patroni_series, series_of

pytestmark = pytest.mark.integration
PGWARDEN = [str(Path(sys.executable).with_name("pgwarden"))]
OPERATION = 120.0  # generous: the machine is shared


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as stack:
        yield stack


def ctl(
    stack: Stack, *args: str, input: str | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """``pgwarden -c node1.yml ARGS``: the config file before the command, as patronictl takes it."""
    return subprocess.run(
        [*PGWARDEN, "-c", str(stack.spec.config_path(0)), *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "LANG": "C.UTF-8", "HOME": "/tmp"},
        check=False,
    )


def ok(stack: Stack, *args: str, input: str | None = None) -> str:
    done = ctl(stack, *args, input=input)
    assert done.returncode == 0, f"pgwarden {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def view(stack: Stack) -> ClusterView:
    endpoints = [parse_address(e) for e in stack.spec.etcd_endpoints()]
    with EtcdStore(endpoints, timeout=2.0) as store:
        return ClusterStore(store, stack.spec.cluster).read()


def leader(stack: Stack) -> str:
    found: str | None = wait_for(
        lambda: (v := view(stack)).leader is not None and v.leader.name, OPERATION, "a leader"
    )
    assert found
    return found


def sql(stack: Stack, name: str, query: str) -> Any:
    i = int(name.removeprefix("node")) - 1
    conninfo = (
        f"host={stack.spec.node_host(i)} port={stack.spec.pg_port} user=postgres "
        f"password={stack.spec.superuser_password} dbname=postgres connect_timeout=3"
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    return row[0] if row else None


def standbys(stack: Stack) -> list[str]:
    lead = leader(stack)
    return sorted(m.name for m in view(stack).members if m.name != lead)


def patroni(stack: Stack, name: str) -> dict[str, Any]:
    return stack.statuses().get(name) or {}


def healthy(stack: Stack) -> None:
    wait_for(lambda: stack.healthy()[0], OPERATION, "a healthy cluster")


# -- reading ----------------------------------------------------------------------------------------


def test_list_with_the_cluster_name_and_every_format(stack: Stack) -> None:
    cluster = stack.spec.cluster
    assert all(f"node{i}" in ok(stack, "list") for i in (1, 2, 3))
    # patronictl's row objects, as a script parsing `patronictl list -f json` reads them
    rows = json.loads(ok(stack, "list", cluster, "-f", "json"))
    assert sorted(row["Member"] for row in rows) == ["node1", "node2", "node3"]
    assert {row["Cluster"] for row in rows} == {cluster}
    assert sorted(row["Role"] for row in rows) in (
        ["Leader", "Replica", "Replica"],
        ["Leader", "Replica", "Sync Standby"],
        ["Leader", "Sync Standby", "Sync Standby"],
    )
    leader = next(row for row in rows if row["Role"] == "Leader")
    assert leader["State"] == "running" and isinstance(leader["TL"], int)
    standbys = [row for row in rows if row["Role"] != "Leader"]
    assert all(row["State"] == "streaming" and isinstance(row["Replay Lag"], int) for row in standbys)
    as_yaml = yaml.safe_load(ok(stack, "list", cluster, "-f", "yaml"))
    assert sorted(row["Member"] for row in as_yaml) == ["node1", "node2", "node3"]
    own = json.loads(ok(stack, "members", cluster, "-f", "json"))  # pgwarden's document stays
    assert sorted(m["name"] for m in own["members"]) == ["node1", "node2", "node3"]
    tsv = ok(stack, "list", cluster, "-f", "tsv", "-e").splitlines()
    assert tsv[0].startswith("Cluster\tMember\tHost\tRole") and tsv[0].endswith("Tags")
    assert sorted(line.split("\t")[1] for line in tsv[1:]) == ["node1", "node2", "node3"]
    stamped = ok(stack, "list", "-t").splitlines()[0]
    assert datetime.strptime(stamped, "%Y-%m-%d %H:%M:%S")
    wrong = ctl(stack, "list", "not-this-cluster")
    assert wrong.returncode == 1 and "'not-this-cluster' is not the one" in wrong.stderr


def test_topology_history_show_config_version(stack: Stack) -> None:
    cluster = stack.spec.cluster
    lead = leader(stack)
    assert lead in ok(stack, "topology", cluster)
    assert (
        ok(stack, "history", cluster, "-f", "tsv").splitlines()[0] == "TL\tLSN\tReason\tTimestamp\tNew Leader"
    )
    assert "loop_wait" in yaml.safe_load(ok(stack, "show-config", cluster))
    lines = ok(stack, "version", cluster, "node2").splitlines()
    assert lines[0].startswith("pgwarden ") and lines[1].startswith("node2: pgwarden ")


def test_dsn_names_the_leader_and_a_replica(stack: Stack) -> None:
    lead = leader(stack)
    i = int(lead.removeprefix("node")) - 1
    assert (
        ok(stack, "dsn", stack.spec.cluster).strip()
        == f"host={stack.spec.node_host(i)} port={stack.spec.pg_port}"
    )
    replica = ok(stack, "dsn", "-r", "replica").strip()
    assert replica != f"host={stack.spec.node_host(i)} port={stack.spec.pg_port}"
    assert (
        ok(stack, "dsn", "-m", "node3").strip() == f"host={stack.spec.node_host(2)} port={stack.spec.pg_port}"
    )


def test_query_runs_on_the_leader_or_a_replica(stack: Stack) -> None:
    assert ok(stack, "query", stack.spec.cluster, "-c", "SELECT pg_is_in_recovery()").splitlines() == [
        "pg_is_in_recovery",
        "False",
    ]
    on_replica = json.loads(
        ok(stack, "query", "-r", "replica", "-c", "SELECT pg_is_in_recovery() AS r", "--format", "json")
    )
    assert on_replica == [{"r": True}]
    named = ok(stack, "query", "-m", "node2", "-c", "SELECT inet_server_addr()::text")
    assert stack.spec.node_host(1) in named
    refused = ctl(stack, "query", "-c", "SELECT 1", "-U", "nobody_here")
    assert refused.returncode == 1 and "nobody_here" in refused.stderr


# -- the metrics differential, on the real cluster ---------------------------------------------------


def test_every_patroni_series_is_served_by_each_member(stack: Stack) -> None:
    for i in range(stack.spec.nodes):
        text = httpx.get(f"{stack.spec.api_url(i)}/metrics", timeout=5).text
        ours = series_of(text)
        for role in ROLES:
            for name, shape in patroni_series(role).items():
                assert ours.get(name) == shape, f"node{i + 1}: {name}: {ours.get(name)} != Patroni's {shape}"
    lead = leader(stack)
    i = int(lead.removeprefix("node")) - 1
    values = {
        s.split("{")[0]: float(s.rsplit(" ", 1)[1])
        for s in httpx.get(f"{stack.spec.api_url(i)}/metrics", timeout=5).text.splitlines()
        if s.startswith("patroni_")
    }
    assert values["patroni_primary"] == 1 and values["patroni_xlog_location"] > 0
    assert values["patroni_postgres_server_version"] >= 150000
    assert time.time() - values["patroni_dcs_last_seen"] < 60


# -- changing the config -------------------------------------------------------------------------------


def test_edit_config_pg_set_apply(stack: Stack) -> None:
    cluster = stack.spec.cluster
    ok(
        stack,
        "edit-config",
        cluster,
        "-p",
        "work_mem=9MB",
        "-s",
        "maximum_lag_on_failover=2097152",
        "--force",
    )
    lead = leader(stack)
    wait_for(lambda: sql(stack, lead, "SHOW work_mem") == "9MB", OPERATION, "work_mem 9MB on the leader")
    ok(
        stack,
        "edit-config",
        "--apply",
        "-",
        "--force",
        input="postgresql:\n  parameters:\n    work_mem: 10MB\n",
    )
    wait_for(lambda: sql(stack, lead, "SHOW work_mem") == "10MB", OPERATION, "work_mem 10MB on the leader")
    shown = yaml.safe_load(ok(stack, "show-config"))
    assert shown["parameters"]["work_mem"] == "10MB" and shown["maximum_lag_on_failover"] == 2097152


# -- operations on members ---------------------------------------------------------------------------------


def test_reload_every_member(stack: Stack) -> None:
    out = ok(stack, "reload", stack.spec.cluster, "--force")
    assert sorted(line.split(":")[0] for line in out.splitlines()) == ["node1", "node2", "node3"]


def test_restart_one_member_by_name(stack: Stack) -> None:
    target = standbys(stack)[0]
    before = sql(stack, target, "SELECT pg_postmaster_start_time()")
    ok(stack, "restart", stack.spec.cluster, target, "--force")
    assert sql(stack, target, "SELECT pg_postmaster_start_time()") > before
    healthy(stack)


def test_restart_scheduled_for_replicas_then_flushed(stack: Stack) -> None:
    cluster = stack.spec.cluster
    when = (datetime.now(UTC) + timedelta(hours=1)).isoformat(timespec="seconds")
    ok(stack, "restart", cluster, "--role", "replica", "--scheduled", when, "--force")
    wanted = set(standbys(stack))
    wait_for(
        lambda: {m.name for m in view(stack).members if m.scheduled_restart is not None} == wanted,
        OPERATION,
        f"restarts scheduled on {sorted(wanted)}",
    )
    ok(stack, "flush", cluster, "restart", "--force")
    wait_for(
        lambda: all(m.scheduled_restart is None for m in view(stack).members),
        OPERATION,
        "no scheduled restart",
    )


def test_pause_and_resume_wait_for_every_agent(stack: Stack) -> None:
    ok(stack, "pause", stack.spec.cluster, "--wait")
    assert all(patroni(stack, f"node{i}").get("pause") is True for i in (1, 2, 3))
    ok(stack, "resume", stack.spec.cluster, "--wait")
    assert all(patroni(stack, f"node{i}").get("pause") is False for i in (1, 2, 3))


def test_switchover_with_leader_and_candidate(stack: Stack) -> None:
    healthy(stack)
    lead, candidate = leader(stack), standbys(stack)[0]
    ok(stack, "switchover", stack.spec.cluster, "--leader", lead, "--candidate", candidate, "--force")
    wait_for(lambda: leader(stack) == candidate, OPERATION, f"{candidate} leading")
    assert sql(stack, candidate, "SELECT pg_is_in_recovery()") is False
    healthy(stack)


def test_scheduled_switchover_then_flushed(stack: Stack) -> None:
    when = (datetime.now(UTC) + timedelta(hours=1)).isoformat(timespec="seconds")
    ok(
        stack,
        "switchover",
        stack.spec.cluster,
        "--candidate",
        standbys(stack)[0],
        "--scheduled",
        when,
        "--force",
    )
    wait_for(lambda: view(stack).switchover is not None, OPERATION, "a scheduled switchover")
    ok(stack, "flush", stack.spec.cluster, "switchover", "--force")
    wait_for(lambda: view(stack).switchover is None, OPERATION, "no scheduled switchover")


def test_failover_to_a_candidate(stack: Stack) -> None:
    healthy(stack)
    candidate = standbys(stack)[-1]
    ok(stack, "failover", stack.spec.cluster, "--candidate", candidate, "--force")
    wait_for(lambda: leader(stack) == candidate, OPERATION, f"{candidate} leading")
    healthy(stack)


def test_reinit_a_replica_and_wait(stack: Stack) -> None:
    target = standbys(stack)[0]
    marker = "SELECT pg_postmaster_start_time()"
    before = sql(stack, target, marker)
    ok(stack, "reinit", stack.spec.cluster, target, "--force", "--wait")
    wait_for(
        lambda: patroni(stack, target).get("replication_state") == "streaming",
        OPERATION,
        f"{target} streaming",
    )
    assert sql(stack, target, marker) > before
    assert sql(stack, target, "SELECT pg_is_in_recovery()") is True


# -- last: remove ------------------------------------------------------------------------------------------


def test_remove_wipes_the_clusters_keys(stack: Stack) -> None:
    lead = leader(stack)
    refused = ctl(stack, "remove", stack.spec.cluster, input=f"{stack.spec.cluster}\nno\n")
    assert refused.returncode == 1 and len(view(stack).members) == 3
    for i in range(stack.spec.nodes):
        stack.kill_agent(i)  # as patronictl's users do: stop the agents, then remove
    ok(stack, "remove", stack.spec.cluster, input=f"{stack.spec.cluster}\nYes I am aware\n{lead}\n")
    endpoints = [parse_address(e) for e in stack.spec.etcd_endpoints()]
    with EtcdStore(endpoints, timeout=2.0) as store:
        left = store.get_prefix(ClusterStore(store, stack.spec.cluster).keys.root).items
    assert left == ()
