"""How a drill sees and drives the cluster: members' statuses from their REST APIs, a switchover."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pgwarden.client import ApiUnreachable, ClientError, ClusterClient, KnownNode
from pgwarden.model.cluster import Member, SyncMode

# A status request that takes longer than this counts as a silent member for this poll.
STATUS_TIMEOUT = 1.0


class DrillCluster:
    """One cluster through a ClusterClient; members listed in stack.json are known even while
    their member key is gone from etcd (a killed node)."""

    def __init__(self, client: ClusterClient, known: Sequence[KnownNode] = ()) -> None:
        self.client = client
        self._known = {n.name: Member(n.name, n.api_url, n.host, n.port) for n in known}

    @property
    def name(self) -> str:
        return self.client.target.cluster

    def _members(self) -> dict[str, Member]:
        found = dict(self._known)
        try:
            found.update({m.name: m for m in self.client.view().members})
        except ClientError:
            if not found:
                raise
        return found

    def member_names(self) -> list[str]:
        return sorted(self._members())

    def statuses(self) -> dict[str, Mapping[str, Any] | None]:
        """Every member's ``GET /patroni``; None for a member whose API does not answer."""
        found: dict[str, Mapping[str, Any] | None] = {}
        for name, member in sorted(self._members().items()):
            try:
                found[name] = self.client.call(member, "GET", "/patroni", timeout=STATUS_TIMEOUT).document
            except ClientError:
                found[name] = None
        return found

    def synchronous(self) -> bool:
        """synchronous_mode is on: the cluster promises that no acknowledged write is lost."""
        try:
            return self.client.view().config.synchronous_mode is not SyncMode.OFF
        except ClientError:
            return False

    def switchover(self, leader: str, timeout: float) -> str:
        """A planned switchover away from ``leader`` (the leader picks the candidate); returns the
        agent's answer once the new primary runs. Raises ClientError when refused or unreachable."""
        member = self._members().get(leader)
        if member is None:
            raise ApiUnreachable(f"{leader} is not a member the drill can reach")
        body = {"leader": leader, "candidate": None, "scheduled_at": None, "timeout": timeout}
        return self.client.call(member, "POST", "/switchover", body, timeout=timeout + 10).message
