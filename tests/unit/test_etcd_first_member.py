"""Which etcd member an agent's store asks first: one drawn at random (so a fleet's requests spread
over the members), then whichever answered last. Three stand-in gateways on loopback answer an
empty range read and count what they were asked; no etcd is needed for the choice itself."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pgwarden.dcs.etcd import EtcdStore
from pgwarden.dcs.store import StoreError
from pgwarden.model import Address
from pgwarden.model.node import EtcdSettings

EMPTY_RANGE = json.dumps({"header": {"revision": "7"}, "count": "0"}).encode()


class Gateways:
    """Three HTTP servers on 127.0.0.1 that answer every POST with an empty range read."""

    def __init__(self) -> None:
        self.hits: Counter[int] = Counter()
        self.servers = [self._server(i) for i in range(3)]
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in self.servers]
        for thread in self.threads:
            thread.start()

    def _server(self, index: int) -> ThreadingHTTPServer:
        gateways = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                gateways.hits[index] += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(EMPTY_RANGE)))
                self.end_headers()
                self.wfile.write(EMPTY_RANGE)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def settings(self) -> EtcdSettings:
        return EtcdSettings(tuple(Address("127.0.0.1", s.server_address[1]) for s in self.servers))

    def close(self, index: int | None = None) -> None:
        for i, server in enumerate(self.servers):
            if index is None or i == index:
                server.shutdown()
                server.server_close()


@pytest.fixture
def gateways() -> Iterator[Gateways]:
    g = Gateways()
    try:
        yield g
    finally:
        g.close()


def test_stores_start_at_members_drawn_at_random(gateways: Gateways) -> None:
    """30 agents' stores, one read each: every member serves some (all on one: p = 3 / 3^30)."""
    for _ in range(30):
        with EtcdStore.connect(gateways.settings(), timeout=1.0) as store:
            store.get_prefix("/pgwarden/c/")
    assert sorted(gateways.hits) == [0, 1, 2], gateways.hits
    assert sum(gateways.hits.values()) == 30, "one request each: the first member asked answered"


def test_a_store_sticks_to_the_member_that_answered(gateways: Gateways) -> None:
    with EtcdStore(gateways.settings().hosts, timeout=1.0, first=1) as store:
        for _ in range(3):
            store.get_prefix("/pgwarden/c/")
        assert gateways.hits == Counter({1: 3})
        gateways.close(1)  # that member goes away: the next one answers, and is kept
        for _ in range(3):
            store.get_prefix("/pgwarden/c/")
        assert gateways.hits == Counter({1: 3, 2: 3})


def test_a_store_on_no_answering_member_says_so(gateways: Gateways) -> None:
    gateways.close()
    with EtcdStore(gateways.settings().hosts, timeout=0.5, first=2) as store, pytest.raises(StoreError):
        store.get_prefix("/pgwarden/c/")
