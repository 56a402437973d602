"""Health-endpoint throughput and latency, asked the way HAProxy asks: a new TCP connection per check,
``OPTIONS /primary`` over HTTP/1.0, read until the server closes.

The load comes from ApacheBench (``ab``, C, one thread), so that as little of the 2-core machine
as possible goes to the client and the figures are the server's. Bounded: a fixed number of
requests, each with ab's 5 s timeout, and the whole call with a timeout of its own.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

AB = "ab"
_RPS = re.compile(r"^Requests per second:\s+([0-9.]+)", re.MULTILINE)
_FAILED = re.compile(r"^Failed requests:\s+(\d+)", re.MULTILINE)
_DONE = re.compile(r"^Complete requests:\s+(\d+)", re.MULTILINE)
_NON_2XX = re.compile(r"^Non-2xx responses:\s+(\d+)", re.MULTILINE)


@dataclass(frozen=True)
class HealthRun:
    requests: int
    per_second: float
    p50_ms: float
    p99_ms: float
    failed: int  # connection errors, or answers other than 2xx
    non_2xx: int = 0  # of ``failed``: answers other than 2xx (a health check saying "not me")


def measure(
    host: str,
    port: int,
    requests: int,
    concurrency: int,
    path: str = "/primary",
    method: str = "OPTIONS",
    scheme: str = "http",
    seconds: float | None = None,
) -> HealthRun:
    """``requests`` at ``concurrency``; with ``seconds``, as many as fit in that time instead
    (ab stops at whichever comes first), for a load that spans an event such as a failover."""
    limit = ["-t", f"{seconds:g}"] if seconds is not None else []
    with tempfile.TemporaryDirectory(prefix="pgw-ab-") as tmp:
        percentiles = Path(tmp) / "percentiles.csv"
        result = subprocess.run(
            [AB, "-q", "-l", "-s", "5", "-m", method, *limit, "-n", str(requests), "-c", str(concurrency),
             "-e", str(percentiles), f"{scheme}://{host}:{port}{path}"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        rps = _RPS.search(result.stdout)
        if result.returncode != 0 or rps is None:
            raise AssertionError(f"ab failed: {(result.stderr or result.stdout).strip()[-300:]}")
        # "Percentage served,Time in ms" then one "P,ms" row for P = 0..100
        rows = dict(line.split(",", 1) for line in percentiles.read_text().splitlines()[1:])
    errors, non_2xx = (
        int(m.group(1)) if m else 0 for m in (_FAILED.search(result.stdout), _NON_2XX.search(result.stdout))
    )
    done = _DONE.search(result.stdout)
    count = int(done.group(1)) if done else requests
    return HealthRun(
        count, float(rps.group(1)), float(rows["50"]), float(rows["99"]), errors + non_2xx, non_2xx
    )
