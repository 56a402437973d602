"""The deadline file between the agent and its fence: what is a deadline, what is garbage, and what
a read racing a write may see."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pgwarden.fence.channel import (
    RECORD_SIZE,
    BadRecord,
    InPlaceWriter,
    TornRecord,
    parse_deadline,
    read_deadline,
    render,
    render_checked,
    write_deadline,
)

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


# --- version 2: written in place, checked ------------------------------------------------------


def test_an_in_place_record_reads_back_and_keeps_one_file_of_one_size(tmp_path: Path) -> None:
    path = tmp_path / "deadline"
    writer = InPlaceWriter(path, BOOT)
    try:
        for deadline in (1003.25, 1003.5, None, 1004.0009765625):
            writer.write(deadline)
            record = read_deadline(path, BOOT, NOW)
            assert record is not None and record.deadline == deadline and record.writer == os.getpid()
            assert path.stat().st_size == RECORD_SIZE
        assert [p.name for p in tmp_path.iterdir()] == ["deadline"], "no temporary file left behind"
    finally:
        writer.close()


def test_in_place_writes_go_to_the_same_file_after_the_first(tmp_path: Path) -> None:
    path = tmp_path / "deadline"
    writer = InPlaceWriter(path, BOOT)
    try:
        writer.write(1003.0)
        first = path.stat().st_ino
        writer.write(1003.25)
        assert path.stat().st_ino == first, "a pwrite into the file, not a new file renamed over it"
    finally:
        writer.close()


def test_a_file_replaced_under_the_writer_gets_the_next_record(tmp_path: Path) -> None:
    # Another writer's rename (or the directory removed and made again) leaves the writer's
    # descriptor on a file nobody reads: it must notice and write where the fence reads.
    path = tmp_path / "deadline"
    writer = InPlaceWriter(path, BOOT)
    try:
        writer.write(1003.0)
        write_deadline(path, 1002.0, BOOT)
        writer.write(1004.0)
        record = read_deadline(path, BOOT, NOW)
        assert record is not None and record.deadline == 1004.0
        path.unlink()
        writer.write(1005.0)
        record = read_deadline(path, BOOT, NOW)
        assert record is not None and record.deadline == 1005.0
    finally:
        writer.close()


def _splices(old: bytes, new: bytes) -> list[bytes]:
    """What a read racing a write may return: the new record's first bytes, the old one's rest."""
    assert len(old) == len(new)
    return [new[:i] + old[i:] for i in range(1, len(old))]


def test_a_torn_version_1_record_can_read_as_a_later_deadline() -> None:
    # Why version 1 is only ever replaced whole: its bytes mixed give a deadline nobody wrote.
    old, new = render(1234.867, BOOT, 42).encode(), render(1235.021, BOOT, 42).encode()
    later = []
    for text in _splices(old, new):
        try:
            record = parse_deadline(text, BOOT, NOW)
        except BadRecord:
            continue
        if record is not None and record.deadline is not None and record.deadline > 1235.021:
            later.append(record.deadline)
    assert 1235.867 in later


@pytest.mark.parametrize(
    ("old", "new"),
    [(1234.867, 1235.021), (1003.0, 1003.25), (1003.25, None), (None, 1999.0009765625), (1009.5, 1010.0)],
)
def test_a_torn_version_2_record_is_never_taken_for_another_deadline(
    old: float | None, new: float | None
) -> None:
    before, after = render_checked(old, BOOT, 4242), render_checked(new, BOOT, 4242)
    torn = 0
    for text in _splices(before, after):
        try:
            record = parse_deadline(text, BOOT, NOW)
        except TornRecord:
            torn += 1
            continue
        assert record is not None and record.deadline in (old, new), f"{text!r} read as {record}"
    assert torn > 0, "the splices that mix the two records are refused"


def test_a_damaged_version_2_record_is_refused_after_reading_it_again(tmp_path: Path) -> None:
    path = tmp_path / "deadline"
    record = bytearray(render_checked(1003.0, BOOT, 42))
    record[record.index(b"1003") + 1] = ord("9")  # 1903.0: later, and within a day
    path.write_bytes(bytes(record))
    with pytest.raises(TornRecord):
        read_deadline(path, BOOT, NOW)


def _write_rising(path: Path, stop_at: float, count: Any) -> None:
    """In another process: deadlines 1000 + k/1024 for k = 0, 1, ... until ``stop_at``."""
    writer = InPlaceWriter(path, BOOT)
    k = 0
    while time.monotonic() < stop_at:
        writer.write(1000.0 + k / 1024)
        k += 1
    count.value = k
    writer.close()


def test_a_reader_racing_a_writer_reads_only_written_deadlines_never_going_back(tmp_path: Path) -> None:
    path = tmp_path / "deadline"
    InPlaceWriter(path, BOOT).write(1000.0)
    ctx = multiprocessing.get_context("fork")
    count = ctx.Value("q", 0)
    writer = ctx.Process(target=_write_rising, args=(path, time.monotonic() + 1.5, count))
    writer.start()
    seen: list[float] = []
    refused = 0
    try:
        while writer.is_alive():
            try:
                record = read_deadline(path, BOOT, NOW)
            except TornRecord:
                refused += 1  # read three times, torn each time: possible, and safe (kept)
                continue
            assert record is not None and record.deadline is not None
            seen.append(record.deadline)
    finally:
        writer.join(10)
        if writer.is_alive():
            writer.kill()
            writer.join()
    assert count.value > 1000 and len(seen) > 1000, (count.value, len(seen))
    steps = [(d - 1000.0) * 1024 for d in seen]
    assert all(s == int(s) and 0 <= s < count.value for s in steps), "only deadlines the writer wrote"
    assert all(a <= b for a, b in itertools.pairwise(seen)), "never an older deadline after a newer one"
    assert refused <= len(seen) // 100


def test_the_fence_does_not_load_openssl_for_its_check() -> None:
    # hashlib imports _hashlib, which maps libcrypto: +3.6 MB of the fence's ~14 MB (measured).
    code = (
        "import sys, pgwarden.fence.__main__;"
        " print(sorted({'hashlib', '_hashlib', 'ssl'} & sys.modules.keys()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
