"""Long PostgreSQL commands (pg_basebackup, pg_rewind) as ``run_streaming`` runs them: stderr lines
handed on as they come, and a bulk copy run below the agent's CPU priority, so that a node short of
CPU answers its health checks before it copies. A real child process (a shell script standing in
for the PostgreSQL binary), no PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgwarden.model.node import Address, Credentials, PostgresSettings
from pgwarden.postgres.commands import BULK_COPY_NICE, PostgresError, run_streaming

# Says its niceness after a moment (the agent lowers it right after the start), then a progress
# line ending in a carriage return, as pg_basebackup --progress writes them.
SCRIPT = """#!/bin/sh
sleep 0.5
nice >&2
printf '1024/2048 kB (50%%), 0/1 tablespace\\r' >&2
exit "${EXIT_CODE:-0}"
"""


def settings(bin_dir: Path) -> PostgresSettings:
    return PostgresSettings(
        listen=Address("127.0.0.1", 5432),
        connect_address=Address("127.0.0.1", 5432),
        data_dir=str(bin_dir / "data"),
        bin_dir=str(bin_dir),
        superuser=Credentials("postgres", "x"),
        replication=Credentials("replicator", "y"),
    )


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    script = tmp_path / "copy"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    return tmp_path


def lines_of(bin_dir: Path, nice: int, code: int = 0) -> list[str]:
    lines: list[str] = []
    run_streaming(
        settings(bin_dir),
        "copy",
        [],
        timeout=30,
        on_line=lines.append,
        env={"EXIT_CODE": str(code)},
        nice=nice,
    )
    return lines


def test_a_bulk_copy_runs_below_the_agent(bin_dir: Path) -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    lines = lines_of(bin_dir, BULK_COPY_NICE)
    assert lines == [str(min(19, own + BULK_COPY_NICE)), "1024/2048 kB (50%), 0/1 tablespace"]


def test_without_nice_the_command_runs_as_the_agent(bin_dir: Path) -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert lines_of(bin_dir, 0)[0] == str(own)


def test_a_failed_copy_raises_with_its_last_lines(bin_dir: Path) -> None:
    with pytest.raises(PostgresError, match="exit code 3") as failed:
        lines_of(bin_dir, BULK_COPY_NICE, code=3)
    assert "1024/2048 kB (50%)" in failed.value.stderr_tail
