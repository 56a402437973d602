"""Asks the other members' REST APIs for their status, in parallel and with a short timeout."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from pgwarden.agent.snapshot import peer_status
from pgwarden.ha.observation import PeerStatus
from pgwarden.model import Member

log = logging.getLogger(__name__)


class PeerClient:
    def __init__(self, timeout: float, bind_address: str | None, tls: ssl.SSLContext | None = None) -> None:
        """``tls``: verifies the peers and presents this agent's client certificate
        (``api.tls.peer_context``); None calls https peers without verifying them."""
        self._timeout = timeout
        verify: ssl.SSLContext | bool = tls if tls is not None else False
        transport = httpx.HTTPTransport(local_address=bind_address, verify=verify) if bind_address else None
        self._http = httpx.Client(timeout=timeout, transport=transport, verify=verify)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="peer")

    def gather(self, members: Sequence[Member], me: str) -> Mapping[str, PeerStatus]:
        others = [m for m in members if m.name != me]
        results = self._pool.map(self._ask, others)
        return {status.name: status for status in results}

    def _ask(self, member: Member) -> PeerStatus:
        try:
            reply = self._http.get(f"{member.api_url}/patroni")
            return peer_status(member.name, reply.json())
        except (httpx.HTTPError, ValueError) as exc:
            log.debug("peer %s unreachable: %s", member.name, exc)
            return PeerStatus(name=member.name, reachable=False)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()
