"""pgbench through HAProxy's write port: loading a database of a given scale, and measuring TPS."""

from __future__ import annotations

import os
import re
import subprocess

from bench.cluster import ClusterUnderTest
from tests.support.pg import BIN_DIR

PGBENCH = f"{BIN_DIR}/pgbench"
CLIENTS = 4
THREADS = 2
_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)


def _env(cluster: ClusterUnderTest) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "PGHOST": cluster.router.bind_host,
        "PGPORT": str(cluster.router.primary),
        "PGUSER": "postgres",
        "PGDATABASE": "postgres",
        "PGPASSWORD": cluster.superuser_password,
        "PGCONNECT_TIMEOUT": "5",
        "HOME": os.environ.get("HOME", "/root"),
    }


def initialize(cluster: ClusterUnderTest, scale: int, timeout: float = 900.0) -> None:
    """``pgbench -i -s scale`` with server-side data generation (scale 60 is about 1 GB)."""
    result = subprocess.run(
        [PGBENCH, "-i", "-q", "-s", str(scale), "-I", "dtGvp"],
        env=_env(cluster), capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"{cluster.label}: pgbench -i failed: {result.stderr.strip()[-500:]}")


def tps(cluster: ClusterUnderTest, seconds: int) -> float:
    """TPS of pgbench's default TPC-B-like transaction, 4 clients, for ``seconds``."""
    result = subprocess.run(
        [PGBENCH, "-n", "-c", str(CLIENTS), "-j", str(THREADS), "-T", str(seconds)],
        env=_env(cluster), capture_output=True, text=True, timeout=seconds + 120, check=False,
    )  # fmt: skip
    found = _TPS.search(result.stdout)
    if result.returncode != 0 or found is None:
        raise AssertionError(
            f"{cluster.label}: pgbench failed: {(result.stderr or result.stdout).strip()[-500:]}"
        )
    return float(found.group(1))
