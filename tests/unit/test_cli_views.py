"""What list, topology and history show, rendered from ClusterViews built by hand."""

from __future__ import annotations

from dataclasses import replace

from rich.console import Console, RenderableType

from pgwarden.cli import views
from pgwarden.model.cluster import PgState, Role, SwitchoverIntent
from tests.support.builders import (
    config,
    fork,
    member,
    primary_member,
    sync_config,
    sync_set,
    view,
    with_junk,
)


def text(renderable: RenderableType) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_the_members_table_shows_every_column_and_the_header() -> None:
    members = [
        primary_member(lsn="0/5000000"),
        replace(
            member("node2", lsn="0/4F00000", nofailover=True, replicatefrom="node3"), pending_restart=True
        ),
        member("node3", state=PgState.STARTING, lsn=None, timeline=None),
    ]
    v = replace(
        view(members=members, config=sync_config(pause=True), sync=sync_set("node2")),
        switchover=SwitchoverIntent(leader="node1", candidate="node3", scheduled_at=1_700_000_000.0),
    )
    out = text(views.members_table(v))
    assert "Cluster: demo" in out and "leader: node1" in out and "PAUSED" in out
    assert "pending switchover from node1 to node3 at 2023-11-14T22:13:20+00:00" in out
    for column in ("Member", "Host", "Role", "State", "TL", "Lag in MB", "Tags", "Pending restart"):
        assert column in out
    row2 = next(line for line in out.splitlines() if "node2" in line and "127.0.0.1:5434" in line)
    assert "sync replica" in row2 and " 1 " in row2  # 1 MB behind
    assert "nofailover=true, replicatefrom=node3" in row2 and "*" in row2
    row3 = next(line for line in out.splitlines() if "127.0.0.1:5435" in line)
    assert "starting" in row3 and "unknown" in row3


def test_an_empty_cluster_says_where_to_look() -> None:
    assert "wrong cluster name or prefix" in text(views.members_table(view(leader=None, members=[])))


def test_the_json_document_names_leader_pause_and_lag() -> None:
    doc = views.cluster_document(view(config=config(pause=True)))
    assert doc["leader"] == "node1" and doc["pause"] is True and doc["switchover"] is None
    assert [m["role"] for m in doc["members"]] == ["primary", "replica", "replica"]
    assert doc["members"][1] | {"tags": {}} == doc["members"][1]
    assert doc["members"][1]["lag"] == 0 and doc["members"][1]["lsn"] == "0/3000000"


def test_topology_puts_a_replicatefrom_standby_under_its_upstream() -> None:
    v = view(members=[primary_member(), member("node2"), member("node3", replicatefrom="node2")])
    roots = views.topology(v)
    assert [r.member.name for r in roots] == ["node1"]
    assert [s.member.name for s in roots[0].standbys] == ["node2"]
    assert [s.member.name for s in roots[0].standbys[0].standbys] == ["node3"]
    tree = text(views.topology_tree(v))
    assert tree.index("node1") < tree.index("node2") < tree.index("node3")


def test_an_unknown_upstream_or_a_loop_falls_back_to_the_leader() -> None:
    v = view(
        members=[
            primary_member(),
            member("node2", replicatefrom="node3"),
            member("node3", replicatefrom="node2"),
            member("node4", replicatefrom="gone"),
        ]
    )
    parents = views.upstreams(v)
    assert parents["node1"] is None
    assert parents["node4"] == "node1"
    assert sorted([parents["node2"], parents["node3"]]) == ["node1", "node2"]  # the loop is cut once
    doc = views.topology_document(v)
    assert [t["name"] for t in doc["tree"]] == ["node1"]


def test_without_a_leader_every_member_is_a_root() -> None:
    v = view(leader=None, members=[member("node2", role=Role.REPLICA), member("node3")])
    assert [r.member.name for r in views.topology(v)] == ["node2", "node3"]


def test_history_lists_each_promotion() -> None:
    v = view(history=[fork(2, "0/3000060", "node2"), fork(3, "0/5000000", "node1")])
    out = text(views.history_table(v))
    assert "0/3000060" in out and "node2" in out and "failover" in out
    assert views.history_document(v)[1] == {
        "timeline": 3,
        "lsn": "0/5000000",
        "reason": "failover",
        "timestamp": "2024-01-01T00:00:00Z",
        "new_leader": "node1",
        "event": "promotion",
    }
    assert "first timeline" in text(views.history_table(view()))


def test_the_header_shows_failsafe_mode_and_its_topology() -> None:
    on = replace(view(config=config(failsafe_mode=True)), failsafe={"node1": "http://x", "node2": "http://y"})
    assert "failsafe mode: on (2 members)" in views.cluster_header(on)
    assert "failsafe mode: on (no topology yet)" in views.cluster_header(
        view(config=config(failsafe_mode=True))
    )
    assert "failsafe" not in views.cluster_header(view())
    doc = views.cluster_document(on)
    assert doc["failsafe_mode"] is True and doc["failsafe"] == {"node1": "http://x", "node2": "http://y"}


def test_list_names_unreadable_keys_what_the_agents_do_and_crash_looping_members() -> None:
    members = [
        primary_member(),
        replace(member("node2"), loop_error="3 cycles failed in a row: KeyError: 'x'"),
    ]
    v = replace(
        with_junk(view(members=members), leader="not JSON", config="ttl must be a number"),
        unreadable={
            "leader": "not JSON",
            "config": "ttl must be a number",
            "members/node3": "port: not an int",
        },
        config_ignored=("a_newer_setting",),
    )
    out = text(views.members_table(v))
    assert "leader: UNREADABLE KEY" in out and "config UNREADABLE" in out
    assert "etcd key config is unreadable: ttl must be a number -> the agents keep their last valid" in out
    assert "etcd key members/node3 is unreadable: port: not an int -> that member is unknown" in out
    assert "etcd key leader is unreadable: not JSON -> still held" in out
    assert "config keys this version ignores: a_newer_setting" in out
    assert "node2: INTERNAL_ERROR, its HA loop fails: 3 cycles failed in a row: KeyError: 'x'" in out
    doc = views.cluster_document(v)
    assert doc["leader"] is None and doc["unreadable_keys"]["config"] == "ttl must be a number"
    assert doc["members"][1]["loop_error"].startswith("3 cycles")


def test_history_says_how_many_entries_were_folded() -> None:
    v = replace(view(history=[fork(2, "0/3000000")]), history_folded=12)
    assert "12 older entries folded" in text(views.history_table(v))
