"""Where each piece of one cluster's state lives in etcd, under ``{prefix}/{cluster}/``.

| key                 | value                                   | lease                        |
| ------------------- | --------------------------------------- | ---------------------------- |
| ``initialize``      | system identifier; "" while bootstrapping | the bootstrapper's, until done |
| ``config``          | dynamic config (JSON)                   | none                         |
| ``leader``          | the leader's member name                | the leader's (safety rule 1) |
| ``members/<name>``  | `Member` (JSON)                         | that member's                |
| ``status``          | `LeaderStatus` (JSON)                   | none                         |
| ``sync``            | `SyncState` (JSON)                      | none                         |
| ``history``         | list of `HistoryEntry` (JSON)           | none                         |
| ``switchover``      | `SwitchoverIntent` (JSON)               | none                         |
| ``switchover_outcome`` | why the leader abandoned the last switchover (JSON) | none             |
| ``failsafe``        | failsafe topology: member name -> REST API URL (JSON) | none           |
"""

from __future__ import annotations

from dataclasses import dataclass

from pgwarden.model.cluster import MEMBERS, StoreKey, member_key

DEFAULT_PREFIX = "/pgwarden"


@dataclass(frozen=True, slots=True)
class ClusterKeys:
    cluster: str
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.cluster or "/" in self.cluster:
            raise ValueError(f"cluster name must be non-empty and without '/': {self.cluster!r}")

    @property
    def root(self) -> str:
        """Every key of this cluster starts with this (trailing slash included)."""
        return f"{self.prefix.rstrip('/')}/{self.cluster}/"

    @property
    def initialize(self) -> str:
        return self.root + StoreKey.INITIALIZE

    @property
    def config(self) -> str:
        return self.root + StoreKey.CONFIG

    @property
    def leader(self) -> str:
        return self.root + StoreKey.LEADER

    @property
    def members(self) -> str:
        return self.root + MEMBERS

    def member(self, name: str) -> str:
        if not name or "/" in name:
            raise ValueError(f"member name must be non-empty and without '/': {name!r}")
        return self.root + member_key(name)

    @property
    def status(self) -> str:
        return self.root + StoreKey.STATUS

    @property
    def sync(self) -> str:
        return self.root + StoreKey.SYNC

    @property
    def history(self) -> str:
        return self.root + StoreKey.HISTORY

    @property
    def switchover(self) -> str:
        return self.root + StoreKey.SWITCHOVER

    @property
    def switchover_outcome(self) -> str:
        return self.root + StoreKey.SWITCHOVER_OUTCOME

    def relative(self, key: str) -> str:
        """``key`` without this cluster's prefix (``config``, ``members/node1``): how reports name it."""
        return key.removeprefix(self.root)

    @property
    def failsafe(self) -> str:
        return self.root + StoreKey.FAILSAFE

    def member_name(self, key: str) -> str | None:
        """The member a ``members/<name>`` key belongs to, or None for any other key."""
        if not key.startswith(self.members):
            return None
        name = key[len(self.members) :]
        return name if name and "/" not in name else None
