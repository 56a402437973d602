"""Writes docs/benchmarks.md from one run's Results: machine, versions, configs, table, targets.

Everything above the analysis marker is regenerated on each run; the hand-written analysis below
it (why a target is missed, what to try next) is carried over unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.report import BY_KEY, Results, Target

ANALYSIS_MARKER = "<!-- analysis: written by hand; kept when bench.run rewrites this file -->"

COMMON_SETUP = """\
- 3 nodes, each on its own loopback address (127.0.N.11-13; PostgreSQL on 5432, REST API on
  8008), each node's PostgreSQL running as its own OS user (pgwtest1..3); a 3-member etcd on
  127.0.N.21-23 (heartbeat 100 ms, election timeout 1000 ms); HAProxy on 127.0.N.1 with the
  configuration `pgwarden.router.haproxy.render` writes for both systems (`option httpchk OPTIONS
  /primary`, `inter 500ms fastinter 100ms downinter 100ms fall 2 rise 1`, `retries 0`,
  `on-marked-down shutdown-sessions`).
- The same PostgreSQL 15 binaries and parameters where the systems let them be set alike:
  `shared_buffers 32MB`, `max_connections 50`, data checksums, pg_rewind on, one physical
  replication slot per member, `maximum_lag_on_failover` 1 MB; everything else at each system's
  defaults. The pgwarden agent runs as root (it drops to the node user for PostgreSQL); each
  Patroni runs as the node's user (`.venv-patroni`, made by `scripts/install-bench-deps.sh`)."""

METHOD = """\
- **Writer**: one client inserts a numbered row every 20 ms through HAProxy's write port, on one
  connection, reconnecting after any error (`connect_timeout=1`). An id counts as acknowledged
  when its INSERT returned; lost writes are acknowledged ids missing from the new primary.
- **Node loss RTO**: SIGKILL of the primary's agent, its postmaster and every child of either
  (found before the clock starts, so the kill takes microseconds) → the first acknowledged write
  after the outage, i.e. the end of the longest gap between acknowledgements that ends after the
  kill (an INSERT the old primary committed just before dying may be read just after it).
  Asynchronous replication.
- **PostgreSQL crash RTO**: SIGKILL of the primary's postmaster and its children, agent alive →
  the first acknowledged write after the outage, as above. The *crash split* rows say where that
  time went, each instant polled every 10 ms from the crash (`bench/crash_timeline.py`; on a
  loaded machine a poller can lag another by ~0.2 s, so a segment may read slightly negative):
  the agent's decision (pgwarden's `GET /events`), the new postmaster's start time, its
  postmaster.pid reading `ready`, the agent's `/primary` answering 200 again, HAProxy's stats
  showing the server UP, and the writer's first acknowledged write.
- **Switchover gap**: `POST /switchover {"leader", "candidate"}` (basic auth) to the leader's REST
  API; the longest time between two acknowledged writes from the request on.
- **etcd elections**: the etcd leader SIGKILLed 20 times in a row under the writer; each time
  it stays down 6 s and is started again, and the next kill waits until all three members are
  healthy. A *spurious stop* is the primary's postmaster replaced (stopped and started again) by
  the kill; a failover is another node primary after it. The election time is from the kill until
  a surviving member reports a new leader; it depends on the machine's load.
- **Rejoin**: after each node loss the old primary's agent is started again; time from that start
  until the old primary streams from the new primary (`pg_stat_replication`), on a database made
  by `pgbench -i -s SCALE` (scale 60 ≈ 1 GB, server-side generation), after which every node
  checkpoints (without it, a failover lands halfway through the checkpoint spanning the load,
  and pg_rewind needs WAL the new primary has already recycled: see the analysis).
- **Synchronous mode**: the dynamic config is patched live (`PATCH /config`; pgwarden
  `synchronous_mode: on`, Patroni `synchronous_mode: true`, `synchronous_node_count: 1`), then
  node losses as above, each waiting first until a standby is synchronous; lost acknowledged
  writes must be 0.
- **pgbench TPS**: `pgbench -n -c 4 -j 2 -T SECONDS` (TPC-B-like) through HAProxy's write port on
  the same database, asynchronous, then synchronous FIRST 1, then quorum ANY 1 of 2 (pgwarden
  `synchronous_mode: quorum`, Patroni 4 `synchronous_mode: quorum`, both with
  `synchronous_node_count: 1`).
- **Health endpoint**: `OPTIONS /primary` over HTTP/1.0, a new TCP connection per request, as
  HAProxy checks, against the primary's REST API, from ApacheBench (`ab -m OPTIONS -c 1|8`; C,
  single-threaded, so the client takes little of the 2 cores); throughput and p50/p99 per run.
  **Under work** (bench/health_work.py, on the ~1 GB database, concurrency 8): an 8 s load with
  a standby re-cloned (`POST /reinitialize`) 1 s into it, on the primary's agent (`/primary`; its
  node serves the base backup), then with another clone on the cloning standby's own agent
  (`/health`, a 503 counting as an answer), the clone's duration beside;
  and across a failover: the load runs 12 s on a standby's agent (`/health`) and the primary's
  node (agent and PostgreSQL) is SIGKILLed 1 s into it, then rejoins before the next run.
- **Agent death to fence**: SIGKILL of the primary's agent alone → its postmaster gone (polled
  every 2 ms), then the agent started again and the cluster healthy before the next run. pgwarden
  only: Patroni without a watchdog device leaves PostgreSQL read-write while it is down.
- **etcd outage**: two of the three etcd members (the raft leader and a follower) SIGKILLed for
  30 s under the writer, then started again on their data; with `failsafe_mode` off, then on
  (`PATCH /config`, both systems; with it on, the run starts once `GET /failsafe` lists every
  node). Figures: the longest gap between acknowledged writes from the kill until writes flow
  again after etcd's return, the writes acknowledged while etcd had no quorum, lost
  acknowledged writes, and whether the same node is primary afterwards.
- **Idle footprint**: every agent process of a healthy, idle cluster over one window (twice, on
  the same cluster): `VmRSS` (`/proc/PID/status`) at its end, and the growth of `utime + stime`
  (`/proc/PID/stat`, all threads) over it as % of one core; pgwarden's fence (one more small
  process per node) is measured the same way in its own rows. PostgreSQL's own processes are not
  counted.
- **Agent start-up**: a standby's agent is SIGKILLed (its PostgreSQL keeps running) and started
  again; from just before the spawn until its REST API answers `GET /patroni` with the role and
  state it had before (pgwarden: and a first decision): imports, config, the first cycle.
- **Agent cycle**: `pgwarden_loop_duration_seconds` (observe + decide + act) from each agent's
  `/metrics`, read 5 times a second apart after the idle window (pgwarden only).
- **Security cost** (`secure` phase, bench/secure.py): fresh plaintext stacks and fresh secure
  ones (as `pgwarden up` starts it: etcd TLS on both ports with client certificates and etcd
  auth, API mTLS, HAProxy `check-ssl`), alternately: plain, secure, plain, secure. On each: a
  client built as an agent builds its own (node1's etcd settings and source address) renews a
  lease every 100 ms for 20 s (p50, p99 per window), with the CPU the etcd members, agents and
  HAProxy used meanwhile; a new client's first renewal (new connection: TLS handshake) and
  first read (new connection and a new etcd token: bcrypt on etcd's side); node-loss RTO as
  above, on an unloaded database. Before them, on etcd alone (no agents): renewals plaintext,
  over TLS with auth on but no token, and with the token, which splits a renewal's extra time
  between TLS and auth.
- Each cell: **median** (min-max, n = samples). The ratio column is pgwarden's median over the
  other column's; below 1 is better for times and memory, above 1 for throughput."""


def render(
    results: Results,
    targets: Sequence[Target],
    header: dict[str, str],
    machine: dict[str, str],
    versions: dict[str, str],
    configs: dict[str, str],
    analysis: str,
) -> str:
    lines = ["# Benchmarks: pgwarden side by side with Patroni", ""]
    lines += [f"- **{k}**: {v}" for k, v in header.items()]
    lines += ["", "## Results", "", results.table(), "", "## Targets", ""]
    lines += results.verdicts(targets)
    lines += ["", "## Machine", "", *(f"- {k}: {v}" for k, v in machine.items())]
    lines += ["", "## Versions", "", *(f"- {k}: {v}" for k, v in versions.items())]
    lines += ["", "## Clusters under test", "", COMMON_SETUP, ""]
    lines += [f"- **{label}**: {text}" for label, text in configs.items()]
    lines += ["", "## How each figure is measured", "", METHOD]
    notes = list(results.notes)
    for (key, label), why in sorted(results.skipped.items()):
        notes.append(f"{label}: {BY_KEY[key].title} not measured: {why}")
    if notes:
        lines += ["", "## Notes from this run", "", *(f"- {n}" for n in notes)]
    if results.excerpts:
        lines += ["", "## Failed runs (log excerpts)", ""]
        for excerpt in results.excerpts:
            lines += ["```", excerpt[-4000:], "```", ""]
    lines += ["", ANALYSIS_MARKER, "", analysis.strip() or "## Analysis\n\n(not written yet)", ""]
    return "\n".join(lines)


def kept_analysis(path: Path) -> str:
    """The hand-written part of an existing report (after the marker), or nothing."""
    try:
        text = path.read_text()
    except OSError:
        return ""
    return text.split(ANALYSIS_MARKER, 1)[1] if ANALYSIS_MARKER in text else ""
