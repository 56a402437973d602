"""The crash split (bench/crash_timeline.py): segments between the instants, named as the report's rows."""

from __future__ import annotations

import pytest

from bench.crash_timeline import Timeline
from bench.report import BY_KEY, CRASH_SPLIT


def _timeline(**changes: float | None) -> Timeline:
    instants: dict[str, float | None] = {
        "noticed": 0.05, "started": 0.3, "accepting": 1.0, "primary_ok": 1.05,
        "router_down": 0.4, "router_up": 1.1, "acked": 1.4,
    }  # fmt: skip
    instants.update(changes)
    acked = instants.pop("acked")
    assert acked is not None
    return Timeline(**instants, acked=acked, failed_attempts=3, longest_attempt=0.07)


def test_each_segment_runs_from_one_instant_to_the_next() -> None:
    split = _timeline().segments()
    assert split == pytest.approx({
        "crash_noticed": 0.05, "crash_started": 0.3, "crash_recovery": 0.7, "crash_agent_ok": 0.05,
        "crash_router_up": 0.05, "crash_client": 0.3, "crash_longest_attempt": 0.07,
    })  # fmt: skip
    assert set(split) == set(CRASH_SPLIT) and set(split) <= set(BY_KEY)


def test_a_server_haproxy_never_marked_down_has_no_router_segment() -> None:
    # The client could connect as soon as PostgreSQL accepted: its segment starts there.
    split = _timeline(router_down=None, router_up=0.9).segments()
    assert "crash_router_up" not in split
    assert split["crash_client"] == pytest.approx(0.4)


def test_an_instant_not_seen_leaves_its_segments_out() -> None:
    split = _timeline(noticed=None, started=None).segments()  # Patroni: no /events; no start time
    assert "crash_noticed" not in split and "crash_started" not in split
    assert "crash_recovery" not in split
    assert split["crash_client"] == pytest.approx(0.3)
