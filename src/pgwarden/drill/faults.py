"""What a drill round does to the primary: a planned switchover, or (local stack only) a kill of its node."""

from __future__ import annotations

from typing import Protocol

from pgwarden.drill.cluster import DrillCluster
from pgwarden.local.stack import Stack

# How long the agent may take to finish a switchover before it answers with the state reached.
SWITCHOVER_TIMEOUT = 60.0


class Fault(Protocol):
    kind: str

    def inject(self, old_primary: str) -> None:
        """Start the round: afterwards another member is (or is about to be) the primary."""

    def recover(self, old_primary: str) -> None:
        """Called once another member runs as primary: give the old primary back to the cluster."""


class Switchover:
    """A planned switchover through the leader's REST API (with the cluster's API credentials)."""

    kind = "switchover"

    def __init__(self, cluster: DrillCluster, timeout: float = SWITCHOVER_TIMEOUT) -> None:
        self.cluster = cluster
        self.timeout = timeout

    def inject(self, old_primary: str) -> None:
        self.cluster.switchover(old_primary, self.timeout)

    def recover(self, old_primary: str) -> None:
        """Nothing to do: the old primary follows the new one by itself."""


class KillPrimary:
    """An unplanned failover of a local stack: SIGKILL of the primary's agent, its fence, the
    postmaster and every child of them (the node dies whole), then, once another member leads,
    the agent started again as `pgwarden up` started it (it rewinds and rejoins as a standby).

    Only processes of the stack are signalled: found by its directory, never by name, so a PID
    reused by an unrelated process is left alone (``Stack.find_processes``). The agent it starts
    again is the stack's like any other: marked with the stack's directory and recorded in its
    pids.json, so `pgwarden down` stops it.
    """

    kind = "kill"

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def _index(self, name: str) -> int:
        for i in range(self.stack.spec.nodes):
            if self.stack.spec.node_name(i) == name:
                return i
        raise ValueError(f"{name} is not a node of the local stack in {self.stack.spec.dir}")

    def inject(self, old_primary: str) -> None:
        self.stack.kill_node(self._index(old_primary))

    def recover(self, old_primary: str) -> None:
        i = self._index(old_primary)
        if not self.stack.agent_pids(i):  # still (or again) running: nothing to restart
            self.stack.start_agent(i)
