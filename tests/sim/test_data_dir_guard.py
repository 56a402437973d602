"""The executor's last line of defence: it empties a data directory only if a fresh look agrees it is ours.

The decision was taken on the cycle's observation; between it and the removal the directory can
change hands (an operator replacing it, a stop that changed what is there). The executor probes
again and applies the same verdict, so a removal the core approved on stale facts is not carried out.
"""

from __future__ import annotations

from dataclasses import replace

from pgwarden.agent.execute import Executor
from pgwarden.agent.jobs import JobRunner
from pgwarden.agent.lease import LeaderLease
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.memory import MemoryStore
from pgwarden.ha.actions import AdoptDataDir, WipeDataDir
from pgwarden.model import DataDir, Tags
from tests.sim.fake_postgres import FakePostgres
from tests.sim.harness import CLUSTER, SIM_CONFIG, Clock, node_config
from tests.sim.world import FakeWorld
from tests.support.builders import observation


def _executor(pg: FakePostgres) -> Executor:
    clock = Clock()
    store = MemoryStore(clock)
    config = node_config(1, SIM_CONFIG, Tags())
    cluster = ClusterStore(store, CLUSTER)
    return Executor(config, store, cluster, pg, JobRunner(), LeaderLease(), lambda: 0, clock=clock)


def test_a_removal_decided_on_stale_facts_is_not_carried_out() -> None:
    world = FakeWorld(Clock())
    pg = world.add("node2", "127.0.0.12", 5432)
    pg.incomplete, pg.marked = True, False  # someone else's files where the data directory was
    stale = observation(local=replace(pg.local_state(), origin=replace(pg.local_state().origin, marked=True)))
    outcome = _executor(pg).run((WipeDataDir(),), stale)
    assert outcome.failed is not None and "not removing anything" in outcome.failed
    assert "not created by pgwarden" in outcome.failed
    assert pg.incomplete is True  # untouched
    pg.marked = True  # pgwarden's own interrupted clone: emptied
    assert _executor(pg).run((WipeDataDir(),), stale).failed is None
    assert pg.local_state().data_dir is DataDir.MISSING


def test_adopting_marks_a_directory_of_this_cluster_and_never_fails_the_decision() -> None:
    world = FakeWorld(Clock())
    pg = world.add("node2", "127.0.0.12", 5432)
    executor = _executor(pg)
    assert executor.run((AdoptDataDir(),), observation()).failed is None  # no data: logged, not raised
    pg.initdb()
    pg.marked = False
    assert executor.run((AdoptDataDir(),), observation()).failed is None
    assert pg.marked is True
