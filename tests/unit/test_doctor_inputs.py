"""doctor's inputs: an HAProxy configuration's check settings, a node's /diagnostics parsed at the edge."""

from __future__ import annotations

import math

import pytest

from pgwarden.doctor.facts import node_facts
from pgwarden.doctor.haproxy import HaproxyConfigError, parse, seconds
from pgwarden.router.haproxy import Backend, RouterPorts, render


def test_pgwardens_own_haproxy_config_reads_back_as_rendered() -> None:
    text = render([Backend("node1", "127.0.0.11", 5432, "127.0.0.11", 8008)], RouterPorts())
    checks = parse(text, "haproxy.cfg")
    assert (checks.inter, checks.fastinter, checks.downinter, checks.rise, checks.fall) == (
        0.5,
        0.1,
        0.1,
        1,
        2,
    )
    assert checks.timeout_check == 1.0
    assert math.isclose(checks.marks_up_within, 0.1)


def test_defaults_then_section_then_the_server_line_win_in_that_order() -> None:
    text = """
global
    maxconn 100
defaults
    timeout check 3s
    default-server inter 4s rise 3   # the site's habit
listen replicas
    option httpchk OPTIONS /replica
    default-server inter 1s
    server a 192.0.2.1:5432 check
backend writes
    option httpchk GET /master
    default-server fall 4
    server a 192.0.2.1:5432 check inter 2500 fastinter 1s port 8008
"""
    checks = parse(text, "site.cfg")
    assert (checks.inter, checks.fastinter, checks.downinter, checks.rise, checks.fall) == (
        2.5,
        1.0,
        None,
        3,
        4,
    )
    assert checks.timeout_check == 3.0
    assert checks.marks_up_within == 2.5 + 2 * 1.0


def test_a_config_that_routes_no_writes_by_an_agent_check_is_refused() -> None:
    with pytest.raises(HaproxyConfigError, match="no listen or backend section checking an agent's /primary"):
        parse("listen x\n    option httpchk GET /replica\n", "x.cfg")


@pytest.mark.parametrize(("text", "expected"), [("500ms", 0.5), ("2s", 2.0), ("250", 0.25), ("1m", 60.0)])
def test_haproxy_times(text: str, expected: float) -> None:
    assert seconds(text) == expected


def test_a_diagnostics_answer_with_odd_fields_reads_as_unknown_not_as_a_failure() -> None:
    doc = {
        "format": 1,
        "time": 1000.5,
        "api": {"auth": "yes", "tls": False, "loopback": True, "listen": "127.0.0.1:8008"},
        "etcd": {"endpoints": ["a:2379"], "reads": {"count": 3, "p50_ms": 1, "p99_ms": 2, "max_ms": True}},
        "fence": {"pid": "12", "state": "stopped"},
        "holds_leader_key": True,
        "postgres": {
            "answered": True,
            "wal_disk": {"free_bytes": 10, "total_bytes": 20, "path": "/x"},
            "settings": {
                "data_checksums": "off",
                "wal_log_hints": "maybe",
                "max_slot_wal_keep_size_bytes": -1,
            },
            "slots": [
                {"name": "node2", "retained_bytes": 5, "wal_status": "lost", "type": "physical"},
                "junk",
            ],
            "replication": [{"application_name": "node2", "flush_lsn": "not an lsn", "replay_lag_s": 0.5}],
        },
        "behind": {"node2": {"seconds": 3, "at_least": True}, "node3": "junk"},
    }
    facts = node_facts("node1", doc, sent=1000.0, received=1000.2)
    assert facts.api_auth is None and facts.api_tls is False and facts.api_loopback is True
    assert facts.etcd_reads is None  # max_ms true is no number
    assert facts.fence_pid is None and facts.fence_state == "stopped"
    assert facts.postgres.data_checksums is False and facts.postgres.wal_log_hints is None
    assert facts.postgres.max_slot_wal_keep_bytes == -1
    [slot] = facts.postgres.slots
    assert (slot.name, slot.retained_bytes, slot.wal_status) == ("node2", 5, "lost")
    assert facts.postgres.senders[0].flush_lsn is None
    assert set(facts.behind) == {"node2"} and facts.behind["node2"].at_least
    assert math.isclose(facts.clock_offset, 0.4) and math.isclose(facts.clock_uncertainty, 0.1)


def test_a_node_that_does_not_tell_its_time_has_no_clock_offset_to_judge() -> None:
    facts = node_facts("node1", {"format": 1}, sent=1.0, received=2.0)
    assert facts.clock_uncertainty == math.inf
    assert not facts.postgres.answered
