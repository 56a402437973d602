"""What a drill round does to the primary: a planned switchover, or (local stack only) a kill of its node."""

from __future__ import annotations

import json
import signal
from typing import Protocol

from pgwarden.drill.cluster import DrillCluster
from pgwarden.local import processes
from pgwarden.local.stack import Stack
from pgwarden.postgres.probe import postmaster_pid

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
    """An unplanned failover of a local stack: SIGKILL of the primary's agent, postmaster and every
    child of either, then, once another member leads, the agent started again as `pgwarden up`
    started it (it rewinds and rejoins as a standby).

    Only PIDs the stack recorded in its directory are signalled, and only while their command
    line still names that directory: a PID reused by an unrelated process is left alone.
    """

    kind = "kill"

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def _index(self, name: str) -> int:
        for i in range(self.stack.spec.nodes):
            if self.stack.spec.node_name(i) == name:
                return i
        raise ValueError(f"{name} is not a node of the local stack in {self.stack.spec.dir}")

    def _load_pids(self) -> None:
        # All of them, not only the agent's: start_agent rewrites the whole pids file from
        # ``stack.pids``, and `pgwarden down` needs every entry.
        try:
            saved = json.loads(self.stack.pids_path.read_text())
            self.stack.pids = {str(k): int(v) for k, v in saved.items()}
        except (OSError, ValueError, TypeError, AttributeError):
            self.stack.pids = {}

    def inject(self, old_primary: str) -> None:
        i = self._index(old_primary)
        self._load_pids()
        marker = f"{self.stack.spec.dir}/"
        targets = [self.stack.pids.get(old_primary), postmaster_pid(str(self.stack.spec.data_dir(i)))]
        for pid in targets:
            if pid is not None and processes.owned(pid, marker):
                processes.signal_tree(pid, signal.SIGKILL)

    def recover(self, old_primary: str) -> None:
        i = self._index(old_primary)
        self._load_pids()
        pid = self.stack.pids.get(old_primary)
        if pid is not None and processes.owned(pid, f"{self.stack.spec.dir}/"):
            return  # still (or again) running: nothing to restart
        self.stack.start_agent(i)
