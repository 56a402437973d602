"""The scenarios in order on one cluster under test, recording every figure (or failure) in Results.

A failed run is recorded as such with the agents' log tails, the cluster is brought back (or
started anew when it cannot be), and the plan goes on: one system misbehaving must not hide the
figures of the others.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench import (
    elections,
    failover,
    fence,
    footprint,
    health,
    health_work,
    outage,
    pgbench,
    scale,
    secure,
)  # fmt: skip
from bench import pgbouncer as pooling
from bench.cluster import ClusterUnderTest
from bench.pgwarden_cluster import PgwardenCluster
from bench.report import CRASH_SPLIT, Results

MAX_FAILURES = 2  # consecutive failed runs before a scenario is given up on one cluster


@dataclass(frozen=True)
class Options:
    runs: int = 5
    tps_runs: int = 3
    tps_seconds: int = 15
    idle_seconds: float = 60.0
    footprint_runs: int = 2  # idle windows, each giving one figure per agent
    health_requests: int = 2000
    scale: int = 60  # pgbench scale of the database the rejoin runs on (60: about 1 GB)
    election_kills: int = elections.KILLS
    outage_runs: int = 2  # per failsafe mode: each is a 30 s etcd outage plus the recovery
    scale_runs: int = 2  # per layout of the scale phase: an idle window, a switchover, a node loss
    phases: tuple[str, ...] = ()  # empty: all


ALL_PHASES = (
    "footprint", "health", "crash", "fence", "switchover", "elections", "load", "node_loss", "sync",
    "quorum", "etcd_outage", "pgbouncer", "secure", "scale",
)  # fmt: skip
# Timing does not change these (PostgreSQL does the work), so Patroni's defaults skip them.
TIMING_FREE = ("sync", "quorum")
SYNC_METRICS = ("sync_lost", "sync_rto", "tps_sync")
ELECTION_METRICS = ("election_stops", "election_failovers", "election_gap", "election_time", "election_slow")
PHASE_METRICS = {"sync": SYNC_METRICS, "quorum": ("tps_quorum",), "elections": ELECTION_METRICS}


class Session:
    """Runs the plan on one system; ``make`` builds a fresh, unstarted cluster."""

    def __init__(
        self, make: Callable[[], ClusterUnderTest], results: Results, options: Options, label: str
    ) -> None:
        self.make = make
        self.results = results
        self.options = options
        self.label = label
        self.cluster: ClusterUnderTest | None = None
        self.loaded = False
        self.mode = "off"  # the synchronous mode the current phase runs in

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] [{self.label}] {text}", flush=True)

    # --- the cluster's life -----------------------------------------------------------------
    def up(self) -> ClusterUnderTest:
        if self.cluster is None:
            cluster = self.make()
            started = time.monotonic()
            cluster.__enter__()
            self.cluster = cluster
            self.loaded = False
            self.say(f"cluster healthy after {time.monotonic() - started:.1f} s ({cluster.settings()})")
        return self.cluster

    def down(self) -> None:
        if self.cluster is not None:
            cluster, self.cluster = self.cluster, None
            cluster.__exit__(None, None, None)

    def recover(self) -> None:
        """Back to a healthy cluster in the phase's synchronous mode; a new one (loaded again
        when the old one was) when this one does not heal."""
        cluster = self.cluster
        if cluster is None:
            return
        for i in range(len(cluster.nodes)):
            if cluster.agent_pid(i) is None:
                cluster.start_agent(i)
        try:
            cluster.wait_healthy(120)
            cluster.set_sync_mode(self.mode)
        except Exception as exc:
            self.say(f"cluster did not heal ({str(exc).splitlines()[0]}); starting a new one")
            was_loaded = self.loaded
            self.down()
            cluster = self.up()
            if was_loaded:
                pgbench.initialize(cluster, self.options.scale)
                failover.wait_caught_up(cluster)
                failover.checkpoint_everywhere(cluster)
                self.loaded = True
            cluster.set_sync_mode(self.mode)

    def failed(self, keys: Sequence[str], exc: BaseException) -> None:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        self.say(f"FAILED: {message}")
        for key in keys:
            self.results.fail(key, self.label, message)
        excerpt = [f"{self.label}: {message}", "".join(traceback.format_exception(exc)[-3:]).strip()]
        if self.cluster is not None:
            for i, node in enumerate(self.cluster.nodes):
                excerpt.append(f"--- {node.name} agent log, last lines ---\n{self.cluster.log_tail(i, 15)}")
        self.results.excerpts.append("\n".join(excerpt))

    def repeat(
        self, what: str, keys: Sequence[str], count: int, run: Callable[[int], dict[str, float]]
    ) -> None:
        failures = 0
        for n in range(count):
            try:
                figures = run(n)
            except Exception as exc:
                self.failed(keys, exc)
                failures += 1
                self.recover()
                if failures >= MAX_FAILURES:
                    self.say(f"{what}: giving up after {failures} failed runs")
                    return
                continue
            failures = 0
            for key, value in figures.items():
                self.results.add(key, self.label, value)
            if figures:
                shown = ", ".join(f"{k}={v:.3g}" for k, v in figures.items())
                self.say(f"{what} {n + 1}/{count}: {shown}")

    # --- the phases -------------------------------------------------------------------------
    def run(self, phases: Sequence[str]) -> None:
        try:
            self.up()
            for phase in phases:
                started = time.monotonic()
                getattr(self, f"phase_{phase}")()
                self.say(f"{phase} done in {time.monotonic() - started:.0f} s")
        finally:
            self.down()

    def phase_footprint(self) -> None:
        def once(n: int) -> dict[str, float]:
            cluster = self.up()
            cluster.wait_healthy(120)
            time.sleep(5)  # let the start-up work (checkpoints, first loops) pass
            fences = footprint.fences(cluster) if cluster.system == "pgwarden" else []
            figures = footprint.idle(cluster, self.options.idle_seconds, fences)
            agents, fenced = figures[: len(cluster.nodes)], figures[len(cluster.nodes) :]
            for f in agents:
                self.results.add("idle_rss", self.label, f.rss_mb)
                self.results.add("idle_cpu", self.label, f.cpu_percent)
            for f in fenced:
                self.results.add("fence_rss", self.label, f.rss_mb)
                self.results.add("fence_cpu", self.label, f.cpu_percent)
            shown = ", ".join(f"{f.rss_mb:.1f} MB {f.cpu_percent:.2f} % CPU" for f in agents)
            fence_shown = ", ".join(f"{f.rss_mb:.1f} MB {f.cpu_percent:.2f} % CPU" for f in fenced)
            self.say(f"agents: {shown}" + (f"; fences: {fence_shown}" if fenced else ""))
            if n + 1 < self.options.footprint_runs:
                return {}
            # After the last window only: the cycle time is read from GET /metrics, whose first
            # request loads prometheus_client into a pgwarden agent (1 MB, `python -m
            # bench.agent_memory steps`) while Patroni's agents are never asked. Every idle window
            # so measures both systems unscraped; the RSS once scraped is its own figure.
            cycles = footprint.cycle_ms(cluster)
            for ms in cycles:
                self.results.add("cycle_ms", self.label, ms)
            if cycles:
                self.say("cycles (ms): " + ", ".join(f"{ms:.1f}" for ms in cycles))
                scraped = footprint.rss_now(cluster)
                for mb in scraped:
                    self.results.add("idle_rss_scraped", self.label, mb)
                self.say("RSS after GET /metrics: " + ", ".join(f"{mb:.1f} MB" for mb in scraped))
            return {}

        keys = ("idle_rss", "idle_cpu", "fence_rss", "fence_cpu", "idle_rss_scraped")
        self.repeat("idle footprint", keys, self.options.footprint_runs, once)

        def restart(n: int) -> dict[str, float]:
            cluster = self.up()
            cluster.wait_healthy(120)
            primary = cluster.primary_index()
            assert primary is not None, "no primary"
            standbys = [i for i in range(len(cluster.nodes)) if i != primary]
            return {"agent_start": footprint.startup(cluster, standbys[n % len(standbys)])}

        self.repeat("agent start-up", ("agent_start",), self.options.runs, restart)

    def phase_health(self) -> None:
        keys = [f"health_{k}_{c}" for c in (1, 8) for k in ("rps", "p50", "p99")]

        def once(_: int) -> dict[str, float]:
            cluster = self.up()
            p = cluster.primary_index()
            assert p is not None, "no primary"
            node = cluster.nodes[p]
            health.measure(node.host, node.api_port, 50, 2)  # warm-up: threads, caches
            figures = {}
            for c in (1, 8):
                h = health.measure(node.host, node.api_port, self.options.health_requests, c)
                assert h.failed == 0, f"{h.failed} of {h.requests} OPTIONS /primary on the primary failed"
                figures.update({f"health_rps_{c}": h.per_second, f"health_p50_{c}": h.p50_ms})
                figures[f"health_p99_{c}"] = h.p99_ms
            return figures

        self.repeat("health", keys, self.options.runs, once)
        self._health_under_work()

    def _health_under_work(self) -> None:
        """The same checks while a standby clones (from the ~1 GB database) and across a
        failover (bench.health_work)."""
        self._ensure_loaded()
        runs = min(health_work.RUNS, self.options.runs)
        self.repeat(
            "health while a standby clones", health_work.CLONE_KEYS, runs,
            lambda _: health_work.during_clone(self.up(), health_work.LOAD_REQUESTS),
        )  # fmt: skip
        self.repeat(
            "health across a failover", health_work.FAILOVER_KEYS, runs,
            lambda _: health_work.during_failover(self.up(), health_work.LOAD_REQUESTS),
        )  # fmt: skip

    def phase_crash(self) -> None:
        def once(_: int) -> dict[str, float]:
            outcome = failover.postgres_crash(self.up())
            split = outcome.timeline.segments() if outcome.timeline is not None else {}
            return {"crash_rto": outcome.recovery_s, **split}

        self.repeat("PostgreSQL crash", ("crash_rto", *CRASH_SPLIT), self.options.runs, once)

    def phase_fence(self) -> None:
        if self.up().system != "pgwarden":
            why = "no fence: PostgreSQL stays read-write while Patroni is down (a watchdog resets the host)"
            self.results.skip("agent_death_to_fence", self.label, why)
            return

        def once(_: int) -> dict[str, float]:
            return {"agent_death_to_fence": fence.agent_death_to_fence(self.up())}

        self.repeat("agent death to fence", ("agent_death_to_fence",), self.options.runs, once)

    def phase_switchover(self) -> None:
        def once(_: int) -> dict[str, float]:
            outcome = failover.switchover(self.up())
            return {"switchover_gap": outcome.longest_gap_s, "switchover_lost": outcome.lost}

        self.repeat("switchover", ("switchover_gap", "switchover_lost"), self.options.runs, once)

    def phase_elections(self) -> None:
        """The etcd leader killed ``election_kills`` times in a row under writes (bench.elections)."""

        def once(_: int) -> dict[str, float]:
            outcome = elections.elections(self.up(), self.options.election_kills)
            elected = outcome.elections_s
            self.results.notes.append(
                f"{self.label}, {outcome.kills} etcd elections of {min(elected):.2f}-{max(elected):.2f} s: "
                + ("; ".join(outcome.events) or "no stop, no failover")
            )
            return outcome.figures()

        self.repeat("etcd elections", ELECTION_METRICS, 1, once)

    def phase_load(self) -> None:
        """The database the rejoin and pgbench figures are taken on (scale 60: about 1 GB)."""
        cluster = self.up()
        if self.loaded:  # by an earlier phase (health's clone) on this cluster: the TPS only
            self.tps("tps_async")
            return
        started = time.monotonic()
        pgbench.initialize(cluster, self.options.scale)
        loaded = time.monotonic() - started
        caught_up = failover.wait_caught_up(cluster)
        failover.checkpoint_everywhere(cluster)
        self.loaded = True
        self.say(
            f"pgbench -i -s {self.options.scale}: {loaded:.0f} s, standbys caught up {caught_up:.0f} s later"
        )
        self.tps("tps_async")

    def _ensure_loaded(self) -> None:
        if not self.loaded:
            self.phase_load()

    def tps(self, key: str) -> None:
        if self.options.tps_runs <= 0:
            return

        def once(_: int) -> dict[str, float]:
            return {key: pgbench.tps(self.up(), self.options.tps_seconds)}

        self.repeat(f"pgbench ({key})", (key,), self.options.tps_runs, once)

    def phase_node_loss(self) -> None:
        self._ensure_loaded()

        def once(_: int) -> dict[str, float]:
            outcome = failover.node_loss(self.up())
            figures = {"node_loss_rto": outcome.recovery_s, "node_loss_lost": float(outcome.lost)}
            if outcome.rejoin_s is not None:
                figures["rejoin"] = outcome.rejoin_s
            return figures

        self.repeat("node loss", ("node_loss_rto", "node_loss_lost", "rejoin"), self.options.runs, once)

    def phase_sync(self) -> None:
        self._ensure_loaded()
        try:
            names = self.up().set_sync_mode("on")
        except Exception as exc:
            self.failed(SYNC_METRICS, exc)
            self.recover()
            return
        self.mode = "on"
        self.results.notes.append(f"{self.label}, synchronous mode on: synchronous_standby_names = {names!r}")
        self.tps("tps_sync")

        def once(_: int) -> dict[str, float]:
            outcome = failover.node_loss(self.up(), kind="sync", sync=True)
            return {"sync_lost": float(outcome.lost), "sync_rto": outcome.recovery_s}

        self.repeat("synchronous node loss", ("sync_lost", "sync_rto"), self.options.runs, once)

    def phase_etcd_outage(self) -> None:
        """Two of three etcd members killed for 30 s under writes, failsafe_mode off then on."""
        for mode, on in (("off", False), ("on", True)):

            def once(_: int, on: bool = on, mode: str = mode) -> dict[str, float]:
                got = outage.etcd_outage(self.up(), failsafe=on)
                return {
                    f"outage_gap_{mode}": got.longest_gap_s,
                    f"outage_acked_{mode}": float(got.acked_in_outage),
                    "outage_lost": float(got.lost),
                    "outage_same_primary": 1.0 if got.same_primary else 0.0,
                }

            keys = (f"outage_gap_{mode}", f"outage_acked_{mode}", "outage_lost", "outage_same_primary")
            self.repeat(f"etcd outage, failsafe_mode {mode}", keys, self.options.outage_runs, once)
        try:
            self.up().set_failsafe(False)
        except Exception as exc:
            self.say(f"could not switch failsafe_mode off: {exc}")

    def phase_pgbouncer(self) -> None:
        """A real PgBouncer repointed by deploy/pgbouncer/pgbouncer-follow, beside HAProxy: a
        writer through each across the same switchovers and node losses (bench.pgbouncer)."""
        cluster = self.up()
        stack = getattr(cluster, "stack", None)
        if cluster.system != "pgwarden" or stack is None:
            for key in pooling.KEYS:
                self.results.skip(key, self.label, "the callback asks pgwarden's agent (PGWARDEN_API_URL)")
            return
        try:
            pool = pooling.pooler(stack).__enter__()
        except Exception as exc:
            self.failed(pooling.KEYS, exc)
            return
        try:

            def switch(_: int) -> dict[str, float]:
                outcome = pooling.switchover(stack, pool, cluster.switchover)
                self.say(outcome.line())
                return pooling.figures(outcome, "switchover")

            def lose(_: int) -> dict[str, float]:
                outcome = pooling.node_loss(stack, pool)
                self.say(outcome.line())
                for i in range(len(cluster.nodes)):
                    if cluster.agent_pid(i) is None:
                        cluster.start_agent(i)  # the old primary rejoins before the next run
                cluster.wait_healthy(240)
                return pooling.figures(outcome, "node_loss")

            keys = [k for k in pooling.KEYS if "node_loss" not in k]
            self.repeat("PgBouncer switchover", keys, self.options.runs, switch)
            keys = [k for k in pooling.KEYS if "switchover" not in k]
            self.repeat("PgBouncer node loss", keys, self.options.runs, lose)
        finally:
            pool.__exit__(None, None, None)

    def phase_secure(self) -> None:
        """A plaintext and a secure cluster (etcd TLS + client certificates + auth, API mTLS),
        fresh, alternately (plain, secure, plain, secure: a change in the machine's load falls on
        both): lease renewal latency and node-loss RTO on each (bench.secure). The session's own
        cluster is stopped first (two clusters would share the 2 cores) and a later phase starts
        a new one; last in ALL_PHASES, so that none has to load it again."""
        if self.label != "pgwarden":
            for key in secure.all_keys():
                self.results.skip(key, self.label, "pgwarden's own stacks only")
            return
        saved_make, saved_mode = self.make, self.mode
        self.down()
        self.mode = "off"

        def alone(_: int) -> dict[str, float]:
            return secure.breakdown()

        self.repeat("renewals on etcd alone", secure.BREAKDOWN_KEYS, 1, alone)
        losses = -(-self.options.runs // secure.ROUNDS)  # per round: runs in all, at least
        try:
            for round_ in range(secure.ROUNDS):
                for mode in secure.MODES:
                    self.make = secure.cluster(mode)
                    try:
                        cluster = self.up()
                    except Exception as exc:
                        self.failed(secure.keys(mode), exc)
                        continue
                    if mode != "plain" and round_ == 0:
                        self.results.notes.append(f"{secure.LABELS[mode]}: {cluster.settings()}")

                    def latency(_: int, mode: str = mode) -> dict[str, float]:
                        on = self.up()
                        assert isinstance(on, PgwardenCluster)
                        return secure.latency_figures(on, mode)

                    def rto(_: int, mode: str = mode) -> dict[str, float]:
                        on = self.up()
                        assert isinstance(on, PgwardenCluster)
                        return secure.rto(on, mode)

                    rto_key = secure.key(secure.RTO_KEY, mode)
                    self.repeat(
                        f"etcd latency ({mode})",
                        [secure.key(m, mode) for m in secure.RENEWAL_KEYS],
                        1,
                        latency,
                    )
                    self.repeat(f"node loss ({mode})", [rto_key], losses, rto)
                    self.down()
        finally:
            self.down()
            self.make, self.mode = saved_make, saved_mode

    def phase_scale(self) -> None:
        """pgwarden at 3, 5, 9 and 9 cascading members (bench.scale): a fresh cluster per layout,
        one after the other; the session's own cluster is stopped first (two would share the 2
        cores) and a later phase starts a new one."""
        if self.label != "pgwarden":
            for figure, *_ in scale.FIGURES:
                for name in scale.LAYOUTS:
                    self.results.skip(scale.key(figure, name), self.label, "pgwarden's own stacks only")
            return
        self.down()
        for name, layout in scale.LAYOUTS.items():

            def record(what: str, figures: dict[str, float], name: str = name) -> None:
                for figure, value in figures.items():
                    self.results.add(scale.key(figure, name), self.label, value)
                self.say(f"{name} members, {what}: " + ", ".join(f"{k}={v:.3g}" for k, v in figures.items()))

            try:
                scale.measure(layout, self.options.scale_runs, record, self.say, scale.IDLE_SECONDS)
            except Exception as exc:
                self.failed([scale.key(figure, name) for figure, *_ in scale.FIGURES], exc)

    def phase_quorum(self) -> None:
        self._ensure_loaded()
        self.mode = "off"
        try:
            names = self.up().set_sync_mode("quorum")
        except Exception as exc:
            self.failed(("tps_quorum",), exc)
            self.recover()
            return
        self.mode = "quorum"
        self.results.notes.append(f"{self.label}, quorum mode: synchronous_standby_names = {names!r}")
        self.tps("tps_quorum")
        self.mode = "off"
        try:
            self.up().set_sync_mode("off")
        except Exception as exc:
            self.say(f"could not switch synchronous mode off: {exc}")
