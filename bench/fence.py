"""Time from the agent's death to the fence: SIGKILL of the primary's agent until its postmaster is gone.

pgwarden's fence (a process of its own beside PostgreSQL) stops a writable PostgreSQL once the
lease deadline the agent last wrote has passed: between ttl - 2 and ttl - 1 seconds after the
death with the defaults (the last renewal came up to loop_wait before it). Patroni without a
watchdog device has nothing that stops PostgreSQL while Patroni is down, so it is not measured.
"""

from __future__ import annotations

import os
import signal
import time

from bench.cluster import ClusterUnderTest
from pgwarden.fence.postmaster import postmaster_pid
from pgwarden.fence.proc import alive

BOUND = 30.0  # well past any ttl the bench runs: not fenced by then is a failure


def agent_death_to_fence(cluster: ClusterUnderTest) -> float:
    """Seconds from SIGKILL of the primary's agent to its postmaster gone; the agent is started
    again afterwards and the cluster is healthy when this returns."""
    primary = cluster.primary_index()
    assert primary is not None, f"{cluster.label}: no single primary"
    postmaster = postmaster_pid(str(cluster.nodes[primary].data_dir))
    agent = cluster.agent_pid(primary)
    assert postmaster is not None and agent is not None, f"{cluster.label}: no postmaster or agent"
    os.kill(agent, signal.SIGKILL)
    killed = time.monotonic()
    while alive(postmaster):
        if time.monotonic() - killed > BOUND:
            cluster.start_agent(primary)
            raise AssertionError(f"{cluster.label}: PostgreSQL still runs {BOUND:.0f} s after its agent died")
        time.sleep(0.002)
    fenced = time.monotonic() - killed
    cluster.start_agent(primary)
    cluster.wait_healthy(120)
    return fenced
