"""What a benchmark ran on: the machine (cores, CPU model, memory) and the versions of every part."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bench.patroni_cluster import patroni_version
from tests.support.pg import BIN_DIR

REPO = Path(__file__).resolve().parent.parent


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False, cwd=REPO)
    except OSError:
        return "not found"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def machine() -> dict[str, str]:
    return {
        "cores (nproc)": str(os.cpu_count()),
        "CPU model": cpu_model(),
        "memory": f"{memory_gib():.0f} GiB",
        "kernel": os.uname().release,
    }


def versions() -> dict[str, str]:
    rev = _first_line(["git", "rev-parse", "--short=12", "HEAD"])
    dirty = _first_line(["git", "status", "--porcelain", "--untracked-files=no", "--", "src"])
    suffix = " (with uncommitted changes in src/)" if dirty not in ("", "unknown") else ""
    return {
        "PostgreSQL": _first_line([f"{BIN_DIR}/postgres", "--version"]),
        "etcd": _first_line(["/usr/bin/etcd", "--version"]),
        "HAProxy": _first_line(["/usr/sbin/haproxy", "-v"]),
        "Patroni": patroni_version(),
        "pgwarden": f"git {rev}{suffix}",
        "Python": _first_line(["/usr/bin/python3", "--version"]),
    }
