"""Failover benchmark: node-loss RTO and PostgreSQL-crash RTO through HAProxy, over several runs.

RTO is the time from the fault (SIGKILL) to the first write acknowledged through HAProxy's write
port. Run: ``.venv/bin/python -m bench.rto --runs 5`` (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import time
from collections.abc import Callable

from pgwarden.local import processes
from pgwarden.local.stack import Stack
from pgwarden.postgres.probe import postmaster_pid
from tests.support.cluster import primary_name, running_stack, wait_for, write_through_router

WRITE_INTERVAL = 0.02
GIVE_UP = 120.0


def _write(stack: Stack, value: int) -> bool:
    return write_through_router(stack, value, table="bench")


def _time_until_write(stack: Stack, fault: Callable[[], None]) -> float:
    assert _write(stack, 0), "cluster not writable before the fault"
    started = time.monotonic()
    fault()
    n = 1
    while time.monotonic() - started < GIVE_UP:
        if _write(stack, n):
            return time.monotonic() - started
        n += 1
        time.sleep(WRITE_INTERVAL)
    raise AssertionError("no write acknowledged within the bound")


def node_loss(stack: Stack) -> float:
    old = primary_name(stack)
    assert old is not None
    i = int(old.removeprefix("node")) - 1
    rto = _time_until_write(stack, lambda: stack.kill_node(i))
    stack.start_agent(i)  # the old primary rejoins (pg_rewind) before the next run
    stack.wait_healthy(180)
    return rto


def postgres_crash(stack: Stack) -> float:
    primary = primary_name(stack)
    assert primary is not None
    data_dir = stack.spec.data_dir(int(primary.removeprefix("node")) - 1)
    postmaster = postmaster_pid(str(data_dir))
    assert postmaster is not None
    rto = _time_until_write(stack, lambda: processes.signal_tree(postmaster, signal.SIGKILL))
    wait_for(lambda: stack.healthy()[0], 120, "a healthy cluster")
    return rto


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"node_loss_rto_s": [], "postgres_crash_rto_s": []}
    with running_stack() as stack:
        for run in range(args.runs):
            results["node_loss_rto_s"].append(node_loss(stack))
            results["postgres_crash_rto_s"].append(postgres_crash(stack))
            print(f"run {run + 1}: " + ", ".join(f"{k}={v[-1]:.2f}" for k, v in results.items()), flush=True)
    report = {k: summary(v) for k, v in results.items()}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
