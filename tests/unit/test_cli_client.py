"""ClusterClient and the cluster commands over an in-memory etcd and a fake HTTP transport.

The commands run through typer's CliRunner; ``obj=`` hands them a client factory (the seam in
``cli/connect.py``), so nothing here opens a socket.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from pgwarden.agent.requests import RequestBox
from pgwarden.api.operations import AgentOperations
from pgwarden.api.routes import Request, RestApi
from pgwarden.cli.main import app
from pgwarden.client import (
    ApiRefused,
    ApiUnreachable,
    ClientError,
    ClusterClient,
    ClusterNotFound,
    ClusterTarget,
    ConfigChanged,
    ConfigRead,
    EtcdUnreachable,
    NoLeader,
    UnknownMember,
    find_target,
    target_from_stack,
)
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.memory import MemoryStore
from pgwarden.model.cluster import DynamicConfig, Member
from pgwarden.model.node import Address, Credentials
from tests.support import api_fakes as fake
from tests.support.builders import default_members, fork, member
from tests.support.store_contract import VirtualClock
from tests.unit.test_api_config import LiveSnapshots, postgres_verdict

Answer = tuple[int, dict[str, Any]]


@dataclass
class FakeCluster:
    """Three members in a MemoryStore, their APIs answered by ``answers`` (or refused if ``down``);
    ``/config`` by the real REST API and operations over the same store, unless ``answers`` says."""

    store: MemoryStore = field(default_factory=lambda: MemoryStore(VirtualClock()))
    answers: dict[tuple[str, str, str], Answer] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    requests: list[tuple[str, str, str, dict[str, Any] | None, str | None]] = field(default_factory=list)
    members: tuple[Member, ...] = field(default_factory=default_members)
    auth: Credentials | None = None
    stack_dir: Path = Path("/nonexistent")

    def __post_init__(self) -> None:
        self.cluster = ClusterStore(self.store, "demo")
        lease = self.store.grant_lease(30)
        for m in self.members:
            self.cluster.publish_member(m, lease)
        self.cluster.acquire_leader("node1", lease)
        self.cluster.write_config(DynamicConfig(ttl=30, loop_wait=10, retry_timeout=10), 0)
        self.cluster.append_history(fork(2, "0/3000060", "node1"))
        self.snapshots = LiveSnapshots(fake.primary(), self.cluster)
        operations = AgentOperations(
            self.cluster, self.snapshots, RequestBox(), check_parameters=postgres_verdict
        )
        self.config_api = RestApi(fake.api_settings(), self.snapshots, operations)

    def target(self) -> ClusterTarget:
        return ClusterTarget("demo", (Address("127.0.0.1", 1),), api_auth=self.auth)

    def client(self, target: ClusterTarget | None = None) -> ClusterClient:
        return ClusterClient(
            target or self.target(), store=self.store, transport=httpx.MockTransport(self._handle)
        )

    def _handle(self, request: httpx.Request) -> httpx.Response:
        name = next(m.name for m in self.members if m.api_url.endswith(f":{request.url.port}"))
        body = json.loads(request.content) if request.content else None
        self.requests.append(
            (name, request.method, request.url.path, body, request.headers.get("authorization"))
        )
        if name in self.down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if (
            request.method not in ("GET", "HEAD")
            and request.headers.get("content-type") != "application/json"
        ):
            return httpx.Response(415, json={"error": "the real API refuses writes that are not JSON"})
        canned = self.answers.get((name, request.method, request.url.path))
        if canned is None and request.url.path == "/config":
            headers = request.headers
            call = Request(
                request.method,
                "/config",
                request.content,
                None,
                headers.get("content-type"),
                headers.get("if-match"),
            )
            answer = self.config_api.answer(call)
            return httpx.Response(answer.status, content=answer.body, headers=list(answer.headers))
        status, doc = canned or (200, {"message": "done"})
        return httpx.Response(status, json=doc)

    def run(self, *args: str, input: str | None = None) -> Result:
        return invoke([*args, "--dir", str(self.stack_dir)], lambda target: self.client(target), input)


def invoke(
    args: list[str], factory: Callable[[ClusterTarget], ClusterClient], input: str | None = None
) -> Result:
    return CliRunner().invoke(app, args, obj=factory, input=input)


@pytest.fixture
def cluster(tmp_path: Path) -> FakeCluster:
    return FakeCluster(stack_dir=write_stack(tmp_path, cluster="demo", etcd=["127.0.0.1:1"]))


# -- finding the cluster ------------------------------------------------------------------------


def write_stack(tmp_path: Path, **extra: Any) -> Path:
    doc = {
        "cluster": "local",
        "nodes": [
            {"name": "node1", "host": "127.0.0.11", "port": 5432, "api_url": "http://127.0.0.11:8008"},
        ],
        "etcd": ["127.0.0.21:2379", "127.0.0.22:2379"],
        "haproxy": {
            "primary": "127.0.0.1:5000",
            "replicas": "127.0.0.1:5001",
            "stats": "http://127.0.0.1:7000/",
        },
        **extra,
    }
    (tmp_path / "stack.json").write_text(json.dumps(doc))
    return tmp_path


def test_a_stack_json_names_etcd_nodes_router_and_api_auth(tmp_path: Path) -> None:
    target = target_from_stack(write_stack(tmp_path, api_auth={"username": "pgwarden", "password": "s"}))
    assert target.cluster == "local"
    assert target.etcd_hosts == (Address("127.0.0.21", 2379), Address("127.0.0.22", 2379))
    assert target.api_auth == Credentials("pgwarden", "s")
    assert [n.name for n in target.nodes] == ["node1"]
    assert target.router is not None and target.router.stats == 7000


def test_without_a_config_or_a_stack_the_error_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(ClusterNotFound, match=r"pass -c node\.yml"):
        find_target(None, tmp_path)


def test_a_command_without_a_cluster_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["list", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "no local stack" in result.stderr


def test_a_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["list", "-c", str(tmp_path / "nope.yml")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


# -- the client ---------------------------------------------------------------------------------


def test_an_unknown_member_error_lists_the_known_ones(cluster: FakeCluster) -> None:
    with cluster.client() as client, pytest.raises(UnknownMember) as caught:
        client.member("node9")
    assert str(caught.value) == "no member named 'node9' in the cluster (members: node1, node2, node3)"


def test_etcd_unreachable_names_the_endpoints(cluster: FakeCluster) -> None:
    cluster.store.available = False
    with (
        cluster.client() as client,
        pytest.raises(EtcdUnreachable, match=r"etcd unreachable at 127\.0\.0\.1:1"),
    ):
        client.view()


def test_a_refusal_carries_the_status_and_the_api_sentence(cluster: FakeCluster) -> None:
    cluster.answers[("node1", "POST", "/switchover")] = (412, {"error": "node3 is 20 MB behind"})
    with cluster.client() as client, pytest.raises(ApiRefused) as caught:
        client.call(client.leader(), "POST", "/switchover", {})
    assert caught.value.status == 412
    assert str(caught.value) == "node1 refused POST /switchover (HTTP 412): node3 is 20 MB behind"


@pytest.mark.parametrize(
    ("status", "doc", "reason"),
    [
        (401, {}, "requires a username and password"),
        (503, {"role": "primary", "state": "running"}, "does not offer POST /failover"),
        (501, {}, "does not offer POST /failover"),
        (500, {}, "gave no reason"),
    ],
)
def test_a_refusal_without_a_sentence_is_explained(
    cluster: FakeCluster, status: int, doc: dict[str, Any], reason: str
) -> None:
    cluster.answers[("node1", "POST", "/failover")] = (status, doc)
    with cluster.client() as client, pytest.raises(ApiRefused, match=reason):
        client.call(client.leader(), "POST", "/failover", {})


def test_an_unreachable_api_is_named(cluster: FakeCluster) -> None:
    cluster.down.add("node2")
    with (
        cluster.client() as client,
        pytest.raises(ApiUnreachable, match="cannot reach node2's REST API at http"),
    ):
        client.call(client.member("node2"), "POST", "/reload")


def test_call_first_moves_on_from_an_unreachable_api(cluster: FakeCluster) -> None:
    cluster.down.add("node1")
    with cluster.client() as client:
        view = client.view()
        answer = client.call_first(client.members_leader_first(view), "PATCH", "/config", {"pause": True})
    assert answer.member == "node2"
    assert [r[0] for r in cluster.requests] == ["node1", "node2"]


def test_basic_auth_is_sent_when_known() -> None:
    cluster = FakeCluster(auth=Credentials("pgwarden", "secret"))
    with cluster.client() as client:
        client.call(client.leader(), "POST", "/reload", {})
    assert cluster.requests[0][4] == httpx.BasicAuth("pgwarden", "secret")._auth_header


def test_no_leader_is_an_error_for_leader_operations() -> None:
    cluster = FakeCluster()
    cluster.cluster.release_leader("node1")
    with cluster.client() as client, pytest.raises(NoLeader):
        client.leader()


def test_a_config_write_loses_against_a_concurrent_edit(cluster: FakeCluster) -> None:
    with cluster.client() as client:
        read = client.read_config()
        assert read.config is not None and read.member.name == "node1"
        cluster.cluster.write_config(DynamicConfig(ttl=40, loop_wait=10, retry_timeout=10), None)
        with pytest.raises(ConfigChanged, match="someone changed it since you read it"):
            client.write_config(DynamicConfig(ttl=50, loop_wait=10, retry_timeout=10), read)
    assert cluster.cluster.read_config()[0] == DynamicConfig(ttl=40, loop_wait=10, retry_timeout=10)
    assert [r[1:3] for r in cluster.requests] == [("GET", "/config"), ("PUT", "/config")]


def test_pause_goes_through_the_leader_api(cluster: FakeCluster) -> None:
    with cluster.client() as client:
        message = client.set_pause(True)
    assert "through node1's REST API" in message
    assert cluster.requests == [("node1", "PATCH", "/config", {"pause": True}, None)]


def test_pause_never_writes_etcd_directly(cluster: FakeCluster) -> None:
    """Issue 13: changes go through the authenticated API only; with no agent answering there is no
    automatic failover to pause, and the command says which APIs it tried."""
    cluster.down.update({"node1", "node2", "node3"})
    before = cluster.cluster.read_config()
    with cluster.client() as client, pytest.raises(ApiUnreachable, match="no member's REST API answered"):
        client.set_pause(True)
    assert cluster.cluster.read_config() == before
    cluster.down.clear()
    with cluster.client() as client:
        assert "through node1's REST API" in client.set_pause(True)
        assert "already paused" in client.set_pause(True)
    stored = cluster.cluster.read_config()[0]
    assert stored is not None and stored.pause and stored.ttl == 30


def test_every_client_error_is_one_sentence_class() -> None:
    for kind in (ApiRefused, ApiUnreachable, ClusterNotFound, ConfigChanged, EtcdUnreachable, NoLeader):
        assert issubclass(kind, ClientError)


# -- the commands -------------------------------------------------------------------------------


def test_list_json_has_three_members_and_one_primary(cluster: FakeCluster) -> None:
    result = cluster.run("members", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert len(doc["members"]) == 3
    assert [m["name"] for m in doc["members"] if m["role"] == "primary"] == ["node1"]


@pytest.mark.parametrize("command", ["list", "topology", "history"])
def test_read_commands_render_tables(cluster: FakeCluster, command: str) -> None:
    result = cluster.run(command)
    assert result.exit_code == 0, result.output
    assert "node1" in result.stdout


def test_show_config_prints_yaml_and_json(cluster: FakeCluster) -> None:
    assert "ttl: 30.0\n" in cluster.run("show-config").stdout
    assert json.loads(cluster.run("show-config", "--format", "json").stdout)["loop_wait"] == 10


def test_edit_config_shows_the_diff_asks_and_writes(cluster: FakeCluster) -> None:
    result = cluster.run("edit-config", "--set", "postgresql.parameters.work_mem=8MB", input="y\n")
    assert result.exit_code == 0, result.output
    assert "+  work_mem: 8MB" in result.stdout
    assert "Apply these changes?" in result.stdout
    stored = cluster.cluster.read_config()[0]
    assert stored is not None and stored.parameters == {"work_mem": "8MB"}


def test_edit_config_declined_writes_nothing(cluster: FakeCluster) -> None:
    result = cluster.run("edit-config", "--set", "ttl=60", input="n\n")
    assert result.exit_code == 1
    assert "nothing done" in result.stderr
    assert cluster.cluster.read_config()[0].ttl == 30  # type: ignore[union-attr]


def test_edit_config_without_a_change_says_so(cluster: FakeCluster) -> None:
    result = cluster.run("edit-config", "--set", "ttl=30", "--force")
    assert result.exit_code == 0
    assert "no change" in result.stdout


def test_edit_config_refuses_a_bad_value_naming_the_field(cluster: FakeCluster) -> None:
    result = cluster.run("edit-config", "--set", "synchronous_node_count=0", "--force")
    assert result.exit_code == 1
    assert "synchronous_node_count" in result.stderr and "nothing written" in result.stderr


def test_edit_config_with_a_malformed_set_is_a_usage_error(cluster: FakeCluster) -> None:
    result = cluster.run("edit-config", "--set", "ttl")
    assert result.exit_code == 2


def test_edit_config_repairs_a_junk_config_starting_from_the_config_in_force(cluster: FakeCluster) -> None:
    in_force = DynamicConfig(
        ttl=30, loop_wait=10, retry_timeout=10, pause=True, parameters={"work_mem": "8MB"}
    )
    assert cluster.cluster.write_config(in_force, None)
    cluster.snapshots.get()  # the agent's cycle reads it: its last valid config from now on
    cluster.store.put(cluster.cluster.keys.config, "[" * 100_000)
    shown = cluster.run("show-config", "--format", "json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["pause"] is True
    assert "unreadable" in shown.stderr and "config the agents keep in force" in shown.stderr
    result = cluster.run("edit-config", "--set", "ttl=40", "--force")
    assert result.exit_code == 0, result.output
    assert "unreadable" in result.stderr and "writing replaces it" in result.stderr
    stored, _ = cluster.cluster.read_config()
    assert stored == replace(in_force, ttl=40)  # the junk replaced, nothing reset to defaults


def test_edit_config_setting_the_value_in_force_still_repairs_a_junk_config(cluster: FakeCluster) -> None:
    in_force = DynamicConfig(ttl=30, loop_wait=10, retry_timeout=10, parameters={"work_mem": "8MB"})
    assert cluster.cluster.write_config(in_force, None)
    cluster.snapshots.get()
    cluster.store.put(cluster.cluster.keys.config, "{")
    result = cluster.run("edit-config", "--set", "parameters.work_mem=8MB", "--force")
    assert result.exit_code == 0, result.output
    assert "no change" not in result.stdout
    assert cluster.cluster.read_config()[0] == in_force  # written: the write is the repair


def test_pause_never_writes_a_config_of_defaults_over_a_junk_one(cluster: FakeCluster) -> None:
    cluster.store.put(cluster.cluster.keys.config, "{")
    result = cluster.run("pause")
    assert result.exit_code == 1
    assert cluster.store.get_prefix(cluster.cluster.keys.config).items[0].value == "{"


def test_edit_config_losing_a_race_tells_to_retry(cluster: FakeCluster) -> None:
    def edit_meanwhile(target: ClusterTarget) -> ClusterClient:
        client = cluster.client(target)
        read = client.read_config

        def config_then_concurrent_edit() -> ConfigRead:
            found = read()
            cluster.cluster.write_config(DynamicConfig(ttl=40, loop_wait=10, retry_timeout=10), None)
            return found

        client.read_config = config_then_concurrent_edit  # type: ignore[method-assign]
        return client

    result = invoke(
        ["edit-config", "--set", "ttl=50", "--force", "--dir", str(cluster.stack_dir)], edit_meanwhile
    )
    assert result.exit_code == 1
    assert "someone changed it since you read it" in result.stderr and "retry" in result.stderr
    assert cluster.cluster.read_config()[0].ttl == 40  # type: ignore[union-attr]


def test_edit_config_goes_through_the_api_with_if_match_and_prints_the_check(cluster: FakeCluster) -> None:
    revision = cluster.cluster.read_config()[1]
    result = cluster.run("edit-config", "--set", "parameters.shared_buffers=256MB", "--force")
    assert result.exit_code == 0, result.output
    assert "parameter check: accepted by PostgreSQL on node1: shared_buffers" in result.stdout
    assert "through node1's REST API" in result.stdout
    assert [r[1:3] for r in cluster.requests] == [("GET", "/config"), ("PUT", "/config")]
    put_body = cluster.requests[-1][3]
    assert put_body is not None and put_body["parameters"] == {"shared_buffers": "256MB"}
    assert cluster.cluster.read_config()[1] > revision


@pytest.mark.parametrize(
    ("assignment", "key", "words"),
    [
        ("parameters.work_mem=lots", "parameters.work_mem", 'invalid value for parameter "work_mem"'),
        ("parameters.max_connections=-5", "parameters.max_connections", "outside the valid range"),
        ("parameters.no_such_setting=1", "parameters.no_such_setting", "unrecognized configuration"),
    ],
)
def test_edit_config_with_a_value_postgresql_refuses_writes_nothing(
    cluster: FakeCluster, assignment: str, key: str, words: str
) -> None:
    before = cluster.cluster.read_config()
    result = cluster.run("edit-config", "--set", assignment, "--force")
    assert result.exit_code == 1
    assert "refused by node1, nothing written" in result.stderr
    assert key in result.stderr and words in result.stderr
    assert cluster.cluster.read_config() == before


@pytest.mark.parametrize(
    ("assignment", "key"),
    [
        ("parameters.include=/etc/passwd", "parameters.include"),
        ("parameters.port=5433", "parameters.port"),
        ("parameters.primary_conninfo=host=x", "parameters.primary_conninfo"),
        ("loop_wait=1e-6", "loop_wait"),
        ("ttl=1e12", "ttl"),
    ],
)
def test_edit_config_refuses_what_would_break_postgresql_before_asking(
    cluster: FakeCluster, assignment: str, key: str
) -> None:
    result = cluster.run("edit-config", "--set", assignment, "--force")
    assert result.exit_code == 1
    assert f"edit-config: {key}: " in result.stderr and "nothing written" in result.stderr
    assert [r[1:3] for r in cluster.requests] == [("GET", "/config")]


def test_switchover_posts_to_the_leader_and_prints_its_message(cluster: FakeCluster) -> None:
    cluster.answers[("node1", "POST", "/switchover")] = (200, {"message": "switched over to node2"})
    result = cluster.run("switchover", "--candidate", "node2", "--force", "--timeout", "5")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "switched over to node2"
    _, _, _, body, _ = cluster.requests[-1]
    assert body == {"leader": "node1", "candidate": "node2", "scheduled_at": None, "timeout": 5.0}


def test_switchover_without_force_asks_and_lets_the_leader_pick(cluster: FakeCluster) -> None:
    result = cluster.run("switchover", "--scheduled", "2030-01-01T03:00:00+00:00", input="y\n")
    assert result.exit_code == 0, result.output
    assert "a healthy standby the leader picks at 2030-01-01T03:00:00+00:00" in result.stdout
    assert cluster.requests[-1][3]["scheduled_at"] == "2030-01-01T03:00:00+00:00"  # type: ignore[index]


def test_a_refused_switchover_exits_1_with_the_reason(cluster: FakeCluster) -> None:
    cluster.answers[("node1", "POST", "/switchover")] = (412, {"error": "node2 is 20 MB behind"})
    result = cluster.run("switchover", "--candidate", "node2", "--force")
    assert result.exit_code == 1
    assert "HTTP 412" in result.stderr and "node2 is 20 MB behind" in result.stderr


def test_switchover_cancel_deletes_the_intent_on_the_leader(cluster: FakeCluster) -> None:
    cluster.answers[("node1", "DELETE", "/switchover")] = (404, {"error": "no switchover is scheduled"})
    result = cluster.run("switchover", "--cancel", "--force")
    assert result.exit_code == 1
    assert "no switchover is scheduled" in result.stderr
    assert [(r[0], r[1], r[2]) for r in cluster.requests] == [("node1", "DELETE", "/switchover")]


def test_a_bad_scheduled_time_is_a_usage_error(cluster: FakeCluster) -> None:
    assert cluster.run("switchover", "--scheduled", "tomorrow", "--force").exit_code == 2


def test_an_unknown_candidate_is_refused_before_asking_the_api(cluster: FakeCluster) -> None:
    result = cluster.run("failover", "--candidate", "node9", "--force")
    assert result.exit_code == 1
    assert "members: node1, node2, node3" in result.stderr
    assert cluster.requests == []


def test_failover_asks_the_leader_first_then_the_candidate(cluster: FakeCluster) -> None:
    cluster.down.add("node1")
    result = cluster.run("failover", "--candidate", "node3", "--force")
    assert result.exit_code == 0, result.output
    assert [(r[0], r[2]) for r in cluster.requests] == [("node1", "/failover"), ("node3", "/failover")]


@pytest.mark.parametrize(
    ("args", "path"),
    [
        (["restart", "node2", "--force"], "/restart"),
        (["reload", "node2"], "/reload"),
        (["reinit", "node2", "--force"], "/reinitialize"),
    ],
)
def test_node_operations_post_to_that_member(cluster: FakeCluster, args: list[str], path: str) -> None:
    result = cluster.run(*args)
    assert result.exit_code == 0, result.output
    assert [(r[0], r[1], r[2]) for r in cluster.requests] == [("node2", "POST", path)]


def test_pause_and_resume_commands(cluster: FakeCluster) -> None:
    assert "paused" in cluster.run("pause").stdout
    cluster.cluster.write_config(DynamicConfig(ttl=30, loop_wait=10, retry_timeout=10, pause=True), None)
    assert "resumed" in cluster.run("resume").stdout
    assert [r[3] for r in cluster.requests] == [{"pause": True}, {"pause": False}]


def test_haproxy_config_has_a_server_per_member(cluster: FakeCluster) -> None:
    result = cluster.run("haproxy-config", "--bind", "127.0.0.9", "--primary-port", "6000")
    assert result.exit_code == 0, result.output
    for m in cluster.members:
        assert f"server {m.name} {m.host}:{m.port}" in result.stdout
    assert "bind 127.0.0.9:6000" in result.stdout


def test_haproxy_config_keeps_stack_nodes_etcd_does_not_list(tmp_path: Path) -> None:
    from pgwarden.cli.router import backends
    from pgwarden.client import KnownNode

    found = backends([member("node2")], [KnownNode("node1", "127.0.0.11", 5432, "http://127.0.0.11:8008")])
    assert [(b.name, b.api_port) for b in found] == [("node1", 8008), ("node2", 8010)]


def test_commands_exit_1_when_etcd_is_unreachable(cluster: FakeCluster) -> None:
    cluster.store.available = False
    result = cluster.run("list")
    assert result.exit_code == 1
    assert result.stderr.startswith("pgwarden: etcd unreachable at 127.0.0.1:1")


def test_every_cluster_command_is_registered() -> None:
    help_text = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).stdout
    for name in ("list", "topology", "history", "switchover", "failover", "restart", "reload", "reinit"):
        assert f" {name} " in help_text
    for name in ("pause", "resume", "show-config", "edit-config", "haproxy-config"):
        assert f" {name} " in help_text


def test_an_unusable_tls_certificate_is_a_client_error() -> None:
    target = ClusterTarget("demo", (Address("127.0.0.1", 1),), tls_ca="/nonexistent/api.crt")
    with pytest.raises(ClientError, match=r"cannot set up HTTPS to the agents with /nonexistent/api\.crt"):
        ClusterClient(target, store=MemoryStore(VirtualClock()))
