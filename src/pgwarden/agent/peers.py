"""Asks the other members' REST APIs for their status, in parallel, within one deadline per gather.

Peers are asked when the cluster has no leader, so a slow or hostile peer must not delay the
failover: the whole gather ends at its deadline (a peer that has not answered by then is
unreachable), each body is read as it streams and dropped past `MAX_ANSWER_BYTES` or past the
deadline (a body that never ends costs no more than that), and the answer is parsed by
`read_peer_answer`. Why a peer is unknown is logged once per change, not every cycle.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from pgwarden.agent.guard import describe
from pgwarden.agent.peer_answer import MAX_ANSWER_BYTES, BadAnswer, read_peer_answer
from pgwarden.ha.observation import PeerStatus
from pgwarden.model import Member
from pgwarden.outbound_http import HttpClient
from pgwarden.tls import client_context

log = logging.getLogger(__name__)

# Compressed answers could inflate past the cap within one chunk: ask for none (ours send none).
_HEADERS = {"Accept-Encoding": "identity"}
MAX_DOCUMENT_BYTES = 1024 * 1024  # GET /events: at most 100 decision runs of a few hundred bytes


class PeerClient:
    def __init__(self, timeout: float, bind_address: str | None, tls: ssl.SSLContext | None = None) -> None:
        """``timeout``: the deadline of one whole gather, in seconds. ``tls``: verifies the peers and
        presents this agent's client certificate (``api.tls.peer_context``); None calls https peers
        without verifying them."""
        self._timeout = timeout
        verify = tls or client_context(None, insecure=True)
        self._http = HttpClient(source=bind_address, tls=verify, headers=_HEADERS)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="peer")
        self._problems: dict[str, str] = {}  # peer -> why it was unknown last time (log once per change)

    def gather(self, members: Sequence[Member], me: str) -> Mapping[str, PeerStatus]:
        """Every other member's status; one that did not answer usably by the deadline is unreachable."""
        deadline = time.monotonic() + self._timeout
        asked: dict[str, Future[tuple[PeerStatus, str | None]]] = {
            m.name: self._pool.submit(self._ask, m, deadline) for m in members if m.name != me
        }
        wait(asked.values(), timeout=max(0.0, deadline - time.monotonic()))
        found: dict[str, PeerStatus] = {}
        for name, future in asked.items():
            # A late answer is dropped: its thread ends by itself (its reads time out by then).
            status, problem = (
                future.result()
                if future.done() and future.exception() is None
                else (PeerStatus(name=name, reachable=False), f"no answer within {self._timeout:g}s")
            )
            self._note(name, problem)
            found[name] = status
        return found

    def _ask(self, member: Member, deadline: float) -> tuple[PeerStatus, str | None]:
        """The peer's status, and why it is unknown when it is."""
        try:
            return read_peer_answer(member.name, self._fetch(member, deadline)), None
        except BadAnswer as exc:
            return PeerStatus(name=member.name, reachable=False), f"unusable answer: {exc}"
        except Exception as exc:  # transport errors, bad URLs from etcd: that peer is unknown
            return PeerStatus(name=member.name, reachable=False), f"unreachable: {describe(exc)}"

    def _fetch(
        self, member: Member, deadline: float, path: str = "/patroni", limit: int = MAX_ANSWER_BYTES
    ) -> bytes:
        """The body of ``GET <path>`` (``/patroni``), read until its end, the size cap or the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the gather's deadline passed before asking")
        body = bytearray()
        # Any status counts: an unhealthy node answers 503 with its status document.
        with self._http.stream("GET", f"{member.api_url}{path}", timeout=remaining) as reply:
            if path != "/patroni" and reply.status != 200:
                raise BadAnswer(f"{member.api_url}{path} answered HTTP {reply.status}")
            for chunk in reply.chunks():
                body += chunk
                if len(body) > limit:
                    raise BadAnswer(f"answer larger than {limit} bytes")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"answer still streaming after {self._timeout:g}s")
        return bytes(body)

    def _note(self, name: str, problem: str | None) -> None:
        before = self._problems.get(name)
        if problem is None:
            self._problems.pop(name, None)
        else:
            self._problems[name] = problem
        if problem != before:
            if problem is None:
                log.info("peer %s answers usably again", name)
            else:
                log.warning("peer %s is unknown this cycle: %s", name, problem)

    def documents(self, members: Sequence[Member], me: str, path: str) -> dict[str, dict[str, Any] | str]:
        """Each other member's JSON object at ``path`` (``/events``), or why there is none."""
        others = [m for m in members if m.name != me]
        deadline = time.monotonic() + self._timeout

        def fetch(member: Member) -> dict[str, Any] | str:
            # Read like /patroni: bounded in size and time; the caller parses what it uses.
            try:
                document = json.loads(self._fetch(member, deadline, path, MAX_DOCUMENT_BYTES))
            except BadAnswer as exc:
                return str(exc)
            except Exception as exc:  # transport errors, bad JSON, bad URLs from etcd
                return f"no answer from {member.api_url}{path}: {describe(exc)}"
            if not isinstance(document, dict):
                return f"{member.api_url}{path} answered no JSON object"
            return document

        return {m.name: found for m, found in zip(others, self._pool.map(fetch, others), strict=True)}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()
