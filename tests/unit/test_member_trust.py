"""member_networks: which member records read from etcd are trusted with credentials (model/trust.py)."""

from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from pgwarden.dcs import codec
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.memory import MemoryStore
from pgwarden.model import Member
from pgwarden.model.trust import MemberNetworks, trusted_view
from tests.support.builders import failsafe_view, member, view

CLUSTER = MemberNetworks((ipaddress.ip_network("127.0.5.0/24"),), ("*.db.example.com",))


def at(name: str, host: str, api_host: str | None = None) -> Member:
    return dataclasses.replace(member(name), host=host, api_url=f"https://{api_host or host}:8008")


def test_members_inside_the_networks_are_kept_as_they_are() -> None:
    seen = view(members=[at("node1", "127.0.5.11"), at("node2", "a.db.example.com")])
    assert trusted_view(seen, CLUSTER) is seen


def test_a_record_pointing_outside_is_dropped_and_named_with_its_reason() -> None:
    seen = view(
        members=[at("node1", "127.0.5.11"), at("node2", "127.0.9.9"), at("node3", "127.0.5.13", "127.0.8.1")]
    )
    trusted = trusted_view(seen, CLUSTER)
    assert [m.name for m in trusted.members] == ["node1"]
    assert set(trusted.untrusted) == {"node2", "node3"}
    assert (
        "PostgreSQL host 127.0.9.9 is outside member_networks (127.0.5.0/24, *.db.example.com)"
        in (trusted.untrusted["node2"])
    )
    assert "api_url https://127.0.8.1:8008" in trusted.untrusted["node3"]
    assert trusted.leader == seen.leader  # the key itself is not a member address: kept


def test_hosts_the_rules_must_not_be_fooled_by() -> None:
    for host in (
        "",
        "db.example.com",
        "evil.com",
        "a.db.example.com.evil.com",
        "127.0.50.1",
        "::ffff:127.0.5.1",
    ):
        assert CLUSTER.host_refusal(host) is not None, host
    for url in ("ftp://127.0.5.1:8008", "http://user@127.0.9.1:8008", "not a url", "https://[::1"):
        assert CLUSTER.url_refusal(url) is not None, url
    assert CLUSTER.url_refusal("http://127.0.5.1:8008") is None
    assert CLUSTER.url_refusal("https://USER@A.DB.Example.com:8008/") is None


def test_the_failsafe_topology_keeps_its_members_but_not_their_untrusted_urls() -> None:
    seen = dataclasses.replace(
        failsafe_view(members=[at("node1", "127.0.5.11")]),
        failsafe={"node1": "https://127.0.5.11:8008", "node2": "https://127.0.9.2:8008"},
    )
    trusted = trusted_view(seen, CLUSTER)
    # node2 still has to promise (a failsafe leader cannot ask it, so it gets no extension).
    assert trusted.failsafe == {"node1": "https://127.0.5.11:8008", "node2": ""}
    assert "failsafe topology" in trusted.untrusted["node2"]


def test_the_cluster_store_reads_views_through_member_networks() -> None:
    store = MemoryStore(clock=lambda: 0.0)
    cluster = ClusterStore(store, "demo", member_networks=CLUSTER)
    for record in (at("node1", "127.0.5.11"), at("node2", "127.0.77.2")):
        store.put(cluster.keys.member(record.name), codec.encode_member(record))
    read = cluster.read()
    assert [m.name for m in read.members] == ["node1"]
    assert list(read.untrusted) == ["node2"]
    assert [m.name for m in ClusterStore(store, "demo").read().members] == ["node1", "node2"]


_HOSTS = st.one_of(
    st.builds(lambda a, b: f"127.0.{a}.{b}", st.sampled_from([5, 6, 255]), st.integers(0, 255)),
    st.sampled_from(["x.db.example.com", "db.example.com", "evil.org", "", "::1", "fe80::1%eth0"]),
)


@given(st.lists(st.tuples(_HOSTS, _HOSTS), min_size=1, max_size=6))
def test_no_member_left_in_a_trusted_view_names_an_address_outside(hosts: list[tuple[str, str]]) -> None:
    members = [at(f"node{i}", host, api or "127.0.5.1") for i, (host, api) in enumerate(hosts)]
    seen = dataclasses.replace(view(members=members), failsafe={m.name: m.api_url for m in members})
    trusted = trusted_view(seen, CLUSTER)
    assert all(CLUSTER.member_refusal(m) is None for m in trusted.members)
    assert {m.name for m in trusted.members} | set(trusted.untrusted) == {m.name for m in members}
    assert not {m.name for m in trusted.members} & set(trusted.untrusted)
    assert trusted.failsafe is not None
    assert all(url == "" or CLUSTER.url_refusal(url) is None for url in trusted.failsafe.values())
