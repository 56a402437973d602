"""The observer keeps valid etcd values: junk in config, history, status, initialize or failsafe
changes nothing the agent decides on."""

from __future__ import annotations

import json
import logging

import pytest

from pgwarden.agent.last_good import LastGood
from pgwarden.dcs import codec
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.memory import MemoryStore
from pgwarden.model import ClusterView, DynamicConfig, SyncMode
from tests.support.builders import fork, status
from tests.support.store_contract import VirtualClock

BOOTSTRAP = DynamicConfig(ttl=20, loop_wait=2, retry_timeout=3)
LIVE = DynamicConfig(ttl=30, loop_wait=3, retry_timeout=5, synchronous_mode=SyncMode.ON, pause=True)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(VirtualClock())


@pytest.fixture
def cluster(store: MemoryStore) -> ClusterStore:
    return ClusterStore(store, "demo")


def observe(cluster: ClusterStore, kept: LastGood) -> ClusterView:
    """What the observer does with one read (pgwarden.agent.observe)."""
    view, snapshot = cluster.read_with_leases()
    config = snapshot.get(cluster.keys.config)
    return kept.apply(view, config is not None, config.mod_revision if config else 0)


def test_junk_config_keeps_the_last_valid_one_in_force(cluster: ClusterStore, store: MemoryStore) -> None:
    kept = LastGood(BOOTSTRAP)
    cluster.write_config(LIVE, None)
    assert observe(cluster, kept).config == LIVE
    for junk in (
        "[" * 200_000,
        '{"ttl": "soon"}',
        "null",
        '{"ttl": 30, "loop_wait": 60, "retry_timeout": 5}',  # refused by validation: loop_wait > ttl
        '{"name": "\ufffd"}',  # only unknown keys: junk, never a config of all defaults
    ):
        store.put(cluster.keys.config, junk)
        view = observe(cluster, kept)
        assert view.config == LIVE, junk[:30]  # never the defaults: sync mode and pause stay on
        assert "keeping the last valid config" in view.unreadable["config"]


def test_junk_config_before_any_valid_one_falls_back_to_bootstrap_dcs(
    cluster: ClusterStore, store: MemoryStore
) -> None:
    store.put(cluster.keys.config, "{")
    view = observe(cluster, LastGood(BOOTSTRAP))
    assert view.config == BOOTSTRAP and "using bootstrap.dcs" in view.unreadable["config"]


def test_unknown_config_keys_are_ignored_and_reported_once(
    cluster: ClusterStore, store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    kept = LastGood(BOOTSTRAP)
    document = {**json.loads(codec.encode_config(LIVE)), "a_newer_setting": True, "postgresql": {"x": 1}}
    store.put(cluster.keys.config, json.dumps(document))
    with caplog.at_level(logging.WARNING, logger="pgwarden.agent.last_good"):
        for _ in range(3):
            view = observe(cluster, kept)
    assert view.config == LIVE and view.config_ignored == ("a_newer_setting", "postgresql.x")
    assert view.unreadable == {}
    assert len(caplog.records) == 1 and "a_newer_setting" in caplog.text


def test_junk_history_and_status_keep_their_last_valid_values(
    cluster: ClusterStore, store: MemoryStore
) -> None:
    kept = LastGood(BOOTSTRAP)
    history = (fork(2, "0/3000000"), fork(3, "0/5000000"))
    store.put(cluster.keys.history, codec.encode_history(history))
    cluster.publish_status(status(lsn="0/6000000", timeline=3))
    observe(cluster, kept)
    store.put(cluster.keys.history, '[{"timeline": "x"}]')
    store.put(cluster.keys.status, "[]")
    view = observe(cluster, kept)
    assert view.history == history and view.status == status(lsn="0/6000000", timeline=3)
    assert set(view.unreadable) == {"history", "status"}
    assert kept.known_history() == history


def test_junk_initialize_keeps_the_system_identifier(cluster: ClusterStore, store: MemoryStore) -> None:
    kept = LastGood(BOOTSTRAP)
    cluster.finish_initialize("7300000000000000001")
    observe(cluster, kept)
    store.put(cluster.keys.initialize, "junk")
    view = observe(cluster, kept)
    assert view.initialize == "7300000000000000001" and view.initialized


TOPOLOGY = {"node1": "http://127.0.0.1:8009", "node2": "http://127.0.0.1:8010"}


def test_junk_topology_reads_as_nobody_with_the_last_valid_one_beside_it(
    cluster: ClusterStore, store: MemoryStore
) -> None:
    """Racers read nobody (none may race); the leader keeps asking the last valid topology."""
    kept = LastGood(BOOTSTRAP)
    cluster.publish_failsafe(TOPOLOGY)
    assert observe(cluster, kept).failsafe_last_good is None  # readable: nothing kept beside it
    for junk in ("[" * 200_000, '{"node1": 5}', "null", '{"a/b": "http://x"}', "\udcff"):
        store.put(cluster.keys.failsafe, junk)
        view = observe(cluster, kept)
        assert view.failsafe == {} and view.failsafe_last_good == TOPOLOGY, junk[:30]
        assert view.unreadable["failsafe"].endswith("the last valid topology read: node1, node2")
    cluster.publish_failsafe({"node1": TOPOLOGY["node1"]})  # the leader's republication
    view = observe(cluster, kept)
    assert view.failsafe == {"node1": TOPOLOGY["node1"]} and view.failsafe_last_good is None
    assert "failsafe" not in view.unreadable


def test_junk_topology_before_any_valid_one_keeps_nothing(cluster: ClusterStore, store: MemoryStore) -> None:
    store.put(cluster.keys.failsafe, "{")
    view = observe(cluster, LastGood(BOOTSTRAP))
    assert view.failsafe == {} and view.failsafe_last_good is None
    assert "a leader cannot rely on failsafe mode until it reads its own back" in view.unreadable["failsafe"]


def test_each_unreadable_key_is_logged_once_per_change(
    cluster: ClusterStore, store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    kept = LastGood(BOOTSTRAP)
    with caplog.at_level(logging.INFO, logger="pgwarden.agent.last_good"):
        store.put(cluster.keys.sync, "[]")
        for _ in range(5):
            observe(cluster, kept)
        store.put(cluster.keys.sync, "{")  # another reason: reported again
        observe(cluster, kept)
        store.delete(cluster.keys.sync)
        observe(cluster, kept)
        observe(cluster, kept)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert "sync is unreadable" in lines[0] and "sync is unreadable" in lines[1]
    assert "sync is readable again" in lines[2]
