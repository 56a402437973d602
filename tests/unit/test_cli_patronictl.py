"""patronictl's syntax against pgwarden's commands, over the in-memory cluster of test_cli_client:
the global -c, the CLUSTER argument, -f formats, multi-member restart/reload/reinit, flush,
edit-config -p/--apply/--replace, dsn, remove, pause --wait, version; and the query credentials rule."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from pgwarden.cli.query import connect_kwargs
from pgwarden.client import ClusterTarget
from pgwarden.model.node import Address, Credentials
from tests.support.builders import member, primary_member
from tests.unit.test_cli_client import FakeCluster, write_stack


@pytest.fixture
def cluster(tmp_path: Path) -> FakeCluster:
    return FakeCluster(stack_dir=write_stack(tmp_path, cluster="demo", etcd=["127.0.0.1:1"]))


def posts(cluster: FakeCluster, method: str, path: str) -> list[str]:
    return [name for name, m, p, _, _ in cluster.requests if m == method and p == path]


# -- finding the cluster ------------------------------------------------------------------------


def test_the_config_file_goes_before_the_command_as_in_patronictl(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pgwarden.cli.main import app

    for args in (
        ["-c", str(tmp_path / "nope.yml"), "list"],
        ["--config-file", str(tmp_path / "nope.yml"), "list"],
    ):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2
        assert "nope.yml does not exist" in result.stderr


def test_the_cluster_argument_must_be_the_cluster_found(cluster: FakeCluster) -> None:
    assert cluster.run("list", "demo").exit_code == 0
    other = cluster.run("list", "other")
    assert other.exit_code == 1
    assert "cluster 'other' is not the one" in other.stderr and "'demo'" in other.stderr
    for command in (["history", "demo"], ["show-config", "demo"], ["topology", "demo"], ["dsn", "demo"]):
        assert cluster.run(*command).exit_code == 0, command
    assert cluster.run("switchover", "other", "--candidate", "node2", "--force").exit_code == 1
    assert posts(cluster, "POST", "/switchover") == []


# -- -f formats -----------------------------------------------------------------------------------


PATRONICTL_COLUMNS = [
    "Cluster", "Member", "Host", "Role", "State", "TL",
    "Receive LSN", "Receive Lag", "Replay LSN", "Replay Lag",
]  # fmt: skip


def test_list_tsv_has_patronictls_header_and_a_row_per_member(cluster: FakeCluster) -> None:
    result = cluster.run("list", "-f", "tsv")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == PATRONICTL_COLUMNS
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[1] for r in rows] == ["node1", "node2", "node3"]
    assert rows[0][:6] == ["demo", "node1", "127.0.0.1:5433", "Leader", "running", "1"]
    assert rows[0][6:] == ["", "", "", ""]  # the leader has no positions and lags nobody
    assert rows[1][3] == "Replica" and rows[1][7] == "0" and rows[1][9] == "0"


def test_list_extended_adds_restart_and_tag_columns(cluster: FakeCluster) -> None:
    header = cluster.run("list", "-e", "-f", "tsv").stdout.splitlines()[0].split("\t")
    assert header[-4:] == ["Pending restart", "Pending restart reason", "Scheduled restart", "Tags"]


def test_list_json_is_patronictls_row_objects_and_yaml_the_same(cluster: FakeCluster) -> None:
    as_json = json.loads(cluster.run("list", "-f", "json").stdout)
    assert yaml.safe_load(cluster.run("list", "-f", "yaml").stdout) == as_json
    assert yaml.safe_load(cluster.run("list", "-f", "yml").stdout) == as_json
    assert [row["Member"] for row in as_json] == ["node1", "node2", "node3"]
    leader, standby = as_json[0], as_json[1]
    # Empty cells are left out, as patronictl does: the leader has no LSN or lag keys.
    assert list(leader) == ["Cluster", "Member", "Host", "Role", "State", "TL"]
    assert leader["Role"] == "Leader" and leader["TL"] == 1
    assert set(PATRONICTL_COLUMNS) <= set(standby)
    assert isinstance(standby["Receive Lag"], int)


def test_list_extended_json_shows_only_tags_that_are_set(tmp_path: Path) -> None:
    members = (primary_member("node1"), member("node2", nofailover=True), member("node3"))
    cluster = FakeCluster(
        stack_dir=write_stack(tmp_path, cluster="demo", etcd=["127.0.0.1:1"]), members=members
    )
    rows = json.loads(cluster.run("list", "-e", "-f", "json").stdout)
    assert [row.get("Tags") for row in rows] == [None, {"nofailover": True}, None]


def test_members_prints_pgwardens_own_document(cluster: FakeCluster) -> None:
    as_json = json.loads(cluster.run("members", "-f", "json").stdout)
    assert [m["name"] for m in as_json["members"]] == ["node1", "node2", "node3"]
    assert "reason" in as_json["members"][0]
    tsv = cluster.run("members", "demo", "-f", "tsv").stdout.splitlines()
    assert tsv[0].split("\t") == ["Cluster", "Member", "Host", "Role", "State", "TL", "LSN", "Lag in MB"]


def test_list_timestamp_comes_first(cluster: FakeCluster) -> None:
    first = cluster.run("list", "-t", "-f", "tsv").stdout.splitlines()[0]
    assert len(first) == 19 and first[4] == "-" and first[13] == ":"


def test_pretty_is_the_table_and_table_still_works(cluster: FakeCluster) -> None:
    pretty = cluster.run("list", "-f", "pretty").stdout
    assert "node2" in pretty and "Lag in MB" in pretty
    assert cluster.run("list", "--format", "table").stdout == pretty


def test_history_tsv_json_yaml(cluster: FakeCluster) -> None:
    tsv = cluster.run("history", "-f", "tsv").stdout.splitlines()
    assert tsv[0].split("\t") == ["TL", "LSN", "Reason", "Timestamp", "New Leader"]
    assert tsv[1].split("\t")[:2] == ["2", "0/3000060"] and tsv[1].split("\t")[-1] == "node1"
    assert yaml.safe_load(cluster.run("history", "-f", "yaml").stdout) == json.loads(
        cluster.run("history", "-f", "json").stdout
    )


def test_f_is_format_not_force(cluster: FakeCluster) -> None:
    result = cluster.run("switchover", "--candidate", "node2", "-f")
    assert result.exit_code == 2  # no such option: never a switchover without asking
    assert posts(cluster, "POST", "/switchover") == []


# -- restart, reload, reinit: CLUSTER [MEMBER...] -------------------------------------------------


def test_restart_named_members(cluster: FakeCluster) -> None:
    result = cluster.run("restart", "demo", "node3", "node2", "--force")
    assert result.exit_code == 0, result.output
    assert posts(cluster, "POST", "/restart") == ["node2", "node3"]


def test_restart_by_role_leaves_the_leader_alone(cluster: FakeCluster) -> None:
    assert cluster.run("restart", "demo", "--role", "replica", "--force").exit_code == 0
    assert posts(cluster, "POST", "/restart") == ["node2", "node3"]


def test_restart_the_leader_by_role(cluster: FakeCluster) -> None:
    assert cluster.run("restart", "demo", "-r", "leader", "--force").exit_code == 0
    assert posts(cluster, "POST", "/restart") == ["node1"]


def test_restart_any_restarts_one(cluster: FakeCluster) -> None:
    assert cluster.run("restart", "demo", "--role", "replica", "--any", "--force").exit_code == 0
    restarted = posts(cluster, "POST", "/restart")
    assert len(restarted) == 1 and restarted[0] in ("node2", "node3")


def test_restart_cluster_with_force_restarts_all_standbys_first(cluster: FakeCluster) -> None:
    assert cluster.run("restart", "demo", "--force").exit_code == 0
    assert posts(cluster, "POST", "/restart") == ["node2", "node3", "node1"]


def test_restart_without_force_asks_which_member_then_confirms(cluster: FakeCluster) -> None:
    result = cluster.run("restart", "demo", input="node3\ny\n")
    assert result.exit_code == 0, result.output
    assert "Which member do you want to restart [node1, node2, node3]" in result.stdout
    assert posts(cluster, "POST", "/restart") == ["node3"]


def test_restart_scheduled_sends_the_time(cluster: FakeCluster) -> None:
    args = ("restart", "demo", "node2", "--scheduled", "2030-01-01T03:00:00+00:00", "--force")
    assert cluster.run(*args).exit_code == 0
    body = next(b for n, m, p, b, _ in cluster.requests if p == "/restart")
    assert body is not None and body["schedule"] == "2030-01-01T03:00:00+00:00"


def test_pgwardens_restart_node_still_works(cluster: FakeCluster) -> None:
    assert cluster.run("restart", "node2", "--force").exit_code == 0
    assert posts(cluster, "POST", "/restart") == ["node2"]


def test_restart_of_something_unknown_names_cluster_and_members(cluster: FakeCluster) -> None:
    result = cluster.run("restart", "demo", "node9", "--force")
    assert result.exit_code == 1
    assert (
        "no member named 'node9' in the cluster (members: node1, node2, node3), and the cluster is 'demo'"
        in result.stderr
    )
    assert posts(cluster, "POST", "/restart") == []


def test_restart_pending_with_nothing_pending_says_so(cluster: FakeCluster) -> None:
    result = cluster.run("restart", "demo", "--pending", "--force")
    assert result.exit_code == 0, result.output
    assert "no member is waiting for a restart" in result.stdout
    assert posts(cluster, "POST", "/restart") == []


def test_one_refusal_does_not_stop_the_others_and_exits_1(cluster: FakeCluster) -> None:
    cluster.answers[("node2", "POST", "/reload")] = (503, {"error": "not now"})
    result = cluster.run("reload", "demo", "--force")
    assert result.exit_code == 1
    assert posts(cluster, "POST", "/reload") == ["node2", "node3", "node1"]
    assert "not now" in result.stderr


def test_reinit_members(cluster: FakeCluster) -> None:
    assert cluster.run("reinit", "demo", "node2", "node3", "--force").exit_code == 0
    assert posts(cluster, "POST", "/reinitialize") == ["node2", "node3"]


def bodies(cluster: FakeCluster, path: str) -> list[dict[str, object]]:
    return [b or {} for _, m, p, b, _ in cluster.requests if (m, p) == ("POST", path)]


def test_reinit_sends_patronictls_force_and_from_leader(cluster: FakeCluster) -> None:
    assert cluster.run("reinit", "demo", "node2", "--force", "--from-leader").exit_code == 0
    [body] = bodies(cluster, "/reinitialize")
    assert (body["force"], body["from_leader"]) == (True, True)


def test_restart_pg_version_and_role_are_sent_for_the_agent_to_check(cluster: FakeCluster) -> None:
    args = ("restart", "demo", "--role", "replica", "--pg-version", "16.2", "--force")
    assert cluster.run(*args).exit_code == 0
    sent = bodies(cluster, "/restart")
    assert [(b["postgres_version"], b["role"]) for b in sent] == [("16.2", "replica")] * 2


def test_restart_pending_scheduled_sends_the_condition_as_patronictl(cluster: FakeCluster) -> None:
    args = ("restart", "demo", "node2", "--pending", "--scheduled", "2030-01-01T03:00:00+00:00", "--force")
    result = cluster.run(*args)
    assert result.exit_code == 0, result.output
    [body] = bodies(cluster, "/restart")
    assert (body["restart_pending"], body["schedule"]) == (True, "2030-01-01T03:00:00+00:00")


@pytest.mark.parametrize("version", ["15", "16.x", "sixteen"])
def test_restart_with_a_malformed_pg_version_is_a_usage_error(cluster: FakeCluster, version: str) -> None:
    result = cluster.run("restart", "demo", "--pg-version", version, "--force")
    assert result.exit_code == 2
    assert "--pg-version must be X.Y" in result.stderr
    assert posts(cluster, "POST", "/restart") == []


# -- flush ------------------------------------------------------------------------------------------


def test_flush_restart_discards_only_scheduled_ones(tmp_path: Path) -> None:
    members = (
        primary_member("node1"),
        replace(member("node2"), scheduled_restart=1893456000.0),
        member("node3"),
    )
    cluster = FakeCluster(
        members=members, stack_dir=write_stack(tmp_path, cluster="demo", etcd=["127.0.0.1:1"])
    )
    result = cluster.run("flush", "demo", "restart", "--force")
    assert result.exit_code == 0, result.output
    assert posts(cluster, "DELETE", "/restart") == ["node2"]
    assert "node3: no scheduled restart" in result.stdout


def test_flush_switchover_without_one_says_so(cluster: FakeCluster) -> None:
    result = cluster.run("flush", "demo", "switchover", "--force")
    assert result.exit_code == 0 and "no scheduled switchover" in result.stdout
    assert posts(cluster, "DELETE", "/switchover") == []


def test_flush_needs_restart_or_switchover_last(cluster: FakeCluster) -> None:
    assert cluster.run("flush", "demo", "node2").exit_code == 2


# -- edit-config ------------------------------------------------------------------------------------


def stored_parameters(cluster: FakeCluster) -> dict[str, object]:
    stored = cluster.cluster.read_config()[0]
    assert stored is not None
    return dict(stored.parameters)


def test_edit_config_pg_sets_a_parameter(cluster: FakeCluster) -> None:
    result = cluster.run("edit-config", "demo", "-p", "work_mem=8MB", "-s", "loop_wait=5", "--force")
    assert result.exit_code == 0, result.output
    assert stored_parameters(cluster) == {"work_mem": "8MB"}
    assert cluster.cluster.read_config()[0].loop_wait == 5  # type: ignore[union-attr]


def test_edit_config_apply_merges_patronis_shape(cluster: FakeCluster, tmp_path: Path) -> None:
    cluster.run("edit-config", "-p", "work_mem=8MB", "--force")
    patch = tmp_path / "patch.yml"
    patch.write_text("loop_wait: 4\npostgresql:\n  parameters:\n    max_wal_senders: 12\n")
    result = cluster.run("edit-config", "--apply", str(patch), "--force", "-q")
    assert result.exit_code == 0, result.output
    assert "@@" not in result.stdout  # -q: no diff
    assert stored_parameters(cluster) == {"work_mem": "8MB", "max_wal_senders": 12}
    assert cluster.cluster.read_config()[0].loop_wait == 4  # type: ignore[union-attr]


def test_edit_config_apply_from_stdin(cluster: FakeCluster) -> None:
    result = cluster.run("edit-config", "--apply", "-", "--force", input="ttl: 40\n")
    assert result.exit_code == 0, result.output
    assert cluster.cluster.read_config()[0].ttl == 40  # type: ignore[union-attr]


def test_edit_config_replace_drops_what_the_file_leaves_out(cluster: FakeCluster, tmp_path: Path) -> None:
    cluster.run("edit-config", "-p", "work_mem=8MB", "--force")
    whole = tmp_path / "whole.yml"
    whole.write_text(
        "ttl: 30\nloop_wait: 10\nretry_timeout: 10\npostgresql:\n  parameters:\n    max_connections: 80\n"
    )
    result = cluster.run("edit-config", "--replace", str(whole), "--force")
    assert result.exit_code == 0, result.output
    assert stored_parameters(cluster) == {"max_connections": 80}


def test_edit_config_apply_and_replace_together_is_a_usage_error(cluster: FakeCluster) -> None:
    assert cluster.run("edit-config", "--apply", "-", "--replace", "-", "--force").exit_code == 2


# -- switchover, failover, pause -----------------------------------------------------------------------


def test_switchover_primary_is_leader(cluster: FakeCluster) -> None:
    result = cluster.run("switchover", "demo", "--primary", "node1", "--candidate", "node2", "--force")
    assert result.exit_code == 0, result.output
    body = cluster.requests[-1][3]
    assert body is not None and body["leader"] == "node1" and body["candidate"] == "node2"


def test_failover_asks_for_the_candidate_when_left_out(cluster: FakeCluster) -> None:
    result = cluster.run("failover", "demo", input="node3\ny\n")
    assert result.exit_code == 0, result.output
    assert cluster.requests[-1][2] == "/failover" and cluster.requests[-1][3]["candidate"] == "node3"  # type: ignore[index]
    assert cluster.run("failover", "demo", "--force").exit_code == 1  # --force asks nothing


def test_pause_wait_asks_every_member_until_each_says_paused(cluster: FakeCluster) -> None:
    for name in ("node1", "node2", "node3"):
        cluster.answers[(name, "GET", "/patroni")] = (200, {"pause": True})
    result = cluster.run("pause", "demo", "--wait")
    assert result.exit_code == 0, result.output
    assert sorted(posts(cluster, "GET", "/patroni")) == ["node1", "node2", "node3"]
    assert "every member's agent is paused" in result.stdout


# -- dsn, version, remove -------------------------------------------------------------------------------


def test_dsn_of_leader_role_and_member(cluster: FakeCluster) -> None:
    assert cluster.run("dsn").stdout.strip() == "host=127.0.0.1 port=5433"
    assert cluster.run("dsn", "-r", "replica").stdout.strip() == "host=127.0.0.1 port=5434"
    assert cluster.run("dsn", "demo", "-m", "node3").stdout.strip() == "host=127.0.0.1 port=5435"
    assert cluster.run("dsn", "-m", "node9").exit_code == 1


def test_version_alone_and_with_members(cluster: FakeCluster) -> None:
    from pgwarden import __version__

    assert cluster.run("version").stdout.strip() == f"pgwarden {__version__}"
    lines = cluster.run("version", "demo", "node2").stdout.splitlines()
    assert lines[0] == f"pgwarden {__version__}" and lines[1].startswith("node2: pgwarden")


def test_remove_wipes_the_keys_after_three_typed_answers(cluster: FakeCluster) -> None:
    result = cluster.run("remove", "demo", input="demo\nYes I am aware\nnode1\n")
    assert result.exit_code == 0, result.output
    assert cluster.store.get_prefix("/service/demo/").items == ()
    assert "removed" in result.stdout


@pytest.mark.parametrize(
    "answers", ["other\n", "demo\nyes\n", "demo\nYes I am aware\nnode2\n"], ids=["name", "aware", "leader"]
)
def test_remove_with_a_wrong_answer_removes_nothing(cluster: FakeCluster, answers: str) -> None:
    before = cluster.store.get_prefix("/service/demo/").items
    result = cluster.run("remove", "demo", input=answers)
    assert result.exit_code == 1 and "nothing removed" in result.stderr
    assert cluster.store.get_prefix("/service/demo/").items == before


# -- query credentials ------------------------------------------------------------------------------------


def test_query_uses_the_configs_superuser_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    target = ClusterTarget("demo", (Address("127.0.0.1", 1),), superuser=Credentials("postgres", "s3cret"))
    node = member("node2")
    plain = connect_kwargs(target, node, None, None, None)
    assert (plain["user"], plain["password"], plain["dbname"]) == ("postgres", "s3cret", "postgres")
    assert (plain["host"], plain["port"]) == ("127.0.0.1", 5434)
    other = connect_kwargs(target, node, "app", None, "appdb")
    assert other["user"] == "app" and "password" not in other and other["dbname"] == "appdb"
    asked = connect_kwargs(target, node, None, "typed", None)
    assert asked["password"] == "typed"
    monkeypatch.setenv("PGPASSWORD", "from-env")
    assert "password" not in connect_kwargs(target, node, None, None, None)  # libpq's own wins


def test_query_c_is_the_sql_and_the_member_is_checked_first(cluster: FakeCluster) -> None:
    result = cluster.run("query", "demo", "-c", "SELECT 1", "-m", "node9")
    assert result.exit_code == 1, result.output
    assert "no member named 'node9'" in result.stderr
    assert cluster.run("query", "demo", "-m", "node2").exit_code == 2  # no SQL
