"""What an operator's request for this node asks beyond its kind: Patroni's restart filters and
reinitialize options, parsed at the API's edge and carried into the observation."""

from __future__ import annotations

from dataclasses import dataclass

from pgwarden.model.cluster import Role


@dataclass(frozen=True, slots=True)
class RestartConditions:
    """Restart only if every given condition holds (Patroni's ``POST /restart`` filters)."""

    role: Role | None = None  # primary, standby_leader or replica: this node's role must be it
    below_version: int | None = None  # server_version_num form: restart only if the server's is lower
    only_if_pending: bool = False  # restart only if PostgreSQL says a restart is pending

    @property
    def any(self) -> bool:
        return self.role is not None or self.below_version is not None or self.only_if_pending


@dataclass(frozen=True, slots=True)
class ReinitializeOptions:
    """Patroni's ``POST /reinitialize`` body."""

    force: bool = False  # a running clone or rewind does not refuse it: it is done after that job
    from_leader: bool = False  # clone from the leader, not from a member tagged clonefrom
