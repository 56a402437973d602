"""Calls on the etcd cluster itself, for `pgwarden doctor`: its member list, and timed reads on
one member. Not part of the `Store` contract (the agent never makes them); they go through
`EtcdStore`'s transport (`call`, `call_on`), so endpoints, TLS, tokens and timeouts are the agent's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from pgwarden.dcs.etcd import EtcdStore
from pgwarden.dcs.etcd_wire import _b64


@dataclass(frozen=True, slots=True)
class EtcdMember:
    """One member of the etcd cluster: its name and the URLs its clients use."""

    name: str
    client_urls: tuple[str, ...]


def members(store: EtcdStore) -> tuple[EtcdMember, ...]:
    """The etcd cluster's members as it lists them (not only the configured endpoints)."""
    answer = store.call("/v3/cluster/member/list", {})
    found = []
    for raw in answer.get("members", []):
        if isinstance(raw, Mapping):
            urls = raw.get("clientURLs")
            clients = tuple(str(u) for u in urls) if isinstance(urls, list) else ()
            found.append(EtcdMember(str(raw.get("name", "")), clients))
    return tuple(found)


def round_trip(store: EtcdStore, index: int, key: str) -> float:
    """Seconds one linearizable read of ``key`` took on endpoint ``index`` (what the agents'
    reads cost there); StoreError when that endpoint did not answer."""
    sent = time.monotonic()
    store.call_on(index, "/v3/kv/range", {"key": _b64(key)})
    return time.monotonic() - sent
