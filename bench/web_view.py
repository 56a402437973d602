"""What the live web view costs an agent: its compact endpoint, polled every second by each open page.

A child process serves the REST API over a three-member snapshot with the agent's real
operations (``/ui/state`` is ``/cluster`` plus the history, rendered once per snapshot); this
process polls it with keep-alive connections, as a browser does, and reads the child's CPU time
from /proc (so the rest of a loaded machine does not count). Two figures:

- a request answered from the rendered state (several pages on one snapshot): CPU per request;
- rendering the state once (the first request after each snapshot: about one per loop_wait),
  measured in-process.

An open page costs one of each per second (its agent makes a new snapshot every cycle) plus a
``/cluster/events`` every 4 s (one round of peer requests at most every 2 s, however many pages).

Run: ``.venv/bin/python -m bench.web_view [--requests 3000]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx


def _snapshot() -> object:
    from tests.support import api_fakes as fake

    snap = fake.primary()
    members = tuple(
        replace(m, reason=f"{m.name}: standby of node1; nothing to do", reason_code="STANDBY_HEALTHY")
        for m in snap.view.members
    )
    return replace(snap, view=replace(snap.view, members=members))


def _operations(holder: object) -> object:
    from pgwarden.agent.requests import RequestBox
    from pgwarden.api.operations import AgentOperations
    from pgwarden.dcs.cluster_store import ClusterStore
    from pgwarden.dcs.memory import MemoryStore

    return AgentOperations(ClusterStore(MemoryStore(clock=time.time), "demo"), holder, RequestBox())  # type: ignore[arg-type]


def serve(port_file: str) -> None:
    """The child: an ApiServer on a free loopback port, until killed."""
    from pgwarden.agent.snapshot import SnapshotHolder
    from pgwarden.api.server import ApiServer
    from tests.support import api_fakes as fake

    holder = SnapshotHolder(_snapshot())  # type: ignore[arg-type]
    server = ApiServer(fake.api_settings(), holder, _operations(holder))  # type: ignore[arg-type]
    server.start()
    Path(port_file).write_text(str(server.port))
    threading.Event().wait()


def _cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _server() -> Iterator[tuple[int, int]]:
    port_file = Path(f"/tmp/pgw-bench-web-{os.getpid()}.port")
    port_file.unlink(missing_ok=True)
    child = subprocess.Popen([sys.executable, "-m", "bench.web_view", "--serve", str(port_file)])
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or child.poll() is not None:
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)
        yield child.pid, int(port_file.read_text())
    finally:
        child.kill()
        child.wait(10)
        port_file.unlink(missing_ok=True)


def render_cost(rounds: int) -> float:
    """Seconds to render /ui/state once (a new snapshot each time), in this process."""
    from pgwarden.agent.snapshot import SnapshotHolder
    from pgwarden.api.web_view import WebView

    holder = SnapshotHolder(_snapshot())  # type: ignore[arg-type]
    view = WebView(holder, _operations(holder))  # type: ignore[arg-type]
    snap = holder.get()
    started = time.process_time()
    for _ in range(rounds):
        holder.set(replace(snap))  # type: ignore[type-var]
        view.state()
    return (time.process_time() - started) / rounds


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    with _server() as (pid, port), httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        size = len(client.get("/ui/state").content)
        before, wall = _cpu_seconds(pid), time.monotonic()
        for _ in range(args.requests):
            client.get("/ui/state")
        cpu = (_cpu_seconds(pid) - before) / args.requests
        wall = (time.monotonic() - wall) / args.requests
    render = render_cost(max(200, args.requests // 5))
    per_page = cpu + render  # one answer and one render per second
    result = {
        "state_bytes": size,
        "cached_request_cpu_us": round(cpu * 1e6, 1),
        "cached_request_wall_ms": round(wall * 1e3, 3),
        "render_cpu_us": round(render * 1e6, 1),
        "one_open_page_cpu_percent_of_a_core": round(per_page * 100, 4),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
