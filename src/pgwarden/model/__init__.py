"""Frozen values shared by every layer; standard library only."""

from pgwarden.model.cluster import (
    ClusterView,
    DynamicConfig,
    HistoryEntry,
    Leader,
    LeaderStatus,
    Member,
    PgState,
    Role,
    SwitchoverIntent,
    SyncFallback,
    SyncMode,
    SyncState,
    Tags,
)
from pgwarden.model.local import ControlState, DataDir, Job, JobKind, LocalState
from pgwarden.model.lsn import ZERO, Lsn
from pgwarden.model.node import (
    Address,
    ApiSettings,
    Credentials,
    EtcdSettings,
    NodeConfig,
    PostgresSettings,
)

__all__ = [
    "ZERO",
    "Address",
    "ApiSettings",
    "ClusterView",
    "ControlState",
    "Credentials",
    "DataDir",
    "DynamicConfig",
    "EtcdSettings",
    "HistoryEntry",
    "Job",
    "JobKind",
    "Leader",
    "LeaderStatus",
    "LocalState",
    "Lsn",
    "Member",
    "NodeConfig",
    "PgState",
    "PostgresSettings",
    "Role",
    "SwitchoverIntent",
    "SyncFallback",
    "SyncMode",
    "SyncState",
    "Tags",
]
