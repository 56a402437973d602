"""doctor's checks on facts built by hand: each situation, the severity and the words an operator acts on.

The same situations are provoked on real clusters in tests/integration/test_doctor.py; here every
branch, including the ones a test cluster cannot reach cheaply (a lost slot, a full disk).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pgwarden.dcs.etcd_admin import EtcdMember
from pgwarden.doctor.checks import CHECKS, examine
from pgwarden.doctor.facts import (
    Behind,
    EtcdFacts,
    Facts,
    HaproxyChecks,
    NodeFacts,
    PostgresFacts,
    RoundTrips,
    Sender,
    Slot,
)
from pgwarden.doctor.findings import Finding, Severity
from pgwarden.model import Lsn, Role, SyncMode
from pgwarden.model.parameters import ParameterError
from tests.support import builders as b

MB = 1024 * 1024
NAMES = ("node1", "node2", "node3")


def pg(**changes: Any) -> PostgresFacts:
    base = PostgresFacts(
        answered=True,
        data_checksums=True,
        wal_log_hints=True,
        archive_mode="on",
        archive_command_set=True,
        max_slot_wal_keep_size="4GB",
        max_slot_wal_keep_bytes=4096 * MB,
        in_recovery=False,
        wal_path="/data/pg_wal",
        wal_free_bytes=100 * 1024 * MB,
        wal_total_bytes=200 * 1024 * MB,
        slots=(Slot("node2", True, 0, "reserved", 4096 * MB), Slot("node3", True, 0, "reserved", 4096 * MB)),
        senders=(
            Sender("node2", "streaming", "async", Lsn.parse("0/3000000"), 0.001, 0.5),
            Sender("node3", "streaming", "async", Lsn.parse("0/3000000"), 0.001, 0.5),
        ),
    )
    return replace(base, **changes)


def node(name: str, **changes: Any) -> NodeFacts:
    leader = name == "node1"
    base = NodeFacts(
        name=name,
        clock_offset=0.01,
        clock_uncertainty=0.002,
        api_listen=f"192.0.2.{NAMES.index(name) + 11}:8008",
        api_auth=True,
        api_tls=True,
        api_verify_client="required",
        api_loopback=False,
        etcd_endpoints=("e1:2379", "e2:2379", "e3:2379"),
        etcd_reads=RoundTrips(60, 2.0, 5.0, 6.0),
        etcd_renewals=RoundTrips(240, 1.0, 3.0, 4.0) if leader else None,
        watchdog_mode="automatic",
        watchdog_armed=leader,
        watchdog_timeout=3 if leader else None,
        fence_pid=100,
        fence_state="running",
        failsafe_active=False,
        holds_leader_key=leader,
        postgres=pg() if leader else pg(in_recovery=True, slots=(), senders=()),
        behind={"node2": Behind(0.0, False), "node3": Behind(0.0, False)} if leader else {},
    )
    return replace(base, **changes)


def etcd(**changes: Any) -> EtcdFacts:
    members = tuple(EtcdMember(f"etcd{i}", (f"http://192.0.2.2{i}:2379",)) for i in (1, 2, 3))
    base = EtcdFacts(
        ("e1:2379", "e2:2379", "e3:2379"), members, "", {"e1:2379": RoundTrips(5, 1.0, 2.0, 2.0)}
    )
    return replace(base, **changes)


_DEFAULT: Any = object()


OTHER_ETCD = tuple(EtcdMember(f"etcd{i}", (f"http://192.0.2.2{i}:2379",)) for i in (2, 3))


def facts(view: Any = _DEFAULT, nodes: dict[str, NodeFacts] | None = None, **changes: Any) -> Facts:
    """A healthy production-like cluster: node1 leads, node2 and node3 stream, all on 192.0.2.x."""
    members = [
        replace(b.primary_member("node1"), host="192.0.2.11", api_url="https://192.0.2.11:8008"),
        replace(b.member("node2"), host="192.0.2.12", api_url="https://192.0.2.12:8008"),
        replace(b.member("node3"), host="192.0.2.13", api_url="https://192.0.2.13:8008"),
    ]
    base = Facts(
        cluster="demo",
        now=1000.0,
        view=view if view is not _DEFAULT else b.view(members=members, config=b.config(failsafe_mode=True)),
        nodes=nodes if nodes is not None else {n: node(n) for n in NAMES},
        etcd=etcd(),
        haproxy=HaproxyChecks("haproxy.cfg", inter=0.5, fastinter=0.1, downinter=0.1, rise=1, fall=2),
    )
    return replace(base, **changes)


def with_members(*members: Any, **view_changes: Any) -> Facts:
    healthy = facts()
    assert healthy.view is not None
    return facts(view=replace(healthy.view, members=tuple(members), **view_changes))


def run(name: str, situation: Facts) -> list[Finding]:
    return CHECKS[name](situation)


def worst(name: str, situation: Facts) -> Finding:
    found = run(name, situation)
    assert found, f"{name} said nothing"
    return max(found, key=lambda f: f.severity)


def test_a_healthy_cluster_passes_every_check() -> None:
    report = examine(facts())
    bad = [f for f in report.findings if f.severity > Severity.INFO]
    assert not bad, bad
    assert report.exit_code == 0
    assert {f.check for f in report.findings} == set(CHECKS)


def leader_node(**changes: Any) -> dict[str, NodeFacts]:
    return {**{n: node(n) for n in NAMES}, "node1": node("node1", **changes)}


ROWS: list[tuple[str, str, Facts, Severity, str]] = [
    (
        "no_leader_key_is_critical",
        "leader",
        facts(view=b.view(leader=None)),
        Severity.CRITICAL,
        "no member holds the leader key",
    ),
    (
        "every_standby_nofailover_is_critical",
        "failover_candidates",
        with_members(
            b.primary_member("node1"), b.member("node2", nofailover=True), b.member("node3", nofailover=True)
        ),
        Severity.CRITICAL,
        "every one is tagged nofailover",
    ),
    (
        "a_single_candidate_is_worth_knowing",
        "failover_candidates",
        with_members(b.primary_member("node1"), b.member("node2", nofailover=True), b.member("node3")),
        Severity.INFO,
        "only node3 may take over",
    ),
    (
        "no_standby_within_the_lag_limit_means_no_failover",
        "data_loss_window",
        with_members(
            b.primary_member("node1", lsn="0/5000000"),
            b.member("node2", lsn="0/3000000"),
            b.member("node3", lsn="0/3000000"),
        ),
        Severity.CRITICAL,
        "no standby would take over",
    ),
    (
        "a_standby_lacking_old_writes_is_a_warning",
        "data_loss_window",
        facts(
            view=b.view(
                members=(b.primary_member("node1", lsn="0/3080000"), b.member("node2", lsn="0/3000000"))
            ),
            nodes=leader_node(behind={"node2": Behind(42.0, False)}),
        ),
        Severity.WARNING,
        "a failover now promotes node2, losing 512 kB (writes up to 42 s old)",
    ),
    (
        "the_synchronous_claim_means_no_loss",
        "data_loss_window",
        facts(
            view=b.view(
                config=b.config(synchronous_mode=SyncMode.ON),
                sync=b.sync_set("node2"),
                members=(b.primary_member("node1", lsn="0/3080000"), b.member("node2", lsn="0/3000000")),
            )
        ),
        Severity.OK,
        "loses no acknowledged commit",
    ),
    (
        "a_degraded_synchronous_claim_is_a_warning",
        "data_loss_window",
        facts(
            view=b.view(
                config=b.config(synchronous_mode=SyncMode.ON),
                sync=replace(b.sync_set("node2"), degraded_since=900.0),
                members=(b.primary_member("node1", lsn="0/3080000"), b.member("node2", lsn="0/3000000")),
            )
        ),
        Severity.WARNING,
        "synchronous mode degraded",
    ),
    (
        "a_lost_slot_is_critical",
        "slot_retention",
        facts(nodes=leader_node(postgres=pg(slots=(Slot("node3", False, 5000 * MB, "lost", None),)))),
        Severity.CRITICAL,
        "slot node3 passed max_slot_wal_keep_size",
    ),
    (
        "a_slot_past_half_its_limit_is_a_warning",
        "slot_retention",
        facts(
            nodes=leader_node(postgres=pg(slots=(Slot("node3", False, 2500 * MB, "extended", 1500 * MB),)))
        ),
        Severity.WARNING,
        "61% of max_slot_wal_keep_size",
    ),
    (
        "a_slot_nearly_at_its_limit_is_critical",
        "slot_retention",
        facts(nodes=leader_node(postgres=pg(slots=(Slot("node3", False, 3900 * MB, "extended", 100 * MB),)))),
        Severity.CRITICAL,
        "95%",
    ),
    (
        "no_slot_limit_is_a_warning",
        "slot_retention",
        facts(nodes=leader_node(postgres=pg(max_slot_wal_keep_size="-1", max_slot_wal_keep_bytes=-1))),
        Severity.WARNING,
        "no limit",
    ),
    (
        "a_limit_beyond_the_free_disk_is_a_warning",
        "slot_retention",
        facts(nodes=leader_node(postgres=pg(wal_free_bytes=1024 * MB))),
        Severity.WARNING,
        "the disk fills before max_slot_wal_keep_size protects it",
    ),
    (
        "slow_etcd_is_critical",
        "etcd_latency",
        facts(nodes=leader_node(etcd_renewals=RoundTrips(240, 400.0, 900.0, 1200.0))),
        Severity.CRITICAL,
        "a request's whole budget",
    ),
    (
        "sluggish_etcd_is_a_warning",
        "etcd_latency",
        facts(nodes=leader_node(etcd_renewals=RoundTrips(240, 100.0, 300.0, 310.0))),
        Severity.WARNING,
        "40% of a request's budget",
    ),
    (
        "a_slow_read_of_the_cluster_alone_is_a_warning",
        "etcd_latency",
        facts(nodes=leader_node(etcd_reads=RoundTrips(39, 16.0, 1143.0, 1143.0))),
        Severity.WARNING,
        "an agent's read of the cluster took 1.14 s (p99)",
    ),
    (
        "the_shortest_ttl_rides_out_only_quick_elections",
        "etcd_election",
        facts(view=b.view(config=b.config(ttl=2.0, loop_wait=0.5, retry_timeout=0.5))),
        Severity.WARNING,
        "up to 1.25 s costs no stop: a slow etcd election stops the primary",
    ),
    (
        "a_watchdog_of_one_second_stops_the_primary_at_every_election",
        "etcd_election",
        facts(nodes=leader_node(watchdog_armed=True, watchdog_timeout=1)),
        Severity.CRITICAL,
        "every etcd election stops the primary",
    ),
    (
        "slow_haproxy_checks_are_a_warning",
        "haproxy_checks",
        facts(haproxy=HaproxyChecks("slow.cfg", inter=3.0, rise=2, fall=3)),
        Severity.WARNING,
        "HAProxy needs up to 6.00 s to route to a new primary",
    ),
    (
        "unknown_haproxy_settings_are_said",
        "haproxy_checks",
        facts(haproxy=None, haproxy_note="give the file"),
        Severity.INFO,
        "not checked: give the file",
    ),
    (
        "no_checksums_and_no_wal_log_hints_cannot_rewind",
        "rewind_prerequisites",
        facts(
            nodes={
                **leader_node(),
                "node3": node("node3", postgres=pg(data_checksums=False, wal_log_hints=False)),
            }
        ),
        Severity.WARNING,
        "pg_rewind cannot rewind node3",
    ),
    (
        "use_pg_rewind_off_is_a_warning",
        "rewind_prerequisites",
        facts(view=b.view(config=b.config(use_pg_rewind=False))),
        Severity.WARNING,
        "use_pg_rewind is off",
    ),
    (
        "archive_mode_off_is_a_warning",
        "archive_mode",
        facts(nodes=leader_node(postgres=pg(archive_mode="off", archive_command_set=False))),
        Severity.WARNING,
        "archive_mode is off",
    ),
    (
        "a_single_etcd_member_is_critical",
        "etcd_members",
        facts(etcd=etcd(members=(EtcdMember("etcd1", ("http://192.0.2.21:2379",)),))),
        Severity.CRITICAL,
        "etcd has 1 member(s)",
    ),
    (
        "an_agent_knowing_one_endpoint_is_a_warning",
        "etcd_members",
        facts(nodes={**leader_node(), "node2": node("node2", etcd_endpoints=("e1:2379",))}),
        Severity.WARNING,
        "node2 know(s) a single etcd endpoint",
    ),
    (
        "etcd_on_a_database_host_is_a_warning",
        "etcd_on_database_hosts",
        facts(etcd=etcd(members=(EtcdMember("etcd1", ("http://192.0.2.11:2379",)), *OTHER_ETCD))),
        Severity.WARNING,
        "etcd etcd1 at 192.0.2.11, the host of node1",
    ),
    (
        "clocks_apart_by_seconds_are_a_warning",
        "clocks",
        facts(nodes={**leader_node(), "node2": node("node2", clock_offset=3.0)}),
        Severity.WARNING,
        "node2's clock is at least",
    ),
    (
        "clocks_apart_by_a_switchover_timeout_are_critical",
        "clocks",
        facts(nodes={**leader_node(), "node3": node("node3", clock_offset=-20.0)}),
        Severity.CRITICAL,
        "ahead of node3's",
    ),
    (
        "an_api_without_auth_on_the_network_is_critical",
        "api_protection",
        facts(nodes=leader_node(api_auth=False)),
        Severity.CRITICAL,
        "takes operations without credentials",
    ),
    (
        "plain_http_on_the_network_is_a_warning",
        "api_protection",
        facts(nodes={n: node(n, api_tls=False) for n in NAMES}),
        Severity.WARNING,
        "speaks plain HTTP",
    ),
    (
        "plain_http_on_loopback_is_worth_knowing",
        "api_protection",
        facts(nodes={n: node(n, api_tls=False, api_loopback=True) for n in NAMES}),
        Severity.INFO,
        "loopback only",
    ),
    (
        "pending_restarts_are_a_warning",
        "pending_restart",
        with_members(
            replace(
                b.primary_member("node1"),
                pending_restart=True,
                pending_restart_reason={"max_connections": ("50", "60")},
            ),
            b.member("node2"),
        ),
        Severity.WARNING,
        "1 member(s) run with settings",
    ),
    (
        "a_paused_cluster_is_a_warning",
        "paused",
        facts(view=b.view(config=b.config(pause=True))),
        Severity.WARNING,
        "the cluster is paused",
    ),
    (
        "failsafe_active_is_critical",
        "failsafe",
        facts(nodes=leader_node(failsafe_active=True)),
        Severity.CRITICAL,
        "failsafe mode is active",
    ),
    (
        "failsafe_mode_off_is_worth_knowing",
        "failsafe",
        facts(view=b.view()),
        Severity.INFO,
        "failsafe_mode is off",
    ),
    (
        "a_leader_without_its_automatic_watchdog_is_a_warning",
        "watchdog",
        facts(nodes=leader_node(watchdog_armed=False, watchdog_problem="cannot open /dev/watchdog")),
        Severity.WARNING,
        "node1 leads without its watchdog",
    ),
    (
        "no_watchdog_anywhere_is_worth_knowing",
        "watchdog",
        facts(nodes={n: node(n, watchdog_mode="off", watchdog_armed=False) for n in NAMES}),
        Severity.INFO,
        "no watchdog",
    ),
    (
        "a_stopped_fence_on_the_leader_is_critical",
        "fence",
        facts(nodes=leader_node(fence_state="stopped")),
        Severity.CRITICAL,
        "the fence is not working on node1",
    ),
    (
        "no_fence_on_a_standby_is_a_warning",
        "fence",
        facts(nodes={**leader_node(), "node2": node("node2", fence_state="absent", fence_pid=None)}),
        Severity.WARNING,
        "node2: no fence process runs",
    ),
    (
        "an_unreachable_leader_agent_is_critical",
        "agents_reachable",
        facts(nodes={n: node(n) for n in ("node2", "node3")}, unreachable={"node1": "connection refused"}),
        Severity.CRITICAL,
        "no diagnostics from node1",
    ),
    (
        "etcd_unreadable_is_critical",
        "etcd_reachable",
        facts(view=None, view_error="etcd unreachable at e1:2379"),
        Severity.CRITICAL,
        "cannot be read from etcd",
    ),
]


@pytest.mark.parametrize(
    ("check", "situation", "severity", "words"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_each_situation(check: str, situation: Facts, severity: Severity, words: str) -> None:
    finding = worst(check, situation)
    assert finding.severity is severity, finding
    text = " ".join((finding.title, *finding.evidence))
    assert words in text, finding
    if severity >= Severity.WARNING:
        assert finding.fix, "a warning or worse says what to do"


def test_config_errors_name_each_setting() -> None:
    errors = (ParameterError("work_mem", "'lots'", 'invalid value for parameter "work_mem"'),)
    situation = with_members(replace(b.member("node2"), config_errors=errors), b.primary_member("node1"))
    finding = worst("config_errors", situation)
    assert finding.severity is Severity.WARNING
    assert "node2: work_mem = 'lots': invalid value" in finding.evidence[0]


def test_the_exit_code_follows_the_worst_finding() -> None:
    assert examine(facts(view=b.view(config=b.config(pause=True, failsafe_mode=True)))).exit_code == 1
    assert examine(facts(nodes=leader_node(fence_state="stopped"))).exit_code == 2


def test_a_check_that_breaks_reports_itself_and_the_others_still_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_: Facts) -> list[Finding]:
        raise RuntimeError("boom")

    monkeypatch.setitem(CHECKS, "clocks", broken)
    report = examine(facts())
    [finding] = [f for f in report.findings if f.check == "clocks"]
    assert finding.severity is Severity.WARNING and "boom" in finding.title
    assert len({f.check for f in report.findings}) == len(CHECKS)


def test_without_etcd_the_view_checks_say_so_and_the_node_checks_still_run() -> None:
    report = examine(facts(view=None, view_error="etcd unreachable", nodes=leader_node(failsafe_active=True)))
    checks = {f.check: f for f in report.findings}
    assert checks["etcd_reachable"].severity is Severity.CRITICAL
    assert checks["failsafe"].severity is Severity.CRITICAL
    assert checks["leader"].severity is Severity.INFO
    assert report.exit_code == 2


def test_the_role_of_a_standby_leader_does_not_confuse_the_data_loss_window() -> None:
    members = (replace(b.primary_member("node1"), role=Role.REPLICA), b.member("node2"))
    assert run("data_loss_window", with_members(*members))


def test_operations_md_lists_every_check() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    missing = [name for name in CHECKS if f"| `{name}` |" not in text]
    assert not missing, f"docs/operations.md does not list: {missing}"
