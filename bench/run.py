"""Every benchmark, one after the other, each printing its own JSON lines: ``make bench``."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = (
    ["bench.rto", "--runs", "5"],
    ["bench.switchover", "--runs", "5"],
    ["bench.api_latency", "--requests", "2000"],
)


def main() -> None:
    failed = []
    for module, *args in BENCHMARKS:
        print(f"== {module} {' '.join(args)}", flush=True)
        if subprocess.run([sys.executable, "-m", module, *args], check=False).returncode != 0:
            failed.append(module)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
