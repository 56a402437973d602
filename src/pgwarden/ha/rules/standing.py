"""How candidates for the leader key compare: further WAL first, then priority, then name."""

from __future__ import annotations

from dataclasses import dataclass

from pgwarden.model import Lsn


@dataclass(frozen=True, slots=True, order=True)
class Standing:
    """Orders candidates: further WAL, then higher failover_priority, then the smaller name."""

    lsn: int
    priority: int
    name_rank: tuple[int, ...]  # negated code points: the smaller name ranks higher

    @classmethod
    def of(cls, lsn: Lsn | None, priority: int, name: str) -> Standing:
        return cls(lsn.value if lsn else -1, priority, (*tuple(-ord(c) for c in name), 1))
