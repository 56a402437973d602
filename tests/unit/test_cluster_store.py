"""ClusterStore over MemoryStore: every value round-trips, guarded writes guard, bad values are skipped."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pgwarden.dcs import codec
from pgwarden.dcs.cluster_store import HISTORY_CAP, ClusterStore, HistoryUnreadable
from pgwarden.dcs.keys import ClusterKeys
from pgwarden.dcs.memory import MemoryStore
from pgwarden.model import (
    SYNC_DEGRADED,
    ClusterView,
    DynamicConfig,
    HistoryEntry,
    Leader,
    LeaderStatus,
    Lsn,
    Member,
    PgState,
    Role,
    SwitchoverIntent,
    SyncFallback,
    SyncMode,
    SyncState,
    Tags,
)
from tests.support.store_contract import VirtualClock

MEMBER = Member(
    name="node1",
    api_url="http://127.0.0.11:8008",
    host="127.0.0.11",
    port=5432,
    role=Role.PRIMARY,
    state=PgState.RUNNING,
    timeline=3,
    lsn=Lsn.parse("0/3000060"),
    tags=Tags(
        nofailover=True,
        noloadbalance=True,
        nosync=True,
        failover_priority=7,
        sync_priority=2,
        clonefrom=True,
        replicatefrom="node2",
        custom={"zone": "a", "rack": "r1"},
    ),
    pending_restart=True,
    version="15.5",
)
BARE_MEMBER = Member(name="node2", api_url="http://127.0.0.12:8008", host="127.0.0.12", port=5433)
CONFIG = DynamicConfig(
    ttl=30,
    loop_wait=10,
    retry_timeout=10,
    maximum_lag_on_failover=16 * 1024 * 1024,
    synchronous_mode=SyncMode.QUORUM,
    synchronous_node_count=2,
    synchronous_fallback=SyncFallback.BLOCK,
    use_pg_rewind=False,
    parameters={"max_connections": 200, "wal_level": "replica", "work_mem_ratio": 1.5, "fsync": True},
    pause=True,
)
STATUS = LeaderStatus(
    name="node1", timeline=3, lsn=Lsn.parse("16/B374D848"), slots={"node2": Lsn.parse("16/B3000000")}
)
SYNC = SyncState(leader="node1", members=frozenset({"node2", "node3"}), quorum=1, degraded_since=1700.5)
HISTORY = (
    HistoryEntry(2, Lsn.parse("0/5000000"), "failover", "2024-05-01T10:00:00Z", "node2"),
    HistoryEntry(3, Lsn.parse("0/7000000"), "switchover", "2024-05-02T10:00:00Z", "node1"),
)
INTENT = SwitchoverIntent(leader="node1", candidate="node2", scheduled_at=1800.25, failover=False)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def memory(clock: VirtualClock) -> MemoryStore:
    return MemoryStore(clock)


@pytest.fixture
def cluster(memory: MemoryStore) -> ClusterStore:
    return ClusterStore(memory, "main")


def test_empty_cluster_reads_as_defaults(cluster: ClusterStore) -> None:
    view = cluster.read()
    assert view == ClusterView(name="main", revision=view.revision)


def test_every_value_round_trips(cluster: ClusterStore, memory: MemoryStore) -> None:
    lease = memory.grant_lease(10)
    assert cluster.begin_initialize(lease)
    cluster.finish_initialize("7301234567890123456")
    assert cluster.write_config(CONFIG, expected_revision=None)
    assert cluster.acquire_leader("node1", lease)
    cluster.publish_member(MEMBER, lease)
    cluster.publish_member(BARE_MEMBER, lease)
    cluster.publish_status(STATUS)
    cluster.publish_sync(SYNC)
    for entry in HISTORY:
        cluster.append_history(entry)
    cluster.set_switchover(INTENT)

    view = cluster.read()
    leader_kv = memory.get_prefix("/pgwarden/main/leader").items[0]
    config_kv = memory.get_prefix("/pgwarden/main/config").items[0]
    assert view == ClusterView(
        name="main",
        initialize="7301234567890123456",
        config=CONFIG,
        leader=Leader("node1", leader_kv.mod_revision),
        members=(MEMBER, BARE_MEMBER),
        status=STATUS,
        sync=SYNC,
        history=HISTORY,
        switchover=INTENT,
        revision=memory.revision,
        config_revision=config_kv.mod_revision,
    )
    assert view.config_revision == cluster.read_config()[1]


def test_a_member_is_registered_when_its_key_is_created_and_stays_so_while_it_republishes(
    cluster: ClusterStore, memory: MemoryStore
) -> None:
    lease = memory.grant_lease(10)
    cluster.publish_member(MEMBER, lease)
    cluster.publish_member(BARE_MEMBER, lease)
    before = {m.name: m.registered for m in cluster.read().members}
    cluster.publish_member(replace(MEMBER, pending_restart=True), lease)  # every cycle republishes
    after = {m.name: m.registered for m in cluster.read().members}
    assert after == before and 0 < before[MEMBER.name] < before[BARE_MEMBER.name]
    assert "registered" not in codec.encode_member(replace(MEMBER, registered=5))  # never published


def test_encodings_are_plain_json_with_lsn_strings_and_enum_values() -> None:
    assert '"lsn":"0/3000060"' in codec.encode_member(MEMBER)
    assert '"role":"primary"' in codec.encode_member(MEMBER)
    assert '"custom":{"rack":"r1","zone":"a"}' in codec.encode_member(MEMBER)
    assert '"slots":{"node2":"16/B3000000"}' in codec.encode_status(STATUS)
    assert '"members":["node2","node3"]' in codec.encode_sync(SYNC)
    assert '"synchronous_mode":"quorum"' in codec.encode_config(CONFIG)


def test_optional_fields_round_trip_as_none() -> None:
    sync = SyncState(leader=None)
    intent = SwitchoverIntent(leader=None, candidate="node3", failover=True)
    assert codec.decode_sync(codec.encode_sync(sync)) == sync
    assert codec.decode_switchover(codec.encode_switchover(intent)) == intent
    assert codec.decode_member(codec.encode_member(BARE_MEMBER)) == BARE_MEMBER


def test_read_with_leases_exposes_the_raw_keys(cluster: ClusterStore, memory: MemoryStore) -> None:
    lease = memory.grant_lease(10)
    cluster.acquire_leader("node1", lease)
    view, snapshot = cluster.read_with_leases()
    assert view.revision == snapshot.revision
    leader = snapshot.get(cluster.keys.leader)
    assert leader is not None and leader.lease == lease and leader.value == "node1"


def test_leader_key_is_compare_and_set(cluster: ClusterStore, memory: MemoryStore) -> None:
    one, two = memory.grant_lease(10), memory.grant_lease(10)
    assert cluster.acquire_leader("node1", one)
    assert not cluster.acquire_leader("node2", two)
    assert not cluster.confirm_leader("node2", two)
    assert cluster.confirm_leader("node1", one)
    assert not cluster.release_leader("node2")
    assert cluster.read().leader == Leader("node1", memory.revision)
    assert memory.get_prefix(cluster.keys.leader).items[0].lease == one
    assert cluster.release_leader("node1")
    assert cluster.read().leader is None


def test_leader_key_dies_with_its_lease(
    cluster: ClusterStore, memory: MemoryStore, clock: VirtualClock
) -> None:
    lease = memory.grant_lease(4)
    cluster.acquire_leader("node1", lease)
    cluster.publish_member(MEMBER, lease)
    clock.advance(4.5)
    view = cluster.read()
    assert view.leader is None and view.members == ()


def test_a_crashed_bootstrap_frees_the_initialize_key(
    cluster: ClusterStore, memory: MemoryStore, clock: VirtualClock
) -> None:
    lease = memory.grant_lease(4)
    assert cluster.begin_initialize(lease)
    view = cluster.read()  # a bootstrap is in progress, by a member not yet published
    assert (view.initialize, view.bootstrapping) == (None, "?")
    assert not cluster.begin_initialize(memory.grant_lease(4))
    clock.advance(5)
    assert (cluster.read().initialize, cluster.read().bootstrapping) == (None, None)
    assert cluster.begin_initialize(memory.grant_lease(4))


def test_the_bootstrapper_is_the_member_on_the_initialize_lease(
    cluster: ClusterStore, memory: MemoryStore
) -> None:
    lease = memory.grant_lease(4)
    cluster.publish_member(Member(name="node2", api_url="http://x", host="h", port=1), lease)
    cluster.publish_member(Member(name="node1", api_url="http://y", host="h", port=2), memory.grant_lease(4))
    assert cluster.begin_initialize(lease)
    assert cluster.read().bootstrapping == "node2"


def test_finished_initialize_is_permanent(
    cluster: ClusterStore, memory: MemoryStore, clock: VirtualClock
) -> None:
    lease = memory.grant_lease(4)
    cluster.begin_initialize(lease)
    cluster.finish_initialize("7300000000000000042")
    cluster.cancel_initialize()  # only an unfinished claim can be cancelled
    clock.advance(10)
    assert cluster.read().initialize == "7300000000000000042"


def test_cancel_initialize_drops_the_claim(cluster: ClusterStore, memory: MemoryStore) -> None:
    cluster.begin_initialize(memory.grant_lease(4))
    cluster.cancel_initialize()
    assert cluster.read().initialize is None


def test_config_write_is_compare_and_set(cluster: ClusterStore) -> None:
    assert cluster.read_config() == (None, 0)
    assert not cluster.write_config(CONFIG, expected_revision=7)
    assert cluster.write_config(CONFIG, expected_revision=0)
    revision = cluster.read_config()[1]
    assert not cluster.write_config(DynamicConfig(), expected_revision=0)
    assert cluster.write_config(DynamicConfig(ttl=10), expected_revision=revision)
    assert not cluster.write_config(DynamicConfig(ttl=20), expected_revision=revision)  # stale
    config, newer = cluster.read_config()
    assert config == DynamicConfig(ttl=10) and newer > revision
    assert cluster.write_config(DynamicConfig(ttl=20), expected_revision=None)
    assert cluster.read().config == DynamicConfig(ttl=20)


def test_history_append_is_idempotent_and_keeps_order(cluster: ClusterStore) -> None:
    cluster.append_history(HISTORY[0])
    cluster.append_history(HISTORY[1])
    cluster.append_history(HISTORY[0])  # a retried append after an ambiguous failure
    assert cluster.read().history == HISTORY


def test_history_append_survives_a_concurrent_edit(cluster: ClusterStore, memory: MemoryStore) -> None:
    cluster.append_history(HISTORY[0])
    edits = iter([HISTORY[1]])
    real_get_prefix = memory.get_prefix

    class Racing:
        """Another agent appends between our read and our write, once."""

        def __getattr__(self, name: str) -> object:
            return getattr(memory, name)

        def get_prefix(self, prefix: str):  # type: ignore[no-untyped-def]
            snapshot = real_get_prefix(prefix)
            entry = next(edits, None)
            if entry is not None:
                ClusterStore(memory, "main").append_history(entry)
            return snapshot

    late = HistoryEntry(4, Lsn.parse("0/9000000"), "failover", "2024-05-03T10:00:00Z", "node3")
    ClusterStore(Racing(), "main").append_history(late)  # type: ignore[arg-type]
    assert cluster.read().history == (*HISTORY, late)


def test_switchover_set_and_clear(cluster: ClusterStore) -> None:
    cluster.set_switchover(INTENT)
    assert cluster.read().switchover == INTENT
    cluster.clear_switchover()
    assert cluster.read().switchover is None


MALFORMED = {
    "config": ["{not json", '{"ttl": "soon"}', "[]", "[" * 200_000 + "]" * 200_000],
    "status": ['{"name": "n", "timeline": 1, "lsn": "nope"}', "null"],
    "sync": ['{"leader": 3}', '{"leader": "a", "members": "b"}'],
    "switchover": ['{"scheduled_at": "tomorrow"}', "42", '{"deadline": 1e999}'],
    "history": ['{"not": "a list"}', '[{"timeline": "x"}]', "x" * (codec.MAX_VALUE_BYTES + 1)],
    "initialize": ["not-a-system-id", "{}", "771492735", "99999999999999999999"],  # a truncated id, > 2**64
    "members/node9": ['{"name": "node9"}', '{"name":"node9","api_url":"u","host":"h","port":"5432"}'],
    "failsafe": ['{"node1": 5}', '{"node1": "ftp://x"}', '{"": "http://x"}', "[]", "null"],
}


@pytest.mark.parametrize(
    ("key", "value"), [(k, v[:60]) for k, values in MALFORMED.items() for v in values], ids=str
)
def test_a_malformed_value_is_reported_and_the_rest_still_reads(
    cluster: ClusterStore, memory: MemoryStore, key: str, value: str
) -> None:
    full = next(v for v in MALFORMED[key] if v.startswith(value))
    lease = memory.grant_lease(10)
    cluster.publish_member(MEMBER, lease)
    cluster.acquire_leader("node1", lease)
    memory.put(cluster.keys.root + key, full)
    view = cluster.read()
    assert view.members == (MEMBER,) and view.leader == Leader("node1", view.leader.revision)  # type: ignore[union-attr]
    assert list(view.unreadable) == [key] and view.unreadable[key]
    assert view.config == DynamicConfig() and view.status is None and view.switchover is None
    assert view.history == () and view.failsafe == ({} if key == "failsafe" else None)


def test_the_safe_readings_of_unreadable_keys(cluster: ClusterStore, memory: MemoryStore) -> None:
    """A held key stays held, an unknown sync claim lets nobody promote, a junk initialize key
    still says "initialized" (docs/faults.md, "bad input")."""
    for key, junk in (("leader", "{"), ("sync", "[]"), ("initialize", "x"), ("failsafe", '{"a/b": 1}')):
        memory.put(cluster.keys.root + key, junk)
    view = cluster.read()
    assert view.failsafe == {}  # a topology of nobody: nobody outside it races in failsafe mode
    assert view.leader is not None and not view.leader.readable and view.leader.name == ""
    assert view.sync == SyncState(leader=None, members=frozenset(), quorum=1)
    assert view.initialize is None and view.initialized
    assert sorted(view.unreadable) == ["failsafe", "initialize", "leader", "sync"]


@pytest.mark.parametrize("junk", ["", "a/b", "node\n1", "\ufffd", "x" * 300])
def test_a_leader_key_that_names_no_member_is_held_but_unreadable(
    cluster: ClusterStore, memory: MemoryStore, junk: str
) -> None:
    memory.put(cluster.keys.leader, junk)
    leader = cluster.read().leader
    assert leader is not None and not leader.readable


def test_the_holder_rewrites_an_unreadable_leader_key_on_its_lease(
    cluster: ClusterStore, memory: MemoryStore
) -> None:
    lease = memory.grant_lease(10)
    cluster.acquire_leader("node1", lease)
    memory.put(cluster.keys.leader, "{junk")  # etcdctl put: detached from the lease
    junk = cluster.read().leader
    assert junk is not None and not junk.readable
    assert not cluster.rewrite_leader("node1", lease, junk.revision - 1)  # someone wrote since: refused
    assert cluster.rewrite_leader("node1", lease, junk.revision)
    kv = memory.get_prefix(cluster.keys.leader).get(cluster.keys.leader)
    assert kv is not None and kv.value == "node1" and kv.lease == lease


def test_a_history_with_one_malformed_entry_is_unreadable_as_a_whole(
    cluster: ClusterStore, memory: MemoryStore
) -> None:
    """Skipping the bad entry would hide a fork point; the agent keeps its last valid history."""
    broken = codec.encode_history(HISTORY)[:-1] + ',{"timeline": "x"}]'
    memory.put(cluster.keys.history, broken)
    view = cluster.read()
    assert view.history == () and "entry 3: timeline" in view.unreadable["history"]


def test_history_is_capped_promotions_last(cluster: ClusterStore, memory: MemoryStore) -> None:
    promotions = tuple(_entry(t) for t in range(2, 2 + HISTORY_CAP))
    event = replace(_entry(50), event=SYNC_DEGRADED)
    memory.put(cluster.keys.history, codec.encode_history((event, *promotions[:-1])))
    cluster.append_history(promotions[-1])
    view = cluster.read()
    assert view.history == promotions and view.history_folded == 1  # the event went first
    newest = _entry(2 + HISTORY_CAP)
    cluster.append_history(newest)
    view = cluster.read()
    assert view.history == (*promotions[1:], newest) and view.history_folded == 2
    assert len(codec.encode_history(view.history, 2)) < codec.MAX_VALUE_BYTES // 4


def test_an_append_over_a_junk_history_keeps_what_was_known_or_refuses(
    cluster: ClusterStore, memory: MemoryStore
) -> None:
    memory.put(cluster.keys.history, "[{")
    with pytest.raises(HistoryUnreadable):
        cluster.append_history(_entry(5))
    assert memory.get_prefix(cluster.keys.history).get(cluster.keys.history).value == "[{"  # type: ignore[union-attr]
    cluster.append_history(_entry(5), known=HISTORY)
    assert cluster.read().history == (*HISTORY, _entry(5))


def test_an_older_agent_skips_the_folded_count_as_a_malformed_entry() -> None:
    """The count is a first element without a timeline: a reader that skips malformed entries
    one by one (versions before the cap) still reads every entry."""
    value = codec.encode_history(HISTORY, folded=4)
    assert value.startswith('[{"folded":4}')
    assert codec.decode_history(value) == (HISTORY, 4)


def _entry(timeline: int) -> HistoryEntry:
    return HistoryEntry(timeline, Lsn(timeline << 24), "failover", "2030-01-01T00:00:00+00:00", "node1")


def test_member_value_under_another_name_uses_the_key_name(
    cluster: ClusterStore, memory: MemoryStore
) -> None:
    memory.put(cluster.keys.member("node5"), codec.encode_member(MEMBER))
    assert [m.name for m in cluster.read().members] == ["node5"]


def test_key_layout() -> None:
    keys = ClusterKeys("main", "/service/")
    assert keys.root == "/service/main/"
    assert keys.leader == "/service/main/leader"
    assert keys.member("node1") == "/service/main/members/node1"
    assert keys.member_name("/service/main/members/node1") == "node1"
    assert keys.member_name("/service/main/leader") is None
    with pytest.raises(ValueError):
        keys.member("a/b")
    with pytest.raises(ValueError):
        ClusterKeys("")
