"""Runs failover drill rounds: a writer through the router, one fault per round, the verdict of each round.

Each round waits for a healthy cluster, hits the primary (a switchover or a kill), waits until a
new primary runs and every other member streams from it again, and then measures what the
application saw: the longest write gap (RTO), the writes acknowledged and lost, and how long the
old primary took to stream again. Every wait is bounded by ``heal_timeout``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg

from pgwarden.client import ClientError
from pgwarden.drill.cluster import DrillCluster
from pgwarden.drill.faults import Fault
from pgwarden.drill.report import DrillReport, RoundResult, Statuses, healed_primary, streams_from
from pgwarden.drill.writer import Writer, missing_ids

DRILL_TABLE = "pgwarden_drill"
POLL = 0.2  # seconds between two looks at the members' statuses
ACKS_AFTER_HEAL = 5  # writes acknowledged after healing, so the round's last write gap is closed


@dataclass(frozen=True, slots=True)
class DrillSettings:
    dsn: str  # where the writer connects: the router's write port
    rounds: int = 1
    heal_timeout: float = 120.0  # per round: from the fault until healed
    table: str = DRILL_TABLE


class Drill:
    def __init__(self, cluster: DrillCluster, fault: Fault, settings: DrillSettings) -> None:
        self.cluster = cluster
        self.fault = fault
        self.settings = settings
        budget = settings.rounds * (3 * settings.heal_timeout + 60)
        self.writer = Writer(settings.dsn, table=settings.table, max_seconds=budget, max_writes=10**7)

    def run(self, on_round: Callable[[RoundResult], None] = lambda _: None) -> DrillReport:
        """All rounds; the writer's table is created fresh before and dropped after."""
        self._execute(f"DROP TABLE IF EXISTS {self.settings.table}")
        self.writer.prepare()
        results: list[RoundResult] = []
        try:
            with self.writer:
                for number in range(1, self.settings.rounds + 1):
                    result = self._round(number)
                    results.append(result)
                    on_round(result)
                    if not result.healed:
                        break  # the next round would start from a broken cluster
        finally:
            with contextlib.suppress(psycopg.Error):
                self._execute(f"DROP TABLE IF EXISTS {self.settings.table}")
        return DrillReport(self.cluster.name, self.fault.kind, self.cluster.synchronous(), tuple(results))

    def _execute(self, sql: str) -> None:
        with psycopg.connect(self.settings.dsn, autocommit=True) as conn:
            conn.execute(sql)  # only around the table name Writer checked to be alphanumeric

    def _round(self, number: int) -> RoundResult:
        names = self.cluster.member_names()
        deadline = time.monotonic() + self.settings.heal_timeout
        old = self._wait(lambda s: healed_primary(s, names), deadline)
        if old is None:
            return self._failed(number, None, f"not healthy before the round: {self.cluster.statuses()}")
        first_ack = len(self.writer.report.acknowledged)
        started = time.monotonic()
        deadline = started + self.settings.heal_timeout
        try:
            self.fault.inject(old)
        except (ClientError, OSError, ValueError) as exc:
            return self._failed(number, old, f"{self.fault.kind} failed: {exc}")
        new = self._wait(lambda s: _other_primary(s, old), deadline)
        if new is None:
            return self._failed(number, old, "no other member became primary in time")
        try:
            self.fault.recover(old)
        except (OSError, ValueError) as exc:
            return self._failed(number, old, f"could not restart {old}: {exc}")
        streams_at: list[float] = []

        def healed(statuses: Statuses) -> str | None:
            if not streams_at and streams_from(statuses.get(old), new):
                streams_at.append(time.monotonic())
            return healed_primary(statuses, names)

        primary = self._wait(healed, deadline)
        healed_at = time.monotonic()
        if primary is not None:
            self.writer.wait_for_acks(ACKS_AFTER_HEAL, 10.0)
        statuses = self.cluster.statuses()
        report = self.writer.report
        acknowledged = list(report.acknowledged[first_ack:])
        lost, error = self._lost(acknowledged)
        return RoundResult(
            number=number,
            kind=self.fault.kind,
            old_primary=old,
            new_primary=primary or new,
            healed=primary is not None and error is None,
            heal_seconds=healed_at - started if primary is not None else None,
            rto_seconds=report.longest_gap(after=started),
            acknowledged=len(acknowledged),
            lost=lost,
            old_primary_streams_after=streams_at[0] - started if streams_at else None,
            reasons={n: (s or {}).get("reason_code") for n, s in statuses.items()},
            error=error if primary is not None else "not healed within the time bound",
        )

    def _lost(self, acknowledged: Sequence[int]) -> tuple[int, str | None]:
        try:
            return len(missing_ids(self.settings.dsn, self.settings.table, list(acknowledged))), None
        except psycopg.Error as exc:
            return 0, f"could not count lost writes: {exc}"

    def _wait(self, found: Callable[[Statuses], str | None], deadline: float) -> str | None:
        while True:
            value = found(self.cluster.statuses())
            if value is not None or time.monotonic() >= deadline:
                return value
            time.sleep(POLL)

    def _failed(self, number: int, old: str | None, error: str) -> RoundResult:
        statuses = self.cluster.statuses()
        return RoundResult(
            number=number,
            kind=self.fault.kind,
            old_primary=old,
            new_primary=None,
            healed=False,
            heal_seconds=None,
            rto_seconds=0.0,
            acknowledged=0,
            lost=0,
            old_primary_streams_after=None,
            reasons={n: (s or {}).get("reason_code") for n, s in statuses.items()},
            error=error,
        )


def _other_primary(statuses: Statuses, old: str) -> str | None:
    names = [
        n
        for n, s in statuses.items()
        if n != old and s is not None and s.get("role") == "primary" and s.get("state") == "running"
    ]
    return names[0] if len(names) == 1 else None
