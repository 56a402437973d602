"""Switchover benchmark: write unavailability through HAProxy during a planned switchover.

A writer inserts every 20 ms through HAProxy's write port; the figure is the longest gap
between two acknowledged writes around each switchover, plus lost writes (acknowledged ids
missing from the new primary; must be 0). Run: ``.venv/bin/python -m bench.switchover --runs 5
[--system pgwarden|patroni-fastest|patroni-defaults]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from bench import failover
from bench.run import SYSTEMS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--system", choices=sorted(SYSTEMS), default="pgwarden")
    args = parser.parse_args()
    gaps: list[float] = []
    lost = 0
    with SYSTEMS[args.system][1]() as cluster:
        for _ in range(args.runs):
            started = time.monotonic()
            outcome = failover.switchover(cluster)
            result = {
                "from": cluster.nodes[outcome.primary_before].name,
                "to": None if outcome.primary_after is None else cluster.nodes[outcome.primary_after].name,
                "write_gap_s": round(outcome.longest_gap_s, 3),
                "took_s": round(time.monotonic() - started, 3),
                "lost_writes": outcome.lost,
            }
            print(json.dumps(result), flush=True)
            gaps.append(outcome.longest_gap_s)
            lost += outcome.lost
    print(
        json.dumps(
            {
                "runs": len(gaps),
                "write_gap_median_s": round(statistics.median(gaps), 3),
                "write_gap_min_s": round(min(gaps), 3),
                "write_gap_max_s": round(max(gaps), 3),
                "lost_writes_total": lost,
            }
        )
    )


if __name__ == "__main__":
    main()
