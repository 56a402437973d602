"""PeerClient against real HTTP servers on loopback: junk makes a peer unknown, within one deadline."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pgwarden.agent.peers import PeerClient
from pgwarden.model import Member
from tests.support.junk_peer import KINDS, JunkPeer

DEADLINE = 1.0
SLACK = 1.0  # the machine is shared and loaded: scheduling, not the client, takes this


def member(name: str, url: str) -> Member:
    return Member(name=name, api_url=url, host="127.0.0.1", port=5432)


class _Good(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps(
            {"role": "replica", "state": "running", "timeline": 1, "xlog": {"received_location": 42}}
        ).encode()
        self.send_response(503)  # an unhealthy node still answers with its status document
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def good_peer() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Good)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def client() -> Iterator[PeerClient]:
    peers = PeerClient(timeout=DEADLINE, bind_address=None)
    yield peers
    peers.close()


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_of_junk_makes_the_peer_unknown_within_the_deadline(client: PeerClient, kind: str) -> None:
    with JunkPeer(kinds=[kind], endless_for=10, slow_for=3) as junk, good_peer() as good:
        started = time.monotonic()
        found = client.gather([member("junk", junk.url), member("good", good), member("me", good)], "me")
        took = time.monotonic() - started
    assert found["junk"].reachable is False, kind
    assert found["good"].reachable and found["good"].lsn is not None and found["good"].lsn.value == 42
    assert "me" not in found
    assert took < DEADLINE + SLACK, f"{kind}: the gather took {took:.2f}s"


def test_the_gather_answers_at_its_deadline_whatever_the_peers_do(client: PeerClient) -> None:
    """Several endless and slow peers at once: one deadline for the whole gather, not one each."""
    with (
        JunkPeer(kinds=["endless body"], endless_for=10) as endless,
        JunkPeer(kinds=["slow answer"], slow_for=3) as slow,
        JunkPeer(kinds=["endless body"], endless_for=10) as endless2,
    ):
        started = time.monotonic()
        found = client.gather(
            [member("a", endless.url), member("b", slow.url), member("c", endless2.url)], "me"
        )
        took = time.monotonic() - started
    assert not any(p.reachable for p in found.values())
    assert took < DEADLINE + SLACK


def test_a_peer_with_a_url_no_client_can_use_is_unknown(client: PeerClient) -> None:
    found = client.gather(
        [member("a", "ftp://127.0.0.1:1"), member("b", "http://[::1"), member("c", "")], "me"
    )
    assert not any(p.reachable for p in found.values())


def test_why_a_peer_is_unknown_is_logged_once_per_change(caplog: pytest.LogCaptureFixture) -> None:
    client = PeerClient(timeout=10.0, bind_address=None)  # no "no answer in time" on a loaded machine
    with JunkPeer(kinds=["null"]) as junk, caplog.at_level(logging.INFO, logger="pgwarden.agent.peers"):
        for _ in range(3):
            client.gather([member("junk", junk.url)], "me")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "junk" in warnings[0] and "unusable answer" in warnings[0]
    with good_peer() as good, caplog.at_level(logging.INFO, logger="pgwarden.agent.peers"):
        client.gather([member("junk", good)], "me")
    client.close()
    assert "peer junk answers usably again" in caplog.text
