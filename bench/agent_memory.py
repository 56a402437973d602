"""Where the agent's resident memory goes (issue 16, the memory part): by import, and in a running agent.

    .venv/bin/python -m bench.agent_memory steps [--runs 5]
    .venv/bin/python -m bench.agent_memory tree [--top 25]
    .venv/bin/python -m bench.agent_memory pid PID [PID ...]

``steps``: fresh interpreters import what ``pgwarden-agent`` imports, in its order
(daemon/start.py ``run``), and report ``VmRSS`` after each step: the interpreter; the node
config's loader (pydantic, yaml, the config models); psycopg over the system's libpq
(``prefer_system_libpq``); the agent's own modules (loop, API, DCS, TLS); then the modules loaded
at the first ``GET /metrics`` (prometheus_client). Median (min-max) of ``--runs``.

``tree [--rss]``: one interpreter importing the same, each module's import measured: the Python
objects it allocated (tracemalloc), or with ``--rss`` the ``VmRSS`` it added (shared libraries and
native allocations too, at page granularity: a small module's figure is noise), summed per
top-level package, and the heaviest imports with the module that first imported them. This is how
"who pulls it in" was answered (``python -X importtime`` tells the same for time).

``pid``: a running process's resident memory by kind from ``/proc/PID/smaps``: shared libraries
and the executable, glibc's main heap, the anonymous mappings (Python's object arenas, large
allocations), each thread's malloc arena (a 64 MB reservation per arena) and stack (8 MB
reservations: only touched pages count), with the threads by name.
"""

from __future__ import annotations

import argparse
import collections
import importlib.abc
import importlib.machinery
import json
import os
import statistics
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# The agent's imports in daemon/start.py's order; "libpq" is prefer_system_libpq(), which imports
# psycopg over the system's libpq as the agent does.
STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "config loader (pydantic, yaml, models)",
        ("pgwarden.config.errors", "pgwarden.config.node", "pgwarden.local.siblings", "pgwarden.logs"),
    ),
    ("psycopg over the system libpq", ("libpq",)),
    (
        "agent, API, DCS, TLS modules",
        ("pgwarden.daemon.agent", "pgwarden.dcs.etcd_tls", "pgwarden.postgres.permissions", "pgwarden.tls"),
    ),
    ("first GET /metrics (prometheus_client)", ("pgwarden.api.metrics",)),
)

_CHILD = """
import importlib, json, sys
def rss():
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) for l in f if l.startswith('VmRSS:'))
found = [rss()]
for names in json.loads(sys.argv[1]):
    for name in names:
        if name == 'libpq':
            from pgwarden.daemon.start import prefer_system_libpq
            prefer_system_libpq()
        else:
            importlib.import_module(name)
    found.append(rss())
print(json.dumps(found))
"""


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _import_step(name: str) -> None:
    if name == "libpq":
        from pgwarden.daemon.start import prefer_system_libpq

        prefer_system_libpq()
    else:
        importlib.import_module(name)


def steps(runs: int) -> None:
    samples: list[list[int]] = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps([names for _, names in STEPS])],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        ).stdout
        samples.append(json.loads(out))
    labels = ["interpreter", *(label for label, _ in STEPS)]
    print(f"VmRSS after each step, MB, median (min-max) of {runs} fresh interpreters")
    for i, label in enumerate(labels):
        total = [s[i] / 1024 for s in samples]
        added = [(s[i] - s[i - 1]) / 1024 for s in samples] if i else total
        print(f"  {label:42s} {_fig(total)}   added {_fig(added)}")


def _fig(values: Sequence[float]) -> str:
    return f"{statistics.median(values):5.1f} ({min(values):.1f}-{max(values):.1f})"


class _Measured(importlib.abc.Loader):
    """A loader around the real one that records what creating and running the module added."""

    def __init__(self, real: Any, record: Callable[[str, Callable[[], None]], None]) -> None:
        self._real = real
        self._record = record

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        made: list[ModuleType | None] = []
        self._record(spec.name, lambda: made.append(self._real.create_module(spec)))
        return made[0]

    def exec_module(self, module: ModuleType) -> None:
        self._record(module.__name__, lambda: self._real.exec_module(module))

    def __getattr__(self, name: str) -> Any:  # is_package, get_code, resource readers ...
        return getattr(self._real, name)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, record: Callable[[str, Callable[[], None]], None]) -> None:
        self._record = record

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Measured(spec.loader, self._record)
                return spec
        return None


def tree(top: int, rss: bool) -> None:
    """Python objects each import allocated (tracemalloc), or with ``rss`` the VmRSS it added
    (measured without tracemalloc, whose own records would count)."""
    measure = _rss_kb if rss else (lambda: tracemalloc.get_traced_memory()[0] // 1024)
    # name -> [own kB, kB with what it imported, first importer]
    seen: dict[str, list[Any]] = {}
    stack: list[list[Any]] = []  # [name, kB of the imports it made]

    def record(name: str, work: Callable[[], None]) -> None:
        before = measure()
        stack.append([name, 0])
        try:
            work()
        finally:
            _, children = stack.pop()
            added = measure() - before
            entry = seen.setdefault(name, [0, 0, stack[-1][0] if stack else "-"])
            entry[0] += added - children
            entry[1] += added
            if stack:
                stack[-1][1] += added

    if not rss:
        tracemalloc.start()
    start = measure()
    sys.meta_path.insert(0, _Finder(record))
    for _, names in STEPS[:-1]:
        for name in names:
            _import_step(name)
    what = "VmRSS added" if rss else "Python objects allocated (tracemalloc)"
    print(f"{len(seen)} modules imported, {what}: {(measure() - start) / 1024:.1f} MB")
    by_package: collections.Counter[str] = collections.Counter()
    for name, (own, _, _) in seen.items():
        by_package[name.split(".")[0]] += own
    print("by top-level package (its modules' own figures), MB")
    for package, kb in by_package.most_common(top):
        print(f"  {kb / 1024:5.2f}  {package}")
    print("heaviest imports (with what they imported), MB <- the module that first imported it")
    for name, (_, cum, parent) in sorted(seen.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"  {cum / 1024:5.2f}  {name:44s} <- {parent}")


def _smaps(pid: int) -> collections.Counter[str]:
    maps: list[list[Any]] = []  # size kB, permissions, path, rss kB
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and not parts[0].endswith(":"):
                low, high = (int(x, 16) for x in parts[0].split("-"))
                maps.append([(high - low) // 1024, parts[1], parts[5] if len(parts) > 5 else "", 0])
            elif parts[0] == "Rss:":
                maps[-1][3] = int(parts[1])
    kinds: collections.Counter[str] = collections.Counter()
    for i, (size, perms, path, rss) in enumerate(maps):
        before = maps[i - 1] if i else None
        after = maps[i + 1] if i + 1 < len(maps) else None
        guard_before = before is not None and before[1].startswith("---") and before[2] == ""
        guard_after = after is not None and after[1].startswith("---") and after[2] == ""
        if path == "[heap]":
            kind = "glibc main heap"
        elif path.startswith("["):
            kind = "other"
        elif path:
            kind = "shared libraries, executable, files"
        elif perms.startswith("rw") and size == 8192 and guard_before:
            kind = "thread stacks"
            kinds["thread stacks (count)"] += 1
        elif perms.startswith("rw") and after is not None and guard_after and (size + after[0]) % 65536 == 0:
            kind = "thread malloc arenas"
            kinds["thread malloc arenas (count)"] += 1
        else:
            kind = "anonymous (Python arenas, large blocks)"
        kinds[kind] += rss
    return kinds


def show_pid(pids: Sequence[int]) -> None:
    for pid in pids:
        kinds = _smaps(pid)
        threads = collections.Counter()
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/comm") as f:
                threads[f.read().strip()] += 1
        print(f"PID {pid}: VmRSS {_rss_of(pid) / 1024:.1f} MB, {sum(threads.values())} threads")
        for kind, kb in sorted(kinds.items(), key=lambda kv: -kv[1]):
            print(f"  {kind:40s} {kb if kind.endswith('(count)') else f'{kb / 1024:.2f} MB'}")
        print("  threads: " + ", ".join(f"{n} x{c}" if c > 1 else n for n, c in sorted(threads.items())))


def _rss_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("steps").add_argument("--runs", type=int, default=5)
    tree_args = sub.add_parser("tree")
    tree_args.add_argument("--top", type=int, default=25)
    tree_args.add_argument("--rss", action="store_true", help="VmRSS added, not Python objects")
    sub.add_parser("pid").add_argument("pids", type=int, nargs="+")
    args = parser.parse_args()
    if args.what == "steps":
        steps(args.runs)
    elif args.what == "tree":
        tree(args.top, args.rss)
    else:
        show_pid(args.pids)


if __name__ == "__main__":
    main()
