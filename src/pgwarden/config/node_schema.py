"""The pydantic schema of a node config file; node.py turns a validated one into NodeConfig."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pgwarden.config.api_fields import NetworkList, VerifyClientField
from pgwarden.config.etcd_fields import EtcdHostList, EtcdProtocol
from pgwarden.config.fields import (
    AbsolutePath,
    AddressField,
    Command,
    EtcdPrefix,
    HbaLine,
    IpAddress,
    LogFormat,
    LogLevel,
    Name,
    NonEmpty,
    WatchdogMode,
)
from pgwarden.config.member_networks import EntryList
from pgwarden.config.parameters import Parameters
from pgwarden.config.paths import DataDirPath
from pgwarden.model.cluster import Tags
from pgwarden.model.node import ApiSettings, EtcdSettings, NodeConfig, WatchdogSettings


def _default(cls: type[Any], name: str) -> Any:
    """A dataclass field's default, so that numbers and paths are written down only once."""
    default = next(f.default for f in dataclasses.fields(cls) if f.name == name)
    if default is dataclasses.MISSING:
        raise TypeError(f"{cls.__name__}.{name} has no default")
    return default


_TAGS = Tags()
# PostgresSettings leaves bin_dir to the config: Debian's PostgreSQL 15 is what we target.
DEFAULT_BIN_DIR = "/usr/lib/postgresql/15/bin"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class CredentialsModel(_Section):
    username: NonEmpty = Field(examples=["postgres"])
    password: str | None = Field(None, examples=["a-secret"])


class AuthenticationModel(_Section):
    superuser: CredentialsModel = Field(examples=["{username: postgres, password: ...}"])
    replication: CredentialsModel = Field(examples=["{username: replicator, password: ...}"])


class EtcdModel(_Section):
    hosts: EtcdHostList = Field(
        min_length=1, examples=["[127.0.0.21:2379, 127.0.0.22:2379, 127.0.0.23:2379]"]
    )
    prefix: EtcdPrefix = Field(_default(EtcdSettings, "prefix"), examples=["/pgwarden"])
    bind_address: IpAddress | None = Field(None, examples=["127.0.0.11"])
    # None: the hosts' scheme, else https when a certificate file is set, else http (node.py).
    protocol: EtcdProtocol | None = Field(None, examples=["https"])
    cacert: AbsolutePath | None = Field(None, examples=["/etc/pgwarden/etcd-ca.crt"])
    cert: AbsolutePath | None = Field(None, examples=["/etc/pgwarden/etcd-client.crt"])
    key: AbsolutePath | None = Field(None, examples=["/etc/pgwarden/etcd-client.key"])
    username: NonEmpty | None = Field(None, examples=["pgwarden"])
    password: str | None = Field(None, examples=["a-secret"])


class ApiAuthModel(_Section):
    username: NonEmpty = Field(examples=["admin"])
    password: NonEmpty = Field(examples=["a-secret"])


class ApiTlsModel(_Section):
    certfile: AbsolutePath = Field(examples=["/etc/pgwarden/api.crt"])
    keyfile: AbsolutePath | None = Field(None, examples=["/etc/pgwarden/api.key"])
    cafile: AbsolutePath | None = Field(None, examples=["/etc/pgwarden/ca.crt"])
    verify_client: VerifyClientField = Field(
        _default(ApiSettings, "verify_client"), examples=["none", "optional", "required"]
    )
    client_certfile: AbsolutePath | None = Field(None, examples=["/etc/pgwarden/client.crt"])
    client_keyfile: AbsolutePath | None = Field(None, examples=["/etc/pgwarden/client.key"])


class ApiModel(_Section):
    listen: AddressField = Field(examples=["127.0.0.11:8008"])
    connect_address: AddressField | None = Field(None, examples=["127.0.0.11:8008"])
    auth: ApiAuthModel | None = Field(None, examples=["{username: admin, password: ...}"])
    tls: ApiTlsModel | None = Field(None, examples=["{certfile: /etc/pgwarden/api.crt, keyfile: ...}"])
    allow_unauthenticated_writes: bool = Field(
        _default(ApiSettings, "allow_unauthenticated_writes"), examples=["false"]
    )
    allowlist: NetworkList = Field(default_factory=list, examples=["[192.0.2.0/28, 198.51.100.0/24]"])
    allowlist_include_members: bool = Field(
        _default(ApiSettings, "allowlist_include_members"), examples=["true"]
    )
    max_connections: int = Field(_default(ApiSettings, "max_connections"), ge=16, le=65536, examples=[256])
    request_timeout: float = Field(_default(ApiSettings, "request_timeout"), gt=0, le=300, examples=[5])
    idle_timeout: float = Field(_default(ApiSettings, "idle_timeout"), gt=0, le=3600, examples=[10])


class PostgresModel(_Section):
    listen: AddressField = Field(examples=["127.0.0.11:5432"])
    connect_address: AddressField | None = Field(None, examples=["127.0.0.11:5432"])
    data_dir: DataDirPath = Field(examples=["/var/lib/postgresql/15/main"])
    bin_dir: AbsolutePath = Field(DEFAULT_BIN_DIR, examples=["/usr/lib/postgresql/15/bin"])
    run_as: NonEmpty | None = Field(None, examples=["postgres"])
    socket_dir: AbsolutePath | None = Field(None, examples=["/var/run/postgresql"])
    authentication: AuthenticationModel = Field(examples=["{superuser: {...}, replication: {...}}"])
    parameters: Parameters = Field(default_factory=dict, examples=["{shared_buffers: 128MB}"])
    pg_hba: list[HbaLine] = Field(
        default_factory=list, examples=['["host all all 127.0.0.0/8 scram-sha-256"]']
    )


class TagsModel(BaseModel):
    # Unknown keys are the operator's own tags (Tags.custom); node.py stringifies them.
    model_config = ConfigDict(extra="allow", strict=True)

    nofailover: bool = Field(default=_TAGS.nofailover, examples=["false"])
    noloadbalance: bool = Field(default=_TAGS.noloadbalance, examples=["false"])
    nosync: bool = Field(default=_TAGS.nosync, examples=["false"])
    failover_priority: int = Field(default=_TAGS.failover_priority, ge=0, examples=[1])
    sync_priority: int = Field(default=_TAGS.sync_priority, ge=0, examples=[1])
    clonefrom: bool = Field(default=_TAGS.clonefrom, examples=["false"])
    replicatefrom: Name | None = Field(default=_TAGS.replicatefrom, examples=["node2"])


class CallbacksModel(_Section):
    # Run as `<command> <event> <role> <cluster>`; agent/callbacks.py says when and how.
    on_start: Command | None = Field(default=None, examples=["/usr/local/bin/pgwarden-callback"])
    on_stop: Command | None = Field(default=None, examples=["/usr/local/bin/pgwarden-callback"])
    on_restart: Command | None = Field(default=None, examples=["/usr/local/bin/pgwarden-callback"])
    on_reload: Command | None = Field(default=None, examples=["/usr/local/bin/pgwarden-callback"])
    on_role_change: Command | None = Field(default=None, examples=["/usr/local/bin/pgbouncer-follow"])


class WatchdogModel(_Section):
    # Patroni's section and meaning; agent/watchdog.py says how the agent uses the device.
    mode: WatchdogMode = Field(default=_default(WatchdogSettings, "mode"), examples=["automatic"])
    device: AbsolutePath = Field(default=_default(WatchdogSettings, "device"), examples=["/dev/watchdog"])
    safety_margin: float | None = Field(
        default=_default(WatchdogSettings, "safety_margin"), ge=-1, le=3600, examples=[5]
    )  # -1: the timeout is ttl // 2; unset: ttl / 4 between 1 and 5 s (ha/watchdog_timing.py)


class BootstrapModel(_Section):
    dcs: dict[str, Any] = Field(default_factory=dict, examples=["{ttl: 30, loop_wait: 10}"])  # dynamic.py


class NodeModel(_Section):
    cluster: Name = Field(examples=["main"])
    name: Name = Field(examples=["node1"])
    log_level: LogLevel = Field(_default(NodeConfig, "log_level"), examples=["INFO"])
    log_format: LogFormat = Field(_default(NodeConfig, "log_format"), examples=["json"])
    etcd: EtcdModel = Field(examples=["{hosts: [127.0.0.21:2379]}"])
    api: ApiModel = Field(examples=["{listen: 127.0.0.11:8008}"])
    postgresql: PostgresModel = Field(examples=["{listen: 127.0.0.11:5432, data_dir: ...}"])
    tags: TagsModel = Field(default_factory=lambda: TagsModel(), examples=["{nofailover: false}"])
    bootstrap: BootstrapModel = Field(default_factory=BootstrapModel, examples=["{dcs: {ttl: 30}}"])
    callbacks: CallbacksModel = Field(
        default_factory=lambda: CallbacksModel(),
        examples=["{on_role_change: /usr/local/bin/pgbouncer-follow}"],
    )
    callback_timeout: float = Field(_default(NodeConfig, "callback_timeout"), gt=0, le=3600, examples=[30])
    watchdog: WatchdogModel = Field(
        default_factory=lambda: WatchdogModel(), examples=["{mode: automatic, device: /dev/watchdog}"]
    )
    # Empty: derived from this node's own addresses (config/member_networks.py).
    member_networks: EntryList = Field(default_factory=list, examples=["[192.0.2.0/24]"])
