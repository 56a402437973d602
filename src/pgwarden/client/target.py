"""Where a cluster is: from a node config file (``-c``) or from a local stack's ``stack.json``."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgwarden.client.errors import ClusterNotFound
from pgwarden.config.errors import ConfigError
from pgwarden.config.etcd_fields import EtcdHost, parse_etcd_host
from pgwarden.config.fields import parse_address
from pgwarden.config.member_networks import member_networks, parse_entry
from pgwarden.config.node import load_node_config
from pgwarden.dcs.keys import DEFAULT_PREFIX
from pgwarden.model.node import Address, Credentials, EtcdSettings, VerifyClient
from pgwarden.model.trust import MemberNetworks
from pgwarden.router.haproxy import RouterPorts
from pgwarden.tls import peer_identity

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
    tls_cert: str | None = None  # client certificate presented to the agents (PEM; may hold the key)
    tls_key: str | None = None
    tls_insecure: bool = False  # do not verify the agents' certificates (debugging only)
    client_cert_required: bool = False  # the agents refuse any client without a certificate
    router_crt: str | None = None  # the certificate and key HAProxy presents (a local stack's)
    nodes: tuple[KnownNode, ...] = ()  # from stack.json
    router: RouterPorts | None = None  # the local stack's HAProxy ports, from stack.json
    # etcd's protocol, TLS files and credentials (its hosts are etcd_hosts); None: plain HTTP.
    etcd_client: EtcdSettings | None = None
    # Members whose records name addresses outside these are not called (model/trust.py).
    member_networks: MemberNetworks | None = None
    own_node: KnownNode | None = None  # the node whose config this is (-c), reachable without etcd
    # PostgreSQL's superuser as the node config or stack.json names it (``pgwarden query``).
    superuser: Credentials | None = None


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
    # The node's own client identity, when its API asks callers for one (the agent uses the same
    # to call its peers); a server certificate alone may lack the client-authentication purpose.
    cert, key = peer_identity(api) if api.verify_client is not VerifyClient.NONE else (None, None)
    return ClusterTarget(
        cluster=node.cluster,
        etcd_hosts=node.etcd.hosts,
        prefix=node.etcd.prefix,
        source=str(path),
        bind_address=node.etcd.bind_address,
        api_auth=auth,
        # api.tls.cafile verifies the agents; without one, the node's own certificate does when the
        # members share it (or its chain is in that file); otherwise the system CAs apply.
        tls_ca=api.cafile or api.certfile,
        tls_cert=cert,
        tls_key=key,
        client_cert_required=api.verify_client is VerifyClient.REQUIRED,
        etcd_client=node.etcd,
        member_networks=node.member_networks,
        own_node=KnownNode(
            node.name, node.postgresql.connect_address.host, node.postgresql.connect_address.port, api.url
        ),
        superuser=node.postgresql.superuser,
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
    tls = doc.get("tls")
    tls = tls if isinstance(tls, Mapping) else {}
    etcd_hosts = [parse_etcd_host(e) for e in doc["etcd"]]  # the node config's rules
    return ClusterTarget(
        cluster=str(doc["cluster"]),
        etcd_hosts=tuple(h.address for h in etcd_hosts),
        source=source,
        api_auth=auth,
        tls_ca=_optional_text(tls, "cafile"),
        tls_cert=_optional_text(tls, "certfile"),
        tls_key=_optional_text(tls, "keyfile"),
        client_cert_required=tls.get("verify_client") == VerifyClient.REQUIRED.value,
        router_crt=_optional_text(tls, "haproxy_crt"),
        nodes=nodes,
        router=_router(doc.get("haproxy")),
        etcd_client=_etcd_client(etcd_hosts, doc.get("etcd_client")),
        member_networks=_member_networks(doc.get("member_networks"), nodes),
        superuser=_superuser(doc.get("superuser")),
    )


def _superuser(doc: object) -> Credentials | None:
    if not isinstance(doc, Mapping) or not doc.get("username"):
        return None
    password = doc.get("password")
    return Credentials(str(doc["username"]), str(password) if password else None)


def _etcd_client(hosts: list[EtcdHost], doc: object) -> EtcdSettings:
    client = doc if isinstance(doc, Mapping) else {}
    https = any(h.scheme == "https" for h in hosts)
    return EtcdSettings(
        tuple(h.address for h in hosts),
        protocol="https" if https else "http",
        cacert=_optional_text(client, "cacert"),
        cert=_optional_text(client, "cert"),
        key=_optional_text(client, "key"),
        username=_optional_text(client, "username"),
        password=_optional_text(client, "password"),
    )


def _member_networks(doc: object, nodes: tuple[KnownNode, ...]) -> MemberNetworks | None:
    """The stack's member_networks; derived from its nodes' addresses when it lists none."""
    entries = [parse_entry(e) for e in doc] if isinstance(doc, list) else None
    own = [(f"the address of {n.name}", Address(n.host, n.port)) for n in nodes]
    networks, problems = member_networks(entries, own)
    if problems:
        raise ValueError(f"member_networks: {problems[0].problem}")
    return networks


def _optional_text(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return str(value) if value else None


@dataclass(frozen=True, slots=True)
class ClientTls:
    """The CLI's own TLS options (``--cacert``, ``--cert``, ``--key``, ``--insecure``); each one
    given replaces what the node config or stack.json says."""

    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    insecure: bool = False

    def applied_to(self, target: ClusterTarget) -> ClusterTarget:
        changes: dict[str, Any] = {}
        if self.cafile:
            changes["tls_ca"] = self.cafile
        if self.certfile:
            changes["tls_cert"] = self.certfile
            changes["tls_key"] = self.keyfile  # a --cert alone holds its key
        if self.insecure:
            changes["tls_insecure"] = True
        return dataclasses.replace(target, **changes) if changes else target


def _router(doc: object) -> RouterPorts | None:
    if not isinstance(doc, Mapping):
        return None
    primary = parse_address(doc["primary"])
    replicas = parse_address(doc["replicas"])
    stats_text = str(doc.get("stats", "")).removeprefix("http://").removeprefix("https://").rstrip("/")
    stats = parse_address(stats_text).port if stats_text else RouterPorts().stats
    return RouterPorts(bind_host=primary.host, primary=primary.port, replicas=replicas.port, stats=stats)
