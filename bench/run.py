"""Every benchmark, side by side with Patroni 4.1.5, in one command: ``make bench``.

Runs the scenarios of bench.plan against pgwarden (defaults), Patroni with its defaults and
Patroni with its fastest accepted timing, one cluster at a time on the same machine, prints the
table and writes docs/benchmarks.md. ``--quick`` (2 runs, fewer scenarios, pgwarden and Patroni
fastest) takes about 8 minutes; the full set about 45 (of which the `secure` phase, pgwarden
plain against TLS + auth, 10-20), plus about 20 for the `scale` phase (pgwarden at 3, 5, 9 and 9
cascading members: bench/scale.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import document, machine
from bench.cluster import ClusterUnderTest
from bench.patroni_cluster import DEFAULTS, FASTEST, PATRONI, PatroniCluster
from bench.pgwarden_cluster import PgwardenCluster, baseline, psycopg_binary
from bench.plan import ALL_PHASES, PHASE_METRICS, TIMING_FREE, Options, Session
from bench.report import Results, Target

REPO = Path(__file__).resolve().parent.parent
SYSTEMS: dict[str, tuple[str, Callable[[], ClusterUnderTest]]] = {
    "pgwarden": ("pgwarden", PgwardenCluster),
    "patroni-fastest": ("Patroni fastest", lambda: PatroniCluster(FASTEST, "Patroni fastest")),
    "patroni-defaults": ("Patroni defaults", lambda: PatroniCluster(DEFAULTS, "Patroni defaults")),
    # Not in the default set: the same agents with psycopg-binary's own libpq and OpenSSL instead
    # of the system's libpq (daemon/start.py prefers it), to measure what that choice saves.
    "pgwarden-psycopg-binary": ("pgwarden, psycopg-binary", psycopg_binary),
}
FULL = Options()
QUICK = Options(
    runs=2,
    tps_runs=1,
    tps_seconds=5,
    idle_seconds=20,
    footprint_runs=1,
    health_requests=1000,
    scale=5,
    outage_runs=1,
)
QUICK_PHASES = ("footprint", "health", "crash", "fence", "switchover", "load", "node_loss", "sync")


def targets(labels: list[str]) -> list[Target]:
    """The issue's targets, against each Patroni column measured (node loss: the fastest only)."""
    found = []
    if labels[:1] == ["pgwarden"] and any(other.startswith("Patroni") for other in labels[1:]):
        found += [  # issue 16's absolute targets (bench/health_work.py for the loads under work)
            Target("idle_rss", "", 0, "idle RSS ≤ 40 MB", limit=40.0),
            Target("idle_cpu", "", 0, "idle CPU ≤ 0.6 % of a core", limit=0.6),
            Target("health_p50_1", "", 0, "health p50 ≤ 0.2 ms, concurrency 1", limit=0.2),
            Target("crash_rto", "", 0, "PostgreSQL crash → first acknowledged write ≤ 1.5 s", limit=1.5),
            *(
                Target(key, "", 0, f"health p99 ≤ 2 ms, concurrency 8{what}", limit=2.0)
                for key, what in (
                    ("health_p99_8", ""),
                    ("health_clone_p99_8", ", primary while a standby clones"),
                    ("health_cloning_p99_8", ", the cloning standby"),
                    ("health_failover_p99_8", ", across a failover"),
                )
            ),
        ]
    for other in labels[1:]:
        if not other.startswith("Patroni"):
            continue  # a baseline build of pgwarden: compared in the table, no targets
        if other == "Patroni fastest":
            found.append(Target("node_loss_rto", other, 0.25, f"node-loss RTO ≤ 1/4 of {other}"))
        found.append(Target("switchover_gap", other, 1 / 3, f"switchover gap ≤ 1/3 of {other}"))
        for c in (1, 8):
            found.append(
                Target(f"health_rps_{c}", other, 3.0, f"health throughput ≥ 3\u00d7 {other}, concurrency {c}")
            )
        for where, what in (("clone", "while a standby clones"), ("failover", "across a failover")):
            found.append(
                Target(f"health_{where}_rps_8", other, 3.0, f"health throughput ≥ 3\u00d7 {other}, {what}")
            )
        found.append(Target("idle_rss", other, 1.0, f"idle RSS ≤ {other}"))
    return found


def phases_for(system: str, wanted: tuple[str, ...]) -> list[str]:
    if system == "patroni-defaults":
        return [p for p in wanted if p not in TIMING_FREE]
    return list(wanted)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2 runs, fewer scenarios (about 8 minutes)")
    parser.add_argument("--runs", type=int, help="runs per scenario (default 5; 2 with --quick)")
    parser.add_argument("--systems", help=f"comma-separated, from {', '.join(SYSTEMS)}")
    parser.add_argument("--phases", help=f"comma-separated, from {', '.join(ALL_PHASES)}")
    parser.add_argument(
        "--doc", default=str(REPO / "docs" / "benchmarks.md"), help="report to write; '' for none"
    )
    parser.add_argument("--json", default="", help="also write the raw samples here")
    parser.add_argument(
        "--baseline",
        metavar="SRC",
        help="also run pgwarden's agents from this source tree (e.g. `git archive main src`), "
        "as system 'pgwarden-baseline': before/after figures in one run",
    )
    return parser.parse_args()


def main() -> None:
    args = parse()
    if args.baseline:
        source = Path(args.baseline)
        SYSTEMS["pgwarden-baseline"] = ("pgwarden baseline", lambda: baseline(source))
    options = QUICK if args.quick else FULL
    if args.runs:
        options = Options(**{**options.__dict__, "runs": args.runs})
    full = "pgwarden,patroni-fastest,patroni-defaults"
    default_systems = "pgwarden,patroni-fastest" if args.quick else full
    systems = [s.strip() for s in (args.systems or default_systems).split(",") if s.strip()]
    if args.baseline and "pgwarden-baseline" not in systems:
        systems.insert(1 if systems[:1] == ["pgwarden"] else 0, "pgwarden-baseline")
    wanted = tuple(args.phases.split(",")) if args.phases else (QUICK_PHASES if args.quick else ALL_PHASES)
    unknown = [s for s in systems if s not in SYSTEMS] + [p for p in wanted if p not in ALL_PHASES]
    if unknown:
        sys.exit(f"unknown system or phase: {', '.join(unknown)}")
    if not PATRONI.exists() or shutil.which("ab") is None:
        subprocess.run(["bash", str(REPO / "scripts" / "install-bench-deps.sh")], check=True, timeout=900)

    labels = [SYSTEMS[s][0] for s in systems]
    results = Results(labels)
    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    versions = machine.versions()  # at the start: others may commit while the run goes on
    started = time.monotonic()
    configs: dict[str, str] = {}
    for system in systems:
        label, make = SYSTEMS[system]
        phases = phases_for(system, wanted)
        for skipped in sorted(set(wanted) - set(phases)):
            for key in PHASE_METRICS.get(skipped, ()):
                results.skip(key, label, "timing-independent: measured with Patroni fastest only")
        session = Session(make, results, options, label)
        configs[label] = make().settings()
        session.run(phases)
    elapsed = time.monotonic() - started

    print("\n" + results.table() + "\n")
    verdicts = results.verdicts(targets(labels))
    print("\n".join(verdicts))
    if args.json:
        Path(args.json).write_text(json.dumps(results.to_json(), indent=2) + "\n")
    if args.doc:
        doc = Path(args.doc)
        target = "make bench BENCH_ARGS=--quick" if args.quick else "make bench"
        flags = " --quick" if args.quick else ""
        command = f"`{target}` (runs `.venv/bin/python -m bench.run{flags}`)"
        header = {
            "run": f"{'quick' if args.quick else 'full'} set, {time.strftime('%Y-%m-%d')}, "
            f"{elapsed / 60:.1f} min, {options.runs} runs per scenario",
            "command": command,
            "sizes": f"database for rejoin and pgbench: `pgbench -i -s {options.scale}`"
            f"{' (about 1 GB)' if options.scale == 60 else ''}; pgbench {options.tps_runs} run(s) of"
            f" {options.tps_seconds} s per mode; idle window {options.idle_seconds:.0f} s;"
            f" {options.health_requests} health requests per run",
            "machine load": f"load average {' '.join(loadavg)} at the start (1/5/15 min) — other engineers "
            "run test clusters on this 2-core machine at the same time, so absolute figures are noisy; "
            "the systems ran one after the other in the same session",
        }
        configs = {k: v + _config_tail(k) for k, v in configs.items()}
        text = document.render(
            results, targets(labels), header, machine.machine(), versions, configs,
            document.kept_analysis(doc),
        )  # fmt: skip
        doc.write_text(text)
        print(f"\nwrote {doc}")
    if results.failures:
        print(f"\n{sum(len(v) for v in results.failures.values())} failed runs: see the report")


def _config_tail(label: str) -> str:
    if label == "pgwarden":
        return "; synchronous modes via PATCH /config (`on` / `quorum`, `synchronous_node_count: 1`)"
    return (
        "; `use_pg_rewind: true`, `use_slots: true`, REST API basic auth; synchronous modes via"
        " PATCH /config (`true` / `quorum`, `synchronous_node_count: 1`)"
    )


if __name__ == "__main__":
    main()
