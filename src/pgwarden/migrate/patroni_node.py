"""Patroni's per-node settings (scope, name, restapi, etcd/etcd3, postgresql, tags) mapped onto
pgwarden's node config, with a note for everything that does not map one to one."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pgwarden.migrate.conversion import Conversion, Path
from pgwarden.migrate.notes import Severity
from pgwarden.migrate.patroni_params import map_parameters
from pgwarden.model.node import EtcdSettings

WARN, INFO, ERROR = Severity.WARNING, Severity.INFO, Severity.ERROR
# pgwarden keeps its keys apart from Patroni's, so both can run side by side while migrating and
# the way back finds Patroni's keys untouched.
PGWARDEN_PREFIX = EtcdSettings.__dataclass_fields__["prefix"].default
_OTHER_STORES = ("consul", "zookeeper", "exhibitor", "kubernetes", "raft")
_CALLBACKS = ("on_start", "on_stop", "on_restart", "on_reload", "on_role_change")
_KNOWN_TAGS = ("nofailover", "noloadbalance", "nosync", "clonefrom", "replicatefrom", "sync_priority")
_IGNORED_BY_PATRONI = ("ttl", "loop_wait", "retry_timeout", "maximum_lag_on_failover", "synchronous_mode")


def map_top(conv: Conversion, tree: Mapping[str, Any]) -> None:
    if "scope" in tree:
        conv.put(("cluster",), tree["scope"], ("scope",))
    else:
        conv.note("scope", ERROR, "missing: Patroni's cluster name", fix="set `cluster:` in the output")
    if "name" in tree:
        conv.put(("name",), tree["name"], ("name",))
    else:
        conv.note("name", ERROR, "missing: this member's name", fix="set `name:` in the output")
    namespace = str(tree.get("namespace", "/service/"))
    message = (
        f"pgwarden keeps its keys under etcd.prefix {PGWARDEN_PREFIX}, apart from Patroni's "
        f"{namespace}: neither reads the other's keys, so the two can run side by side while "
        "migrating and the way back finds Patroni's keys as they were"
    )
    if namespace.rstrip("/") == PGWARDEN_PREFIX:
        conv.put(("etcd", "prefix"), "/pgwarden-migrated", ("namespace",))
        conv.note(
            "namespace",
            WARN,
            message + "; Patroni already uses that prefix, so pgwarden's moves",
            ("etcd", "prefix"),
        )
    elif "namespace" in tree:
        conv.note("namespace", INFO, message)
    log = tree.get("log")
    if isinstance(log, Mapping):
        for key in log:
            if key == "level":
                conv.put(("log_level",), str(log[key]).upper(), ("log", "level"))
            elif key == "type" and str(log[key]).lower() in ("plain", "json"):
                # Patroni's log.type: plain or json; pgwarden's log_format: text or json.
                kind = "json" if str(log[key]).lower() == "json" else "text"
                conv.put(("log_format",), kind, ("log", "type"))
            else:
                conv.dropped(("log", str(key)), "the agent logs to stderr (the journal under systemd)")
    for key in _IGNORED_BY_PATRONI:
        if key in tree:
            conv.dropped((key,), "Patroni ignores it here too; the cluster's value is in bootstrap.dcs")
    if "ctl" in tree:
        conv.dropped(("ctl",), "the CLI reads a node config (-c) or the local stack", severity=INFO)
    watchdog = tree.get("watchdog")
    if isinstance(watchdog, Mapping):
        # Same keys and spellings (mode automatic|required|off, device, safety_margin); pgwarden's
        # loader reads Patroni's aliases. Patroni's default mode is automatic, pgwarden's off; its
        # default margin is 5 s, pgwarden's ttl / 4 between 1 and 5 s: Patroni's defaults are written.
        for key, value in watchdog.items():
            if key in ("mode", "device", "safety_margin"):
                conv.put(("watchdog", str(key)), value, ("watchdog", str(key)))
            else:
                conv.dropped(("watchdog", str(key)), "pgwarden's watchdog has mode, device and safety_margin")
        if "mode" not in watchdog:
            conv.put(("watchdog", "mode"), "automatic", ("watchdog",))
        if "safety_margin" not in watchdog:  # Patroni's 5 s, kept: pgwarden's default scales with ttl
            conv.put(("watchdog", "safety_margin"), 5, ("watchdog",))
    if "citus" in tree:
        conv.note("citus", ERROR, "Citus clusters are not supported by pgwarden")
    for key in ("proxy_address",):
        if key in tree:
            conv.dropped((key,), "no service discovery of a pooler in pgwarden")


def map_restapi(conv: Conversion, api: object) -> None:
    if not isinstance(api, Mapping):
        conv.note(
            "restapi", ERROR, "missing: the REST API HAProxy checks", fix="set api.listen in the output"
        )
        return
    src: Path = ("restapi",)
    for key, value in api.items():
        here = (*src, str(key))
        if key == "listen":
            conv.put(("api", "listen"), _listen(conv, here, value), here)
        elif key == "connect_address":
            conv.put(("api", "connect_address"), value, here)
        elif key == "authentication" and isinstance(value, Mapping):
            for part in ("username", "password"):
                if part in value:
                    conv.put(("api", "auth", part), value[part], (*here, part))
        elif key in ("certfile", "keyfile"):
            conv.put(("api", "tls", str(key)), value, here)
        elif key == "cafile":
            conv.put(("api", "tls", "cafile"), value, here, optional=True)
        elif key == "verify_client":
            conv.put(("api", "tls", "verify_client"), value, here, optional=True)
        elif key in ("allowlist", "allowlist_include_members"):
            conv.put(("api", str(key)), value, here, optional=True)
        elif key == "keyfile_password":
            conv.dropped(
                here,
                "pgwarden reads an unencrypted key",
                fix="decrypt the key (openssl pkey) into a 0600 file",
            )
        else:
            conv.dropped(
                here,
                "no pgwarden equivalent (the API's limits are api.max_connections, request_timeout)",
            )
    if "listen" not in api:
        conv.note("restapi.listen", ERROR, "missing", fix="set api.listen in the output")


def map_store(conv: Conversion, tree: Mapping[str, Any]) -> None:
    """etcd3 (the v3 API, as pgwarden speaks) or etcd (Patroni's v2 client): same hosts."""
    for other in _OTHER_STORES:
        if other in tree:
            conv.note(
                other,
                ERROR,
                f"pgwarden keeps its state in etcd only, not {other}",
                fix="run a 3-member etcd (v3.4 or later) and list it under etcd.hosts",
            )
    found = [name for name in ("etcd3", "etcd") if isinstance(tree.get(name), Mapping)]
    if not found:
        if not any(other in tree for other in _OTHER_STORES):
            conv.note("etcd3", ERROR, "missing: no etcd section", fix="set etcd.hosts in the output")
        return
    name = found[0]
    if len(found) > 1:
        conv.dropped(("etcd",), "etcd3 is used; a node has one store")
    section: Mapping[str, Any] = tree[name]
    if name == "etcd":
        conv.note(
            "etcd",
            INFO,
            "Patroni's etcd: section talks etcd's v2 API; pgwarden talks v3 (etcd 3.4 or "
            "later, with the v3 API its default) to the same members",
            ("etcd",),
        )
    hosts = _hosts(conv, name, section)
    if hosts:
        conv.put(("etcd", "hosts"), hosts, (name, "hosts"))
    else:
        conv.note(f"{name}.hosts", ERROR, "no usable etcd address", fix="list every member under etcd.hosts")
    for key, value in section.items():
        here: Path = (name, str(key))
        if key in ("host", "hosts", "port"):
            continue
        if key == "protocol":
            if str(value).lower() == "https":
                conv.put(("etcd", "protocol"), "https", here, optional=True)
        elif key in ("cacert", "cert", "key", "username", "password"):
            conv.put(("etcd", str(key)), value, here, optional=True)
        elif key in ("url", "proxy", "srv", "srv_suffix"):
            conv.note(
                here,
                ERROR,
                "pgwarden reaches etcd by a list of member addresses only",
                fix="list every member's client address (host:port) under etcd.hosts",
            )
        elif key == "use_proxies":
            conv.dropped(here, "pgwarden always uses the listed addresses as they are", severity=INFO)
        else:
            conv.dropped(here, "no pgwarden equivalent")


def _hosts(conv: Conversion, name: str, section: Mapping[str, Any]) -> list[str]:
    raw = section.get("hosts", section.get("host"))
    items = raw.split(",") if isinstance(raw, str) else list(raw) if isinstance(raw, list) else []
    hosts = []
    for item in items:
        text = str(item).strip()
        for scheme in ("http://", "https://"):
            if text.startswith(scheme):
                text = text[len(scheme) :]
                if scheme == "https://":
                    conv.put(("etcd", "protocol"), "https", (name, "hosts"), optional=True)
        if text and ":" not in text.rsplit("]", 1)[-1]:
            text = f"{text}:{section.get('port', 2379)}"
        if text:
            hosts.append(text)
    return hosts


def _listen(conv: Conversion, here: Path, value: object) -> object:
    """Patroni takes ``:8008`` for every address, and ``a,b:5432`` for several; pgwarden one or all."""
    if not isinstance(value, str) or ":" not in value:
        return value
    hosts_text, _, port = value.rpartition(":")
    hosts = [h.strip() for h in hosts_text.split(",")]
    if hosts == [""] or "*" in hosts or "0.0.0.0" in hosts:
        if hosts != ["0.0.0.0"]:
            conv.note(here, INFO, f"{value!r} listens on every address, written 0.0.0.0:{port}")
        return f"0.0.0.0:{port}"
    if len(hosts) > 1:
        conv.note(
            here,
            WARN,
            f"pgwarden listens on one address or on all; {hosts[0]}:{port} is kept, "
            f"{', '.join(hosts[1:])} no longer listened on",
            fix=f"use 0.0.0.0:{port} (and pg_hba lines) to listen on all of them",
        )
    return f"{hosts[0]}:{port}"


def absolute(conv: Conversion, here: Path, value: object, workdir: str | None) -> object:
    """Patroni resolves relative paths against its working directory; pgwarden takes absolute ones."""
    if not isinstance(value, str) or os.path.isabs(value):
        return value
    if workdir is None:
        conv.note(
            here,
            ERROR,
            f"{value!r} is relative to the directory Patroni ran in",
            fix="give that directory with --workdir, or write the absolute path",
        )
        return value
    resolved = os.path.normpath(os.path.join(workdir, value))
    conv.note(here, INFO, f"{value!r} resolved against --workdir to {resolved}")
    return resolved


def map_postgresql(conv: Conversion, pg: object, workdir: str | None) -> None:
    if not isinstance(pg, Mapping):
        conv.note("postgresql", ERROR, "missing", fix="set postgresql.listen, data_dir and authentication")
        return
    src: Path = ("postgresql",)
    # Parameters last: a relative unix_socket_directories is read against the data directory.
    for key, value in sorted(pg.items(), key=lambda item: item[0] == "parameters"):
        here = (*src, str(key))
        if key == "listen":
            conv.put(("postgresql", "listen"), _listen(conv, here, value), here)
        elif key == "connect_address":
            conv.put(("postgresql", "connect_address"), value, here)
        elif key in ("data_dir", "bin_dir"):
            conv.put(("postgresql", str(key)), absolute(conv, here, value, workdir), here)
        elif key == "authentication" and isinstance(value, Mapping):
            _authentication(conv, here, value)
        elif key == "parameters" and isinstance(value, Mapping):
            map_parameters(conv, here, value, ("postgresql", "parameters"))
        elif key == "pg_hba":
            conv.put(("postgresql", "pg_hba"), value, here)
            conv.note(
                here,
                INFO,
                "these lines go between pgwarden's own first lines (the superuser over the "
                "local socket, replication from loopback) and its final loopback rule",
                ("postgresql", "pg_hba"),
            )
        elif key == "callbacks" and isinstance(value, Mapping):
            _callbacks(conv, here, value)
        elif key == "config_dir":
            if value and os.path.normpath(str(value)) != os.path.normpath(str(pg.get("data_dir", ""))):
                conv.note(
                    here,
                    ERROR,
                    "pgwarden keeps postgresql.conf and pg_hba.conf in the data directory",
                    fix="move the configuration files into data_dir before migrating",
                )
        elif key in ("use_pg_rewind", "remove_data_directory_on_rewind_failure",
                     "remove_data_directory_on_diverged_timelines", "use_slots"):  # fmt: skip
            conv.dropped(
                here,
                "a cluster-wide setting in pgwarden",
                fix="set it in the dynamic config (bootstrap.dcs, edit-config)",
            )
        else:
            conv.dropped(here, _POSTGRESQL_DROPPED.get(str(key), "no pgwarden equivalent"))
    for required in ("listen", "data_dir"):
        if required not in pg:
            conv.note((*src, required), ERROR, "missing", fix=f"set postgresql.{required} in the output")
    if "bin_dir" not in pg:
        conv.note(
            "postgresql.bin_dir", INFO, "not set: pgwarden's default /usr/lib/postgresql/15/bin applies"
        )


_POSTGRESQL_DROPPED = {
    "pgpass": "pgwarden gives passwords to libpq in the child's environment, never in a file",
    "create_replica_methods": "pgwarden clones with pg_basebackup only",
    "basebackup": "pgwarden runs pg_basebackup with its own options (-X stream -c fast, through the slot)",
    "recovery_conf": "restore_command and other recovery settings go into postgresql.parameters",
    "custom_conf": "pgwarden includes pgwarden.conf from postgresql.conf; move its settings to parameters",
    "pg_ident": "pgwarden does not write pg_ident.conf; the file in the data directory is kept as it is",
    "pg_ctl_timeout": "pgwarden's start and stop have their own bounds",
    "use_unix_socket": "the agent always connects through socket_dir",
    "use_unix_socket_repl": "standbys always stream over TCP",
    "proxy_address": "no service discovery of a pooler in pgwarden",
    "krbsrvname": "no Kerberos authentication between members",
    "pre_promote": "no pre-promote fencing hook",
    "before_stop": "no before-stop hook",
    "bin_name": "pgwarden runs the standard binary names in bin_dir",
    "retry_timeout": "a cluster-wide setting in pgwarden",
}


def _authentication(conv: Conversion, here: Path, users: Mapping[str, Any]) -> None:
    for user, creds in users.items():
        path = (*here, str(user))
        if not isinstance(creds, Mapping):
            conv.note(path, ERROR, "should be a mapping with username and password")
            continue
        if user in ("superuser", "replication"):
            for part in ("username", "password"):
                if part in creds:
                    conv.put(("postgresql", "authentication", str(user), part), creds[part], (*path, part))
        elif user == "rewind":
            conv.dropped(
                path,
                "pgwarden runs pg_rewind as the superuser; the rewind role stays in the database, unused",
                fix="drop the role once Patroni is gone for good",
                severity=INFO,
            )
        else:
            conv.dropped(path, "unknown user type")
        for part in creds:
            if part not in ("username", "password") and user in ("superuser", "replication"):
                conv.dropped(
                    (*path, str(part)),
                    "pgwarden connects to its peers without client TLS options",
                    fix="enforce TLS with hostssl lines in pg_hba instead",
                )


def _callbacks(conv: Conversion, here: Path, callbacks: Mapping[str, Any]) -> None:
    for event, command in callbacks.items():
        path = (*here, str(event))
        if event in _CALLBACKS:
            conv.put(("callbacks", str(event)), command, path)
        else:
            conv.dropped(path, "no such event in pgwarden", fix=f"use one of {', '.join(_CALLBACKS)}")
    if callbacks:
        conv.note(
            here,
            INFO,
            "run as `<command> <event> <role> <cluster>` as in Patroni; the role is "
            "primary or replica, and the environment holds no secrets (docs/configuration.md)",
            ("callbacks",),
        )


def map_tags(conv: Conversion, tags: object) -> None:
    if not isinstance(tags, Mapping):
        return
    for key, value in tags.items():
        here: Path = ("tags", str(key))
        if key in _KNOWN_TAGS:
            conv.put(here, value, here)
        elif key == "failover_priority":
            if value == 0:
                conv.put(("tags", "nofailover"), True, here)
                conv.note(
                    here,
                    INFO,
                    "Patroni reads 0 as never promote: written nofailover: true",
                    ("tags", "nofailover"),
                )
            else:
                conv.put(here, value, here)
        elif key == "nostream":
            # Only a true value asked for something pgwarden does not do.
            severity = WARN if value else INFO
            conv.dropped(here, "every pgwarden standby streams", severity=severity)
        else:
            conv.put(here, value, here)
