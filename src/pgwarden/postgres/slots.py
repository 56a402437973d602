"""Physical replication slots: creating, dropping and listing them over SQL (named by ``slot_name``)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from pgwarden.model.cluster import slot_name
from pgwarden.model.lsn import Lsn

__all__ = ["SlotInfo", "advance_slot", "create_slot", "drop_slot", "list_slots", "slot_name"]

# On a standby (cascading) the furthest WAL held is the received position, not the insert one.
LIST_SQL = """
SELECT slot_name::text, active, restart_lsn::text,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                            ELSE pg_current_wal_lsn() END, restart_lsn)::bigint
FROM pg_replication_slots
WHERE slot_type = 'physical'
ORDER BY slot_name
"""
# immediately_reserve: the slot holds WAL from now on, before its standby first connects.
CREATE_SQL = """
SELECT pg_create_physical_replication_slot(%(name)s, true)
WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = %(name)s)
"""
# Only forward and only while no walsender uses it (PostgreSQL refuses either); PostgreSQL stops
# at its own flushed (or, on a standby, replayed) position.
ADVANCE_SQL = """
SELECT pg_replication_slot_advance(slot_name, %(lsn)s::pg_lsn)
FROM pg_replication_slots
WHERE slot_name = %(name)s AND slot_type = 'physical' AND NOT active AND restart_lsn < %(lsn)s::pg_lsn
"""
DROP_SQL = "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s"


@dataclass(frozen=True, slots=True)
class SlotInfo:
    name: str
    active: bool
    restart_lsn: Lsn | None  # None until the slot has reserved WAL
    wal_retained_bytes: int | None  # WAL kept on disk for this slot


def list_slots(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, SlotInfo]:
    slots: dict[str, SlotInfo] = {}
    for name, active, restart_lsn, retained in conn.execute(LIST_SQL).fetchall():
        slots[str(name)] = SlotInfo(
            name=str(name),
            active=bool(active),
            restart_lsn=Lsn.parse(str(restart_lsn)) if restart_lsn else None,
            wal_retained_bytes=retained if isinstance(retained, int) else None,
        )
    return slots


def create_slot(conn: psycopg.Connection[tuple[object, ...]], name: str) -> bool:
    """Create the slot unless it exists; returns whether it was created."""
    try:
        return conn.execute(CREATE_SQL, {"name": name}).fetchone() is not None
    except psycopg.errors.DuplicateObject:
        return False  # created concurrently: the goal is met


def drop_slot(conn: psycopg.Connection[tuple[object, ...]], name: str) -> bool:
    """Drop the slot if it exists; returns whether it was dropped. An active slot raises."""
    return conn.execute(DROP_SQL, (name,)).fetchone() is not None


def advance_slot(conn: psycopg.Connection[tuple[object, ...]], name: str, position: Lsn) -> bool:
    """Move an inactive slot's restart_lsn up to ``position``; returns whether it moved."""
    try:
        return conn.execute(ADVANCE_SQL, {"name": name, "lsn": str(position)}).fetchone() is not None
    except psycopg.errors.ObjectInUse:
        return False  # its standby connected meanwhile: the slot moves with it now
