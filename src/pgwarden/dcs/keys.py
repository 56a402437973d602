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
        return self.root + "initialize"

    @property
    def config(self) -> str:
        return self.root + "config"

    @property
    def leader(self) -> str:
        return self.root + "leader"

    @property
    def members(self) -> str:
        return self.root + "members/"

    def member(self, name: str) -> str:
        if not name or "/" in name:
            raise ValueError(f"member name must be non-empty and without '/': {name!r}")
        return self.members + name

    @property
    def status(self) -> str:
        return self.root + "status"

    @property
    def sync(self) -> str:
        return self.root + "sync"

    @property
    def history(self) -> str:
        return self.root + "history"

    @property
    def switchover(self) -> str:
        return self.root + "switchover"

    @property
    def switchover_outcome(self) -> str:
        return self.root + "switchover_outcome"

    @property
    def failsafe(self) -> str:
        return self.root + "failsafe"

    def member_name(self, key: str) -> str | None:
        """The member a ``members/<name>`` key belongs to, or None for any other key."""
        if not key.startswith(self.members):
            return None
        name = key[len(self.members) :]
        return name if name and "/" not in name else None
