"""Frozen values of one node's own config file (what ``pgwarden agent -c node.yml`` reads)."""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from pgwarden.model.cluster import DynamicConfig, Tags
from pgwarden.model.trust import MemberNetworks, Network


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str | None = None


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class EtcdSettings:
    hosts: tuple[Address, ...]
    prefix: str = "/pgwarden"
    # Source address for the agent's own etcd and peer connections, so a network cut between
    # two loopback addresses can tell nodes apart; None lets the kernel choose.
    bind_address: str | None = None
    # "https": etcd's certificate verified against cacert (None: the system's CAs), its address
    # checked against the certificate's names, and cert/key presented as this client's.
    protocol: str = "http"
    cacert: str | None = None
    cert: str | None = None  # PEM; may hold the key too
    key: str | None = None
    # etcd's own authentication (v3 auth): a token is asked for with these and sent with each call.
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def tls(self) -> bool:
        return self.protocol == "https"

    def url(self, endpoint: Address) -> str:
        """The base URL of one member, e.g. ``https://192.0.2.21:2379``."""
        host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
        return f"{self.protocol}://{host}:{endpoint.port}"


class VerifyClient(enum.Enum):
    """``api.tls.verify_client`` (Patroni's values): which calls need a client certificate that
    verifies against ``api.tls.cafile``."""

    NONE = "none"  # none is asked for
    OPTIONAL = "optional"  # asked for; one presented must verify; operations need one
    REQUIRED = "required"  # no certificate, no connection: every call, health checks included


@dataclass(frozen=True, slots=True)
class ApiSettings:
    listen: Address
    connect_address: Address
    username: str | None = None
    password: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    # Client certificates: the CA they must chain to, and who must present one (VerifyClient).
    cafile: str | None = None
    verify_client: VerifyClient = VerifyClient.NONE
    # What this agent presents when it calls its peers' APIs; None: certfile/keyfile.
    client_certfile: str | None = None
    client_keyfile: str | None = None
    # Networks allowed to call operations (writes); empty with include_members off: everyone.
    allowlist: tuple[Network, ...] = ()
    allowlist_include_members: bool = False
    # Serve writes without api.auth on a non-loopback address: refused unless set (issue 11).
    allow_unauthenticated_writes: bool = False
    # Limits of the API server (docs/rest-api.md, "Limits").
    max_connections: int = 256
    request_timeout: float = 5.0  # seconds for a whole request to arrive once it started
    idle_timeout: float = 10.0  # seconds a keep-alive connection may wait for its next request

    @property
    def url(self) -> str:
        scheme = "https" if self.certfile else "http"
        return f"{scheme}://{self.connect_address}"

    @property
    def restricts_callers(self) -> bool:
        """Whether operations are refused to addresses outside an allowlist."""
        return bool(self.allowlist) or self.allowlist_include_members

    @property
    def loopback_only(self) -> bool:
        """Whether only this machine can reach the API: a 127/8 or ::1 address, or ``localhost``."""
        return is_loopback(self.listen.host)

    @property
    def open_writes(self) -> bool:
        """Operations reachable from the network without credentials."""
        return not self.username and not self.loopback_only


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``; a wildcard (0.0.0.0, ::) or any other name is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    listen: Address
    connect_address: Address
    data_dir: str
    bin_dir: str
    superuser: Credentials
    replication: Credentials
    # When the agent runs as root (tests, `pgwarden up`), PostgreSQL commands run as this OS user;
    # in production the agent runs as postgres itself and this stays None.
    run_as: str | None = None
    socket_dir: str | None = None  # unix socket directory; defaults to the data directory
    parameters: dict[str, str | int | float | bool] = field(default_factory=dict)
    pg_hba: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WatchdogSettings:
    """A watchdog device that resets the machine when the leader stops keeping it alive (Patroni's
    ``watchdog`` section): ``off``, ``automatic`` (used when it can be opened) or ``required``
    (this node never leads without it)."""

    mode: str = "off"
    device: str = "/dev/watchdog"
    # The device's timeout is ttl - safety_margin seconds; -1 means ttl // 2; None (unset): a
    # margin that scales with ttl (ha/watchdog_timing.py).
    safety_margin: float | None = None


@dataclass(frozen=True, slots=True)
class NodeConfig:
    cluster: str
    name: str
    etcd: EtcdSettings
    api: ApiSettings
    postgresql: PostgresSettings
    tags: Tags = field(default_factory=Tags)
    bootstrap: DynamicConfig = field(default_factory=DynamicConfig)
    log_level: str = "INFO"
    # "text" (one readable line per record) or "json" (one JSON object per line, for log shippers).
    log_format: str = "text"
    # Commands run on PostgreSQL life-cycle events (on_start, on_stop, on_restart, on_reload,
    # on_role_change) as `command <event> <role> <cluster>`, killed after callback_timeout seconds.
    callbacks: Mapping[str, str] = field(default_factory=dict)
    callback_timeout: float = 30.0
    watchdog: WatchdogSettings = field(default_factory=WatchdogSettings)
    # Where the cluster's members are: a member record read from etcd naming an address outside
    # these is not trusted (no credential is sent there), see model/trust.py. The config loader
    # always sets it (derived from this node's own addresses when not configured); None, for
    # values built in code, trusts every record.
    member_networks: MemberNetworks | None = None
