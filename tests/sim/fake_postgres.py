"""An in-memory PostgreSQL for simulations: the controller's methods over a shared world of instances.

Faithful where safety depends on it: a primary's commits advance its WAL; a standby streams only
what PostgreSQL itself would let it stream (same system, its slot present on the upstream, the
upstream on its timeline or on a newer one that forked at or after the standby's position), and
a timeline switch happens only through ``promote``; starting without standby.signal after any
stop (a crashed primary, or a standby's data) runs read-write on the same timeline, as crash
recovery does; pg_rewind compares timeline *numbers* as the real tool does. Where PostgreSQL
would silently splice two different histories (same timeline number, different contents), the
fake does it too and records a corruption, which the simulation asserts never happens.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from pgwarden.model import ControlState, LocalState, Lsn
from pgwarden.model.local import DataDir, DataDirOrigin
from pgwarden.postgres.commands import PostgresError
from pgwarden.postgres.conninfo import StandbyUpstream
from pgwarden.postgres.controller import ParamChange
from pgwarden.postgres.slots import SlotInfo
from tests.sim.wal import History, first_history

if TYPE_CHECKING:
    from tests.sim.world import FakeWorld

INITIAL_LSN = 0x1000000  # where initdb leaves the WAL, roughly as PostgreSQL 15 does
CHECKPOINT_RECORD = 0x70  # a shutdown or end-of-recovery checkpoint record
BACKGROUND_RECORD = 0x68  # what an otherwise idle primary logs now and then (running xacts)


@dataclass
class Data:
    """A valid data directory: pg_control, the WAL it holds, and its replication slots."""

    system_id: str
    history: History
    position: int  # end of the WAL held (received = replayed: the fake replays at once)
    control_state: ControlState
    checkpoint: int
    checkpoint_timeline: int
    min_recovery_timeline: int | None = None  # set by pg_rewind: the source's timeline
    known_timelines: frozenset[int] = frozenset({1})  # history files in pg_wal
    slots: dict[str, int] = field(default_factory=dict)  # slot name -> restart_lsn


@dataclass(frozen=True, slots=True)
class Write:
    """A commit acknowledged to a client: which instance, ending where, in which history."""

    instance: str
    uid: int
    lsn: int
    at: float
    history: History


class FakePostgres:
    """One instance; every method the executor calls on a PostgresController, plus faults."""

    def __init__(self, world: FakeWorld, name: str, host: str, port: int) -> None:
        self.world, self.name, self.host, self.port = world, name, host, port
        self.data: Data | None = None
        self.incomplete = False  # files but no pg_control (an interrupted clone or initdb)
        # pgwarden's marker beside the directory: written before every clone and initdb.
        self.marked = False
        self.running = False
        self.in_recovery = False
        self.ready_at = 0.0
        self.standby_signal = False
        self.upstream: StandbyUpstream | None = None
        self.slot: str | None = None
        self.streaming_from: str | None = None
        self.sync_names = ""  # synchronous_standby_names (the simulation does not make commits wait)
        self._background_at = (0.0, 0)

    # ---- what the simulation looks at --------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Accepting connections: started, and done with startup (crash recovery, consistency)."""
        return self.running and self.data is not None and self.world.clock() >= self.ready_at

    @property
    def writable(self) -> bool:
        return self.ready and not self.in_recovery

    @property
    def position(self) -> int | None:
        return self.data.position if self.data else None

    def holds(self, write: Write) -> bool:
        d = self.data
        return d is not None and d.position >= write.lsn and d.history.uid_at(write.lsn) == write.uid

    def probe(self, timeout: float = 2.0) -> LocalState:
        return self.local_state()

    def is_running(self) -> bool:
        return self.running

    def local_state(self) -> LocalState:
        """What the real probe would report (pg_controldata, postmaster liveness, the SQL probe)."""
        d = self.data
        origin = DataDirOrigin(path=f"/sim/{self.name}/data", marked=self.marked)
        if d is None:
            kind = DataDir.INCOMPLETE if self.incomplete else DataDir.MISSING
            return LocalState(data_dir=kind, origin=origin)
        base = LocalState(
            data_dir=DataDir.VALID,
            origin=origin,
            system_id=d.system_id,
            control_state=d.control_state,
            control_timeline=d.checkpoint_timeline,
            control_lsn=Lsn(d.checkpoint),
            configured_upstream=self.upstream.name if self.upstream else None,
        )
        if not self.running:
            return base
        if not self.ready:
            return replace(base, running=True)
        if not self.in_recovery:
            return replace(
                base, running=True, probe_ok=True, in_recovery=False,
                timeline=d.history.timeline, write_lsn=Lsn(d.position),
                sync_standby_names=self.sync_names, replication=self._replication(),
            )  # fmt: skip
        source = self.world.instances.get(self.streaming_from or "")
        return replace(
            base, running=True, probe_ok=True, in_recovery=True,
            timeline=max(d.history.timeline, d.checkpoint_timeline, d.min_recovery_timeline or 0),
            received_lsn=Lsn(d.position), replayed_lsn=Lsn(d.position),
            streaming_from=f"{source.host}:{source.port}" if source else None,
        )  # fmt: skip

    def _replication(self) -> dict[str, Lsn]:
        """pg_stat_replication: each standby streaming from here, at its flush position."""
        return {
            pg.name: Lsn(pg.data.position)
            for pg in self.world.instances.values()
            if pg.streaming_from == self.name and pg.ready and pg.data is not None
        }

    def set_synchronous_standby_names(self, value: str) -> None:
        self.sync_names = value

    # ---- life cycle --------------------------------------------------------------------------

    def initdb(self) -> None:
        if self.data is not None or self.incomplete:
            raise PostgresError(f"refusing to initdb: data directory of {self.name} is not empty")
        self.marked = True
        self.data = Data(
            system_id=self.world.new_system_id(),
            history=first_history(self.world.new_uid()),
            position=INITIAL_LSN,
            control_state=ControlState.SHUT_DOWN,
            checkpoint=INITIAL_LSN - CHECKPOINT_RECORD,
            checkpoint_timeline=1,
        )
        self.standby_signal, self.upstream, self.slot = False, None, None

    def start(self, timeout: float = 60.0, wait: bool = True) -> None:
        if self.running:
            return
        if self.data is None:
            raise PostgresError(f"cannot start: {self.name} holds no valid cluster")
        d = self.data
        self.running, self.in_recovery = True, self.standby_signal
        self.ready_at = self.world.clock() + self.world.start_delay
        if self.in_recovery:
            d.control_state = ControlState.IN_ARCHIVE_RECOVERY
        else:
            # Without standby.signal any data directory (a crashed primary's, a standby's)
            # finishes crash recovery and runs read-write on the timeline it was on: what it
            # writes from here on is its own, though the timeline number stays the same.
            d.control_state = ControlState.IN_PRODUCTION
            d.history = d.history.branch(self.world.new_uid(), d.history.timeline, d.position)
        self.world.log(self.name, "started as " + ("standby" if self.in_recovery else "PRIMARY"))

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> None:
        if not self.running:
            return
        d = self.data
        if mode != "immediate" and d is not None and self.ready:
            if not self.in_recovery:
                # Shutdown checkpoint, which walsenders still send to connected standbys.
                d.checkpoint, d.checkpoint_timeline = d.position, d.history.timeline
                d.position += CHECKPOINT_RECORD
                self.world.flush_to_streamers(self)
                d.control_state = ControlState.SHUT_DOWN
            else:
                d.control_state = ControlState.SHUT_DOWN_IN_RECOVERY
        self.running, self.streaming_from = False, None
        self.world.log(self.name, f"stopped ({mode})")

    def reload(self, timeout: float = 10.0) -> None:
        """Configuration takes effect at once in the fake (the controller reloads on change)."""

    def update_parameters(self, params: object) -> ParamChange:
        """Parameters do not change the fake's behaviour; nothing needs a restart."""
        return ParamChange(changed=frozenset(), restart_required=frozenset())

    def checkpoint(self, timeout: float = 60.0) -> None:
        """A checkpoint (primary) or restartpoint (standby): pg_control catches up with the WAL."""
        d = self.data
        if not self.ready or d is None:
            raise PostgresError(f"cannot checkpoint {self.name}: server is not running")
        d.checkpoint, d.checkpoint_timeline = d.position, d.history.timeline

    def promote(self, timeout: float = 60.0, checkpoint: bool = True) -> None:
        d = self.data
        if not self.ready or d is None:
            raise PostgresError(f"cannot promote {self.name}: server is not running")
        if not self.in_recovery:
            raise PostgresError(f"cannot promote {self.name}: server is not in standby mode")
        timeline = max(d.known_timelines | d.history.timelines()) + 1
        fork = d.position
        d.history = d.history.branch(self.world.new_uid(), timeline, fork)
        d.known_timelines = d.known_timelines | {timeline}
        d.position += CHECKPOINT_RECORD  # the end-of-recovery record
        d.min_recovery_timeline = None
        if checkpoint:
            d.checkpoint, d.checkpoint_timeline = fork, timeline
        d.control_state = ControlState.IN_PRODUCTION
        self.in_recovery = False
        self.configure_primary()
        self.world.log(self.name, f"PROMOTED to timeline {timeline} at {Lsn(fork)}")
        for hook in self.world.on_promote:
            hook(self, fork)

    def current_timeline(self, timeout: float = 2.0) -> int:
        state = self.local_state()
        if state.running and not state.probe_ok:
            raise PostgresError("PostgreSQL runs but did not answer: its timeline is unknown")
        timeline = state.timeline if state.running else state.control_timeline
        if timeline is None:
            raise PostgresError("the current timeline is unknown (no answer and no pg_control)")
        return timeline

    def timeline_history(self, timeline: int) -> list[tuple[int, Lsn, str]]:
        d = self.data
        if d is None or timeline not in d.history.timelines():
            return []
        # pg_wal/<timeline>.history: each earlier timeline and where it ended.
        upto = d.history.switches()
        upto = upto[: next(i for i, (t, _) in enumerate(upto) if t == timeline) + 1]
        return [(t, Lsn(after[1]), "") for (t, _), after in itertools.pairwise(upto)]

    # ---- configuration -----------------------------------------------------------------------

    def configure_primary(self) -> None:
        self.standby_signal, self.upstream, self.slot = False, None, None

    def configure_standby(self, upstream: StandbyUpstream | None, slot: str | None) -> None:
        """standby.signal plus primary_conninfo; a running standby follows it after the reload."""
        self.standby_signal, self.upstream, self.slot = True, upstream, slot if upstream else None

    # ---- SQL ---------------------------------------------------------------------------------

    def _sql(self) -> Data:
        if not self.ready or self.data is None:
            raise PostgresError(f"cannot connect to {self.name}: not accepting connections")
        return self.data

    def create_replication_user(self) -> None:
        self._sql()
        if self.in_recovery:
            raise PostgresError("cannot execute CREATE ROLE in a read-only transaction")

    def list_slots(self) -> dict[str, SlotInfo]:
        d = self._sql()
        active = {s.slot for s in self.world.instances.values() if s.streaming_from == self.name}
        return {
            name: SlotInfo(name, name in active, Lsn(lsn), d.position - lsn)
            for name, lsn in sorted(d.slots.items())
        }

    def create_slot(self, name: str) -> bool:
        d = self._sql()
        if name in d.slots:
            return False
        d.slots[name] = d.position  # immediately_reserve
        return True

    def advance_slot(self, name: str, position: Lsn) -> bool:
        d = self._sql()
        held = d.slots.get(name)
        if held is None or held >= position.value or self.list_slots()[name].active:
            return False
        d.slots[name] = min(position.value, d.position)
        return True

    def drop_slot(self, name: str) -> bool:
        d = self._sql()
        if self.list_slots().get(name, SlotInfo(name, False, None, None)).active:
            raise PostgresError(f'replication slot "{name}" is active')
        return d.slots.pop(name, None) is not None

    # ---- data directory ----------------------------------------------------------------------

    def clone(self, source: StandbyUpstream, slot: str | None, progress: Callable[[str], None]) -> None:
        if self.data is not None or self.incomplete:
            raise PostgresError(f"refusing to clone: data directory of {self.name} is not empty")
        self.marked = True
        origin = self.world.connect(self, source)
        d = origin.data
        assert d is not None
        if not origin.in_recovery:  # pg_basebackup -c fast: a checkpoint on the primary first
            d.checkpoint, d.checkpoint_timeline = d.position, d.history.timeline
            d.position += CHECKPOINT_RECORD
        if slot:
            origin.create_slot(slot)
        progress("100%")
        self.data = Data(
            system_id=d.system_id,
            history=d.history,
            position=d.position,
            control_state=ControlState.IN_ARCHIVE_RECOVERY,
            checkpoint=d.checkpoint,
            checkpoint_timeline=d.checkpoint_timeline,
            known_timelines=d.known_timelines | d.history.timelines(),
        )
        self.configure_standby(source, slot)
        self.world.log(self.name, f"cloned from {source.name} at {Lsn(d.position)}")

    def rewind(self, source: StandbyUpstream, progress: Callable[[str], None] | None = None) -> None:
        if self.running:
            raise PostgresError("cannot rewind while PostgreSQL runs: stop it first")
        d = self.data
        if d is None:
            raise PostgresError(f"cannot rewind: {self.name} holds no valid cluster")
        self.standby_signal = False
        try:
            origin = self.world.connect(self, source)
            self._rewind_onto(d, origin)
        finally:
            self.configure_standby(None, None)

    def _rewind_onto(self, d: Data, origin: FakePostgres) -> None:
        """pg_rewind as PostgreSQL 15 runs it: finish an unclean shutdown first (single-user
        crash recovery writes a checkpoint at the end of the target's WAL), compare the two
        timeline histories by number, and if the target went past the fork copy the source's
        blocks and its pg_control, marked "in archive recovery"."""
        s = origin.data
        assert s is not None
        if s.system_id != d.system_id:
            raise PostgresError("source and target clusters are from different systems")
        if d.control_state not in (ControlState.SHUT_DOWN, ControlState.SHUT_DOWN_IN_RECOVERY):
            d.history = d.history.branch(self.world.new_uid(), d.history.timeline, d.position)
            d.checkpoint, d.checkpoint_timeline = d.position, d.history.timeline
            d.position += CHECKPOINT_RECORD
            d.control_state = ControlState.SHUT_DOWN
        if s.checkpoint_timeline == d.checkpoint_timeline:
            self.world.log(self.name, "pg_rewind: source and target on the same timeline, no rewind required")
            return
        common = d.history.common_point(s.history)
        if common is None:
            raise PostgresError("could not find common ancestor of the source and target timelines")
        _, fork = common
        if fork < 0 or d.position <= fork:
            self.world.log(self.name, "pg_rewind: no rewind required")
            return
        if not d.history.same_bytes(s.history, fork):
            self.world.corrupt(self.name, f"pg_rewind from {origin.name} kept foreign WAL below {Lsn(fork)}")
        d.history, d.position = s.history.cut(fork), fork
        d.checkpoint, d.checkpoint_timeline = s.checkpoint, s.checkpoint_timeline
        d.min_recovery_timeline = max(s.history.timeline, s.min_recovery_timeline or 0)
        d.known_timelines = d.known_timelines | s.known_timelines | s.history.timelines()
        d.control_state = ControlState.IN_ARCHIVE_RECOVERY
        self.world.log(self.name, f"rewound onto {origin.name} at {Lsn(fork)}")

    def wipe(self) -> None:
        if self.running:
            raise PostgresError("refusing to wipe the data directory of a running PostgreSQL")
        self.data, self.incomplete = None, False

    def adopt(self) -> None:
        if self.data is None:
            raise PostgresError(f"not adopting the data directory of {self.name}: no valid cluster")
        self.marked = True

    # ---- faults ------------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL of the postmaster: no checkpoint, nothing more sent; committed WAL survives."""
        if self.running:
            self.running, self.streaming_from = False, None
            self.world.log(self.name, "KILLED")

    def crash(self) -> None:
        """The server lost power: the same as kill for the data, as commits are flushed first."""
        self.kill()

    def interrupt_copy(self) -> None:
        """A clone or initdb cut short: files without a usable pg_control."""
        self.data, self.incomplete = None, True
