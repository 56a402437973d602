"""The agent's answers about itself beyond the snapshot: its recent decisions and the facts ``doctor`` checks.

``GET /events``: this agent's decision runs (agent/decision_log.py). ``GET /cluster/events``:
every member's, this one's and each peer's ``/events`` gathered in parallel with the peer
timeout, kept for ``CLUSTER_EVENTS_TTL`` so that any number of open web views costs at most
one round of peer requests per period. ``GET /diagnostics``: what this node can tell about
itself that etcd does not hold (PostgreSQL's settings, slots and senders read on demand, free
disk, its clock, how its API is protected, its fence and watchdog, its etcd round trips); facts
only, the judging is ``pgwarden doctor``'s (doctor/checks.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pgwarden.agent.decision_log import MAX_RUNS, DecisionLog, DecisionRun, read_run
from pgwarden.agent.lease import monotonic
from pgwarden.agent.round_trips import RoundTrips
from pgwarden.agent.snapshot import SnapshotHolder
from pgwarden.agent.wal_clock import WalClock
from pgwarden.agent.watchdog import Watchdog
from pgwarden.documents.render import iso_time
from pgwarden.fence.files import running_fence
from pgwarden.fence.proc import state as process_state
from pgwarden.model import Member
from pgwarden.model.node import NodeConfig

CLUSTER_EVENTS_TTL = 2.0
DIAGNOSTICS_FORMAT = 1

PostgresFacts = Callable[[], dict[str, Any]]
PeerDocuments = Callable[[Sequence[Member], str, str], Mapping[str, dict[str, Any] | str]]


def run_document(run: DecisionRun) -> dict[str, Any]:
    return {
        "time": iso_time(run.since),
        "timestamp": round(run.since, 3),
        "reason_code": run.reason_code,
        "message": run.message,
        "actions": list(run.actions),
        "decisions": run.decisions,
        "last": iso_time(run.last),
        "last_timestamp": round(run.last, 3),
    }


@dataclass(frozen=True, slots=True)
class Sources:
    """Where each answer comes from (the agent wires its own parts in; tests pass stand-ins)."""

    config: NodeConfig
    snapshots: SnapshotHolder
    decisions: DecisionLog
    wal_clock: WalClock
    etcd_reads: RoundTrips
    etcd_renewals: RoundTrips
    postgres: PostgresFacts
    peers: PeerDocuments
    watchdog: Watchdog | None = None
    clock: Callable[[], float] = time.time


class AgentInspection:
    def __init__(self, sources: Sources) -> None:
        self._s = sources
        self._lock = threading.Lock()
        self._cluster_events: tuple[float, dict[str, Any]] | None = None

    def events(self) -> dict[str, Any]:
        return {
            "member": self._s.config.name,
            "events": [run_document(run) for run in self._s.decisions.runs()],
        }

    def cluster_events(self) -> dict[str, Any]:
        with self._lock:  # one round of peer requests at a time; the others wait and reuse it
            cached = self._cluster_events
            if cached is not None and monotonic() - cached[0] < CLUSTER_EVENTS_TTL:
                return cached[1]
            document = self._gather_events()
            self._cluster_events = (monotonic(), document)
            return document

    def _gather_events(self) -> dict[str, Any]:
        me = self._s.config.name
        members = self._s.snapshots.get().view.members
        answers = self._s.peers(members, me, "/events")
        found: dict[str, list[Any]] = {me: self.events()["events"]}
        unreachable: dict[str, str] = {}
        for name, answer in sorted(answers.items()):
            events = answer.get("events") if isinstance(answer, dict) else None
            if isinstance(events, list):
                # A peer's answer is parsed like any input: only well-formed runs are passed on.
                runs = (read_run(e) for e in events[-MAX_RUNS:])
                found[name] = [run_document(r) for r in runs if r is not None]
            else:
                unreachable[name] = answer if isinstance(answer, str) else "no events in the answer"
        return {"members": found, "unreachable": unreachable}

    def diagnostics(self) -> dict[str, Any]:
        s = self._s
        snap = s.snapshots.get()
        config = snap.config
        api = config.api
        document: dict[str, Any] = {
            "format": DIAGNOSTICS_FORMAT,
            "member": config.name,
            "cluster": config.cluster,
            "api": {
                "listen": str(api.listen),
                "auth": api.username is not None,
                "tls": api.certfile is not None,
                "verify_client": api.verify_client.value,
                "allowlist": api.restricts_callers,
                "loopback": api.loopback_only,
            },
            "etcd": {
                "endpoints": [str(h) for h in config.etcd.hosts],
                "reads": s.etcd_reads.summary(),
                "renewals": s.etcd_renewals.summary(),
            },
            "watchdog": self._watchdog(),
            "fence": _fence(config.postgresql.data_dir),
            "failsafe_active": snap.failsafe_active(monotonic()),
            "holds_leader_key": snap.holds_leader_key,
            "postgres": s.postgres(),
        }
        now = s.clock()
        if snap.holds_leader_key:
            document["behind"] = self._behind(now)
        document["time"] = s.clock()  # last: the closest to the answer, for clock comparisons
        return document

    def _behind(self, now: float) -> dict[str, Any]:
        """On the leader: for each other member, how old the oldest write it lacks is."""
        found: dict[str, Any] = {}
        view = self._s.snapshots.get().view
        for member in view.members:
            if member.name == self._s.config.name or member.lsn is None:
                continue
            behind = self._s.wal_clock.behind(member.lsn, now)
            if behind is not None:
                found[member.name] = {
                    "lsn": str(member.lsn),
                    "seconds": round(behind.seconds, 3),
                    "at_least": behind.at_least,
                }
        return found

    def _watchdog(self) -> dict[str, Any]:
        settings = self._s.config.watchdog
        doc: dict[str, Any] = {"mode": settings.mode, "device": settings.device}
        watchdog = self._s.watchdog
        if watchdog is not None:
            doc.update(armed=watchdog.armed, timeout=watchdog.timeout, problem=watchdog.problem)
        return doc


def _fence(data_dir: str) -> dict[str, Any]:
    pid = running_fence(data_dir)
    if pid is None:
        return {"pid": None, "state": "absent"}
    letter = process_state(pid)
    return {"pid": pid, "state": "stopped" if letter in ("T", "t") else "running"}
