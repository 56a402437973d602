"""The parameter check against PostgreSQL 15's own binaries: what it refuses, with which message, how fast.

No server runs: ``postgres -C`` reads a scratch file as a start would and exits.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

import pytest

from pgwarden.model.node import Address, Credentials, PostgresSettings
from pgwarden.postgres.parameter_check import check_parameters
from tests.support.pg import BIN_DIR, ensure_os_user, postgres_available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not postgres_available(), reason="needs root and PostgreSQL 15 binaries"),
]

LOOPBACK = Address("127.0.0.1", 5432)


@pytest.fixture(scope="module")
def settings() -> PostgresSettings:
    ensure_os_user("pgwtest1")
    return PostgresSettings(
        listen=LOOPBACK,
        connect_address=LOOPBACK,
        data_dir="/nonexistent/data",  # the check needs no data directory
        bin_dir=BIN_DIR,
        superuser=Credentials("postgres"),
        replication=Credentials("replicator"),
        run_as="pgwtest1",
    )


ACCEPTED: dict[str, str | int | float | bool] = {
    "work_mem": "8MB",
    "maintenance_work_mem": "64 MB",  # PostgreSQL's units, with a space
    "temp_buffers": 1024,  # a bare number in the setting's unit
    "random_page_cost": 1.5,
    "jit": False,
    "log_min_messages": "WARNING",  # enum values in any case
    "shared_buffers": "256MB",  # restart-only settings are judged too
    "TimeZone": "Europe/Paris",
    "pg_stat_statements.max": "anything",  # an extension's setting: a placeholder, unchecked
    "search_path": '"$user", public',
}


def test_values_postgresql_accepts_pass(settings: PostgresSettings) -> None:
    check = check_parameters(settings, ACCEPTED)
    assert check.skipped is None and check.problems == {}


def test_values_postgresql_refuses_are_named_with_its_message(settings: PostgresSettings) -> None:
    check = check_parameters(
        settings,
        {
            **ACCEPTED,
            "work_mem": "lots",
            "max_connections": -5,
            "shared_buffers": "8 parsecs",
            "wal_level": "maximal",
            "log_min_messages": "loud",
            "no_such_setting": 1,
            "work_mem_typo": "8MB",
            "max_wal_size": "8mb",  # units are case-sensitive
        },
    )
    assert check.skipped is None
    assert check.problems == {
        "work_mem": 'invalid value for parameter "work_mem": "lots"',
        "max_connections": '-5 is outside the valid range for parameter "max_connections" (1 .. 262143)',
        "shared_buffers": 'invalid value for parameter "shared_buffers": "8 parsecs" '
        '(Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".)',
        "wal_level": 'invalid value for parameter "wal_level": "maximal" '
        "(Available values: minimal, replica, logical.)",
        "log_min_messages": 'invalid value for parameter "log_min_messages": "loud" (Available values: '
        "debug5, debug4, debug3, debug2, debug1, info, notice, warning, error, log, fatal, panic.)",
        "no_such_setting": 'unrecognized configuration parameter "no_such_setting"',
        "work_mem_typo": 'unrecognized configuration parameter "work_mem_typo"',
        "max_wal_size": 'invalid value for parameter "max_wal_size": "8mb" '
        '(Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".)',
    }


def test_without_the_binaries_the_check_is_skipped_and_says_why(settings: PostgresSettings) -> None:
    check = check_parameters(replace(settings, bin_dir="/nonexistent/bin"), {"work_mem": "lots"})
    assert check.problems == {}
    assert check.skipped is not None and check.skipped.startswith("postgres could not be started")


def test_a_check_takes_milliseconds(settings: PostgresSettings) -> None:
    """The cost of one config write's check, and of one re-render on every agent (printed for the
    report; the bound only catches a check gone pathological on a loaded machine)."""
    times = []
    for _ in range(15):
        started = time.perf_counter()
        check_parameters(settings, ACCEPTED)
        times.append(time.perf_counter() - started)
    median, worst = statistics.median(times) * 1000, max(times) * 1000
    print(f"parameter check of {len(ACCEPTED)} settings: median {median:.1f} ms, max {worst:.1f} ms")
    assert median < 2000
