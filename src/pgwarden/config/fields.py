"""Field types shared by the config schemas: addresses, names, sizes, paths, commands and hba lines."""

from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Annotated, Any, NoReturn

from pydantic import PlainValidator
from pydantic_core import PydanticCustomError

from pgwarden.model.node import Address

# Member and cluster names become etcd keys and (sanitised) replication slot names.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")
# PostgreSQL memory units are case-sensitive and it passes the string on unchanged.
_PG_SIZE = re.compile(r"-1|\d+\s*(B|kB|MB|GB|TB)?")
_BYTE_SIZE = re.compile(r"(\d+)\s*([kmgt]?b)?", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "*"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")


def reject(problem: str, fix: str) -> NoReturn:
    """Fail validation with a problem and a fix; explain.py turns them into a ConfigIssue."""
    raise PydanticCustomError("pgwarden", "{problem}", {"problem": problem, "fix": fix})


def shown(value: object) -> str:
    """``value`` as it appears in an error message: its repr, cut at 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_address(value: object) -> Address:
    """Parse ``host:port`` (IPv6 as ``[::1]:5432``) into an Address; the host keeps no brackets."""
    fix = "write it as host:port, e.g. 127.0.0.1:5432 (IPv6: [::1]:5432)"
    if not isinstance(value, str):
        reject(f"expected a host:port string, got {shown(value)}", fix)
    host, sep, port_text = value.strip().rpartition(":")
    if not sep or not host:
        reject(f"{shown(value)} is not host:port (the port is missing)", fix)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            reject(f"{shown(value)}: [{host}] is not an IPv6 address", fix)
    elif ":" in host:
        reject(f"{shown(value)}: an IPv6 address needs brackets", fix)
    elif host != "*" and not _HOSTNAME.fullmatch(host):
        reject(f"{shown(value)}: {host!r} is not a host name or IP address", fix)
    if not port_text.isdecimal() or not 1 <= int(port_text) <= 65535:
        reject(f"{shown(value)}: port {port_text!r} is not a number from 1 to 65535", fix)
    return Address(host, int(port_text))


def _name(value: object) -> str:
    fix = "use letters, digits, '_', '.' and '-', starting with a letter or digit, e.g. node1"
    if not isinstance(value, str):
        reject(f"expected a name, got {shown(value)}", fix)
    if not _NAME.fullmatch(value):
        reject(f"{value!r} is not a valid name (it becomes an etcd key and a slot name)", fix)
    return value


def _non_empty(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        reject(f"expected a non-empty string, got {shown(value)}", "write a value, quoted if unsure")
    return value


def _absolute_path(value: object) -> str:
    fix = "give an absolute path, one that starts with /"
    if not isinstance(value, str) or not value.startswith("/"):
        # Relative paths would depend on the agent's working directory; with
        # remove_data_directory_on_diverged_timelines that could delete the wrong directory.
        reject(f"expected an absolute path, got {shown(value)}", fix)
    return value.rstrip("/") or "/"


def _ip_address(value: object) -> str:
    if not isinstance(value, str):
        reject(f"expected an IP address, got {shown(value)}", "write an IP address, e.g. 127.0.0.11")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        reject(f"{value!r} is not an IP address", "write an IP address, e.g. 127.0.0.11")


def _etcd_prefix(value: object) -> str:
    fix = "write a key prefix starting with '/', e.g. /pgwarden"
    if not isinstance(value, str) or not value.startswith("/") or not value.strip("/"):
        reject(f"expected a key prefix like /pgwarden, got {shown(value)}", fix)
    return value.rstrip("/")


def _log_level(value: object) -> str:
    fix = f"use one of {', '.join(LOG_LEVELS)}"
    if not isinstance(value, str) or value.upper() not in LOG_LEVELS:
        reject(f"unknown log level {shown(value)}", fix)
    return value.upper()


def _log_format(value: object) -> str:
    fix = f"use one of {', '.join(LOG_FORMATS)}"
    if not isinstance(value, str) or value.lower() not in LOG_FORMATS:
        reject(f"unknown log format {shown(value)}", fix)
    return value.lower()


def parse_byte_size(value: object) -> int:
    """Bytes from an int or a size string such as ``16MB`` or ``1 GB`` (1024-based, any case)."""
    fix = "write a number of bytes or a size such as 16MB or 1GB"
    if isinstance(value, bool):
        reject(f"expected a size in bytes, got {value!r}", fix)
    if isinstance(value, int):
        if value < 0:
            reject(f"a size cannot be negative ({value})", fix)
        return value
    if isinstance(value, str) and (match := _BYTE_SIZE.fullmatch(value.strip())):
        return int(match.group(1)) * _UNITS[(match.group(2) or "b").lower()]
    reject(f"expected a size in bytes, got {shown(value)}", fix)


def _pg_size(value: object) -> str:
    fix = "write a PostgreSQL size such as 4GB, 512MB or -1 (units are case-sensitive: kB, MB, GB, TB)"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # PostgreSQL reads a bare number as megabytes here
    if isinstance(value, str) and _PG_SIZE.fullmatch(value.strip()):
        return value.strip()
    reject(f"expected a PostgreSQL size, got {shown(value)}", fix)


def _hba_line(value: object) -> str:
    fix = 'write one pg_hba.conf line per item, e.g. "host all all 127.0.0.0/8 scram-sha-256"'
    if not isinstance(value, str) or not value.strip():
        reject(f"expected one pg_hba.conf line, got {shown(value)}", fix)
    if any(c in value for c in "\n\r\0"):
        # Each would split or end the line inside pg_hba.conf: the agent could never render it.
        reject(f"{shown(value)} contains a line break, carriage return or NUL byte", fix)
    return value.strip()


def _command(value: object) -> str:
    fix = "write the command as in a shell, e.g. /usr/local/bin/pgbouncer-follow --quiet"
    if not isinstance(value, str) or not value.strip():
        reject(f"expected a command (a non-empty string), got {shown(value)}", fix)
    try:
        words = shlex.split(value)
    except ValueError as exc:
        reject(f"{shown(value)} cannot be split into words: {exc}", fix)
    if not words:
        reject(f"{shown(value)} names no program", fix)
    return value.strip()


WATCHDOG_MODES = ("off", "automatic", "required")
# Patroni's spellings; YAML reads a bare `off` as false.
_WATCHDOG_ALIASES = {"auto": "automatic", "require": "required", "disable": "off", "disabled": "off"}


def _watchdog_mode(value: object) -> str:
    fix = "write off, automatic or required"
    if value is False:
        return "off"
    if not isinstance(value, str):
        reject(f"expected a watchdog mode, got {shown(value)}", fix)
    mode = _WATCHDOG_ALIASES.get(value.strip().lower(), value.strip().lower())
    if mode not in WATCHDOG_MODES:
        reject(f"{value!r} is not a watchdog mode", fix)
    return mode


def scalar_text(value: Any) -> str | None:
    """A custom tag value as text (booleans as true/false), or None when it is not a scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


AddressField = Annotated[Address, PlainValidator(parse_address)]
Name = Annotated[str, PlainValidator(_name)]
NonEmpty = Annotated[str, PlainValidator(_non_empty)]
AbsolutePath = Annotated[str, PlainValidator(_absolute_path)]
IpAddress = Annotated[str, PlainValidator(_ip_address)]
EtcdPrefix = Annotated[str, PlainValidator(_etcd_prefix)]
LogLevel = Annotated[str, PlainValidator(_log_level)]
LogFormat = Annotated[str, PlainValidator(_log_format)]
ByteSize = Annotated[int, PlainValidator(parse_byte_size)]
PgSize = Annotated[str, PlainValidator(_pg_size)]
HbaLine = Annotated[str, PlainValidator(_hba_line)]
Command = Annotated[str, PlainValidator(_command)]
WatchdogMode = Annotated[str, PlainValidator(_watchdog_mode)]
