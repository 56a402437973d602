"""One cluster's state in the store, read as a `ClusterView` and written through typed, guarded calls.

Each write names the store operation that keeps it safe: the leader key is only ever created
if absent and changed or deleted only while it still names the expected member (safety rule 2);
config and sync edits are compare-and-set on the key's mod_revision, so two editors cannot
silently overwrite each other.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import TypeVar, cast

from pgwarden.dcs import codec
from pgwarden.dcs.keys import DEFAULT_PREFIX, ClusterKeys
from pgwarden.dcs.store import KeyValue, Snapshot, Store, StoreError
from pgwarden.model.cluster import (
    NO_CLAIM_HOLDER,
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
# Entries the history key keeps; older ones are folded into a count. Fork decisions need only the
# promotions of the timelines members still run on, which are among the most recent.
HISTORY_CAP = 100
# Decoders whose results are immutable (frozen dataclasses, tuples, read-only mappings) and depend
# on the value alone: a value read again unchanged is not parsed again (see `ClusterStore.decode`).
_MEMOIZED: frozenset[Callable[[str], object]] = frozenset(
    {
        codec.decode_member,
        codec.decode_status,
        codec.decode_sync,
        codec.decode_history,
        codec.decode_config,
        codec.decode_switchover,
    }
)


class HistoryUnreadable(StoreError):
    """The history key holds junk and this agent never read a valid one: appending could only
    write a history that forgot every entry, so the append is refused."""


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
        # (decoder, value) -> what it decoded to, for the values of the last snapshot decoded.
        self._decoded: dict[tuple[Callable[[str], object], str], object] = {}

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
        """Decode a snapshot of this cluster's prefix; a value that cannot be read is listed in
        ``unreadable`` and given its safe reading (docs/faults.md, "bad input"):

        - leader: still held (``Leader(readable=False)``): never "no leader", or its holder would
          think it lost the key; the holder rewrites it (rule ``leader_key_unreadable``). A key
          without a lease counts as unreadable whatever it names: agents never write one;
        - a member record: that member is unknown until its owner republishes (every cycle);
        - sync: ``NO_CLAIM_HOLDER``, nobody may promote on an unknown claim (rule 4);
        - initialize: the cluster counts as initialized (``view.initialized``), its id unknown;
        - switchover: none pending (the leader removes the unreadable intent);
        - failsafe: {}, a topology of nobody: in failsafe mode no member races (none can tell
          whether a leader asked it); the observer keeps the last valid one beside it for the
          leader (``ClusterView.failsafe_last_good``), which republishes its own;
        - config, history, status: the defaults, (), None here; the agent's observer keeps the
          last valid value in force instead (`pgwarden.agent.last_good`).
        """
        k = self.keys
        unreadable: dict[str, str] = {}
        # An idle cluster's values rarely change from one read to the next (an idle member writes
        # nothing): each is parsed and validated once, not once a cycle. Only this snapshot's
        # values are kept for the next one, so the memo never outgrows the cluster.
        last = self._decoded
        decoded: dict[tuple[Callable[[str], object], str], object] = {}

        def read(kv: KeyValue | None, decode: Callable[[str], T]) -> T | None:
            if kv is None:
                return None
            memo: tuple[Callable[[str], object], str] | None = None
            if decode in _MEMOIZED:
                memo = (decode, kv.value)
            if memo is not None and memo in last:
                value = decoded[memo] = last[memo]
                return cast(T, value)
            try:
                result = decode(kv.value)
            except codec.Unreadable as exc:
                unreadable[k.relative(kv.key)] = str(exc)
                return None
            if memo is not None:
                decoded[memo] = result
            return result

        values = {kv.key: kv for kv in snapshot.items}
        members = []
        lease_owner: dict[int, str] = {}
        for kv in snapshot.items:
            name = k.member_name(kv.key)
            member = read(kv, codec.decode_member) if name else None
            if name and member:
                members.append(dataclasses.replace(_named(member, name), registered=kv.create_revision))
                lease_owner[kv.lease] = name
        initialize_kv = values.get(k.initialize)
        initialize = read(initialize_kv, codec.decode_initialize)
        # A bootstrap in progress holds the initialize key on the bootstrapper's member lease:
        # the member key on the same lease names it ("?" until that member has published).
        pending = initialize == "" and initialize_kv is not None
        bootstrapping = lease_owner.get(initialize_kv.lease, "?") if pending and initialize_kv else None
        config_kv = values.get(k.config)
        stored_config = read(config_kv, codec.decode_config)
        history = read(values.get(k.history), codec.decode_history)
        failsafe_kv = values.get(k.failsafe)
        failsafe = read(failsafe_kv, codec.decode_failsafe)
        sync_kv = values.get(k.sync)
        sync = read(sync_kv, codec.decode_sync)
        self._decoded = decoded
        return ClusterView(
            name=k.cluster,
            initialize=initialize or None,
            bootstrapping=bootstrapping,
            config=stored_config[0] if stored_config else DynamicConfig(),
            config_ignored=stored_config[1] if stored_config else (),
            leader=self._leader(values.get(k.leader), unreadable),
            members=tuple(sorted(members, key=lambda m: m.name)),
            status=read(values.get(k.status), codec.decode_status),
            sync=NO_CLAIM_HOLDER if sync is None and sync_kv is not None else sync,
            history=history[0] if history else (),
            history_folded=history[1] if history else 0,
            switchover=read(values.get(k.switchover), codec.decode_switchover),
            revision=snapshot.revision,
            config_revision=config_kv.mod_revision if config_kv else 0,
            # An unreadable topology is one of nobody: no member outside it may race in failsafe
            # mode (none was asked to promise); the leader publishes its own at once.
            failsafe={} if failsafe is None and failsafe_kv is not None else failsafe,
            unreadable=unreadable,
        )

    def _leader(self, kv: KeyValue | None, unreadable: dict[str, str]) -> Leader | None:
        if kv is None:
            return None
        try:
            if not kv.lease:
                # Every agent writes this key on its lease (create, confirm, take over, rewrite):
                # one without is a hand-written value, whatever name it holds (`etcdctl put`).
                raise codec.Unreadable(f"{kv.value[:40]!r} without a lease: not written by an agent")
            return Leader(codec.decode_leader(kv.value), kv.mod_revision)
        except codec.Unreadable as exc:
            unreadable[self.keys.relative(kv.key)] = str(exc)
            return Leader("", kv.mod_revision, readable=False)

    def read_config(self) -> tuple[DynamicConfig | None, int]:
        """The stored config (None if absent or unreadable) and its mod_revision (0 if absent)."""
        config, revision, _ = self.read_config_problem()
        return config, revision

    def read_config_problem(self) -> tuple[DynamicConfig | None, int, str | None]:
        """As `read_config`, plus why the stored config is unreadable (None when it reads)."""
        kv = self.store.get_prefix(self.keys.config).get(self.keys.config)
        if kv is None:
            return None, 0, None
        try:
            return codec.decode_config(kv.value)[0], kv.mod_revision, None
        except codec.Unreadable as exc:
            return None, kv.mod_revision, str(exc)

    # -- members and bootstrap -----------------------------------------------------------------

    def publish_member(self, member: Member, lease: int) -> None:
        self.store.put(self.keys.member(member.name), codec.encode_member(member), lease)

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

    def rewrite_leader(self, name: str, lease: int, revision: int) -> bool:
        """Write ``name`` over an unreadable leader key, on ``lease``, only if nobody wrote the key
        since ``revision``: its holder repairs it (safety rule 2 still holds: no other writer)."""
        return self.store.replace_at(self.keys.leader, name, revision, lease)

    def release_leader(self, name: str) -> bool:
        return self.store.delete(self.keys.leader, expected_value=name)

    # -- leader-published state ----------------------------------------------------------------

    def publish_status(self, status: LeaderStatus) -> None:
        self.store.put(self.keys.status, codec.encode_status(status))

    def publish_sync(self, sync: SyncState) -> None:
        """Write the sync set (only the leader writes it, right after renewing its key)."""
        self.store.put(self.keys.sync, codec.encode_sync(sync))

    def publish_failsafe(self, topology: Mapping[str, str] | None) -> None:
        """Write the failsafe topology (who must promise before the leader writes without etcd);
        None deletes it. Only the leader writes it, right after renewing its key."""
        if topology is None:
            self.store.delete(self.keys.failsafe)
        else:
            self.store.put(self.keys.failsafe, codec.encode_failsafe(topology))

    def append_history(self, entry: HistoryEntry, known: tuple[HistoryEntry, ...] | None = None) -> None:
        """Add ``entry`` unless already there; read-modify-write, retried on concurrent edits.

        When the stored history is unreadable, ``known`` (the last valid history the caller read)
        replaces it with ``entry`` added; without one the append is refused (`HistoryUnreadable`),
        never written over the junk with entries forgotten. At most HISTORY_CAP entries are kept:
        events other than promotions are dropped first, then the oldest promotions.
        """
        key = self.keys.history
        for _ in range(_HISTORY_ATTEMPTS):
            kv = self.store.get_prefix(key).get(key)
            try:
                current, folded = codec.decode_history(kv.value) if kv else ((), 0)
            except codec.Unreadable as exc:
                if known is None:
                    raise HistoryUnreadable(
                        f"{key} is unreadable ({exc}) and no valid history was read before: "
                        "not appending, so no entry is forgotten; fix or delete the key"
                    ) from None
                current, folded = known, 0
            if entry in current:
                return  # an earlier attempt landed even if it reported failure
            kept, dropped = fold_history((*current, entry), HISTORY_CAP)
            value = codec.encode_history(kept, folded + dropped)
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
            note = codec.encode_switchover_outcome(wall if wall is not None else time.time(), outcome)
            self.store.put(self.keys.switchover_outcome, note)
        self.store.delete(self.keys.switchover)

    def read_switchover_outcome(self) -> tuple[float, str] | None:
        """When and why the leader last abandoned a switchover, if it ever did."""
        kv = self.store.get_prefix(self.keys.switchover_outcome).get(self.keys.switchover_outcome)
        if kv is None:
            return None
        try:
            return codec.decode_switchover_outcome(kv.value)
        except codec.Unreadable:
            return None

    def _write(self, key: str, value: str, expected_revision: int | None) -> bool:
        if expected_revision is None:
            self.store.put(key, value)
            return True
        return self.store.replace_at(key, value, expected_revision)


def fold_history(entries: tuple[HistoryEntry, ...], cap: int) -> tuple[tuple[HistoryEntry, ...], int]:
    """At most ``cap`` entries, in order, and how many were dropped: events other than promotions
    go first (fork decisions read only promotions), then the oldest promotions."""
    excess = len(entries) - cap
    if excess <= 0:
        return entries, 0
    events = [i for i, e in enumerate(entries) if not e.promotion]
    promotions = [i for i, e in enumerate(entries) if e.promotion]
    dropped = set((events + promotions)[:excess])
    return tuple(e for i, e in enumerate(entries) if i not in dropped), excess


def _named(member: Member, name: str) -> Member:
    """The key names the member; a value claiming another name is a copy-paste slip."""
    if member.name == name:
        return member
    log.warning("member key %s holds a value named %r; using the key's name", name, member.name)
    return dataclasses.replace(member, name=name)
