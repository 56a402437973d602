"""The deadline file between the agent and its fence: what is a deadline, and what is garbage."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgwarden.fence.channel import BadRecord, parse_deadline, read_deadline, render, write_deadline

BOOT = "6f0c1d2e-boot"
NOW = 1000.0


def test_a_written_deadline_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "deadline"
    write_deadline(path, 1003.25, BOOT)
    record = read_deadline(path, BOOT, NOW)
    assert record is not None and record.deadline == 1003.25 and record.writer > 0
    assert [p.name for p in tmp_path.iterdir()] == ["deadline"], "no temporary file left behind"


def test_a_release_reads_back_as_no_deadline(tmp_path: Path) -> None:
    path = tmp_path / "deadline"
    write_deadline(path, None, BOOT)
    record = read_deadline(path, BOOT, NOW)
    assert record is not None and record.deadline is None


def test_no_file_is_no_record(tmp_path: Path) -> None:
    assert read_deadline(tmp_path / "deadline", BOOT, NOW) is None


def test_a_record_of_another_boot_is_no_record() -> None:
    # CLOCK_MONOTONIC restarts at boot: yesterday's deadline could lie in today's future.
    assert parse_deadline(render(NOW + 3, "an-earlier-boot", 42), BOOT, NOW) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[1003.0]",
        '{"version": 2, "boot_id": "6f0c1d2e-boot", "deadline": 1003.0, "writer": 42}',
        '{"version": 1, "boot_id": "6f0c1d2e-boot", "deadline": true, "writer": 42}',
        '{"version": 1, "boot_id": "6f0c1d2e-boot", "deadline": "1003", "writer": 42}',
        '{"version": 1, "boot_id": "6f0c1d2e-boot", "deadline": NaN, "writer": 42}',
        '{"version": 1, "boot_id": "6f0c1d2e-boot", "deadline": Infinity, "writer": 42}',
        '{"version": 1, "boot_id": "6f0c1d2e-boot", "deadline": -5, "writer": 42}',
        '{"version": 1, "boot_id": "6f0c1d2e-boot", "deadline": 1e300, "writer": 42}',
        '{"version": 1, "boot_id": "6f0c1d2e-boot", "deadline": 1003.0, "writer": "agent"}',
        '{"version": 1, "boot_id": "6f0c1d2e-boot", "deadline": 1003.0}',
    ],
    ids=[
        "empty",
        "not_json",
        "not_an_object",
        "unknown_version",
        "boolean_deadline",
        "text_deadline",
        "nan",
        "infinity",
        "negative",
        "beyond_a_day",
        "writer_not_a_pid",
        "no_writer",
    ],
)
def test_garbage_is_rejected_with_a_reason(text: str) -> None:
    with pytest.raises(BadRecord) as caught:
        parse_deadline(text, BOOT, NOW)
    assert str(caught.value)
