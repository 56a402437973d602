"""A client that keeps inserting numbered rows through the router and remembers which were acknowledged.

It is what an application sees during a failover or switchover: the longest gap between two
acknowledged writes is the write unavailability, and every acknowledged id missing from the new
primary afterwards is a lost write. Bounded in time and count; it stops by itself.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import psycopg

_TABLE_DDL = "CREATE TABLE IF NOT EXISTS {table} (id bigint PRIMARY KEY, at timestamptz DEFAULT now())"


@dataclass
class WriterReport:
    acknowledged: list[int] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)  # monotonic, one per acknowledged id
    attempts: int = 0
    errors: int = 0
    # (monotonic start, seconds) of each failed attempt: a slow failure is a client-side wait
    # (a connect timeout), a fast one a refusal from the router.
    failures: list[tuple[float, float]] = field(default_factory=list)

    def longest_gap(self, after: float | None = None) -> float:
        """Longest time between consecutive acknowledgements (only gaps ending after ``after``)."""
        times = self.ack_times
        gaps = [b - a for a, b in itertools.pairwise(times) if after is None or b >= after]
        return max(gaps, default=0.0)


class Writer:
    def __init__(
        self,
        conninfo: str,
        table: str = "pgwarden_drill",
        interval: float = 0.02,
        max_seconds: float = 300.0,
        max_writes: int = 100_000,
    ) -> None:
        if not table.replace("_", "").isalnum():
            raise ValueError(f"table name must be alphanumeric: {table!r}")
        self._conninfo = conninfo
        self.table = table
        self._interval = interval
        self._max_seconds = max_seconds
        self._max_writes = max_writes
        self.report = WriterReport()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._next_id = 1

    def prepare(self) -> None:
        """Create the table before the clock starts; fails loudly if the cluster takes no writes."""
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            conn.execute(_TABLE_DDL.format(table=self.table))

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> WriterReport:
        self._stop.set()
        self._thread.join(30)
        return self.report

    def wait_for_acks(self, count: int, timeout: float) -> bool:
        """True once ``count`` more writes than now were acknowledged; False at the timeout."""
        target = len(self.report.acknowledged) + count
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.report.acknowledged) >= target:
                return True
            time.sleep(self._interval)
        return False

    def _run(self) -> None:
        conn: psycopg.Connection[object] | None = None
        deadline = time.monotonic() + self._max_seconds
        insert = f"INSERT INTO {self.table} (id) VALUES (%s)"
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self.report.attempts >= self._max_writes:
                break
            self.report.attempts += 1
            value = self._next_id
            tried = time.monotonic()
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self._conninfo, autocommit=True)
                conn.execute(insert, (value,))
                self.report.acknowledged.append(value)
                self.report.ack_times.append(time.monotonic())
                self._next_id += 1
            except psycopg.Error:
                # Unknown outcome: the id is not reused (a later retry could collide with a row
                # that did commit), and it does not count as acknowledged.
                self._next_id += 1
                self.report.errors += 1
                self.report.failures.append((tried, time.monotonic() - tried))
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(self._interval)
        if conn is not None:
            conn.close()


def missing_ids(conninfo: str, table: str, acknowledged: list[int]) -> list[int]:
    """Acknowledged ids absent from the database at ``conninfo``: the writes a failover lost."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(f"SELECT id FROM {table}").fetchall()
    present = {int(r[0]) for r in rows}
    return [i for i in acknowledged if i not in present]
