"""Reading a local stack's state: the health verdict over member statuses, and HAProxy's stats CSV."""

from __future__ import annotations

from typing import Any

from pgwarden.local.state import StackState, servers_up, verdict

PRIMARY = {"role": "primary", "state": "running"}
STREAMING = {"role": "replica", "state": "running", "replication_state": "streaming"}
CSV = """# pxname,svname,qcur,status,check_status
stats,FRONTEND,,OPEN,
primary,FRONTEND,,OPEN,
primary,node1,0,UP,L7OK
primary,node2,0,DOWN,L7STS
primary,node3,0,UP 1/2,L7OK
primary,BACKEND,0,UP,
replicas,node2,0,UP,L7OK
"""


def state(members: dict[str, Any], routes: tuple[str, ...] | None) -> StackState:
    ok, summary = verdict(members, len(members))
    return StackState((), 3, members, routes, ok, summary)


def test_one_running_primary_and_every_other_node_streaming_is_healthy() -> None:
    assert verdict({"node1": PRIMARY, "node2": STREAMING, "node3": STREAMING}, 3)[0]


def test_a_silent_or_not_yet_streaming_node_is_not_healthy_and_the_summary_says_who_is_what() -> None:
    ok, summary = verdict({"node1": PRIMARY, "node2": None, "node3": {"role": "replica"}}, 3)
    assert not ok
    assert summary == "primary: ['node1']; streaming: none"


def test_two_primaries_are_not_healthy() -> None:
    assert not verdict({"node1": PRIMARY, "node2": PRIMARY}, 2)[0]


def test_servers_up_reads_one_listener_and_counts_a_server_going_down_as_still_up() -> None:
    assert servers_up(CSV, "primary") == ("node1", "node3")
    assert servers_up(CSV, "replicas") == ("node2",)
    assert servers_up("", "primary") == ()


def test_routed_only_when_haproxy_sends_writes_to_the_primary_alone() -> None:
    members = {"node1": PRIMARY, "node2": STREAMING}
    assert state(members, ("node1",)).routed
    assert not state(members, ("node1", "node2")).routed
    assert not state(members, None).routed
    assert state(members, ("node1",)).primary == "node1"
