"""Gathers one Observation: the cluster from etcd, the local PostgreSQL, and (when it matters) the peers."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping

from pgwarden.agent.failsafe import PromiseBox
from pgwarden.agent.last_good import LastGood
from pgwarden.agent.lease import LeaderLease, monotonic
from pgwarden.agent.ports import Jobs, Peers
from pgwarden.agent.requests import RequestBox
from pgwarden.agent.round_trips import RoundTrips
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.keys import ClusterKeys
from pgwarden.dcs.store import StoreError
from pgwarden.ha.observation import Memory, Observation, PeerStatus, Request
from pgwarden.ha.rules.failsafe import absent_members
from pgwarden.model import (
    ClusterView,
    LocalState,
    Member,
    NodeConfig,
    ReinitializeOptions,
    RestartConditions,
)

log = logging.getLogger(__name__)

Probe = Callable[[], LocalState]
REPORT_EVERY = 600.0  # seconds between two log lines about the same untrusted member record


def away_member(name: str, api_url: str) -> Member:
    """A topology member known only by its REST API URL (its key expired): enough to ask it."""
    return Member(name=name, api_url=api_url, host="", port=0)


class Observer:
    def __init__(
        self,
        config: NodeConfig,
        cluster: ClusterStore,
        probe: Probe,
        jobs: Jobs,
        peers: Peers,
        lease: LeaderLease,
        requests: RequestBox | None = None,
        promises: PromiseBox | None = None,
        watchdog_ready: Callable[[float, float], bool] = lambda ttl, loop_wait: True,
        clock: Callable[[], float] = monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._clock, self._wall = clock, wall
        self._config = config
        self._watchdog_ready = watchdog_ready  # (ttl, loop_wait) -> may this node lead?
        self._cluster = cluster
        self._keys = ClusterKeys(config.cluster, config.etcd.prefix)
        self._probe = probe
        self._jobs = jobs
        self._peers = peers
        self._lease = lease
        self._requests = requests or RequestBox()
        self._promises = promises or PromiseBox()
        self.last_view = ClusterView(name=config.cluster, config=config.bootstrap)
        self._started = clock()
        self.last_good = LastGood(config.bootstrap)
        self._untrusted: Mapping[str, str] = {}  # in the last view read
        self._reported: dict[tuple[str, str], float] = {}  # (member, why) -> when last logged
        self.reads = RoundTrips()  # how long each successful read of the cluster took (diagnostics)

    def use_config(self, config: NodeConfig) -> None:
        """A reloaded node config (agent/node_reload.py): its tags count from the next cycle."""
        self._config = config

    def observe(self, memory: Memory) -> Observation:
        requests = self._requests.pending()
        view, store_ok = self._read_view()
        local = self.refresh_local()
        return Observation(
            name=self._config.name,
            tags=self._config.tags,
            view=view,
            store_ok=store_ok,
            local=local,
            now=self._clock(),
            lease_deadline=self._lease.lease_deadline(),
            peers=self._ask_peers(view, store_ok),
            memory=memory,
            wall=self._wall(),
            requests=requests,
            restart_conditions=self._restart_conditions(),
            reinitialize_options=self._reinitialize_options(),
            scheduled_restart_conditions=self._requests.scheduled_conditions(),
            watchdog_ready=self._watchdog_ready(view.config.ttl, view.config.loop_wait),
            failsafe_deadline=self._lease.failsafe_deadline(),
            promise=self._promises.current(),
            agent_started=self._started,
        )

    def _restart_conditions(self) -> RestartConditions:
        options = self._requests.options(Request.RESTART)
        return options if isinstance(options, RestartConditions) else RestartConditions()

    def _reinitialize_options(self) -> ReinitializeOptions:
        options = self._requests.options(Request.REINITIALIZE)
        return options if isinstance(options, ReinitializeOptions) else ReinitializeOptions()

    def _ask_peers(self, view: ClusterView, store_ok: bool) -> Mapping[str, PeerStatus]:
        """Peers matter when choosing a new leader, to a leader handing over to a candidate, and
        to a failsafe leader about topology members without a key in etcd (are they alive?);
        asking them every cycle would tie each loop to the slowest peer's API for nothing."""
        if not store_ok:
            return {}
        if view.leader is None:
            return self._peers.gather(view.members, self._config.name)
        wanted = [away_member(name, url) for name, url in absent_members(view, self._config.name)]
        intent = view.switchover
        if view.leader.name == self._config.name and intent is not None and intent.candidate:
            candidate = view.member(intent.candidate)
            wanted += [candidate] if candidate else []
        return self._peers.gather(wanted, self._config.name) if wanted else {}

    def refresh_local(self) -> LocalState:
        """The local state again, after actions changed it, so what we publish is current."""
        # The job status first: a clone finishing between the two reads must show as finished
        # with its data directory, never as "no data and no job" (which would clone again).
        job = self._jobs.status()
        return dataclasses.replace(self._probe(), job=job)

    def _read_view(self) -> tuple[ClusterView, bool]:
        started = monotonic()
        try:
            view, snapshot = self._cluster.read_with_leases()
        except StoreError as exc:
            log.warning("cannot read the cluster from etcd: %s", exc)
            return self.last_view, False
        self.reads.add(monotonic() - started)
        config = snapshot.get(self._keys.config)
        # Before bootstrap writes it, the cluster's config is this node's bootstrap.dcs.
        view = self.last_good.apply(view, config is not None, config.mod_revision if config else 0)
        self._report_untrusted(view.untrusted)
        self.last_view = view
        return view, True

    def _report_untrusted(self, untrusted: Mapping[str, str]) -> None:
        """Say when a member's record is not trusted, and when it is trusted again, each at most
        once per REPORT_EVERY: whoever rewrites a record races its member, which writes it back
        every cycle, and the log must not repeat that race. The API's status, /metrics and
        `pgwarden list` show the current state."""
        now = self._clock()
        for name, why in sorted(untrusted.items()):
            if name not in self._untrusted and self._due((name, why), now):
                log.warning("%s: it is left out of the cluster and no credential is sent to it", why)
        for name in sorted(self._untrusted.keys() - untrusted.keys()):
            if self._due((name, ""), now):
                log.info("member %s's record in etcd is trusted again", name)
        self._untrusted = untrusted

    def _due(self, event: tuple[str, str], now: float) -> bool:
        last = self._reported.get(event)
        if last is not None and now - last < REPORT_EVERY:
            return False
        self._reported[event] = now
        return True
