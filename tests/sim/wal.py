"""WAL histories of fake data directories: timelines, fork points, and whether two copies hold the same bytes.

PostgreSQL names timelines by number only, so two nodes that each promote from timeline 1 both
create a "timeline 2" with different contents, and a standby's data started read-write without
promotion goes on writing "timeline 1" after bytes its old primary also wrote. So every stretch
of WAL one instance writes on its own gets a world-unique ``uid`` besides its timeline number:
PostgreSQL's checks (streaming, pg_rewind) look at numbers as the real server does, while the
simulation compares uids to catch silent divergence.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Segment:
    """WAL of one timeline: the bytes in (start, next segment's start], or up to the end of WAL."""

    uid: int
    timeline: int
    start: int


@dataclass(frozen=True, slots=True)
class History:
    """The timelines a data directory's WAL went through, oldest first (the first starts at 0)."""

    segments: tuple[Segment, ...]

    @property
    def timeline(self) -> int:
        return self.segments[-1].timeline

    def timelines(self) -> frozenset[int]:
        return frozenset(s.timeline for s in self.segments)

    def cut(self, lsn: int) -> History:
        """Only the timelines that hold bytes at or before ``lsn``."""
        kept = tuple(s for s in self.segments[1:] if s.start < lsn)
        return History((self.segments[0], *kept))

    def branch(self, uid: int, timeline: int, at: int) -> History:
        """A promotion at ``at``: a new timeline after what this history holds up to there."""
        return History((*self.cut(at).segments, Segment(uid, timeline, at)))

    def uid_at(self, lsn: int) -> int:
        """Which timeline wrote the byte ending at ``lsn``."""
        return self.cut(lsn).segments[-1].uid

    def end_of(self, timeline: int) -> int | None:
        """Where ``timeline`` ended in this history (its switch point); None if current or absent."""
        for here, after in zip(self.segments, self.segments[1:], strict=False):
            if here.timeline == timeline and after.timeline != timeline:
                return after.start
        return None

    def switches(self) -> tuple[tuple[int, int], ...]:
        """(timeline, begin) as the .history files list them: what PostgreSQL itself can see."""
        seen: list[tuple[int, int]] = []
        for s in self.segments:
            if not seen or seen[-1][0] != s.timeline:
                seen.append((s.timeline, s.start))
        return tuple(seen)

    def same_bytes(self, other: History, upto: int) -> bool:
        """Whether both histories wrote identical WAL up to ``upto`` (the simulation's truth)."""
        return self.cut(upto).segments == other.cut(upto).segments

    def common_point(self, other: History) -> tuple[int, int] | None:
        """What pg_rewind computes from the two timeline histories, by numbers only: the last
        timeline both share (same number, same begin point) and where the two part (-1: nowhere)."""
        last = None
        for mine, theirs in zip(self.switches(), other.switches(), strict=False):
            if mine != theirs:
                break
            last = mine[0]
        if last is None:
            return None
        ends = [e for e in (self.end_of(last), other.end_of(last)) if e is not None]
        return last, min(ends) if ends else -1


def first_history(uid: int) -> History:
    return History((Segment(uid, 1, 0),))
