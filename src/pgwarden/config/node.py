"""Loads a node's config file (YAML plus ``PGWARDEN_...`` environment overrides) into NodeConfig."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from pgwarden.config.document import parse_yaml, read_text
from pgwarden.config.dynamic import validate_dynamic
from pgwarden.config.env import apply_env
from pgwarden.config.errors import ConfigError, ConfigIssue
from pgwarden.config.etcd_settings import etcd_settings
from pgwarden.config.explain import Finding, Loc, Origin, findings_from_validation
from pgwarden.config.fields import WILDCARD_HOSTS, scalar_text
from pgwarden.config.member_networks import member_networks
from pgwarden.config.node_schema import ApiTlsModel, NodeModel, TagsModel
from pgwarden.config.paths import data_dir_findings
from pgwarden.model.cluster import DynamicConfig, Tags
from pgwarden.model.node import (
    Address,
    ApiSettings,
    Credentials,
    NodeConfig,
    PostgresSettings,
    VerifyClient,
    WatchdogSettings,
)


def load_node_config(
    path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    other_data_dirs: Mapping[str, str] | None = None,
) -> NodeConfig:
    """Read, override from ``env`` (default: os.environ) and validate a node config file.

    ``other_data_dirs`` (node name -> data_dir) are the data directories of nodes beside this one,
    when known (a local stack): this node's may not contain, or sit inside, any of them.
    """
    source = str(path)
    data, lines = parse_yaml(read_text(path), source)
    if data is None:
        fix = "write the node's settings, starting with `cluster:` and `name:`"
        raise ConfigError(source, [ConfigIssue("", "the file is empty", fix)])
    paths = _Paths(os.path.abspath(path), other_data_dirs or {})
    return _parse(data, Origin(source, lines), env, paths)


def parse_node_config(
    data: Mapping[str, Any], source: str, env: Mapping[str, str] | None = None
) -> NodeConfig:
    """Validate an already-parsed node config; ``source`` names it in errors."""
    return _parse(data, Origin(source), env)


@dataclass(frozen=True, slots=True)
class _Paths:
    """What the data directory is checked against beyond the file's own paths."""

    config_file: str | None = None
    other_data_dirs: Mapping[str, str] = field(default_factory=dict)


def _parse(
    data: object, origin: Origin, env: Mapping[str, str] | None, paths: _Paths | None = None
) -> NodeConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(
            origin.source,
            [
                ConfigIssue(
                    "",
                    f"the top level is a {type(data).__name__}, not a mapping of settings",
                    "write `key: value` lines at the top level, starting with `cluster:` and `name:`",
                )
            ],
        )
    tree, overrides = apply_env(data, os.environ if env is None else env)
    origin = Origin(origin.source, origin.lines, overrides)
    findings: list[Finding] = []
    node: NodeConfig | None = None
    try:
        model: NodeModel | None = NodeModel.model_validate(tree)
    except ValidationError as exc:
        model = None
        findings += findings_from_validation(exc, NodeModel, ())
    # The dynamic part is checked even when the rest failed, so one run reports every problem.
    bootstrap, dynamic_findings = _bootstrap(tree)
    findings += dynamic_findings
    if model is not None:
        tags, tag_findings = _tags(model.tags)
        node, node_findings = _node(model, tags, bootstrap, paths or _Paths())
        findings += tag_findings + node_findings
    if node is None or findings:
        raise origin.error(findings)
    return node


def _bootstrap(tree: Mapping[str, Any]) -> tuple[DynamicConfig, list[Finding]]:
    section = tree.get("bootstrap")
    dcs = section.get("dcs") if isinstance(section, Mapping) else None
    if not isinstance(dcs, Mapping):
        return DynamicConfig(), []  # absent, or a wrong type that NodeModel already reported
    config, findings = validate_dynamic(dcs, ("bootstrap", "dcs"))
    return config or DynamicConfig(), findings


def _tags(model: TagsModel) -> tuple[Tags, list[Finding]]:
    custom: dict[str, str] = {}
    findings: list[Finding] = []
    for key, value in (model.model_extra or {}).items():
        text = scalar_text(value)
        if text is None:
            problem = f"a custom tag must be a single value, got {type(value).__name__}"
            findings.append(Finding(("tags", key), problem, f"write e.g. `{key}: value`"))
        else:
            custom[key] = text
    known = {name: getattr(model, name) for name in TagsModel.model_fields}
    return Tags(**known, custom=custom), findings


def _node(
    model: NodeModel, tags: Tags, bootstrap: DynamicConfig, paths: _Paths
) -> tuple[NodeConfig | None, list[Finding]]:
    findings: list[Finding] = []
    api_connect = _connect_address(model.api.listen, model.api.connect_address, "api", 8008, findings)
    pg = model.postgresql
    pg_connect = _connect_address(pg.listen, pg.connect_address, "postgresql", 5432, findings)
    if model.api.listen == pg.listen:
        findings.append(
            Finding(
                ("api", "listen"),
                f"the REST API and PostgreSQL both listen on {pg.listen}",
                "give them different ports, e.g. 8008 for the API and 5432 for PostgreSQL",
            )
        )
    tls = model.api.tls
    keys = {f"api.tls.{k}": v for k, v in (tls.model_dump() if tls else {}).items() if k.endswith("file")}
    keys |= {f"etcd.{k}": v for k in ("cacert", "cert", "key") if (v := getattr(model.etcd, k))}
    findings += _tls_findings(tls)
    etcd = etcd_settings(model.etcd, findings)
    networks, network_findings = member_networks(
        model.member_networks,
        [("api.connect_address", api_connect), ("postgresql.connect_address", pg_connect)],
    )
    findings += network_findings
    findings += data_dir_findings(
        pg.data_dir,
        bin_dir=pg.bin_dir,
        socket_dir=pg.socket_dir,
        key_files={k: v for k, v in keys.items() if v},
        config_file=paths.config_file,
        other_data_dirs={n: d for n, d in paths.other_data_dirs.items() if n != model.name},
    )
    auth = model.api.auth
    api = ApiSettings(
        listen=model.api.listen,
        connect_address=api_connect,
        username=auth.username if auth else None,
        password=auth.password if auth else None,
        certfile=tls.certfile if tls else None,
        keyfile=tls.keyfile if tls else None,
        cafile=tls.cafile if tls else None,
        verify_client=tls.verify_client if tls else VerifyClient.NONE,
        client_certfile=tls.client_certfile if tls else None,
        client_keyfile=tls.client_keyfile if tls else None,
        allowlist=tuple(model.api.allowlist),
        allowlist_include_members=model.api.allowlist_include_members,
        allow_unauthenticated_writes=model.api.allow_unauthenticated_writes,
        max_connections=model.api.max_connections,
        request_timeout=model.api.request_timeout,
        idle_timeout=model.api.idle_timeout,
    )
    if api.open_writes and not api.allow_unauthenticated_writes:
        findings.append(
            Finding(
                ("api", "auth"),
                f"the REST API listens on {api.listen}, beyond this machine, and without api.auth "
                "anyone who reaches it could switch over, restart or reconfigure the cluster",
                "set api.auth (username and password), or listen on a loopback address such as "
                "127.0.0.1:8008, or, knowingly, set api.allow_unauthenticated_writes: true",
            )
        )
    if findings:
        return None, findings
    users = pg.authentication
    postgresql = PostgresSettings(
        listen=pg.listen,
        connect_address=pg_connect,
        data_dir=pg.data_dir,
        bin_dir=pg.bin_dir,
        superuser=Credentials(users.superuser.username, users.superuser.password),
        replication=Credentials(users.replication.username, users.replication.password),
        run_as=pg.run_as,
        socket_dir=pg.socket_dir,
        parameters=dict(pg.parameters),
        pg_hba=tuple(pg.pg_hba),
    )
    node = NodeConfig(
        cluster=model.cluster,
        name=model.name,
        etcd=etcd,
        api=api,
        postgresql=postgresql,
        tags=tags,
        bootstrap=bootstrap,
        log_level=model.log_level,
        log_format=model.log_format,
        callbacks={event: command for event, command in model.callbacks.model_dump().items() if command},
        callback_timeout=model.callback_timeout,
        watchdog=WatchdogSettings(model.watchdog.mode, model.watchdog.device, model.watchdog.safety_margin),
        member_networks=networks,
    )
    return node, []


def _tls_findings(tls: ApiTlsModel | None) -> list[Finding]:
    """Client-certificate settings that cannot work together."""
    if tls is None:
        return []
    found = []
    if tls.verify_client is not VerifyClient.NONE and tls.cafile is None:
        found.append(
            Finding(
                ("api", "tls", "cafile"),
                f"verify_client is {tls.verify_client.value}, but there is no CA to verify client "
                "certificates against",
                "set api.tls.cafile to the CA certificate (PEM) that signed the clients' certificates, "
                "or set verify_client: none",
            )
        )
    if tls.client_keyfile is not None and tls.client_certfile is None:
        found.append(
            Finding(
                ("api", "tls", "client_keyfile"),
                "client_keyfile is set without client_certfile",
                "set api.tls.client_certfile too, or remove client_keyfile (the agent then presents "
                "certfile/keyfile to its peers)",
            )
        )
    return found


def _connect_address(
    listen: Address, connect: Address | None, section: str, port: int, findings: list[Finding]
) -> Address:
    """connect_address defaults to listen, unless listen is a wildcard others cannot dial."""
    loc: Loc = (section, "connect_address")
    if connect is None and listen.host not in WILDCARD_HOSTS:
        return listen
    if connect is None:
        problem = f"{section}.listen is {listen}, which other nodes and HAProxy cannot connect to"
    elif connect.host in WILDCARD_HOSTS:
        problem = f"{connect} is a wildcard address, which other nodes and HAProxy cannot connect to"
    else:
        return connect
    fix = f"set {section}.connect_address to the address others reach this node at, e.g. 127.0.0.11:{port}"
    findings.append(Finding(loc, problem, fix))
    return listen
