"""Switchover benchmark: write unavailability through HAProxy during a planned switchover.

A writer inserts every 20 ms through HAProxy's write port; the figure is the longest gap
between two acknowledged writes around each switchover, plus lost writes (acknowledged ids
missing from the new primary; must be 0). Run: ``.venv/bin/python -m bench.switchover --runs 5``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import httpx

from pgwarden.drill.writer import Writer, missing_ids
from pgwarden.local.stack import Stack
from tests.support.cluster import conninfo, primary_name, running_stack, wait_for


def _auth(stack: Stack) -> tuple[str, str] | None:
    creds = stack.describe().get("api_auth")
    return (creds["username"], creds["password"]) if creds else None


def one_switchover(stack: Stack, run: int) -> dict[str, float | int | str]:
    wait_for(lambda: stack.healthy()[0], 180, "a healthy cluster")
    old = primary_name(stack)
    assert old is not None
    i = int(old.removeprefix("node")) - 1
    candidate = next(stack.spec.node_name(j) for j in range(stack.spec.nodes) if j != i)
    router = conninfo(stack, stack.spec.router.bind_host, stack.spec.router.primary, 2)
    writer = Writer(router, table=f"bench_switchover_{run}", interval=0.02, max_seconds=120)
    writer.prepare()
    with writer:
        assert writer.wait_for_acks(25, 30), "no writes before the switchover"
        started = time.monotonic()
        reply = httpx.post(
            f"http://{stack.spec.node_host(i)}:{stack.spec.api_port}/switchover",
            json={"leader": old, "candidate": candidate},
            auth=_auth(stack),
            timeout=60,
        )
        answered = time.monotonic() - started
        assert reply.status_code == 200, reply.text
        assert writer.wait_for_acks(25, 30), "no writes after the switchover"
    report = writer.report
    lost = missing_ids(router, writer.table, report.acknowledged)
    return {
        "from": old,
        "to": candidate,
        "write_gap_s": round(report.longest_gap(after=started), 3),
        "api_answer_s": round(answered, 3),
        "lost_writes": len(lost),
        "failed_attempts": report.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results = []
    with running_stack() as stack:
        for run in range(args.runs):
            result = one_switchover(stack, run)
            print(json.dumps(result), flush=True)
            results.append(result)
            time.sleep(2)  # let the old primary settle as a standby before the next run
    gaps = [float(r["write_gap_s"]) for r in results]
    print(
        json.dumps(
            {
                "runs": len(results),
                "write_gap_median_s": round(statistics.median(gaps), 3),
                "write_gap_min_s": min(gaps),
                "write_gap_max_s": max(gaps),
                "lost_writes_total": sum(int(r["lost_writes"]) for r in results),
            }
        )
    )


if __name__ == "__main__":
    main()
