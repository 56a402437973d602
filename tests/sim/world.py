"""The world of fake PostgreSQL instances: the network between them, and WAL shipped on each tick.

Streaming follows PostgreSQL's own rules (``_can_follow``): a standby receives WAL only from a
running upstream of the same system, through its slot if it names one, on its own timeline or
on a newer one that forked at or after the standby's position.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from pgwarden.model import Lsn
from pgwarden.postgres.commands import PostgresError
from pgwarden.postgres.conninfo import StandbyUpstream
from tests.sim.fake_postgres import BACKGROUND_RECORD, Data, FakePostgres, Write


class FakeWorld:
    """Every fake instance, the network between them, and WAL shipping on each tick."""

    def __init__(self, clock: Callable[[], float], start_delay: float = 0.5, background_every: float = 15.0):
        self.clock = clock
        self.start_delay = start_delay
        self.background_every = background_every
        self.instances: dict[str, FakePostgres] = {}
        self.isolated: set[str] = set()  # nodes cut off the network (store, peers, replication)
        self.rate: dict[str, int] = {}  # bytes/second a standby can receive; absent: all at once
        self.corruptions: list[str] = []
        self.journal: list[str] = []
        self.on_promote: list[Callable[[FakePostgres, int], None]] = []
        self._uids = itertools.count(1)
        self._system_ids = itertools.count(7300000000000000001)

    def add(self, name: str, host: str, port: int) -> FakePostgres:
        self.instances[name] = FakePostgres(self, name, host, port)
        return self.instances[name]

    def new_uid(self) -> int:
        return next(self._uids)

    def new_system_id(self) -> str:
        return str(next(self._system_ids))

    def log(self, name: str, text: str) -> None:
        self.journal.append(f"{self.clock():8.2f} {name}: {text}")

    def corrupt(self, name: str, text: str) -> None:
        self.corruptions.append(f"{self.clock():.2f} {name}: {text}")
        self.log(name, "CORRUPTION " + text)

    def reachable(self, a: str, b: str) -> bool:
        return a == b or (a not in self.isolated and b not in self.isolated)

    def connect(self, client: FakePostgres, target: StandbyUpstream) -> FakePostgres:
        found = self.instances.get(target.name)
        if found is None or (found.host, found.port) != (target.host, target.port):
            raise PostgresError(f"no PostgreSQL at {target.host}:{target.port}")
        if not self.reachable(client.name, found.name) or not found.ready:
            raise PostgresError(f"could not connect to {target.name} at {target.host}:{target.port}")
        return found

    def writable(self) -> list[FakePostgres]:
        return [pg for pg in self.instances.values() if pg.writable]

    def write(self, name: str, size: int) -> Write | None:
        """A client commit on ``name``; None when it is not a primary accepting writes."""
        pg = self.instances[name]
        if not pg.writable or pg.data is None:
            return None
        pg.data.position += size
        d = pg.data
        return Write(name, d.history.segments[-1].uid, d.position, self.clock(), d.history)

    def tick(self, dt: float) -> None:
        now = self.clock()
        for pg in self.instances.values():
            d = pg.data
            if pg.writable and d is not None:
                since, seen = pg._background_at
                if now - since >= self.background_every:
                    if d.position != seen:
                        d.position += BACKGROUND_RECORD
                    pg._background_at = (now, d.position)
        # Cascading standbys need their upstream's new WAL first: a few passes settle any chain.
        for _ in range(len(self.instances)):
            for pg in self.instances.values():
                self.stream(pg, dt)

    def flush_to_streamers(self, upstream: FakePostgres) -> None:
        for pg in self.instances.values():
            if pg.streaming_from == upstream.name:
                self.stream(pg, None)

    def stream(self, pg: FakePostgres, dt: float | None) -> None:
        """What the walreceiver of ``pg`` gets this tick, by PostgreSQL's own rules."""
        pg.streaming_from = None
        d = pg.data
        if not pg.ready or not pg.in_recovery or d is None or pg.upstream is None:
            return
        up = self.instances.get(pg.upstream.name)
        u = up.data if up is not None else None
        if up is None or u is None or not up.ready or not self.reachable(pg.name, up.name):
            return
        if u.system_id != d.system_id or (pg.slot is not None and pg.slot not in u.slots):
            return
        if not _can_follow(d, u):
            return
        target = u.position
        rate = self.rate.get(pg.name)
        if rate is not None and dt is not None:
            target = min(target, d.position + int(rate * dt))
        if target < d.position:
            return  # "requested starting point is ahead of the WAL flush position"
        pg.streaming_from = up.name
        if not d.history.same_bytes(u.history, d.position):
            self.corrupt(pg.name, f"streamed from {up.name} over a different history at {Lsn(d.position)}")
        d.history, d.position = u.history.cut(target), target
        d.known_timelines = d.known_timelines | u.history.timelines()
        if d.checkpoint < u.checkpoint <= target:  # a restartpoint at the replayed checkpoint
            d.checkpoint, d.checkpoint_timeline = u.checkpoint, u.checkpoint_timeline
        if pg.slot is not None:
            u.slots[pg.slot] = target


def _can_follow(standby: Data, upstream: Data) -> bool:
    """PostgreSQL's check before streaming (recovery_target_timeline = latest), by numbers."""
    mine, theirs = standby.history.timeline, upstream.history.timeline
    if theirs < mine:
        return False  # "highest timeline of the primary is behind the recovery timeline"
    if theirs == mine:
        return True
    end = upstream.history.end_of(mine)
    # "new timeline forked off current database system timeline before current recovery point"
    return end is not None and end >= standby.position
