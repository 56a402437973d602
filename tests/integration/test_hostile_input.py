"""The hostile-input suite (issue 11): junk in every etcd key and from a peer's API, on a real cluster.

One synchronous-mode cluster (3 nodes, real etcd and HAProxy, a writer through HAProxy) gets
garbage written straight into every key of its etcd prefix, one key after the other, as
``etcdctl put`` would (no lease): truncated JSON, wrong types, unknown keys, nesting 100,000 and
200,000 deep, ``null``, non-UTF-8 bytes and a megabyte. A member registered in etcd answers its
REST API with a different kind of junk per request, a body that never ends first. Then, with
junk still in the keys nobody rewrites and in those the dead leader owned, the primary's node is
killed.

What a user checks: every agent process alive and no internal error in any loop; no PostgreSQL
stopped (postmaster PIDs unchanged) until the node loss; no failover but the one the node loss
caused; the dynamic config in force unchanged (the agents' `GET /config` and PostgreSQL's own
`SHOW`); the failover within the usual bound; nothing acknowledged lost (synchronous mode); and
`pgwarden edit-config` repairs the junk config. Figures: docs/faults.md, "Bad input".
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from pgwarden.cli.main import app
from pgwarden.config.fields import parse_address
from pgwarden.dcs import codec
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.etcd import EtcdStore
from pgwarden.dcs.keys import ClusterKeys
from pgwarden.documents.render import config_document
from pgwarden.local import processes
from pgwarden.local.stack import Stack
from pgwarden.model import Member, PgState, Role
from pgwarden.postgres.probe import postmaster_pid
from tests.support.api import call
from tests.support.cluster import conninfo, primary_name, running_stack, wait_for
from tests.support.invariants import Invariants, routed_primary
from tests.support.junk_peer import JunkPeer

pytestmark = pytest.mark.integration

SYNC = {"synchronous_mode": "on", "synchronous_node_count": 1}
WORK_MEM = "7MB"  # a live setting of the dynamic config: reset to defaults, PostgreSQL would drop it
RTO_BOUND_S = 20.0  # usual node-loss RTO is ~4 s async, ~9 s synchronous (docs/faults.md): generous
JUNK_PEER = "junkpeer"
# The junk peer's kinds, in the order requests get them: the endless body first, so the first
# candidate asking it during the failover gets the worst.
PEER_KINDS = ["endless body", "slow answer", "200000-deep nesting", "null", "xlog a string", "a megabyte"]
SETTLE_S = 1.5  # more than loop_wait (1 s): every agent has read the key since it changed


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


WRONG_TYPES = {
    "name": 5, "api_url": [], "host": {}, "port": "x", "role": 1, "ttl": "soon", "loop_wait": [],
    "timeline": "x", "lsn": 5, "members": "b", "quorum": "all", "leader": 3, "candidate": 7,
    "scheduled_at": "tomorrow", "at": "x", "outcome": 1, "slots": [],
}  # fmt: skip


def junk_values(current: bytes | None) -> dict[str, bytes]:
    """Each kind of junk for a key whose valid value is ``current`` (None when absent)."""
    base = current or b'{"a": 1}'
    try:
        document = json.loads(base)
    except ValueError:
        document = None
    unknown = {**document, "x_unknown_key": {"from": "a newer version"}} if isinstance(document, dict) else {}
    if not unknown:
        unknown = {"x_unknown_key": 1}
    # The large values first: what stays in a key nobody rewrites is small, so the agents' reads
    # of the whole prefix (every cycle) are not a megabyte for the rest of the test.
    return {
        "a megabyte": json.dumps("x" * 1024 * 1024).encode(),
        "200000-deep nesting": _nested(200_000),  # the value: over the size cap
        "100000-deep nesting": _nested(100_000),  # under the size cap: reaches the parser
        "not UTF-8": b'{"name": "\xff\xfe\xfd"}',
        "wrong types": json.dumps(WRONG_TYPES).encode(),
        "unknown keys": json.dumps(unknown).encode(),
        "null": b"null",
        "truncated JSON": base[: max(1, len(base) // 2)],  # of a system identifier: a shorter number
    }


class Etcd:
    """The test's own etcd client: raw puts as ``etcdctl put`` does them (no lease, any bytes)."""

    def __init__(self, stack: Stack) -> None:
        self.endpoint = stack.spec.etcd_endpoints()[0]
        self.keys = ClusterKeys(stack.spec.cluster)
        self.store = EtcdStore([parse_address(e) for e in stack.spec.etcd_endpoints()], timeout=2.0)
        self.cluster = ClusterStore(self.store, stack.spec.cluster)

    def put(self, relative: str, value: bytes, lease: int = 0) -> None:
        body: dict[str, Any] = {
            "key": base64.b64encode((self.keys.root + relative).encode()).decode(),
            "value": base64.b64encode(value).decode(),
        }
        if lease:
            body["lease"] = str(lease)
        reply = httpx.post(f"http://{self.endpoint}/v3/kv/put", json=body, timeout=10)
        assert reply.status_code == 200 and "error" not in reply.json(), reply.text[:200]

    def raw(self, relative: str) -> tuple[bytes | None, int]:
        """The value of a key and its lease (None, 0 when absent)."""
        kv = self.store.get_prefix(self.keys.root + relative).get(self.keys.root + relative)
        return (kv.value.encode(), kv.lease) if kv is not None else (None, 0)

    def close(self) -> None:
        self.store.close()


class Baseline:
    """What must not change while the junk lands: processes, postmasters, the primary, the config."""

    def __init__(self, stack: Stack, primary: str) -> None:
        self.stack = stack
        self.primary = primary
        names = [stack.spec.node_name(i) for i in range(stack.spec.nodes)]
        self.agents = {name: stack.pids[name] for name in names}
        self.postmasters = {name: _postmaster(stack, name) for name in names}
        self.config = {name: _config_in_force(stack, name) for name in names}
        assert len({json.dumps(c, sort_keys=True) for c in self.config.values()}) == 1, self.config
        self.checks = 0

    def alive_without_errors(self, what: str, nodes: list[str]) -> None:
        statuses = self.stack.statuses()
        for name in nodes:
            assert processes.alive(self.agents[name]), f"{what}: the agent of {name} exited"
            status = statuses[name]
            assert status is not None and status["loop_errors"] == 0, (what, name, status)

    def holds(
        self, what: str, nodes: list[str] | None = None, primary: str | None = None, config: bool = True
    ) -> None:
        """Every agent alive without a single internal error, every postmaster the same process,
        the same primary, the same config in force (``config``: asked of each agent, which reads
        etcd, so not after every key); ``what`` names the step in failures."""
        nodes = nodes or list(self.agents)
        statuses = self.stack.statuses()
        for name in nodes:
            assert processes.alive(self.agents[name]), f"{what}: the agent of {name} exited"
            assert _postmaster(self.stack, name) == self.postmasters[name], (
                f"{what}: {name}'s PostgreSQL stopped"
            )
            status = statuses[name]
            assert status is not None, f"{what}: {name}'s API does not answer"
            assert status["loop_errors"] == 0 and "thread_errors" not in status, (what, name, status)
            if config:
                assert _config_in_force(self.stack, name) == self.config[name], (
                    f"{what}: {name}'s config changed"
                )
        assert primary_name(self.stack) == (primary or self.primary), f"{what}: the primary changed"
        self.checks += 1


def _postmaster(stack: Stack, name: str) -> int | None:
    return postmaster_pid(str(stack.spec.data_dir(int(name.removeprefix("node")) - 1)))


def _config_in_force(stack: Stack, name: str) -> dict[str, Any]:
    """The dynamic config as the agent runs it (its GET /config: etcd's, or its last valid one when
    etcd's is junk) and the live setting as PostgreSQL itself reports it."""
    i = int(name.removeprefix("node")) - 1
    doc = call(stack, name, "GET", "/config", auth=False, timeout=10).json()
    with psycopg.connect(conninfo(stack, stack.spec.node_host(i), stack.spec.pg_port, 5)) as conn:
        row = conn.execute("SHOW work_mem").fetchone()
    return {**doc, "SHOW work_mem": row[0] if row else None}


@pytest.fixture
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    failed_before = request.session.testsfailed
    with running_stack(dcs=SYNC) as s:
        yield s
        if request.session.testsfailed > failed_before:
            for log in sorted((s.spec.dir / "logs").glob("node*.log")):
                lines = log.read_text(errors="replace").splitlines()
                print(f"----- {log.name} (last 120 of {len(lines)} lines)")
                print("\n".join(lines[-120:]))


def test_junk_in_every_etcd_key_and_from_a_peer_then_a_node_loss(stack: Stack) -> None:
    primary = routed_primary(stack, 90)
    etcd = Etcd(stack)
    patched = call(stack, primary, "PATCH", "/config", body={"parameters": {"work_mem": WORK_MEM}})
    assert patched.status_code == 200, patched.text
    names = list(stack.statuses())
    applied = lambda: all(_config_in_force(stack, n)["SHOW work_mem"] == WORK_MEM for n in names)  # noqa: E731
    wait_for(applied, 30, "work_mem applied everywhere")
    standbys = [n for n in names if n != primary]
    with JunkPeer(host=f"{stack.spec.network}.99", kinds=PEER_KINDS, endless_for=20, slow_for=5) as peer:
        record = Member(
            JUNK_PEER, peer.url, f"{stack.spec.network}.99", 5432, Role.REPLICA, PgState.RUNNING, 1
        )
        etcd.put(f"members/{JUNK_PEER}", codec.encode_member(record).encode())
        time.sleep(SETTLE_S)
        baseline = Baseline(stack, primary)
        with Invariants(stack, "hostile input: junk in every etcd key, then node loss") as check:
            keys = [
                "config", "leader", f"members/{standbys[0]}", f"members/{primary}", f"members/{JUNK_PEER}",
                "status", "sync", "history", "switchover", "switchover_outcome", "initialize", "failsafe",
            ]  # fmt: skip
            repairs: dict[str, float] = {}
            for key in keys:
                _junk_one_key(etcd, key, baseline, repairs)
            check.notes["repaired_s"] = repairs
            _assert_repaired(etcd, stack, primary)
            baseline.holds("after junk in every key")
            # Junk nobody rewrites stays in config and history; the junk peer's record is valid
            # again, so the candidates ask it during the failover.
            etcd.put("config", _nested(100_000))
            etcd.put("history", b'[{"timeline": 2, "switch_lsn": "0/30')
            etcd.put(f"members/{JUNK_PEER}", codec.encode_member(record).encode())
            time.sleep(SETTLE_S)
            baseline.holds("with junk in config and history")
            killed_at = time.monotonic()
            stack.kill_node(int(primary.removeprefix("node")) - 1)
            # Then junk in what only the dead leader would have rewritten, before its lease runs
            # out: the candidates race with all of it in place. The leader key keeps the dead
            # leader's lease (etcdctl put --ignore-lease), so it still expires with it. Not sync:
            # an unreadable claim lets nobody promote (rule 4; docs/faults.md says what to do).
            _, lease = etcd.raw("leader")
            etcd.put("leader", b'{"name": "truncated', lease)
            etcd.put("status", json.dumps(WRONG_TYPES).encode())
            etcd.put("switchover", b"null")
            etcd.put("initialize", b"{not an id}")
            etcd.put(f"members/{primary}", b"[" * 1000)
            check.notes["junk_written_s"] = round(time.monotonic() - killed_at, 2)
            new = wait_for(lambda: (p := primary_name(stack)) != primary and p, 60, "a new primary")
            failover_s = time.monotonic() - killed_at
            assert check.writer.wait_for_acks(10, 60), "no write acknowledged after the failover"
            check.notes["failover_s"] = round(failover_s, 2)
            # The other survivor may rewind (and restart) if it received WAL the new primary did not.
            baseline.holds("after the failover with junk in place", [new], primary=new)
            baseline.alive_without_errors("after the failover", [n for n in baseline.agents if n != primary])
            check.notes["junk_peer_served"] = ",".join(dict.fromkeys(peer.served))
            assert "endless body" in peer.served, f"the candidates never asked the junk peer: {peer.served}"
            _repair_config_with_the_cli(stack, etcd, baseline.config[new])
            stack.start_agent(int(primary.removeprefix("node")) - 1)
            report = check.finish()
            history = etcd.cluster.read().history
    etcd.close()
    report.publish()
    report.assert_invariants()  # synchronous mode: nothing acknowledged may be lost
    assert report.primary_after == new
    promotions = [e.timeline for e in history if e.promotion]
    assert promotions == [2], f"one failover, the node loss's: {promotions}"
    assert report.rto < RTO_BOUND_S, f"RTO {report.rto:.1f}s with junk in place"
    assert baseline.checks == len(keys) + 3


# Keys an agent rewrites when it finds junk in them, and how long that may take (generous: the
# machine is shared); the others keep their junk until an operator (or the next append) acts.
REPAIRED_BY_AGENTS = ("leader", "status", "sync", "switchover", "initialize", "failsafe")
REPAIR_BOUND_S = 10.0


def _junk_one_key(etcd: Etcd, key: str, baseline: Baseline, repairs: dict[str, float]) -> None:
    current, _ = etcd.raw(key)
    for kind, value in junk_values(current).items():
        print(f"{time.strftime('%H:%M:%S')} junk in {key}: {kind}")
        etcd.put(key, value)
        time.sleep(0.2)
    if key in REPAIRED_BY_AGENTS or (key.startswith("members/") and key != f"members/{JUNK_PEER}"):
        written = time.monotonic()
        readable = lambda: key not in etcd.cluster.read().unreadable  # noqa: E731
        wait_for(readable, REPAIR_BOUND_S, f"an agent to repair {key}", interval=0.05)
        repairs[key] = round(time.monotonic() - written, 2)
    time.sleep(SETTLE_S)
    baseline.holds(f"junk in {key}", config=key == "config")


def _assert_repaired(etcd: Etcd, stack: Stack, primary: str) -> None:
    """The keys the agents own are valid again: the holder rewrote the leader key on its lease,
    owners republished their records, the leader its status and claim, and removed the intent."""

    def repaired() -> bool:
        view = etcd.cluster.read()
        leader_value, lease = etcd.raw("leader")
        junk_left = set(view.unreadable) - {"config", "history", "switchover_outcome", f"members/{JUNK_PEER}"}
        return leader_value == primary.encode() and lease != 0 and not junk_left and view.switchover is None

    wait_for(repaired, 15, "the agents to repair the keys they own")
    unreadable = etcd.cluster.read().unreadable
    assert "config" in unreadable, "the junk config should stay until an operator repairs it"
    statuses = stack.statuses()
    assert all("config" in (s or {}).get("unreadable_keys", {}) for s in statuses.values()), statuses


def _repair_config_with_the_cli(stack: Stack, etcd: Etcd, in_force: dict[str, Any]) -> None:
    """`pgwarden edit-config` on a junk config starts from the config in force and replaces the junk."""
    args = ["edit-config", "--set", f"parameters.work_mem={WORK_MEM}", "--force"]
    result = CliRunner().invoke(app, [*args, "-c", str(stack.spec.config_path(1))], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "unreadable" in result.output and "config the agents keep in force" in result.output
    stored, _ = etcd.cluster.read_config()
    assert stored is not None
    expected = {k: v for k, v in in_force.items() if k != "SHOW work_mem"}
    # GET /config shows the config in force the Patroni way (documents/render.py): compare alike.
    assert json.loads(json.dumps(config_document(stored))) == expected
