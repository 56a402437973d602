"""What a local stack looks like at one moment: its processes, etcd, members and HAProxy's routing."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Part:
    """One process the stack started: ``etcd1``..``etcd3``, ``node1``.. (the agents), ``haproxy``."""

    name: str
    pid: int | None
    running: bool


@dataclass(frozen=True, slots=True)
class StackState:
    """One look at the whole stack, for progress displays and for deciding it is healthy."""

    parts: tuple[Part, ...]
    etcd_healthy: int  # members answering /health with true
    members: Mapping[str, Mapping[str, Any] | None]  # node name -> GET /patroni, None if silent
    routes_writes_to: tuple[str, ...] | None  # servers HAProxy's write port has UP; None: no stats
    healthy: bool  # one running primary, every other node streaming
    summary: str

    @property
    def primary(self) -> str | None:
        names = [n for n, s in self.members.items() if s and _is_running_primary(s)]
        return names[0] if len(names) == 1 else None

    @property
    def routed(self) -> bool:
        """Healthy, and HAProxy's write port sends clients to that primary alone."""
        return self.healthy and self.routes_writes_to == (self.primary,)


def _is_running_primary(status: Mapping[str, Any]) -> bool:
    return status.get("role") == "primary" and status.get("state") == "running"


def verdict(statuses: Mapping[str, Mapping[str, Any] | None], nodes: int) -> tuple[bool, str]:
    """Healthy when one primary runs and every other node streams; with a one-line summary."""
    primaries = [n for n, s in statuses.items() if s and _is_running_primary(s)]
    streaming = [n for n, s in statuses.items() if s and s.get("replication_state") == "streaming"]
    summary = f"primary: {primaries or 'none'}; streaming: {streaming or 'none'}"
    return len(primaries) == 1 and len(streaming) == nodes - 1, summary


def servers_up(stats_csv: str, listener: str) -> tuple[str, ...]:
    """The servers of ``listener`` that HAProxy's stats CSV (``GET /;csv``) shows UP, by name."""
    rows = csv.DictReader(io.StringIO(stats_csv.lstrip("# ")))
    return tuple(
        sorted(
            row["svname"]
            for row in rows
            if row.get("pxname") == listener
            and row.get("svname") not in ("FRONTEND", "BACKEND")
            and (row.get("status") or "").startswith("UP")
        )
    )
