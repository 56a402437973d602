"""``pgwarden doctor`` on real clusters: every check provoked for real, grouped on two clusters.

Cluster A (auth, plain HTTP on loopback, failsafe_mode on, a small max_slot_wal_keep_size, ttl 6
so failsafe rides out this machine's load): a fresh cluster's report; paused; a setting
PostgreSQL refuses; the leader's fence stopped; a standby stopped while WAL piles up in its
slot; that standby brought back without data checksums under wal_log_hints off (and the others
left with a restart pending); every standby tagged nofailover; etcd's quorum lost (failsafe
active); a standby's agent with its wall clock 20 s ahead (its
time.time shifted before the agent loads: libfaketime breaks Python's sleeps, see below).

Cluster B (etcd on the database hosts, no API auth, WAL archived, an automatic watchdog that
cannot be opened): its report; both standbys' WAL receivers stopped while the primary writes (no
standby within maximum_lag_on_failover); an etcd member frozen; HAProxy restarted with slow
checks; ttl lowered; an agent killed; two etcd members removed.

Each test asserts the finding's check, severity and the words an operator acts on, and the
exit code; each ends by undoing what it did when later tests depend on it.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from typer.testing import CliRunner

from pgwarden.cli.main import app
from pgwarden.local import inventory, processes
from pgwarden.local.preflight import HAPROXY
from pgwarden.local.stack import Stack
from pgwarden.postgres.probe import postmaster_pid
from tests.support.api import call
from tests.support.cluster import cluster_network, conninfo, primary_name, running_stack, wait_for
from tests.support.faults import etcd_leader, etcd_members_down

pytestmark = pytest.mark.integration

# An agent whose wall clock reads 20 s ahead: time.time (and time_ns) shifted before pgwarden
# loads; its monotonic clock (leases, deadlines) stays true, as with a host clock set wrong.
# libfaketime would shift the whole process, but under it Python 3.11's time.sleep fails with
# EINVAL (clock_nanosleep on the monotonic clock), so the agent and its fence cannot run.
AHEAD_S = 20
CLOCK_AHEAD = (
    "import runpy, sys, time\n"
    f"real, real_ns = time.time, time.time_ns\n"
    f"time.time = lambda: real() + {AHEAD_S}\n"
    f"time.time_ns = lambda: real_ns() + {AHEAD_S} * 10**9\n"
    "sys.argv = ['pgwarden', *sys.argv[1:]]\n"
    "runpy.run_module('pgwarden', run_name='__main__')\n"
)
PG_BIN = "/usr/lib/postgresql/15/bin"


# --- running doctor ------------------------------------------------------------------------------


def doctor(stack: Stack, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(
        app, ["doctor", "--format", "json", "--dir", str(stack.spec.dir), *args], env={"COLUMNS": "250"}
    )
    assert result.stdout.strip().startswith("{"), result.output
    return result.exit_code, json.loads(result.stdout)


def findings(doc: dict[str, Any], check: str) -> list[dict[str, Any]]:
    return [f for f in doc["findings"] if f["check"] == check]


ORDER = ("ok", "info", "warning", "critical")


def worst(doc: dict[str, Any], check: str) -> dict[str, Any]:
    found = findings(doc, check)
    assert found, f"doctor said nothing for {check}: {doc}"
    return max(found, key=lambda f: ORDER.index(f["severity"]))


def text(finding: dict[str, Any]) -> str:
    return " ".join([finding["title"], *finding["evidence"], finding.get("fix") or ""])


def expect(doc: dict[str, Any], check: str, severity: str, *words: str) -> dict[str, Any]:
    finding = worst(doc, check)
    assert finding["severity"] == severity, finding
    for word in words:
        assert word in text(finding), (word, finding)
    if severity in ("warning", "critical"):
        assert finding["fix"], finding
    return finding


# --- acting on the cluster -----------------------------------------------------------------------


def names(stack: Stack) -> list[str]:
    return [stack.spec.node_name(i) for i in range(stack.spec.nodes)]


_NETWORKS: set[str] = set()


def own_network() -> str:
    """A test network neither cluster of this module uses yet (both live until the module ends)."""
    for _ in range(100):
        network = cluster_network()
        if network not in _NETWORKS:
            _NETWORKS.add(network)
            return network
    raise AssertionError("PGWARDEN_TEST_NETWORKS leaves no second network for cluster B")


def index(name: str) -> int:
    return int(name.removeprefix("node")) - 1


def roles(stack: Stack) -> tuple[str, list[str]]:
    wait_for(lambda: stack.healthy()[0], 120, "one primary and every standby streaming")
    primary = primary_name(stack)
    assert primary is not None
    return primary, [n for n in names(stack) if n != primary]


def sql(stack: Stack, name: str, *statements: str) -> None:
    info = conninfo(stack, stack.spec.node_host(index(name)), stack.spec.pg_port)
    with psycopg.connect(info, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def cli(stack: Stack, *args: str) -> None:
    result = CliRunner().invoke(app, [*args, "--dir", str(stack.spec.dir)])
    assert result.exit_code == 0, result.output


def stop_agent(stack: Stack, name: str) -> None:
    """SIGTERM the agent: it stops its PostgreSQL cleanly and releases its member key."""
    i = index(name)
    data_dir = str(stack.spec.data_dir(i))
    for pid in stack.agent_pids(i):
        processes.signal_one(pid, signal.SIGTERM)
    wait_for(lambda: not stack.agent_pids(i) and postmaster_pid(data_dir) is None, 60, f"{name} stopped")


def start_agent(stack: Stack, name: str, clock_ahead: bool = False) -> None:
    """Start the agent again; with ``clock_ahead``, its wall clock reads AHEAD_S seconds ahead."""
    i = index(name)
    if not clock_ahead:
        stack.start_agent(i)
        return
    cmd = [sys.executable, "-c", CLOCK_AHEAD, "agent", "-c", str(stack.spec.config_path(i))]
    env = inventory.marked_environment(stack.spec.dir)
    stack.pids[name] = processes.spawn(cmd, stack.logs_dir / f"{name}.log", env=env)


def streaming(stack: Stack, name: str) -> bool:
    status = stack.statuses().get(name) or {}
    return status.get("replication_state") == "streaming"


def set_tags(stack: Stack, name: str, tags: dict[str, Any]) -> None:
    path = stack.spec.config_path(index(name))
    config = yaml.safe_load(path.read_text())
    config["tags"] = tags
    path.write_text(yaml.safe_dump(config, sort_keys=False))


# --- cluster A ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster_a() -> Iterator[Stack]:
    dcs = {
        "failsafe_mode": True,
        "max_slot_wal_keep_size": "96MB",
        "ttl": 6,
        "loop_wait": 1,
        "retry_timeout": 1.5,
    }
    with running_stack(dcs=dcs, network=own_network()) as stack:
        yield stack


def test_a_fresh_cluster_warns_of_archiving_and_passes_the_rest(cluster_a: Stack) -> None:
    primary, standbys = roles(cluster_a)
    code, doc = doctor(cluster_a)
    assert code == 1 and doc["worst"] == "warning", doc
    expect(doc, "archive_mode", "warning", "archive_mode is off", f"archive_mode off on {primary}")
    expect(doc, "api_protection", "info", "plain HTTP", "loopback only")
    expect(doc, "watchdog", "info", "no watchdog")
    for check in ("etcd_reachable", "leader", "agents_reachable", "failover_candidates", "slot_retention",
                  "etcd_election", "haproxy_checks", "rewind_prerequisites", "etcd_members",
                  "etcd_on_database_hosts", "clocks", "pending_restart", "paused", "config_errors",
                  "failsafe", "fence"):  # fmt: skip
        expect(doc, check, "ok")
    window = worst(doc, "data_loss_window")
    assert window["severity"] in ("ok", "info"), window
    assert "a failover now promotes" in window["title"]
    for standby in standbys:  # bytes and seconds behind, per standby
        assert any(line.startswith(f"{standby}: ") and "behind" in line for line in window["evidence"]), (
            window
        )
    assert "a new primary is routed to at most 0.10 s" in text(worst(doc, "haproxy_checks"))


def test_paused(cluster_a: Stack) -> None:
    roles(cluster_a)
    cli(cluster_a, "pause")
    try:
        code, doc = doctor(cluster_a)
        expect(doc, "paused", "warning", "the cluster is paused", "pgwarden resume")
        assert code == 1
    finally:
        cli(cluster_a, "resume")


def test_a_setting_postgresql_refuses(cluster_a: Stack) -> None:
    _, standbys = roles(cluster_a)
    name = standbys[0]
    conf = Path(cluster_a.spec.data_dir(index(name))) / "postgresql.conf"
    original = conf.read_text()
    try:
        conf.write_text(original + "statement_timeout = 'soon'  # added by hand\n")
        assert call(cluster_a, name, "POST", "/reload", body={}).status_code == 200
        wait_for(
            lambda: worst(doctor(cluster_a)[1], "config_errors")["severity"] == "warning", 30, "the error"
        )
        _, doc = doctor(cluster_a)
        expect(doc, "config_errors", "warning", f"{name}: statement_timeout = soon")
    finally:
        conf.write_text(original)
        call(cluster_a, name, "POST", "/reload", body={})


def test_the_leaders_fence_stopped(cluster_a: Stack) -> None:
    primary, _ = roles(cluster_a)
    [fence] = cluster_a.fence_pids(index(primary))
    processes.signal_one(fence, signal.SIGSTOP)
    try:
        code, doc = doctor(cluster_a)
    finally:
        processes.signal_one(fence, signal.SIGCONT)
    expect(doc, "fence", "critical", f"{primary}: the fence (pid {fence}) is stopped")
    assert code == 2


def test_a_slot_filling_then_a_standby_that_cannot_be_rewound_and_restarts_pending(cluster_a: Stack) -> None:
    primary, standbys = roles(cluster_a)
    gone = standbys[-1]
    stop_agent(cluster_a, gone)
    try:
        # 4 WAL segments of 16 MB behind the stopped standby's slot: 64 of 96 MB.
        sql(cluster_a, primary, "CREATE TABLE IF NOT EXISTS doctor_wal (x int)")
        for _ in range(4):
            sql(cluster_a, primary, "INSERT INTO doctor_wal VALUES (1)", "SELECT pg_switch_wal()")

        def slot_warned() -> dict[str, Any] | None:
            finding = worst(doctor(cluster_a)[1], "slot_retention")
            return finding if finding["severity"] == "warning" else None

        finding = wait_for(slot_warned, 60, "the slot's WAL reported")
        assert (
            f"slot {gone} keeps" in finding["title"]
            and "of max_slot_wal_keep_size (96MB)" in finding["title"]
        )

        # While it is stopped: no data checksums on it, and wal_log_hints off for everyone.
        data_dir = str(cluster_a.spec.data_dir(index(gone)))
        user = cluster_a.spec.user_for(index(gone)) or "postgres"
        subprocess.run(
            ["runuser", "-u", user, "--", f"{PG_BIN}/pg_checksums", "--disable", "-D", data_dir],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        cli(cluster_a, "edit-config", "--set", "parameters.wal_log_hints=off", "--force")
    finally:
        start_agent(cluster_a, gone)
    wait_for(lambda: streaming(cluster_a, gone), 120, f"{gone} streaming again")

    def both() -> dict[str, Any] | None:
        doc = doctor(cluster_a)[1]
        ready = worst(doc, "rewind_prerequisites")["severity"] == "warning"
        return doc if ready and worst(doc, "pending_restart")["severity"] == "warning" else None

    doc = wait_for(both, 60, "the rewind and restart findings")
    expect(doc, "rewind_prerequisites", "warning", f"pg_rewind cannot rewind {gone}",
           f"{gone}: data_checksums off, wal_log_hints off")  # fmt: skip
    pending = expect(
        doc, "pending_restart", "warning", "wal_log_hints on -> off", "pgwarden restart --pending"
    )
    assert set(pending["members"]) == {n for n in names(cluster_a) if n != gone}, pending


def test_every_standby_tagged_nofailover(cluster_a: Stack) -> None:
    _, standbys = roles(cluster_a)
    for name in standbys:
        stop_agent(cluster_a, name)
        set_tags(cluster_a, name, {"nofailover": True})
        start_agent(cluster_a, name)
    wait_for(lambda: all(streaming(cluster_a, n) for n in standbys), 120, "the standbys back")
    code, doc = doctor(cluster_a)
    expect(doc, "failover_candidates", "critical", "every one is tagged nofailover")
    expect(doc, "data_loss_window", "critical", "no standby would take over")
    assert code == 2


def test_etcd_quorum_lost_failsafe_active(cluster_a: Stack) -> None:
    primary, _ = roles(cluster_a)
    every = sorted(names(cluster_a))
    wait_for(lambda: sorted(call(cluster_a, primary, "GET", "/failsafe").json()) == every, 30, "the topology")
    leader = wait_for(lambda: (i := etcd_leader(cluster_a)) is not None and [i], 20, "an etcd leader")[0]
    follower = next(i for i in range(3) if i != leader)
    with etcd_members_down(cluster_a, [follower, leader]):

        def active() -> bool:
            return (cluster_a.statuses().get(primary) or {}).get("failsafe_mode_is_active") is True

        wait_for(active, 30, "failsafe mode active on the primary")
        code, doc = doctor(cluster_a)
    expect(doc, "etcd_reachable", "critical", "cannot be read from etcd")
    expect(doc, "failsafe", "critical", "failsafe mode is active", f"{primary}: failsafe_mode_is_active")
    assert code == 2


def test_a_standbys_clock_twenty_seconds_ahead(cluster_a: Stack) -> None:
    _, standbys = roles(cluster_a)
    ahead = standbys[0]
    stop_agent(cluster_a, ahead)
    start_agent(cluster_a, ahead, clock_ahead=True)
    wait_for(lambda: streaming(cluster_a, ahead), 120, f"{ahead} back with its clock ahead")
    code, doc = doctor(cluster_a)
    finding = expect(doc, "clocks", "critical", f"{ahead}'s clock is at least", "NTP")
    assert ahead in finding["members"]
    offsets = {line.split(":")[0]: line for line in finding["evidence"]}
    assert "+2" in offsets[ahead] or "+19" in offsets[ahead], offsets
    assert code == 2


# --- cluster B ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster_b() -> Iterator[Stack]:
    dcs = {"parameters": {"archive_mode": "on", "archive_command": "/bin/true"}}
    # The default safety_margin (it scales with ttl): a 3 s timeout at ttl 4 that the agent would
    # use, so what fails is the device, not the timing.
    watchdog = {"watchdog": {"mode": "automatic", "device": "/nonexistent/watchdog"}}
    # etcd_offset = node_offset: each etcd member listens on a database node's address.
    with running_stack(
        dcs=dcs, network=own_network(), etcd_offset=11, api_password=None, node_extra=watchdog
    ) as stack:
        yield stack


def test_etcd_on_the_database_hosts_an_open_api_and_a_watchdog_that_cannot_open(cluster_b: Stack) -> None:
    primary, _ = roles(cluster_b)
    code, doc = doctor(cluster_b)
    expect(doc, "etcd_on_database_hosts", "warning", "3 etcd member(s) run on database hosts",
           f"the host of {primary}")  # fmt: skip
    expect(doc, "api_protection", "warning", "takes operations without credentials", "no api.auth")
    expect(doc, "archive_mode", "ok", "WAL is archived")
    expect(doc, "watchdog", "warning", f"{primary} leads without its watchdog", "/nonexistent/watchdog")
    assert code == 1


def walreceiver(stack: Stack, name: str) -> int:
    postmaster = postmaster_pid(str(stack.spec.data_dir(index(name))))
    assert postmaster is not None
    found = [
        p for p in processes.children(postmaster) if "walreceiver" in " ".join(processes.command_line(p))
    ]
    assert found, f"{name} has no WAL receiver"
    return found[0]


def test_no_standby_within_maximum_lag_on_failover(cluster_b: Stack) -> None:
    primary, standbys = roles(cluster_b)
    receivers = [walreceiver(cluster_b, n) for n in standbys]
    for pid in receivers:
        processes.signal_one(pid, signal.SIGSTOP)
    try:
        # 2 MB more than either standby received: beyond maximum_lag_on_failover (1 MB).
        sql(
            cluster_b,
            primary,
            "CREATE TABLE big AS SELECT repeat('x', 1000) AS x FROM generate_series(1, 2000)",
        )

        def critical() -> dict[str, Any] | None:
            doc = doctor(cluster_b)[1]
            return doc if worst(doc, "data_loss_window")["severity"] == "critical" else None

        doc = wait_for(critical, 30, "the window reported")
    finally:
        for pid in receivers:
            processes.signal_one(pid, signal.SIGCONT)
    gone = f"if {primary} failed now, no standby would take over"
    finding = expect(doc, "data_loss_window", "critical", gone, "maximum_lag_on_failover")
    for standby in standbys:
        [line] = [e for e in finding["evidence"] if e.startswith(f"{standby}: ")]
        assert "MB behind" in line and "lacks writes" in line, line


def test_an_etcd_member_that_does_not_answer(cluster_b: Stack) -> None:
    roles(cluster_b)
    frozen = cluster_b.pids["etcd3"]
    processes.signal_one(frozen, signal.SIGSTOP)
    try:
        _, doc = doctor(cluster_b)
    finally:
        processes.signal_one(frozen, signal.SIGCONT)
    expect(
        doc,
        "etcd_latency",
        "warning",
        "an etcd endpoint did not answer doctor",
        cluster_b.spec.etcd_endpoints()[2],
    )


def test_haproxy_with_slow_checks(cluster_b: Stack) -> None:
    roles(cluster_b)
    config = cluster_b.spec.dir / "haproxy.cfg"
    fast = config.read_text()
    slow = fast.replace("inter 500ms fastinter 100ms downinter 100ms fall 2 rise 1", "inter 3s fall 3 rise 3")
    assert slow != fast
    haproxy = cluster_b.pids["haproxy"]
    processes.stop(haproxy)
    config.write_text(slow)
    cluster_b._spawn("haproxy", [HAPROXY, "-db", "-f", str(config)])  # the settings in use now
    _, doc = doctor(cluster_b)
    expect(doc, "haproxy_checks", "warning", "HAProxy needs up to 9.00 s to route to a new primary",
           "inter 3 s", "rise 3")  # fmt: skip
    _, doc = doctor(cluster_b, "--haproxy-config", str(config.with_name("missing.cfg")))
    expect(doc, "haproxy_checks", "info", "missing.cfg")


def test_a_ttl_too_short_for_an_etcd_election(cluster_b: Stack) -> None:
    roles(cluster_b)
    cli(cluster_b, "edit-config", "--set", "ttl=3", "--set", "retry_timeout=1", "--force")
    try:
        _, doc = doctor(cluster_b)
    finally:
        cli(cluster_b, "edit-config", "--set", "ttl=null", "--set", "retry_timeout=null", "--force")
    expect(doc, "etcd_election", "warning", "a slow etcd election stops the primary", "ttl 3 s")


def test_an_agent_that_does_not_answer(cluster_b: Stack) -> None:
    _, standbys = roles(cluster_b)
    name = standbys[0]
    cluster_b.kill_agent(index(name))
    try:
        _, doc = doctor(cluster_b)
    finally:
        cluster_b.start_agent(index(name))
    expect(doc, "agents_reachable", "warning", f"no diagnostics from {name}")


def test_a_single_etcd_member_left(cluster_b: Stack) -> None:
    roles(cluster_b)
    endpoint = cluster_b.spec.etcd_endpoints()[0]

    def members() -> list[dict[str, Any]] | None:
        # A loaded machine can take longer than any client timeout over a raft reconfiguration:
        # a read that timed out is asked again (wait_for), not taken for an answer.
        try:
            answer = httpx.post(f"http://{endpoint}/v3/cluster/member/list", json={}, timeout=10)
        except httpx.TimeoutException:
            return None
        return list(answer.json()["members"])

    def remove_one_other() -> bool:
        """Remove one member other than etcd1; True once etcd1 is alone.

        etcd refuses a removal ("unhealthy cluster") until every remaining member has been
        connected for 5 s — etcd3 was frozen by an earlier test — and a loaded machine can time
        a removal out: a refused or timed-out removal is asked again, the member list decides.
        """
        listed = members()
        if listed is None:
            return False
        others = [m["ID"] for m in listed if m["name"] != "etcd1"]
        if not others:
            return True
        with contextlib.suppress(httpx.TimeoutException):
            httpx.post(f"http://{endpoint}/v3/cluster/member/remove", json={"ID": others[0]}, timeout=30)
        return False

    wait_for(remove_one_other, 180, "etcd1 alone in etcd's member list", interval=1.0)
    with contextlib.suppress(AssertionError):
        wait_for(lambda: primary_name(cluster_b), 30, "a primary")
    code, doc = doctor(cluster_b)
    expect(doc, "etcd_members", "critical", "etcd has 1 member(s)", "etcd1")
    assert code == 2
