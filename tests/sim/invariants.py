"""The safety properties the simulation checks after every agent step and every tick (see test_simulation.py).

Violations are recorded, not raised: some checks run inside the executor (a promotion), where an
exception would only look like a failed action. Tests assert the list is empty and print it
with the tail of the journal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pgwarden.model import Lsn
from tests.sim.fake_postgres import FakePostgres, Write
from tests.sim.wal import History

if TYPE_CHECKING:
    from tests.sim.harness import Simulation
    from tests.sim.node import SimNode


@dataclass(frozen=True, slots=True)
class Promotion:
    at: float
    name: str
    fork: int
    before: History  # the WAL the candidate held when it promoted


@dataclass
class Checker:
    sim: Simulation
    violations: list[str] = field(default_factory=list)
    overlaps: list[str] = field(default_factory=list)  # two writers at once, and why that was possible
    unfenced: list[Write] = field(default_factory=list)  # writes acknowledged by a non-holder of the key
    promotions: list[Promotion] = field(default_factory=list)
    _last_overlap: frozenset[str] = frozenset()

    def fail(self, text: str) -> None:
        """Record a violation once, at the first moment it was seen."""
        if all(not v.endswith(" " + text) for v in self.violations):
            self.violations.append(f"{self.sim.clock():.2f} {text}")
            self.sim.world.log("CHECK", "VIOLATION " + text)

    # ---- after one agent's cycle --------------------------------------------------------------

    def after_step(self, agent: SimNode) -> None:
        """A live agent never leaves its PostgreSQL read-write without the key (or, in failsafe
        mode, every member's promise) and a valid write deadline."""
        if agent.postgres.writable:
            holder, deadline, now = self.sim.key_holder(), agent.lease.deadline(), self.sim.clock()
            if holder != agent.name and not self._promised(agent.name):
                self.fail(f"{agent.name} left its primary running after its cycle; the key names {holder}")
            elif deadline is None or deadline <= now:
                self.fail(f"{agent.name} left its primary running past its lease deadline {deadline}")
        self.instant()

    def _promised(self, name: str) -> bool:
        """Failsafe mode: ``name`` writes on promises every member gave and that still hold (the
        members keep them ttl after the round, the leader counts ttl - margin from sending it:
        the margin is the time to stop, as between a lease's deadline and its expiry in etcd)."""
        agent = self.sim.agents.get(name)
        lease = agent.lease if agent is not None else None
        if lease is None or lease.failsafe_sent_at is None:
            return False
        return self.sim.clock() < lease.failsafe_sent_at + lease.failsafe_ttl

    # ---- at any instant -----------------------------------------------------------------------

    def instant(self) -> None:
        sim, now = self.sim, self.sim.clock()
        writers = sim.world.writable()
        holder = sim.key_holder()
        within_lease = []
        for pg in writers:
            agent = sim.agents.get(pg.name)
            deadline = agent.lease.deadline() if agent is not None else None
            if deadline is not None and deadline > now:
                within_lease.append(pg.name)
            if sim.responsive(pg.name) and holder != pg.name and not self._promised(pg.name):
                self.fail(f"{pg.name} runs read-write with a responsive agent, but the key names {holder}")
        if len(within_lease) > 1:
            self.fail(f"two primaries within their own write deadline (lease or promises): {within_lease}")
        self._note_overlap(writers, holder)
        if sim.world.corruptions:
            self.fail(f"corrupted: {sim.world.corruptions[-1]}")
            sim.world.corruptions.clear()
        # Promotions only: events kept beside them (sync degraded, failsafe) carry the timeline
        # they happened on.
        timelines = [e.timeline for e in sim.view().history if e.promotion]
        if len(timelines) != len(set(timelines)):
            self.fail(f"the history lists a timeline twice: {timelines}")

    def _note_overlap(self, writers: list[FakePostgres], holder: str | None) -> None:
        names = frozenset(pg.name for pg in writers)
        if len(names) > 1 and names != self._last_overlap:
            why = {n: self.sim.agent_state(n) for n in sorted(names)}
            self.overlaps.append(f"{self.sim.clock():.2f} writers {why}, key: {holder}")
        self._last_overlap = names if len(names) > 1 else frozenset()

    # ---- events --------------------------------------------------------------------------------

    def on_write(self, write: Write) -> None:
        """Writes are acknowledged only by the key holder, unless its agent could not act."""
        if self.sim.key_holder() == write.instance or self._promised(write.instance):
            return
        self.unfenced.append(write)
        if self.sim.responsive(write.instance):
            self.fail(f"write acknowledged by {write.instance} at {Lsn(write.lsn)} without the key")

    def on_promote(self, pg: FakePostgres, fork: int) -> None:
        """Safety rule 3: a candidate promotes only within maximum_lag_on_failover of the last
        position another leader published on its timeline or a newer one."""
        view = self.sim.view()
        d = pg.data
        assert d is not None
        before = History(d.history.segments[:-1])
        self.promotions.append(Promotion(self.sim.clock(), pg.name, fork, before))
        status = view.status
        if status is None or status.name == pg.name or status.timeline < before.timeline:
            return
        lag = status.lsn.value - fork
        if lag > view.config.maximum_lag_on_failover:
            self.fail(f"{pg.name} promoted {lag} bytes behind {status.name}'s published {status.lsn}")

    # ---- at the end ------------------------------------------------------------------------

    def lost_writes(self, acked: list[Write], final: FakePostgres) -> list[Write]:
        """Acknowledged writes the final primary does not hold, each checked to be a loss
        asynchronous replication allows: a write by the key holder that lay past the fork of a
        later promotion of a member that shared its history up to there (the lag bound itself
        is checked at each promotion). Writes by a frozen or dead agent's primary are only
        counted: losing them is the limit of a lease without fencing."""
        unfenced = set(self.unfenced)
        lost = [w for w in acked if not final.holds(w)]
        for w in lost:
            if w in unfenced or any(self._explains(p, w) for p in self.promotions):
                continue
            self.fail(f"write acknowledged by key holder {w.instance} at {Lsn(w.lsn)} ({w.at:.1f}s) was lost")
        return lost

    @staticmethod
    def _explains(p: Promotion, w: Write) -> bool:
        return p.at >= w.at and w.lsn > p.fork and p.before.same_bytes(w.history, p.fork)
