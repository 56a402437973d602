"""Renders an HAProxy configuration whose health checks ask each agent's REST API who is primary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Backend:
    """One cluster member as HAProxy sees it: where PostgreSQL listens, where its agent answers."""

    name: str
    host: str
    port: int  # PostgreSQL
    api_host: str
    api_port: int
    api_tls: bool = False  # the agent's REST API serves HTTPS (api.tls in the node config)

    @classmethod
    def from_member(cls, name: str, host: str, port: int, api_url: str) -> Backend:
        """A backend from a member as ``GET /cluster`` reports it (``api_url`` like
        ``https://127.0.10.11:8008``: the check goes to that host and port, over TLS for https)."""
        url = urlsplit(api_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"{api_url!r} is not an http(s) URL of a pgwarden REST API")
        tls = url.scheme == "https"
        return cls(name, host, port, url.hostname, url.port or (443 if tls else 80), tls)


@dataclass(frozen=True, slots=True)
class CheckTls:
    """How HAProxy checks agents that serve TLS (paths as HAProxy's host sees them).

    ``ca_file``: verify each agent's certificate against this CA (``verify required``); None checks
    without verifying (``verify none``: for debugging only, anyone on the path could answer).
    ``crt``: the certificate and key (one PEM file) HAProxy presents, which an agent with
    ``api.tls.verify_client: required`` needs before it answers even a health check.
    """

    ca_file: str | None = None
    crt: str | None = None

    def server_options(self) -> str:
        verify = f" verify required ca-file {self.ca_file}" if self.ca_file else " verify none"
        return f" check-ssl{verify}{f' crt {self.crt}' if self.crt else ''}"


@dataclass(frozen=True, slots=True)
class RouterPorts:
    """Where HAProxy listens: ``bind_host`` is ``*`` (every address) on a dedicated router host."""

    bind_host: str = "127.0.0.1"
    primary: int = 5000  # read-write: the primary alone
    replicas: int = 5001  # read-only: every streaming standby, round robin
    stats: int = 7000  # HAProxy's own status page (HTTP)


def render(
    backends: Sequence[Backend],
    ports: RouterPorts,
    check_interval_ms: int = 500,
    maxconn: int = 100,
    tls: CheckTls | None = None,
) -> str:
    """A complete ``haproxy.cfg`` routing PostgreSQL clients by the agents' health endpoints.

    - ``ports.primary`` goes to the one server whose ``/primary`` answers 200 (Patroni's path, so
      the config also works against Patroni), ``ports.replicas`` spreads over every server whose
      ``/replica`` answers 200 (streaming, no ``noloadbalance`` tag), and ``ports.stats`` serves
      HAProxy's status page.
    - Used by ``pgwarden up`` for the local stack and by ``pgwarden haproxy-config`` for a
      production cluster (backends from the members, ``Backend.from_member``; ports bound on
      ``*``); an agent serving TLS is checked over TLS as ``tls`` says: its certificate verified
      against the CA, HAProxy's own certificate presented (``CheckTls``). A check only reads a
      status code, but an unverified one lets whoever sits on the path decide where writes go.
    - ``maxconn`` is per server: keep it below PostgreSQL's ``max_connections`` minus the
      superuser and replication reserve.

    ``on-marked-down shutdown-sessions`` cuts clients off a demoted primary at once, so no client
    keeps writing to a node that lost the leader key.
    """
    # retries 0: a refused connection (the primary just stopped) goes straight back to the client,
    # which reconnects and reaches the new primary once its check passes. HAProxy's own retry of a
    # refused connection waits a 1 s turn-around first, which doubled the write gap of a
    # switchover in our measurements (0.7 s -> 1.1-2.1 s).
    # fastinter/downinter: while a server is changing state (one check failed, or it is down),
    # check five times as often, so a failover is seen in ~0.1 s instead of up to one interval.
    fast = max(50, check_interval_ms // 5)
    server_defaults = (
        f"    default-server inter {check_interval_ms}ms fastinter {fast}ms downinter {fast}ms"
        " fall 2 rise 1 on-marked-down shutdown-sessions\n"
    )

    check_tls = (tls or CheckTls()).server_options()

    def servers() -> str:
        return "".join(
            f"    server {b.name} {b.host}:{b.port} maxconn {maxconn}"
            f" check addr {b.api_host} port {b.api_port}{check_tls if b.api_tls else ''}\n"
            for b in backends
        )

    bind = ports.bind_host
    # Both listeners can hold maxconn per server at once; the global cap must not be lower.
    total = max(1000, 2 * maxconn * len(backends))
    return (
        "global\n"
        f"    maxconn {total}\n"
        "\n"
        "defaults\n"
        "    mode tcp\n"
        "    timeout connect 2s\n"
        "    retries 0\n"
        "    timeout client 30m\n"
        "    timeout server 30m\n"
        "    timeout check 1s\n"
        "\n"
        "listen stats\n"
        "    mode http\n"
        f"    bind {bind}:{ports.stats}\n"
        "    stats enable\n"
        "    stats uri /\n"
        "\n"
        "listen primary\n"
        f"    bind {bind}:{ports.primary}\n"
        "    option httpchk OPTIONS /primary\n"
        "    http-check expect status 200\n"
        f"{server_defaults}{servers()}"
        "\n"
        "listen replicas\n"
        f"    bind {bind}:{ports.replicas}\n"
        "    balance roundrobin\n"
        "    option httpchk OPTIONS /replica\n"
        "    http-check expect status 200\n"
        f"{server_defaults}{servers()}"
    )
