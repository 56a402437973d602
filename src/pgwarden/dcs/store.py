"""The key-value seam to the consensus store: the `Store` protocol, its value types and errors.

Which writes are compare-and-set is part of the contract: `create` (only if absent), `replace`
(only if the value is still the expected one), `replace_at` (only if nobody wrote since a read)
and `delete` with an expected value are single etcd transactions, so two agents can never both
believe they won (safety rule 2 in ARCHITECTURE.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: str
    mod_revision: int
    create_revision: int
    lease: int  # 0 = not attached to a lease


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One consistent read: every key under a prefix at store revision ``revision``."""

    revision: int
    items: tuple[KeyValue, ...]

    def get(self, key: str) -> KeyValue | None:
        return next((kv for kv in self.items if kv.key == key), None)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    kind: Literal["put", "delete"]
    key: str
    value: str  # "" for a delete
    mod_revision: int


class StoreError(Exception):
    """The store could not be reached or refused the request; the message says where and why."""


class LeaseExpired(StoreError):
    """A keepalive named a lease the store no longer has: every key on it is gone."""


class Store(Protocol):
    """A linearizable key-value store with leases and watches (etcd v3, or memory for tests).

    Every method may raise `StoreError`. A write that failed with a timeout may still have been
    applied; a retried compare-and-set then answers False although the first attempt won, so
    callers re-read before concluding they lost.
    """

    def get_prefix(self, prefix: str) -> Snapshot:
        """Every key starting with ``prefix``, in one range request."""
        ...

    def grant_lease(self, ttl: float) -> int:
        """A new lease of ``ttl`` seconds, rounded up to whole seconds as etcd counts them."""
        ...

    def keepalive(self, lease: int) -> float:
        """Renew ``lease``; return its remaining TTL in seconds; raise `LeaseExpired` if gone."""
        ...

    def renew_lease(self, lease: int, until: float) -> float:
        """Renew ``lease``, retrying (every member at once, where there are several) until one
        renews it or the monotonic time ``until`` passes; return the monotonic time the request
        that renewed it was *sent*, which the leader's deadline counts from (safety rule 1).
        Raise `LeaseExpired` if the lease is gone, `StoreError` if nobody renewed it in time."""
        ...

    def revoke(self, lease: int) -> None:
        """Drop ``lease`` and every key attached to it; an unknown lease is not an error."""
        ...

    def put(self, key: str, value: str, lease: int = 0) -> int:
        """Write unconditionally; return the store revision of the write."""
        ...

    def create(self, key: str, value: str, lease: int = 0) -> bool:
        """Write only if ``key`` does not exist."""
        ...

    def replace(self, key: str, value: str, expected_value: str, lease: int = 0) -> bool:
        """Write only if the current value of ``key`` equals ``expected_value``."""
        ...

    def replace_at(self, key: str, value: str, mod_revision: int, lease: int = 0) -> bool:
        """Write only if ``key`` was last modified at ``mod_revision`` (0: only if absent)."""
        ...

    def delete(self, key: str, expected_value: str | None = None) -> bool:
        """Delete ``key`` (only if its value is ``expected_value``, when given); True if deleted."""
        ...

    def watch(self, prefix: str, start_revision: int, timeout: float) -> list[WatchEvent]:
        """The first batch of events under ``prefix`` at revision >= ``start_revision``.

        Waits at most ``timeout`` seconds and answers [] when nothing happened. A
        ``start_revision`` <= 0 means "from now on".
        """
        ...

    def close(self) -> None: ...
