"""The cluster commands against one real cluster (etcd x3, three agents, HAProxy), run in-process.

Every command finds the cluster through node1's config file (``-c``), as an operator on that
node would.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from pgwarden.cli.main import app
from pgwarden.config.fields import parse_address
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.etcd import EtcdStore
from pgwarden.local.stack import Stack
from tests.support.cluster import running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as stack:
        yield stack


def run(stack: Stack, *args: str, config: Path | None = None) -> Result:
    path = config or stack.spec.config_path(0)
    return CliRunner().invoke(app, [*args, "-c", str(path)], env={"COLUMNS": "200"})


def stored_config(stack: Stack) -> dict[str, object]:
    endpoints = [parse_address(e) for e in stack.spec.etcd_endpoints()]
    with EtcdStore(endpoints, timeout=2.0) as store:
        cfg, _ = ClusterStore(store, stack.spec.cluster).read_config()
    assert cfg is not None
    return {"parameters": dict(cfg.parameters), "pause": cfg.pause}


def test_list_shows_three_members_and_one_primary(stack: Stack) -> None:
    result = run(stack, "members", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["cluster"] == stack.spec.cluster
    assert sorted(m["name"] for m in doc["members"]) == ["node1", "node2", "node3"]
    primaries = [m["name"] for m in doc["members"] if m["role"] == "primary"]
    assert primaries == [doc["leader"]]
    table = run(stack, "list")
    assert table.exit_code == 0 and all(f"node{i}" in table.stdout for i in (1, 2, 3))


def test_topology_puts_the_leader_first(stack: Stack) -> None:
    result = run(stack, "topology", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    [root] = doc["tree"]
    assert root["name"] == doc["leader"]
    assert len(root["standbys"]) == 2
    assert run(stack, "topology").exit_code == 0


def test_history_and_show_config(stack: Stack) -> None:
    history = run(stack, "history", "--format", "json")
    assert history.exit_code == 0, history.output
    assert isinstance(json.loads(history.stdout), list)
    shown = run(stack, "show-config")
    assert shown.exit_code == 0, shown.output
    assert "ttl" in yaml.safe_load(shown.stdout)


def test_edit_config_writes_to_etcd_and_refuses_a_bad_value(stack: Stack) -> None:
    result = run(stack, "edit-config", "--set", "postgresql.parameters.work_mem=8MB", "--force")
    assert result.exit_code == 0, result.output
    assert "+  work_mem: 8MB" in result.stdout
    assert stored_config(stack)["parameters"] == {"work_mem": "8MB"}

    bad = run(stack, "edit-config", "--set", "maximum_lag_on_failover=lots", "--force")
    assert bad.exit_code == 1
    assert "maximum_lag_on_failover" in bad.stderr

    again = run(stack, "edit-config", "--set", "parameters.work_mem=8MB", "--force")
    assert again.exit_code == 0 and "no change" in again.stdout


def test_pause_and_resume_through_the_api(stack: Stack) -> None:
    paused = run(stack, "pause")
    assert paused.exit_code == 0, paused.output
    assert "through node" in paused.stdout  # the API carried it (the CLI never writes etcd)
    assert stored_config(stack)["pause"] is True
    resumed = run(stack, "resume")
    assert resumed.exit_code == 0, resumed.output
    assert stored_config(stack)["pause"] is False


def test_an_unknown_member_is_named_with_the_known_ones(stack: Stack) -> None:
    result = run(stack, "restart", "node9", "--force")
    assert result.exit_code == 1
    assert "no member named 'node9'" in result.stderr
    assert "members: node1, node2, node3" in result.stderr


def test_unreachable_etcd_is_named(stack: Stack, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    doc = yaml.safe_load(stack.spec.config_path(0).read_text())
    doc["etcd"] = {"hosts": [f"127.0.0.1:{port}"]}
    config = tmp_path / "lost.yml"
    config.write_text(yaml.safe_dump(doc))
    result = run(stack, "list", config=config)
    assert result.exit_code == 1
    assert f"etcd unreachable at 127.0.0.1:{port}" in result.stderr


def test_haproxy_config_routes_to_every_member(stack: Stack) -> None:
    result = run(stack, "haproxy-config")
    assert result.exit_code == 0, result.output
    for i in range(3):
        host = stack.spec.node_host(i)
        assert f"server node{i + 1} {host}:{stack.spec.pg_port}" in result.stdout
