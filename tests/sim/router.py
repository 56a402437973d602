"""HAProxy in front of the simulated cluster, as ``router/haproxy.py`` configures it, and a client behind it.

The router checks each agent's ``/primary`` every ``inter`` seconds; a check an agent does not
answer (paused, dead, cut off) fails after ``timeout``; ``fall`` failures mark the server down
and ``on-marked-down shutdown-sessions`` cuts its clients off; one success marks it up again.
So writes reach a frozen primary for a few seconds after its agent froze, as they would.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tests.sim.fake_postgres import Write
from tests.sim.world import FakeWorld


@dataclass
class _Server:
    up: bool = False
    fails: int = 0
    next_check: float = 0.0
    pending: tuple[float, bool] | None = None  # when the running check completes, and its answer


class Router:
    def __init__(
        self,
        names: Iterable[str],
        health: Callable[[str], bool | None],  # /primary verdict; None when nobody answers
        clock: Callable[[], float],
        inter: float = 0.5,
        fall: int = 2,
        timeout: float = 1.0,
    ) -> None:
        self._servers = {name: _Server() for name in names}
        self._health, self._clock = health, clock
        self._inter, self._fall, self._timeout = inter, fall, timeout

    def tick(self) -> None:
        now = self._clock()
        for name, server in self._servers.items():
            if server.pending is None and now >= server.next_check:
                answer = self._health(name)
                server.pending = (now + (self._timeout if answer is None else 0.0), bool(answer))
            if server.pending is not None and server.pending[0] <= now:
                done, ok = server.pending
                server.pending, server.next_check = None, done + self._inter
                server.fails = 0 if ok else server.fails + 1
                server.up = ok or (server.up and server.fails < self._fall)

    def primaries(self) -> list[str]:
        return sorted(name for name, server in self._servers.items() if server.up)


@dataclass
class Writer:
    """A client committing through the router's primary port on every tick while enabled."""

    world: FakeWorld
    router: Router
    rng: random.Random
    enabled: bool = False
    acked: list[Write] = field(default_factory=list)
    failed: int = 0
    routed_to_two: list[float] = field(default_factory=list)

    def tick(self) -> Write | None:
        if not self.enabled:
            return None
        targets = self.router.primaries()
        if not targets:
            self.failed += 1
            return None
        if len(targets) > 1:
            self.routed_to_two.append(self.world.clock())
        target = self.rng.choice(targets)
        # A client reaches the server only if the network lets it; an isolated node times out.
        reachable = target not in self.world.isolated
        write = self.world.write(target, self.rng.randint(200, 4000)) if reachable else None
        if write is None:
            self.failed += 1
        else:
            self.acked.append(write)
        return write
