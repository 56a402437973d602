"""Failover benchmark: node-loss and PostgreSQL-crash RTO through HAProxy, over several runs.

RTO is the time from the fault (SIGKILL) to the first write acknowledged through HAProxy's write
port. Run: ``.venv/bin/python -m bench.rto --runs 5 [--system pgwarden|patroni-fastest|
patroni-defaults]`` (about 3 minutes on 2 cores for pgwarden). ``bench.run`` runs the full
side-by-side set.
"""

from __future__ import annotations

import argparse
import json
import statistics

from bench import failover
from bench.run import SYSTEMS


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--system", choices=sorted(SYSTEMS), default="pgwarden")
    args = parser.parse_args()
    results: dict[str, list[float]] = {"node_loss_rto_s": [], "postgres_crash_rto_s": []}
    with SYSTEMS[args.system][1]() as cluster:
        for run in range(args.runs):
            results["node_loss_rto_s"].append(failover.node_loss(cluster).recovery_s)
            results["postgres_crash_rto_s"].append(failover.postgres_crash(cluster).recovery_s)
            print(f"run {run + 1}: " + ", ".join(f"{k}={v[-1]:.2f}" for k, v in results.items()), flush=True)
    report = {k: summary(v) for k, v in results.items()}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
