"""Which PostgreSQL parameters a config may set: the ones pgwarden owns, and why; the directives refused.

One home for these facts: the renderer (postgres/settings.py) leaves these names out of
pgwarden.conf, the validator (config/parameters.py) refuses them in every config, and
docs/configuration.md lists them (a test keeps the three in step).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

ParamValue = str | int | float | bool

# postgresql.conf directives that pull in other files: a value would be read as a file to include,
# after pgwarden's own settings, so any file on the node could override (or break) them.
INCLUDE_DIRECTIVES = frozenset({"include", "include_dir", "include_if_exists"})

# A name as postgresql.conf's lexer reads it (guc-file.l: ID, or ID.ID for a custom setting of an
# extension such as pg_stat_statements.max); each part at most 63 characters, which every real
# setting fits and which bounds what a stray etcd write can make pgwarden render.
GUC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?")

# wal_level below replica cannot stream WAL to standbys.
WAL_LEVELS = ("replica", "logical")


@dataclass(frozen=True, slots=True)
class Owned:
    """A parameter pgwarden sets itself: why, and what to change instead."""

    why: str
    instead: str


_FOLLOW = Owned(
    "pgwarden points every standby at its upstream (the leader, or its replicatefrom relay) "
    "and its slot there, and rewrites it at each failover",
    "nothing: the agents keep it right",
)
_NODE_LISTEN = Owned(
    "the node's address is part of its identity in etcd, HAProxy's checks and the other nodes' "
    "primary_conninfo",
    "set postgresql.listen (and connect_address) in the node config",
)
_LAYOUT = Owned(
    "pgwarden writes pgwarden.conf and pg_hba.conf in the data directory and reads them back",
    "set postgresql.data_dir in the node config",
)
_RECOVERY_TARGET = Owned(
    "a recovery target stops a standby's replay at a fixed point, so it falls behind and can no "
    "longer take over",
    "restore to a point in time with a separate PITR procedure, not in a running HA cluster",
)

OWNED: Mapping[str, Owned] = {
    "listen_addresses": _NODE_LISTEN,
    "port": _NODE_LISTEN,
    "unix_socket_directories": Owned(
        "the agent probes PostgreSQL through this socket directory",
        "set postgresql.socket_dir in the node config",
    ),
    "hba_file": Owned(
        "pgwarden renders pg_hba.conf (its own replication and superuser lines, then yours)",
        "add lines with postgresql.pg_hba in the node config",
    ),
    "config_file": _LAYOUT,
    "data_directory": _LAYOUT,
    "hot_standby": Owned(
        "the agent must connect to a standby to learn its WAL position and timeline",
        "nothing: standbys always accept read-only connections",
    ),
    "primary_conninfo": _FOLLOW,
    "primary_slot_name": _FOLLOW,
    "promote_trigger_file": Owned(
        "a trigger file would promote a standby behind the leader key's back: two primaries",
        "use pgwarden switchover or failover",
    ),
    "synchronous_standby_names": Owned(
        "the leader sets it from the synchronous set it publishes in etcd (safety rule 4)",
        "set synchronous_mode and synchronous_node_count in the dynamic config",
    ),
    "recovery_target_timeline": Owned(
        "standbys must follow the latest timeline to keep up across failovers",
        "nothing: pgwarden sets it to latest",
    ),
    "recovery_target": _RECOVERY_TARGET,
    "recovery_target_action": _RECOVERY_TARGET,
    "recovery_target_inclusive": _RECOVERY_TARGET,
    "recovery_target_lsn": _RECOVERY_TARGET,
    "recovery_target_name": _RECOVERY_TARGET,
    "recovery_target_time": _RECOVERY_TARGET,
    "recovery_target_xid": _RECOVERY_TARGET,
}


def owned(name: str) -> Owned | None:
    """Why pgwarden owns ``name`` (any case), or None when a config may set it."""
    return OWNED.get(name.lower())


@dataclass(frozen=True, slots=True)
class ParameterError:
    """A setting PostgreSQL refuses on this node: left out of pgwarden.conf by the trial check, or
    reported by pg_file_settings after a reload (``GET /patroni`` ``config_errors``)."""

    name: str
    value: str  # as rendered into postgresql.conf
    error: str  # PostgreSQL's message, and what it means for this node
