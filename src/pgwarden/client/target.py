"""Where a cluster is: from a node config file (``-c``) or from a local stack's ``stack.json``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgwarden.client.errors import ClusterNotFound
from pgwarden.config.errors import ConfigError
from pgwarden.config.fields import parse_address
from pgwarden.config.node import load_node_config
from pgwarden.dcs.keys import DEFAULT_PREFIX
from pgwarden.model.node import Address, Credentials
from pgwarden.router.haproxy import RouterPorts

# The directory `pgwarden up` writes to when given no --dir (relative to the working directory).
DEFAULT_STACK_DIR = Path(".pgwarden/local")


@dataclass(frozen=True, slots=True)
class KnownNode:
    """A node listed in stack.json, known even while it has no member key in etcd."""

    name: str
    host: str
    port: int
    api_url: str


@dataclass(frozen=True, slots=True)
class ClusterTarget:
    """Everything a client needs to find one cluster and talk to its agents."""

    cluster: str
    etcd_hosts: tuple[Address, ...]
    prefix: str = DEFAULT_PREFIX
    source: str = ""  # the file it came from, for messages
    bind_address: str | None = None  # source address for etcd and API connections (node configs)
    api_auth: Credentials | None = None  # HTTP basic auth for the agents' write operations
    tls_ca: str | None = None  # certificate file to verify the agents' HTTPS with; None: system CAs
    nodes: tuple[KnownNode, ...] = ()  # from stack.json
    router: RouterPorts | None = None  # the local stack's HAProxy ports, from stack.json


def find_target(config: Path | None, stack_dir: Path | None = None) -> ClusterTarget:
    """The cluster named by ``config``, else by ``stack_dir/stack.json`` (default ``.pgwarden/local``)."""
    if config is not None:
        return target_from_node_config(config)
    return target_from_stack(stack_dir if stack_dir is not None else DEFAULT_STACK_DIR)


def target_from_node_config(path: Path) -> ClusterTarget:
    """A node's own config file: its etcd, cluster name, API credentials and TLS certificate."""
    if not path.exists():
        raise ClusterNotFound(f"config file {path} does not exist")
    try:
        node = load_node_config(path)
    except ConfigError as exc:
        raise ClusterNotFound(str(exc)) from None
    api = node.api
    auth = Credentials(api.username, api.password) if api.username and api.password else None
    return ClusterTarget(
        cluster=node.cluster,
        etcd_hosts=node.etcd.hosts,
        prefix=node.etcd.prefix,
        source=str(path),
        bind_address=node.etcd.bind_address,
        api_auth=auth,
        # The node's own certificate verifies its peers when they share it or its CA chain,
        # which is how small clusters are usually set up; otherwise the system CAs apply.
        tls_ca=api.certfile,
    )


def target_from_stack(stack_dir: Path) -> ClusterTarget:
    """The local stack started by ``pgwarden up --dir stack_dir``."""
    path = stack_dir / "stack.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ClusterNotFound(
            f"no cluster given and no local stack at {path}: pass -c node.yml, "
            "or --dir DIR of a stack started with `pgwarden up`"
        ) from None
    except (OSError, ValueError) as exc:
        raise ClusterNotFound(f"cannot read {path}: {exc}") from None
    try:
        return _parse_stack(doc, str(path))
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise ClusterNotFound(f"{path} is not a stack description ({type(exc).__name__}: {exc})") from None


def _parse_stack(doc: Mapping[str, Any], source: str) -> ClusterTarget:
    auth_doc = doc.get("api_auth")
    auth = None
    if isinstance(auth_doc, Mapping) and auth_doc.get("username"):
        auth = Credentials(str(auth_doc["username"]), auth_doc.get("password"))
    nodes = tuple(
        KnownNode(str(n["name"]), str(n["host"]), int(n["port"]), str(n["api_url"])) for n in doc["nodes"]
    )
    return ClusterTarget(
        cluster=str(doc["cluster"]),
        etcd_hosts=tuple(parse_address(e) for e in doc["etcd"]),
        source=source,
        api_auth=auth,
        nodes=nodes,
        router=_router(doc.get("haproxy")),
    )


def _router(doc: object) -> RouterPorts | None:
    if not isinstance(doc, Mapping):
        return None
    primary = parse_address(doc["primary"])
    replicas = parse_address(doc["replicas"])
    stats_text = str(doc.get("stats", "")).removeprefix("http://").removeprefix("https://").rstrip("/")
    stats = parse_address(stats_text).port if stats_text else RouterPorts().stats
    return RouterPorts(bind_host=primary.host, primary=primary.port, replicas=replicas.port, stats=stats)
