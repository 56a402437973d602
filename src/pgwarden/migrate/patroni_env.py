"""Patroni's ``PATRONI_*`` environment variables, applied onto its YAML the way Patroni reads them.

A node whose Patroni took settings (often the passwords) from its environment converts to the same
node config as one that had them in the file; each variable read is reported, so the operator
learns the ``PGWARDEN_*`` name that replaces it (convert.py names it once the key is mapped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

PREFIX = "PATRONI_"
# PATRONI_<SECTION>_<KEY> for these sections sets <section>.<key> (Patroni's own list of keys).
_SECTION_KEYS: Mapping[str, tuple[str, ...]] = {
    "restapi": (
        "listen", "connect_address", "certfile", "keyfile", "keyfile_password", "cafile", "ciphers",
        "verify_client", "http_extra_headers", "https_extra_headers", "allowlist",
        "allowlist_include_members", "request_queue_size", "server_tokens",
    ),
    "ctl": ("insecure", "cacert", "certfile", "keyfile", "keyfile_password"),
    "postgresql": (
        "listen", "connect_address", "proxy_address", "config_dir", "data_dir", "pgpass", "bin_dir",
    ),
    "log": ("type", "level", "traceback_level", "format", "dateformat", "dir", "file_size", "file_num"),
}  # fmt: skip
_TOP = ("name", "namespace", "scope")
_USERS = ("superuser", "replication", "rewind")
_AUTH = (
    "username", "password", "sslmode", "sslkey", "sslpassword", "sslcert", "sslrootcert", "sslcrl",
    "sslcrlverify", "gssencmode", "channel_binding",
)  # fmt: skip
_DCS_KEYS = (
    "host", "hosts", "port", "protocol", "cacert", "cert", "key", "key_password", "username",
    "password", "url", "proxy", "srv", "srv_suffix", "use_proxies", "verify", "token",
)  # fmt: skip
# PATRONI_<STORE>_<KEY>; Patroni's PATRONI_<user>_PASSWORD (roles made at bootstrap) is not one.
_STORES = ("etcd", "etcd3", "consul", "zookeeper", "exhibitor", "kubernetes", "raft")
_LISTS = {("restapi", "allowlist")}
_BOOLS = {
    ("restapi", "allowlist_include_members"),
    ("ctl", "insecure"),
    ("etcd", "use_proxies"),
    ("etcd3", "use_proxies"),
}
CONFIGURATION = PREFIX + "CONFIGURATION"


@dataclass(frozen=True, slots=True)
class EnvRead:
    """One variable applied: which one, and the Patroni key it set (empty for the whole file)."""

    variable: str
    path: tuple[str, ...]


def patroni_variables(env: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name.startswith(PREFIX)}


def target_of(variable: str) -> tuple[str, ...] | None:
    """The Patroni key a variable sets, or None for one Patroni does not read as a setting."""
    rest = variable[len(PREFIX) :].lower()
    if rest in _TOP:
        return (rest,)
    if rest in ("restapi_username", "restapi_password"):
        return ("restapi", "authentication", rest.split("_", 1)[1])
    for user in _USERS:
        if rest.startswith(user + "_") and rest[len(user) + 1 :] in _AUTH:
            return ("postgresql", "authentication", user, rest[len(user) + 1 :])
    for section, keys in _SECTION_KEYS.items():
        if rest.startswith(section + "_") and rest[len(section) + 1 :] in keys:
            return (section, rest[len(section) + 1 :])
    section, _, key = rest.partition("_")
    if section in _STORES and key in _DCS_KEYS:
        return (section, key)  # etcd, etcd3, or another store convert.py then refuses
    return None


def apply_patroni_env(
    tree: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[dict[str, Any], list[EnvRead], list[str]]:
    """``tree`` with the PATRONI_* variables of ``env`` applied; what was read; what was not.

    ``PATRONI_CONFIGURATION`` (a whole YAML document) replaces the file, as in Patroni.
    """
    variables = patroni_variables(env)
    reads: list[EnvRead] = []
    result: dict[str, Any] = _copy(tree)
    if CONFIGURATION in variables:
        loaded = yaml.safe_load(variables.pop(CONFIGURATION))
        result = _copy(loaded) if isinstance(loaded, Mapping) else {}
        reads.append(EnvRead(CONFIGURATION, ()))
    ignored: list[str] = []
    for variable in sorted(variables):
        path = target_of(variable)
        if path is None:
            ignored.append(variable)
            continue
        section: dict[str, Any] = result
        for key in path[:-1]:
            child = section.get(key)
            if not isinstance(child, dict):
                child = section[key] = {}
            section = child
        section[path[-1]] = _typed(path, variables[variable])
        reads.append(EnvRead(variable, path))
    return result, reads, ignored


def _typed(path: tuple[str, ...], value: str) -> Any:
    # Patroni parses a few variables into YAML values; everything else stays a string.
    key = path[-2:] if len(path) >= 2 else path
    if key in _LISTS or path[-1] == "hosts":
        text = value if value.strip().startswith(("-", "[")) else f"[{value}]"
        loaded = yaml.safe_load(text)
        return loaded if isinstance(loaded, list) else value
    if key in _BOOLS:
        return value.strip().lower() in ("1", "true", "on", "yes")
    if path[-1] == "port" and value.strip().isdigit():
        return int(value)
    return value


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
