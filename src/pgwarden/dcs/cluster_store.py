"""One cluster's state in the store, read as a `ClusterView` and written through typed, guarded calls.

Each write names the store operation that keeps it safe: the leader key is only ever created
if absent and changed or deleted only while it still names the expected member (safety rule 2);
config and sync edits are compare-and-set on the key's mod_revision, so two editors cannot
silently overwrite each other.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from pgwarden.dcs import codec
from pgwarden.dcs.keys import DEFAULT_PREFIX, ClusterKeys
from pgwarden.dcs.store import KeyValue, Snapshot, Store, StoreError
from pgwarden.model.cluster import (
    ClusterView,
    DynamicConfig,
    HistoryEntry,
    Leader,
    LeaderStatus,
    Member,
    SwitchoverIntent,
    SyncState,
)
from pgwarden.model.trust import MemberNetworks, trusted_view

log = logging.getLogger(__name__)

T = TypeVar("T")

# Concurrent history appends only happen around a failover; a handful of retries is plenty.
_HISTORY_ATTEMPTS = 5


class ClusterStore:
    """The typed face of one cluster's keys (see `pgwarden.dcs.keys` for the layout)."""

    def __init__(
        self,
        store: Store,
        cluster: str,
        prefix: str = DEFAULT_PREFIX,
        member_networks: MemberNetworks | None = None,
    ) -> None:
        """``member_networks``: members whose records name an address outside them are left out of
        every view read (model/trust.py); None trusts every record."""
        self.store = store
        self.keys = ClusterKeys(cluster, prefix)
        self.member_networks = member_networks

    # -- reading -----------------------------------------------------------------------------

    def read(self) -> ClusterView:
        """The whole cluster in one range read; ``revision`` is the store revision of that read."""
        return self.read_with_leases()[0]

    def read_with_leases(self) -> tuple[ClusterView, Snapshot]:
        """The view plus the raw keys (leases, mod_revisions) it was decoded from; members whose
        addresses are not trusted are left out of it (``untrusted`` names them)."""
        snapshot = self.store.get_prefix(self.keys.root)
        view = self.decode(snapshot)
        if self.member_networks is not None:
            view = trusted_view(view, self.member_networks)
        return view, snapshot

    def decode(self, snapshot: Snapshot) -> ClusterView:
        """Decode a snapshot of this cluster's prefix; malformed values are skipped with a warning."""
        k = self.keys
        values = {kv.key: kv for kv in snapshot.items}
        initialize = values.get(k.initialize)
        leader = values.get(k.leader)
        if leader is not None and not leader.value:
            log.warning("ignoring empty leader key %s in etcd", leader.key)
            leader = None
        members = []
        lease_owner: dict[int, str] = {}
        for kv in snapshot.items:
            name = k.member_name(kv.key)
            member = codec.decode_member(kv.value, kv.key) if name else None
            if name and member:
                members.append(dataclasses.replace(_named(member, name), registered=kv.create_revision))
                lease_owner[kv.lease] = name
        pending = initialize is not None and initialize.value == ""
        # A bootstrap in progress holds the initialize key on the bootstrapper's member lease:
        # the member key on the same lease names it ("?" until that member has published).
        bootstrapping = lease_owner.get(initialize.lease, "?") if pending and initialize else None
        return ClusterView(
            name=k.cluster,
            initialize=initialize.value if initialize and not pending else None,
            bootstrapping=bootstrapping,
            config=_decoded(values.get(k.config), codec.decode_config) or DynamicConfig(),
            leader=Leader(leader.value, leader.mod_revision) if leader else None,
            members=tuple(sorted(members, key=lambda m: m.name)),
            status=_decoded(values.get(k.status), codec.decode_status),
            sync=_decoded(values.get(k.sync), codec.decode_sync),
            history=_decoded(values.get(k.history), codec.decode_history) or (),
            switchover=_decoded(values.get(k.switchover), codec.decode_switchover),
            revision=snapshot.revision,
            config_revision=stored_config.mod_revision if (stored_config := values.get(k.config)) else 0,
            failsafe=_decoded(values.get(k.failsafe), codec.decode_failsafe),
        )

    def read_config(self) -> tuple[DynamicConfig | None, int]:
        """The stored config (None if absent or malformed) and its mod_revision (0 if absent)."""
        kv = self.store.get_prefix(self.keys.config).get(self.keys.config)
        if kv is None:
            return None, 0
        return codec.decode_config(kv.value, kv.key), kv.mod_revision

    def config_revision(self) -> int:
        return self.read_config()[1]

    # -- members and bootstrap -----------------------------------------------------------------

    def publish_member(self, member: Member, lease: int) -> None:
        self.store.put(self.keys.member(member.name), codec.encode_member(member), lease)

    def remove_member(self, name: str) -> None:
        self.store.delete(self.keys.member(name))

    def begin_initialize(self, lease: int) -> bool:
        """Claim the right to bootstrap; the claim dies with ``lease`` if the bootstrap crashes."""
        return self.store.create(self.keys.initialize, "", lease)

    def finish_initialize(self, system_id: str) -> None:
        """Record the new cluster's system identifier for good (no lease)."""
        self.store.put(self.keys.initialize, system_id)

    def cancel_initialize(self) -> None:
        """Give up a bootstrap claim; a finished initialization is never deleted."""
        self.store.delete(self.keys.initialize, expected_value="")

    # -- the leader key (safety rules 1 and 2) -------------------------------------------------

    def acquire_leader(self, name: str, lease: int) -> bool:
        return self.store.create(self.keys.leader, name, lease)

    def confirm_leader(self, name: str, lease: int) -> bool:
        """Rewrite the key on ``lease`` only while it still names ``name``."""
        return self.store.replace(self.keys.leader, name, name, lease)

    def release_leader(self, name: str) -> bool:
        return self.store.delete(self.keys.leader, expected_value=name)

    def take_over_leader(self, old: str, new: str, lease: int) -> bool:
        """Hand the key from ``old`` to ``new`` in one step (planned switchover, safety rule 5)."""
        return self.store.replace(self.keys.leader, new, old, lease)

    # -- leader-published state ----------------------------------------------------------------

    def publish_status(self, status: LeaderStatus) -> None:
        self.store.put(self.keys.status, codec.encode_status(status))

    def publish_sync(self, sync: SyncState, expected_revision: int | None = None) -> bool:
        """Write the sync set; with ``expected_revision``, only if nobody changed it since."""
        return self._write(self.keys.sync, codec.encode_sync(sync), expected_revision)

    def publish_failsafe(self, topology: Mapping[str, str] | None) -> None:
        """Write the failsafe topology (who must promise before the leader writes without etcd);
        None deletes it. Only the leader writes it, right after renewing its key."""
        if topology is None:
            self.store.delete(self.keys.failsafe)
        else:
            self.store.put(self.keys.failsafe, codec.encode_failsafe(topology))

    def append_history(self, entry: HistoryEntry) -> None:
        """Add ``entry`` unless already there; read-modify-write, retried on concurrent edits."""
        key = self.keys.history
        for _ in range(_HISTORY_ATTEMPTS):
            kv = self.store.get_prefix(key).get(key)
            current = codec.decode_history(kv.value, key) if kv else ()
            if entry in current:
                return  # an earlier attempt landed even if it reported failure
            value = codec.encode_history((*current, entry))
            if self.store.replace_at(key, value, kv.mod_revision if kv else 0):
                return
        raise StoreError(f"{key} changed {_HISTORY_ATTEMPTS} times while appending; try again")

    # -- operator intents ----------------------------------------------------------------------

    def write_config(self, cfg: DynamicConfig, expected_revision: int | None) -> bool:
        """Write the config; with ``expected_revision``, only if unchanged since (0 = absent)."""
        return self._write(self.keys.config, codec.encode_config(cfg), expected_revision)

    def set_switchover(self, intent: SwitchoverIntent, only_if_absent: bool = False) -> bool:
        """Write the intent; with ``only_if_absent``, refuse (False) when one is already pending."""
        expected = 0 if only_if_absent else None
        return self._write(self.keys.switchover, codec.encode_switchover(intent), expected)

    def clear_switchover(self, outcome: str | None = None, wall: float | None = None) -> None:
        """Remove the intent; ``outcome`` records why it was abandoned, for the caller waiting on it."""
        if outcome is not None:
            note = json.dumps({"at": wall if wall is not None else time.time(), "outcome": outcome})
            self.store.put(self.keys.switchover_outcome, note)
        self.store.delete(self.keys.switchover)

    def read_switchover_outcome(self) -> tuple[float, str] | None:
        """When and why the leader last abandoned a switchover, if it ever did."""
        kv = self.store.get_prefix(self.keys.switchover_outcome).get(self.keys.switchover_outcome)
        if kv is None:
            return None
        try:
            data = json.loads(kv.value)
            return float(data["at"]), str(data["outcome"])
        except (ValueError, KeyError, TypeError):
            return None

    def _write(self, key: str, value: str, expected_revision: int | None) -> bool:
        if expected_revision is None:
            self.store.put(key, value)
            return True
        return self.store.replace_at(key, value, expected_revision)


def _decoded(kv: KeyValue | None, decode: Callable[[str, str], T | None]) -> T | None:
    return None if kv is None else decode(kv.value, kv.key)


def _named(member: Member, name: str) -> Member:
    """The key names the member; a value claiming another name is a copy-paste slip."""
    if member.name == name:
        return member
    log.warning("member key %s holds a value named %r; using the key's name", name, member.name)
    return dataclasses.replace(member, name=name)
