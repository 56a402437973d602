"""What a failover drill measured, per round and in summary, and when a cluster counts as healed.

Pure values and functions: member status documents (``GET /patroni``) and writer figures in,
verdicts and JSON documents out, so they are tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Statuses = Mapping[str, Mapping[str, Any] | None]  # member name -> GET /patroni, None when silent


def running_primaries(statuses: Statuses) -> list[str]:
    return sorted(
        name
        for name, s in statuses.items()
        if s is not None and s.get("role") == "primary" and s.get("state") == "running"
    )


def healed_primary(statuses: Statuses, members: Sequence[str]) -> str | None:
    """The primary when the cluster is healed, else None.

    Healed: exactly one member runs as primary and every other expected member streams from it.
    """
    primaries = running_primaries(statuses)
    if len(primaries) != 1:
        return None
    primary = primaries[0]
    for name in members:
        if name != primary and not streams_from(statuses.get(name), primary):
            return None
    return primary


def streams_from(status: Mapping[str, Any] | None, upstream: str) -> bool:
    return (
        status is not None
        and status.get("replication_state") == "streaming"
        and status.get("upstream") == upstream
    )


@dataclass(frozen=True, slots=True)
class RoundResult:
    number: int
    kind: str  # "switchover" or "kill"
    old_primary: str | None
    new_primary: str | None
    healed: bool
    heal_seconds: float | None  # from the fault to healed
    rto_seconds: float  # longest gap between two acknowledged writes during the round
    acknowledged: int
    lost: int
    old_primary_streams_after: float | None  # seconds from the fault to the old primary streaming again
    reasons: Mapping[str, str | None] = field(default_factory=dict)  # member -> reason_code afterwards
    error: str | None = None

    def document(self) -> dict[str, Any]:
        return {
            "round": self.number,
            "kind": self.kind,
            "old_primary": self.old_primary,
            "new_primary": self.new_primary,
            "healed": self.healed,
            "heal_seconds": _rounded(self.heal_seconds),
            "rto_seconds": _rounded(self.rto_seconds),
            "writes_acknowledged": self.acknowledged,
            "writes_lost": self.lost,
            "old_primary_streams_after_seconds": _rounded(self.old_primary_streams_after),
            "reason_codes": dict(self.reasons),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class DrillReport:
    cluster: str
    kind: str
    synchronous: bool  # synchronous_mode was on: a lost write is a failure
    rounds: tuple[RoundResult, ...]

    @property
    def healed(self) -> bool:
        return all(r.healed for r in self.rounds)

    @property
    def lost(self) -> int:
        return sum(r.lost for r in self.rounds)

    @property
    def ok(self) -> bool:
        """The exit status: every round healed, and no write lost where synchronous mode promised none."""
        return self.healed and not (self.synchronous and self.lost > 0)

    def problems(self) -> list[str]:
        found = [
            f"round {r.number} did not heal: {r.error or 'timed out'}" for r in self.rounds if not r.healed
        ]
        if self.synchronous and self.lost:
            found.append(f"{self.lost} acknowledged writes lost although synchronous_mode is on")
        return found

    def summary(self) -> dict[str, Any]:
        """Totals and worst cases over the rounds (seconds unrounded; ``document`` rounds them)."""
        rounds = self.rounds
        streams = [r.old_primary_streams_after for r in rounds if r.old_primary_streams_after is not None]
        return {
            "rounds": len(rounds),
            "healed": sum(r.healed for r in rounds),
            "max_rto_seconds": max((r.rto_seconds for r in rounds), default=0.0),
            "writes_acknowledged": sum(r.acknowledged for r in rounds),
            "writes_lost": self.lost,
            "max_old_primary_streams_after_seconds": max(streams, default=None),
        }

    def document(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "kind": self.kind,
            "synchronous_mode": self.synchronous,
            "ok": self.ok,
            "problems": self.problems(),
            "rounds": [r.document() for r in self.rounds],
            "summary": {k: _rounded(v) if isinstance(v, float) else v for k, v in self.summary().items()},
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
