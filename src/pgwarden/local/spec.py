"""Where each part of a local stack lives: addresses, ports, directories and credentials."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pgwarden.dcs.keys import ClusterKeys
from pgwarden.router.haproxy import RouterPorts

SPEC_FILE = "spec.json"  # the whole spec, so a later `up` or `down` on the directory reuses it
STACK_FILE = "stack.json"  # the public description (INTERFACE.md) scripts and tests read


class SpecError(Exception):
    """A saved spec cannot be read; the message says which file and why."""


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
    # REST API basic auth for write operations, as in production; None leaves the API open.
    api_username: str = "pgwarden"
    api_password: str | None = field(default_factory=lambda: secrets.token_urlsafe(12))
    # The REST API over HTTPS, certificates from the stack's own CA (local/pki.py, in DIR/tls):
    # each agent's serves its API and is its client certificate towards its peers; the CLI and
    # HAProxy get their own. verify_client as in api.tls; an allowlist adds the members' addresses.
    api_tls: bool = False
    api_verify_client: str = "required"
    api_allowlist: tuple[str, ...] = ()
    # etcd over TLS with client certificates on its client and peer ports, and etcd's own
    # authentication: root, and a user whose role reaches only this cluster's keys
    # (local/etcd_security.py). The agents and the CLI get client certificates of their own.
    etcd_tls: bool = False
    etcd_username: str = "pgwarden"
    etcd_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    etcd_root_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    etcd_auth_token_ttl: int | None = None  # etcd's --auth-token-ttl (seconds); None: its 300
    # More node config for every node, merged over what the stack writes (tests: a watchdog).
    node_extra: dict[str, Any] = field(default_factory=dict)

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

    def api_url(self, i: int) -> str:
        return f"{'https' if self.api_tls else 'http'}://{self.node_host(i)}:{self.api_port}"

    @property
    def tls_dir(self) -> Path:
        """The stack's CA and certificates (``Pki(tls_dir)``): ``ca.crt``, ``nodeN``, ``cli``,
        ``haproxy`` (``.crt``/``.key``; ``haproxy.pem`` holds both for HAProxy)."""
        return self.dir / "tls"

    def tls_files(self, name: str) -> tuple[str, str]:
        """The certificate and key files of ``name`` in ``tls_dir``."""
        return str(self.tls_dir / f"{name}.crt"), str(self.tls_dir / f"{name}.key")

    def etcd_endpoints(self) -> list[str]:
        return [f"{self.etcd_host(i)}:{self.etcd_port}" for i in range(3)]

    @property
    def etcd_scheme(self) -> str:
        return "https" if self.etcd_tls else "http"

    def etcd_urls(self) -> list[str]:
        """The members' client URLs, ``https://`` ones when etcd serves TLS."""
        return [f"{self.etcd_scheme}://{endpoint}" for endpoint in self.etcd_endpoints()]

    @property
    def etcd_prefix(self) -> str:
        """The keys of this cluster, the only ones its etcd user may use."""
        return ClusterKeys(self.cluster).root

    def etcd_client(self, name: str) -> dict[str, str]:
        """The ``etcd`` settings (beyond hosts) a client called ``name`` uses: its certificate
        in ``tls_dir`` and the cluster's etcd user; empty without etcd_tls."""
        if not self.etcd_tls:
            return {}
        certfile, keyfile = self.tls_files(f"etcd-{name}")
        return {
            "cacert": str(self.tls_dir / "ca.crt"),
            "cert": certfile,
            "key": keyfile,
            "username": self.etcd_username,
            "password": self.etcd_password,
        }

    def user_for(self, i: int) -> str | None:
        return self.run_as[i] if i < len(self.run_as) else None

    def listen_addresses(self) -> list[tuple[str, int]]:
        """Every address and port the stack's servers will listen on."""
        found = [(self.etcd_host(i), p) for i in range(3) for p in (self.etcd_port, self.etcd_peer_port)]
        found += [(self.node_host(i), p) for i in range(self.nodes) for p in (self.pg_port, self.api_port)]
        r = self.router
        return found + [(r.bind_host, p) for p in (r.primary, r.replicas, r.stats)]

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
        api: dict[str, Any] = {
            "listen": f"{host}:{self.api_port}",
            "connect_address": f"{host}:{self.api_port}",
        }
        if self.api_password is not None:
            api["auth"] = {"username": self.api_username, "password": self.api_password}
        if self.api_tls:
            certfile, keyfile = self.tls_files(self.node_name(i))
            api["tls"] = {
                "certfile": certfile,
                "keyfile": keyfile,
                "cafile": str(self.tls_dir / "ca.crt"),
                "verify_client": self.api_verify_client,
            }
        if self.api_allowlist:
            api["allowlist"] = list(self.api_allowlist)
            api["allowlist_include_members"] = True
        return {
            "cluster": self.cluster,
            "name": self.node_name(i),
            "etcd": {"hosts": self.etcd_urls(), "bind_address": host, **self.etcd_client(self.node_name(i))},
            "api": api,
            "postgresql": pg,
            "bootstrap": {"dcs": dict(self.dcs)},
            **self.node_extra,
        }

    # --- the public description ---------------------------------------------------------------
    def document(self) -> dict[str, Any]:
        """What ``DIR/stack.json`` holds (the layout in INTERFACE.md, plus ``api_auth``)."""
        r = self.router
        doc: dict[str, Any] = {
            "cluster": self.cluster,
            "nodes": [
                {
                    "name": self.node_name(i),
                    "host": self.node_host(i),
                    "port": self.pg_port,
                    "api_url": self.api_url(i),
                    "data_dir": str(self.data_dir(i)),
                    "config": str(self.config_path(i)),
                }
                for i in range(self.nodes)
            ],
            "etcd": self.etcd_urls(),
            "member_networks": [f"{self.network}.0/24"],
            "haproxy": {
                "primary": f"{r.bind_host}:{r.primary}",
                "replicas": f"{r.bind_host}:{r.replicas}",
                "stats": f"http://{r.bind_host}:{r.stats}/",
            },
            "superuser": {"username": "postgres", "password": self.superuser_password},
        }
        if self.api_password is not None:
            doc["api_auth"] = {"username": self.api_username, "password": self.api_password}
        if self.etcd_tls:
            doc["etcd_client"] = self.etcd_client("cli")
        if self.api_tls:
            certfile, keyfile = self.tls_files("cli")
            doc["tls"] = {
                "cafile": str(self.tls_dir / "ca.crt"),
                "certfile": certfile,
                "keyfile": keyfile,
                "haproxy_crt": str(self.tls_dir / "haproxy.pem"),
                "verify_client": self.api_verify_client,
            }
        return doc

    def connection_strings(self) -> dict[str, str]:
        """libpq URLs: through HAProxy's write and read ports, and straight to every node."""
        user = f"postgres:{quote(self.superuser_password, safe='')}"
        r = self.router
        hosts = ",".join(f"{self.node_host(i)}:{self.pg_port}" for i in range(self.nodes))
        return {
            "writes": f"postgresql://{user}@{r.bind_host}:{r.primary}/postgres",
            "reads": f"postgresql://{user}@{r.bind_host}:{r.replicas}/postgres",
            "multi-host": f"postgresql://{user}@{hosts}/postgres?target_session_attrs=read-write",
        }

    # --- saving and loading -------------------------------------------------------------------
    def save(self) -> None:
        """Write ``spec.json`` and ``stack.json``, readable by the owner only (they hold passwords)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        saved = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "dir"}
        saved["router"] = dataclasses.asdict(self.router)
        saved["run_as"] = list(self.run_as)
        saved["api_allowlist"] = list(self.api_allowlist)
        write_private(self.dir / SPEC_FILE, _json(saved))
        write_private(self.dir / STACK_FILE, _json(self.document()))

    @classmethod
    def load(cls, dir: Path) -> StackSpec | None:
        """The spec saved in ``dir``, or None when there is none.

        A directory written before ``spec.json`` existed has only ``stack.json``: its node count
        is still honoured (enough for ``down``), with fresh credentials.
        """
        saved = _read_json(dir / SPEC_FILE)
        if saved is not None:
            known = {f.name for f in dataclasses.fields(cls)} - {"dir"}
            try:
                values = {k: v for k, v in saved.items() if k in known}
                values["router"] = RouterPorts(**values.get("router", {}))
                values["run_as"] = tuple(values.get("run_as", ()))
                values["api_allowlist"] = tuple(values.get("api_allowlist", ()))
                return cls(dir=dir, **values)
            except (TypeError, AttributeError) as exc:
                raise SpecError(f"{dir / SPEC_FILE} is not a stack spec: {exc}") from None
        doc = _read_json(dir / STACK_FILE)
        if doc is not None and isinstance(doc.get("nodes"), list):
            return cls(dir=dir, nodes=len(doc["nodes"]))
        return None


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, readable by its owner only from the first byte:
    the file is created 0600 (``os.open``'s mode, which a umask can only narrow), never written
    first and narrowed after, so no other user can open it in between and keep reading."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SpecError(f"{path} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path} is not a JSON object")
    return data
