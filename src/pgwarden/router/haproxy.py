"""Renders an HAProxy configuration whose health checks ask each agent's REST API who is primary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    host: str
    port: int  # PostgreSQL
    api_host: str
    api_port: int


@dataclass(frozen=True, slots=True)
class RouterPorts:
    bind_host: str = "127.0.0.1"
    primary: int = 5000
    replicas: int = 5001
    stats: int = 7000


def render(backends: Sequence[Backend], ports: RouterPorts, check_interval_ms: int = 500) -> str:
    """Writes go to the one server whose ``/primary`` answers 200; reads spread over ``/replica``.

    ``on-marked-down shutdown-sessions`` cuts clients off a demoted primary at once, so no client
    keeps writing to a node that lost the leader key.
    """
    # fastinter/downinter: while a server is changing state (one check failed, or it is down),
    # check five times as often, so a failover is seen in ~0.1 s instead of up to one interval.
    fast = max(50, check_interval_ms // 5)
    server_defaults = (
        f"    default-server inter {check_interval_ms}ms fastinter {fast}ms downinter {fast}ms"
        " fall 2 rise 1 on-marked-down shutdown-sessions\n"
    )

    def servers() -> str:
        return "".join(
            f"    server {b.name} {b.host}:{b.port} maxconn 100 check addr {b.api_host} port {b.api_port}\n"
            for b in backends
        )

    return (
        "global\n"
        "    maxconn 1000\n"
        "\n"
        "defaults\n"
        "    mode tcp\n"
        "    timeout connect 2s\n"
        "    timeout client 30m\n"
        "    timeout server 30m\n"
        "    timeout check 1s\n"
        "\n"
        "listen stats\n"
        "    mode http\n"
        f"    bind {ports.bind_host}:{ports.stats}\n"
        "    stats enable\n"
        "    stats uri /\n"
        "\n"
        "listen primary\n"
        f"    bind {ports.bind_host}:{ports.primary}\n"
        "    option httpchk OPTIONS /primary\n"
        "    http-check expect status 200\n"
        f"{server_defaults}{servers()}"
        "\n"
        "listen replicas\n"
        f"    bind {ports.bind_host}:{ports.replicas}\n"
        "    balance roundrobin\n"
        "    option httpchk OPTIONS /replica\n"
        "    http-check expect status 200\n"
        f"{server_defaults}{servers()}"
    )
