"""What ``pgwarden doctor`` needs to know of the local PostgreSQL, read over SQL on demand.

For ``GET /diagnostics``, not the loop's probe: these facts change rarely and matter only when
someone asks, so they are read when asked, in one bounded session, and never slow a cycle.
Everything comes back as JSON-ready values (sizes in bytes, lags in seconds); a server that does
not answer gives the reason instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pgwarden.model.node import PostgresSettings
from pgwarden.postgres import sql
from pgwarden.postgres.commands import PostgresError

TIMEOUT = 3.0

# The settings a check reads, as PostgreSQL shows them, and the sizes in bytes.
SETTINGS_SQL = """
SELECT current_setting('data_checksums'), current_setting('wal_log_hints'),
       current_setting('archive_mode'),
       current_setting('archive_command') NOT IN ('', '(disabled)')
           OR current_setting('archive_library') <> '',
       current_setting('max_slot_wal_keep_size'),
       pg_size_bytes(current_setting('max_slot_wal_keep_size')),
       pg_size_bytes(current_setting('wal_keep_size')),
       current_setting('synchronous_commit'), pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()::text
            ELSE pg_current_wal_lsn()::text END,
       extract(epoch FROM now())::float8
"""

# On a primary: each WAL sender, with PostgreSQL's own lag measurements (NULL when idle).
REPLICATION_SQL = """
SELECT application_name, state, sync_state, sent_lsn::text, flush_lsn::text, replay_lsn::text,
       extract(epoch FROM write_lag)::float8, extract(epoch FROM flush_lag)::float8,
       extract(epoch FROM replay_lag)::float8, extract(epoch FROM now() - reply_time)::float8
FROM pg_stat_replication ORDER BY application_name
"""

# Every slot: how much WAL it keeps, and what PostgreSQL says of it against max_slot_wal_keep_size
# (wal_status reserved/extended/unreserved/lost; safe_wal_size: bytes left before it is lost).
SLOTS_SQL = """
SELECT slot_name::text, slot_type, active, restart_lsn::text, wal_status, safe_wal_size,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                            ELSE pg_current_wal_lsn() END, restart_lsn)::bigint
FROM pg_replication_slots ORDER BY slot_name
"""

_SETTING_NAMES = (
    "data_checksums",
    "wal_log_hints",
    "archive_mode",
    "archive_command_set",
    "max_slot_wal_keep_size",
    "max_slot_wal_keep_size_bytes",
    "wal_keep_size_bytes",
    "synchronous_commit",
    "in_recovery",
    "lsn",
    "now",
)
_REPLICATION_NAMES = (
    "application_name",
    "state",
    "sync_state",
    "sent_lsn",
    "flush_lsn",
    "replay_lsn",
    "write_lag_s",
    "flush_lag_s",
    "replay_lag_s",
    "reply_age_s",
)
_SLOT_NAMES = ("name", "type", "active", "restart_lsn", "wal_status", "safe_wal_size", "retained_bytes")


def disk(path: Path) -> dict[str, Any]:
    """Free and total bytes of the filesystem holding ``path`` (pg_wal: a symlink is followed)."""
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        return {"path": str(path), "error": str(exc)}
    return {"path": str(path), "free_bytes": usage.free, "total_bytes": usage.total}


def postgres_facts(settings: PostgresSettings, timeout: float = TIMEOUT) -> dict[str, Any]:
    """``{"answered": True, "settings", "replication", "slots", "wal_disk"}``, or
    ``{"answered": False, "error"}`` (with ``wal_disk`` still) when PostgreSQL did not answer."""
    facts: dict[str, Any] = {"wal_disk": disk(Path(settings.data_dir) / "pg_wal")}
    try:
        with sql.local_session(settings, timeout) as conn:
            row = conn.execute(SETTINGS_SQL).fetchone()
            replication = conn.execute(REPLICATION_SQL).fetchall()
            slots = conn.execute(SLOTS_SQL).fetchall()
    except PostgresError as exc:
        return {**facts, "answered": False, "error": str(exc)}
    assert row is not None
    return {
        **facts,
        "answered": True,
        "settings": dict(zip(_SETTING_NAMES, row, strict=True)),
        "replication": [dict(zip(_REPLICATION_NAMES, r, strict=True)) for r in replication],
        "slots": [dict(zip(_SLOT_NAMES, r, strict=True)) for r in slots],
    }
