"""Every decoder of etcd values and the peer-answer parser: arbitrary JSON and bytes never raise.

A decoder returns a typed value or raises its one error type (`Unreadable`, `BadAnswer`);
anything else reaching the loop is the bug issue 11 found (one nested value stopped every agent).
The documents are drawn three ways: any JSON value, any text or bytes, and the right shape with
any JSON in each field, which is where a field reader's type check would be missing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgwarden.agent.peer_answer import BadAnswer, read_peer_answer
from pgwarden.dcs import codec
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.store import KeyValue
from pgwarden.dcs.store import Snapshot as StoreSnapshot
from pgwarden.model import DynamicConfig, Lsn, Member, StoreKey

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)

DECODERS: dict[str, Callable[[str], object]] = {
    "member": codec.decode_member,
    "status": codec.decode_status,
    "sync": codec.decode_sync,
    "history": codec.decode_history,
    "switchover": codec.decode_switchover,
    "switchover_outcome": codec.decode_switchover_outcome,
    "config": codec.decode_config,
    "leader": codec.decode_leader,
    "initialize": codec.decode_initialize,
    "failsafe": codec.decode_failsafe,
}
# The fields each encoding writes, so shaped documents reach every field reader.
SHAPES: dict[str, tuple[str, ...]] = {
    "member": (
        "name", "api_url", "host", "port", "role", "state", "timeline", "lsn", "tags", "pending_restart",
        "version", "pending_restart_reason", "scheduled_restart", "loop_error", "config_errors",
    ),
    "status": ("name", "timeline", "lsn", "slots"),
    "sync": ("leader", "members", "quorum", "degraded_since"),
    "switchover": ("leader", "candidate", "scheduled_at", "failover", "deadline"),
    "switchover_outcome": ("at", "outcome"),
    "config": (*(f.name for f in DynamicConfig.__dataclass_fields__.values()), "postgresql", "x"),
}  # fmt: skip
TAG_FIELDS = ("nofailover", "noloadbalance", "nosync", "failover_priority", "sync_priority", "custom")
PEER_SHAPE = ("role", "state", "timeline", "xlog", "tags", "reason_code")
XLOG_FIELDS = ("location", "received_location", "replayed_location", "paused")


def shaped(fields: tuple[str, ...], values: st.SearchStrategy[Any] = json_values) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries({}, optional={f: values for f in fields})


def _decodes_or_is_unreadable(decode: Callable[[str], object], text: str) -> None:
    with contextlib.suppress(codec.Unreadable):
        decode(text)


@pytest.mark.parametrize("kind", list(DECODERS))
@PROPERTY
@given(value=json_values)
def test_any_json_value_decodes_or_is_unreadable(kind: str, value: object) -> None:
    _decodes_or_is_unreadable(DECODERS[kind], json.dumps(value))


@pytest.mark.parametrize("kind", list(DECODERS))
@PROPERTY
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_decode_or_are_unreadable(kind: str, raw: bytes) -> None:
    # etcd values arrive as text decoded leniently (errors="replace"), or with lone surrogates.
    _decodes_or_is_unreadable(DECODERS[kind], raw.decode("utf-8", errors="replace"))
    _decodes_or_is_unreadable(DECODERS[kind], raw.decode("utf-8", errors="surrogateescape"))


@pytest.mark.parametrize("kind", list(SHAPES))
@PROPERTY
@given(data=st.data())
def test_the_right_shape_with_any_field_values_decodes_or_is_unreadable(
    kind: str, data: st.DataObject
) -> None:
    document = data.draw(shaped(SHAPES[kind]))
    if kind == "member" and data.draw(st.booleans()):
        document["tags"] = data.draw(shaped(TAG_FIELDS))
    _decodes_or_is_unreadable(DECODERS[kind], json.dumps(document))


@PROPERTY
@given(
    entries=st.lists(
        shaped(("timeline", "switch_lsn", "reason", "timestamp", "new_leader", "event", "folded"))
    )
)
def test_any_history_entries_decode_or_are_unreadable(entries: list[Any]) -> None:
    _decodes_or_is_unreadable(codec.decode_history, json.dumps(entries))


@pytest.mark.parametrize("kind", list(DECODERS))
@pytest.mark.parametrize(
    "text",
    ["[" * 200_000 + "]" * 200_000, '{"a":' * 100_000, "1" * 5000, '"' + "x" * codec.MAX_VALUE_BYTES + '"'],
    ids=["200000-deep", "unterminated-deep", "5000-digit-int", "over-the-cap"],
)
def test_hostile_values_are_unreadable(kind: str, text: str) -> None:
    with pytest.raises(codec.Unreadable):
        DECODERS[kind](text)


def test_values_the_encoders_write_decode_back() -> None:
    member = Member(name="node1", api_url="http://127.0.0.1:8008", host="127.0.0.1", port=5432)
    assert codec.decode_member(codec.encode_member(member)) == member
    relay = replace(member, slots=frozenset({"node2", "node3"}))
    assert codec.decode_member(codec.encode_member(relay)) == relay
    assert codec.decode_config(codec.encode_config(DynamicConfig())) == (DynamicConfig(), ())


# --- a whole cluster prefix ---------------------------------------------------------------------

ROOT = "/pgwarden/demo/"
keys = st.sampled_from([*(str(k) for k in StoreKey), "members/node1", "members/x", "members/", "other"])


@PROPERTY
@given(items=st.lists(st.tuples(keys, json_values.map(json.dumps) | st.text(max_size=50)), max_size=8))
def test_any_cluster_prefix_decodes_into_a_view(items: list[tuple[str, str]]) -> None:
    """Whatever sits under the prefix, ``decode`` answers a view; only keys it cannot read are
    listed as unreadable, each with a reason; and a key whose absence would be read as a
    permission is never read as absent (docs/faults.md, "bad input")."""
    present = dict(items)
    snapshot = StoreSnapshot(
        revision=9, items=tuple(KeyValue(ROOT + key, value, 5, 4, 0) for key, value in present.items())
    )
    view = ClusterStore(_NoStore(), "demo").decode(snapshot)
    assert set(view.unreadable) <= set(present)
    assert all(view.unreadable.values())
    if StoreKey.LEADER in present:  # no key: anyone may race
        assert view.leader is not None
    if StoreKey.SYNC in present:  # no claim: any healthy standby may promote
        assert view.sync is not None
    if StoreKey.FAILSAFE in present:  # no topology: every member may race in failsafe mode
        assert view.failsafe is not None
        assert StoreKey.FAILSAFE not in view.unreadable or view.failsafe == {}
    if present.get(StoreKey.INITIALIZE):  # not initialized: a member may bootstrap a new cluster
        assert view.initialized


class _NoStore:
    """decode reads nothing from the store: any call is a bug."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"decode called store.{name}")


# --- peers' answers -----------------------------------------------------------------------------


def _peer_reads_or_is_refused(body: bytes) -> None:
    try:
        status = read_peer_answer("node3", body)
    except BadAnswer:
        return
    assert status.reachable and status.name == "node3"


@PROPERTY
@given(value=json_values)
def test_any_json_peer_answer_reads_or_is_refused(value: object) -> None:
    _peer_reads_or_is_refused(json.dumps(value).encode())


@PROPERTY
@given(body=st.binary(max_size=300))
def test_any_bytes_peer_answer_reads_or_is_refused(body: bytes) -> None:
    _peer_reads_or_is_refused(body)


@PROPERTY
@given(data=st.data())
def test_a_status_shaped_peer_answer_with_any_field_values_reads_or_is_refused(data: st.DataObject) -> None:
    document = data.draw(shaped(PEER_SHAPE))
    if data.draw(st.booleans()):
        document["xlog"] = data.draw(shaped(XLOG_FIELDS))
    if data.draw(st.booleans()):
        document["tags"] = data.draw(shaped(("nofailover", "failover_priority")))
    _peer_reads_or_is_refused(json.dumps(document).encode())


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"null",
        b'{"xlog": "a"}',
        b'{"tags": {"failover_priority": "x"}}',
        b'{"xlog": {"received_location": -1}}',
        b'{"xlog": {"location": 18446744073709551616}}',
        b'{"timeline": 1' + b"0" * 400 + b"}",
        b"[" * 100_000,
        b'{"role": "\xff"}',
        b'{"state": "running", "xlog": {"location": 1.5}}',
        b'{"tags": {"nofailover": "yes"}}',
    ],
)
def test_the_issues_junk_answers_make_the_peer_unknown(body: bytes) -> None:
    with pytest.raises(BadAnswer):
        read_peer_answer("node3", body)


def test_a_well_formed_answer_reads_as_before() -> None:
    body = json.dumps(
        {
            "role": "replica",
            "state": "running",
            "timeline": 3,
            "xlog": {"received_location": 100, "replayed_location": 90, "paused": True},
            "tags": {"nofailover": False, "failover_priority": 5, "zone": "a"},
            "reason_code": "STANDBY_HEALTHY",
            "a_field_of_a_newer_version": {"x": [1]},
        }
    ).encode()
    status = read_peer_answer("node3", body)
    assert (status.in_recovery, status.lsn, status.replayed) == (True, Lsn(100), Lsn(90))
    assert status.timeline == 3 and status.tags.failover_priority == 5 and status.replay_paused
    assert not status.loop_failing
    failing = read_peer_answer("node3", b'{"reason_code": "INTERNAL_ERROR", "state": "running"}')
    assert failing.loop_failing


@pytest.mark.parametrize(
    ("slots", "error"),
    [
        ("node2", "slots must be a list of at most 1000 slot names"),
        (["node"] * 1001, "slots must be a list of at most 1000 slot names"),
        ([2], "slots must hold slot names of 1 to 63 characters"),
        (["x" * 64], "slots must hold slot names of 1 to 63 characters"),
    ],
)
def test_a_member_record_listing_bad_slots_is_unreadable_with_the_reason(slots: object, error: str) -> None:
    """A relay's slot list decides when a retagged member switches to it: bounded, or refused."""
    record = json.loads(codec.encode_member(Member(name="n", api_url="http://127.0.0.1:1", host="h", port=1)))
    with pytest.raises(codec.Unreadable, match=error):
        codec.decode_member(json.dumps({**record, "slots": slots}))
