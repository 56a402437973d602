"""Applies ``PGWARDEN_...`` environment variables onto the raw node config before validation.

Only the variables listed in ``ENV_VARIABLES`` are read; each replaces one value of the YAML tree
(creating the sections it needs). Any other variable starting with ``PGWARDEN_`` is ignored
without error, so that tools may keep their own ``PGWARDEN_...`` settings in the same environment.
Values are taken as written (an empty value sets an empty string, which validation then judges);
``PGWARDEN_ETCD_HOSTS`` is a comma-separated list such as ``127.0.0.21:2379,127.0.0.22:2379``, and
so are ``PGWARDEN_API_ALLOWLIST`` (``192.0.2.0/28,198.51.100.0/24``) and ``PGWARDEN_MEMBER_NETWORKS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pgwarden.config.explain import Loc

# An explicit table, because keys such as data_dir contain underscores themselves.
ENV_VARIABLES: Mapping[str, tuple[str, ...]] = {
    "PGWARDEN_CLUSTER": ("cluster",),
    "PGWARDEN_NAME": ("name",),
    "PGWARDEN_LOG_LEVEL": ("log_level",),
    "PGWARDEN_LOG_FORMAT": ("log_format",),
    "PGWARDEN_ETCD_HOSTS": ("etcd", "hosts"),
    "PGWARDEN_ETCD_PREFIX": ("etcd", "prefix"),
    "PGWARDEN_ETCD_BIND_ADDRESS": ("etcd", "bind_address"),
    "PGWARDEN_ETCD_PROTOCOL": ("etcd", "protocol"),
    "PGWARDEN_ETCD_CACERT": ("etcd", "cacert"),
    "PGWARDEN_ETCD_CERT": ("etcd", "cert"),
    "PGWARDEN_ETCD_KEY": ("etcd", "key"),
    "PGWARDEN_ETCD_USERNAME": ("etcd", "username"),
    "PGWARDEN_ETCD_PASSWORD": ("etcd", "password"),
    "PGWARDEN_MEMBER_NETWORKS": ("member_networks",),
    "PGWARDEN_API_LISTEN": ("api", "listen"),
    "PGWARDEN_API_CONNECT_ADDRESS": ("api", "connect_address"),
    "PGWARDEN_API_AUTH_USERNAME": ("api", "auth", "username"),
    "PGWARDEN_API_AUTH_PASSWORD": ("api", "auth", "password"),
    "PGWARDEN_API_TLS_CERTFILE": ("api", "tls", "certfile"),
    "PGWARDEN_API_TLS_KEYFILE": ("api", "tls", "keyfile"),
    "PGWARDEN_API_TLS_CAFILE": ("api", "tls", "cafile"),
    "PGWARDEN_API_TLS_VERIFY_CLIENT": ("api", "tls", "verify_client"),
    "PGWARDEN_API_ALLOWLIST": ("api", "allowlist"),
    "PGWARDEN_POSTGRESQL_LISTEN": ("postgresql", "listen"),
    "PGWARDEN_POSTGRESQL_CONNECT_ADDRESS": ("postgresql", "connect_address"),
    "PGWARDEN_POSTGRESQL_DATA_DIR": ("postgresql", "data_dir"),
    "PGWARDEN_POSTGRESQL_BIN_DIR": ("postgresql", "bin_dir"),
    "PGWARDEN_POSTGRESQL_RUN_AS": ("postgresql", "run_as"),
    "PGWARDEN_POSTGRESQL_SOCKET_DIR": ("postgresql", "socket_dir"),
    "PGWARDEN_WATCHDOG_MODE": ("watchdog", "mode"),
    "PGWARDEN_WATCHDOG_DEVICE": ("watchdog", "device"),
    "PGWARDEN_POSTGRESQL_AUTHENTICATION_SUPERUSER_USERNAME": (
        "postgresql",
        "authentication",
        "superuser",
        "username",
    ),
    "PGWARDEN_POSTGRESQL_AUTHENTICATION_SUPERUSER_PASSWORD": (
        "postgresql",
        "authentication",
        "superuser",
        "password",
    ),
    "PGWARDEN_POSTGRESQL_AUTHENTICATION_REPLICATION_USERNAME": (
        "postgresql",
        "authentication",
        "replication",
        "username",
    ),
    "PGWARDEN_POSTGRESQL_AUTHENTICATION_REPLICATION_PASSWORD": (
        "postgresql",
        "authentication",
        "replication",
        "password",
    ),
}


def apply_env(data: Mapping[str, Any], env: Mapping[str, str]) -> tuple[dict[str, Any], dict[Loc, str]]:
    """A copy of ``data`` with the listed variables applied, and which path each one set."""
    tree: dict[str, Any] = plain(data)
    applied: dict[Loc, str] = {}
    for variable, path in ENV_VARIABLES.items():
        if variable not in env:
            continue
        section: Any = tree
        for key in path[:-1]:
            section = section.setdefault(key, {}) if isinstance(section, dict) else None
        if isinstance(section, dict):
            section[path[-1]] = env[variable]
            applied[path] = variable
        # else: the file has a non-mapping where a section belongs; validation reports that.
    return tree, applied


def plain(value: Any) -> Any:
    """A deep copy made of dicts and lists, so that callers' mappings are never modified."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value
