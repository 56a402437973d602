"""Where each part of a local stack lives: addresses, ports, directories and credentials."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgwarden.router.haproxy import RouterPorts


@dataclass(frozen=True)
class StackSpec:
    dir: Path
    cluster: str = "local"
    nodes: int = 3
    # Each node and each etcd member gets its own loopback address, as separate hosts would, so
    # network cuts between them can be simulated with nftables on lo.
    network: str = "127.0.0"
    node_offset: int = 11
    etcd_offset: int = 21
    pg_port: int = 5432
    api_port: int = 8008
    etcd_port: int = 2379
    etcd_peer_port: int = 2380
    router: RouterPorts = field(default_factory=RouterPorts)
    run_as: tuple[str | None, ...] = ()  # OS user per node for PostgreSQL; empty: postgres if root
    dcs: dict[str, Any] = field(default_factory=dict)  # bootstrap.dcs overrides
    superuser_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    replication_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    bin_dir: str = "/usr/lib/postgresql/15/bin"

    def node_name(self, i: int) -> str:
        return f"node{i + 1}"

    def node_host(self, i: int) -> str:
        return f"{self.network}.{self.node_offset + i}"

    def etcd_host(self, i: int) -> str:
        return f"{self.network}.{self.etcd_offset + i}"

    def node_dir(self, i: int) -> Path:
        return self.dir / self.node_name(i)

    def data_dir(self, i: int) -> Path:
        return self.node_dir(i) / "data"

    def config_path(self, i: int) -> Path:
        return self.dir / f"{self.node_name(i)}.yml"

    def etcd_endpoints(self) -> list[str]:
        return [f"{self.etcd_host(i)}:{self.etcd_port}" for i in range(3)]

    def user_for(self, i: int) -> str | None:
        return self.run_as[i] if i < len(self.run_as) else None

    def node_config(self, i: int, run_as: str | None) -> dict[str, Any]:
        host = self.node_host(i)
        pg: dict[str, Any] = {
            "listen": f"{host}:{self.pg_port}",
            "connect_address": f"{host}:{self.pg_port}",
            "data_dir": str(self.data_dir(i)),
            "bin_dir": self.bin_dir,
            "socket_dir": str(self.node_dir(i) / "run"),
            "authentication": {
                "superuser": {"username": "postgres", "password": self.superuser_password},
                "replication": {"username": "replicator", "password": self.replication_password},
            },
            "parameters": {"shared_buffers": "32MB", "max_connections": 50},
        }
        if run_as:
            pg["run_as"] = run_as
        return {
            "cluster": self.cluster,
            "name": self.node_name(i),
            "etcd": {"hosts": self.etcd_endpoints(), "bind_address": host},
            "api": {"listen": f"{host}:{self.api_port}", "connect_address": f"{host}:{self.api_port}"},
            "postgresql": pg,
            "bootstrap": {"dcs": dict(self.dcs)},
        }
