"""An in-memory `Store` on a (virtual) clock with etcd's semantics, for simulations and unit tests.

What it copies from etcd: one revision counter for the whole keyspace, bumped by every write
that changed something (a failed compare-and-set bumps nothing); leases counted in whole
seconds that expire once the clock passes their last grant/keepalive + TTL, deleting their
keys in one revision; a put with an unknown lease fails; a put without a lease detaches the
key from its old lease. Expiry runs lazily at the start of every call, so nothing happens
"in the background" and a simulation stays deterministic.

Set ``available = False`` to simulate losing etcd from where the clients stand (a partition):
every call then raises `StoreError` while leases keep expiring, as the majority would expire
them. ``lose_quorum`` simulates etcd itself losing its majority: calls fail and no lease expires
(no raft leader is left to expire one); ``regain_quorum`` is the new raft leader, which gives
every lease its full ttl again from that moment, as etcd's lessor does on promotion.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pgwarden.dcs.store import KeyValue, LeaseExpired, Snapshot, StoreError, WatchEvent

# Events kept for watches; older start revisions fail as "compacted", as in etcd.
_HISTORY_LIMIT = 100_000


@dataclass(slots=True)
class _Lease:
    ttl: float
    expires_at: float


class MemoryStore:
    """A faithful in-memory `Store`; safe to share between threads (one lock)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._revision = 1  # etcd starts an empty keyspace at revision 1
        self._keys: dict[str, KeyValue] = {}
        self._leases: dict[int, _Lease] = {}
        self._next_lease = 0x694D0000  # arbitrary, recognisable, never 0
        self._events: deque[WatchEvent] = deque(maxlen=_HISTORY_LIMIT)
        self.available = True
        self._quorum_lost = False

    @property
    def revision(self) -> int:
        """The current store revision (for tests)."""
        with self._lock:
            return self._revision

    def _enter(self) -> None:
        """What etcd would have done by now, then refuse if the test cut us off."""
        self._expire_leases()
        if not self.available:
            raise StoreError("etcd unreachable: the in-memory store is switched off")

    def lose_quorum(self) -> None:
        """etcd without a majority: every call fails, and no lease expires meanwhile."""
        with self._lock:
            self._expire_leases()
            self._quorum_lost, self.available = True, False

    def regain_quorum(self) -> None:
        """A new raft leader: calls succeed again and every lease lives its full ttl from now."""
        with self._lock:
            if self._quorum_lost:
                now = self._clock()
                for lease in self._leases.values():
                    lease.expires_at = max(lease.expires_at, now + lease.ttl)
            self._quorum_lost, self.available = False, True

    @property
    def quorum_lost(self) -> bool:
        return self._quorum_lost

    def _expire_leases(self) -> None:
        if self._quorum_lost:
            return
        now = self._clock()
        expired = sorted(i for i, lease in self._leases.items() if now > lease.expires_at)
        for lease_id in expired:
            del self._leases[lease_id]
            self._drop_lease_keys(lease_id)

    def _drop_lease_keys(self, lease_id: int) -> None:
        doomed = sorted(k for k, kv in self._keys.items() if kv.lease == lease_id)
        if not doomed:
            return
        self._revision += 1  # etcd deletes a lease's keys in one transaction
        for key in doomed:
            del self._keys[key]
            self._events.append(WatchEvent("delete", key, "", self._revision))

    def _write(self, key: str, value: str, lease: int) -> int:
        if lease and lease not in self._leases:
            raise StoreError(f"etcd refused the request: requested lease {lease:x} not found")
        self._revision += 1
        old = self._keys.get(key)
        created = old.create_revision if old else self._revision
        self._keys[key] = KeyValue(key, value, self._revision, created, lease)
        self._events.append(WatchEvent("put", key, value, self._revision))
        return self._revision

    def _remove(self, key: str) -> bool:
        if key not in self._keys:
            return False
        self._revision += 1
        del self._keys[key]
        self._events.append(WatchEvent("delete", key, "", self._revision))
        return True

    # -- Store -------------------------------------------------------------------------------

    def get_prefix(self, prefix: str) -> Snapshot:
        with self._lock:
            self._enter()
            items = tuple(kv for k, kv in sorted(self._keys.items()) if k.startswith(prefix))
            return Snapshot(self._revision, items)

    def grant_lease(self, ttl: float) -> int:
        with self._lock:
            self._enter()
            whole = float(max(1, math.ceil(ttl)))
            self._next_lease += 1
            self._leases[self._next_lease] = _Lease(whole, self._clock() + whole)
            return self._next_lease

    def keepalive(self, lease: int) -> float:
        with self._lock:
            self._enter()
            found = self._leases.get(lease)
            if found is None:
                raise LeaseExpired(f"lease {lease:x} expired: the store no longer has it")
            found.expires_at = self._clock() + found.ttl
            return found.ttl

    def renew_lease(self, lease: int, until: float) -> float:
        # One request to one store: it answers at once (or raises), sent at the clock's now.
        sent = self._clock()
        self.keepalive(lease)
        return sent

    def revoke(self, lease: int) -> None:
        with self._lock:
            self._enter()
            if self._leases.pop(lease, None) is not None:
                self._drop_lease_keys(lease)

    def put(self, key: str, value: str, lease: int = 0) -> int:
        with self._lock:
            self._enter()
            return self._write(key, value, lease)

    def create(self, key: str, value: str, lease: int = 0) -> bool:
        with self._lock:
            self._enter()
            if key in self._keys:
                return False
            self._write(key, value, lease)
            return True

    def replace(self, key: str, value: str, expected_value: str, lease: int = 0) -> bool:
        with self._lock:
            self._enter()
            current = self._keys.get(key)
            if current is None or current.value != expected_value:
                return False
            self._write(key, value, lease)
            return True

    def replace_at(self, key: str, value: str, mod_revision: int, lease: int = 0) -> bool:
        with self._lock:
            self._enter()
            current = self._keys.get(key)
            if (current.mod_revision if current else 0) != mod_revision:
                return False
            self._write(key, value, lease)
            return True

    def delete(self, key: str, expected_value: str | None = None) -> bool:
        with self._lock:
            self._enter()
            current = self._keys.get(key)
            if current is None or (expected_value is not None and current.value != expected_value):
                return False
            return self._remove(key)

    def watch(self, prefix: str, start_revision: int, timeout: float) -> list[WatchEvent]:
        # A simulation is single-threaded: waiting could never see a new event, so don't.
        with self._lock:
            self._enter()
            if start_revision <= 0:
                return []
            oldest = self._events[0].mod_revision if self._events else self._revision + 1
            if len(self._events) == self._events.maxlen and start_revision < oldest:
                raise StoreError(f"etcd refused the watch: revision {start_revision} compacted")
            return [e for e in self._events if e.mod_revision >= start_revision and e.key.startswith(prefix)]

    def close(self) -> None:
        pass

    def peek(self, prefix: str) -> Snapshot:
        """The keys under ``prefix`` even while unavailable: the truth, for simulations' checks."""
        with self._lock:
            self._expire_leases()
            items = tuple(kv for k, kv in sorted(self._keys.items()) if k.startswith(prefix))
            return Snapshot(self._revision, items)

    def lease_ttl(self, lease: int) -> float | None:
        """Seconds left on ``lease`` by the clock, or None when it is gone (for tests)."""
        with self._lock:
            self._expire_leases()
            found = self._leases.get(lease)
            return None if found is None else found.expires_at - self._clock()
