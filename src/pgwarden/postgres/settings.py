"""The configuration pgwarden owns: pgwarden.conf (included by postgresql.conf) and pg_hba.conf."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pgwarden.model.node import PostgresSettings
from pgwarden.model.parameters import GUC_NAME, INCLUDE_DIRECTIVES, OWNED, WAL_LEVELS, ParamValue
from pgwarden.postgres import foreign_conf
from pgwarden.postgres.commands import run_as_user
from pgwarden.postgres.conninfo import StandbyUpstream, make_conninfo

log = logging.getLogger(__name__)

CONF_FILE = "pgwarden.conf"
HBA_FILE = "pg_hba.conf"
INCLUDE_LINE = f"include '{CONF_FILE}'"
DEFAULT_SOCKET_DIR = "/var/run/postgresql"
STATE_MARKER = "# pgwarden-state: "
UPSTREAM_CONNECT_TIMEOUT = 5

_HEADER = (
    "# Managed by pgwarden and rewritten on every change: do not edit.\n"
    "# Set parameters in the cluster config (edit-config) or the node config instead.\n"
)
_HBA_PLAIN = re.compile(r"[A-Za-z0-9_.-]+")
_HBA_KEYWORDS = {"all", "sameuser", "samerole", "samegroup", "replication"}
_INCLUDE = re.compile(r"^\s*include\s*=?\s*'pgwarden\.conf'\s*(#.*)?$")

# Replication needs these; users may raise or change them (wal_level only to 'logical').
DEFAULTS: Mapping[str, ParamValue] = {
    "wal_level": "replica",
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "wal_keep_size": "128MB",
    "max_slot_wal_keep_size": "4GB",
    # pg_rewind needs hint bits WAL-logged when a cloned cluster lacks data checksums.
    "wal_log_hints": True,
    # A standby reports every second even when idle, so the primary can tell a standby that went
    # silent (cut off) from an idle one within a second or two (synchronous_fallback: degrade).
    "wal_receiver_status_interval": "1s",
    # After its upstream changes (failover, switchover), a standby's WAL receiver retries every
    # this long (PostgreSQL's default 5 s); a synchronous primary waits for it to commit anything.
    "wal_retrieve_retry_interval": "1s",
}


@dataclass(frozen=True, slots=True)
class ManagedConf:
    """The inputs of pgwarden.conf beyond the node settings, stored in the file itself so that a
    restarted agent renders the same file."""

    upstream: StandbyUpstream | None = None
    slot: str | None = None
    synchronous_standby_names: str = ""
    cluster_parameters: Mapping[str, ParamValue] = field(default_factory=dict)


def socket_dir(settings: PostgresSettings) -> str:
    return settings.socket_dir or DEFAULT_SOCKET_DIR


def quote(value: str) -> str:
    """A postgresql.conf string literal; line breaks cannot be represented and are refused."""
    if any(c in value for c in "\n\r\0"):
        raise ValueError(f"configuration values cannot contain line breaks: {value!r}")
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def render_value(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        return repr(value)
    return quote(value)


def render_line(name: str, value: ParamValue) -> str:
    """One ``name = value`` line of postgresql.conf; ValueError when the value cannot be one."""
    return f"{name} = {render_value(value)}"


def unusable(name: str, value: ParamValue) -> str | None:
    """Why ``name = value`` is never rendered, or None. The config validation refuses all of these;
    this keeps a value written to etcd behind its back from reaching the file."""
    key = name.lower()
    if not GUC_NAME.fullmatch(name):
        return "not a parameter name"
    if key in INCLUDE_DIRECTIVES:
        return "a directive that would include another file"
    if key in OWNED:
        return "pgwarden manages it"
    if key == "wal_level" and str(value).lower() not in WAL_LEVELS:
        return f"{value!r} would break replication"  # 'minimal' cannot stream WAL
    try:
        render_value(value)
    except ValueError:
        return "a value postgresql.conf cannot hold"
    return None


def merge_parameters(
    settings: PostgresSettings, cluster_parameters: Mapping[str, ParamValue]
) -> tuple[dict[str, ParamValue], dict[str, str]]:
    """Defaults, then the cluster's parameters, then the node's (later ones win), by lower-case
    name; and the names left out, each with the reason (the caller renders pgwarden's own)."""
    merged: dict[str, ParamValue] = {}
    ignored: dict[str, str] = {}
    for source in (DEFAULTS, cluster_parameters, settings.parameters):
        for name, value in source.items():
            why = unusable(name, value)
            if why is not None:
                ignored[name.lower() if GUC_NAME.fullmatch(name) else repr(name)[:40]] = why
                continue
            merged[name.lower()] = value
    return merged, ignored


def effective_parameters(
    settings: PostgresSettings, cluster_parameters: Mapping[str, ParamValue]
) -> dict[str, ParamValue]:
    """The parameters rendered into pgwarden.conf besides pgwarden's own (see merge_parameters)."""
    return merge_parameters(settings, cluster_parameters)[0]


def primary_conninfo(settings: PostgresSettings, member: str, upstream: StandbyUpstream) -> str:
    return make_conninfo(
        {
            "host": upstream.host,
            "port": upstream.port,
            "user": settings.replication.username,
            "password": settings.replication.password,
            "application_name": member,
            "connect_timeout": UPSTREAM_CONNECT_TIMEOUT,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 3,
        }
    )


def render_conf(
    settings: PostgresSettings,
    member: str,
    managed: ManagedConf,
    refused: Mapping[str, str] | None = None,
) -> str:
    """The full text of pgwarden.conf; ``refused`` (name -> PostgreSQL's message) are parameters the
    node's PostgreSQL rejected in a trial (parameter_check.py), left out so that it still starts."""
    data_dir = os.path.abspath(settings.data_dir)
    state = {
        "upstream": None
        if managed.upstream is None
        else {
            "name": managed.upstream.name,
            "host": managed.upstream.host,
            "port": managed.upstream.port,
        },
        "slot": managed.slot,
        "synchronous_standby_names": managed.synchronous_standby_names,
        "cluster_parameters": dict(managed.cluster_parameters),
    }
    conninfo = primary_conninfo(settings, member, managed.upstream) if managed.upstream else ""
    own: dict[str, ParamValue] = {
        "listen_addresses": settings.listen.host,
        "port": settings.listen.port,
        "unix_socket_directories": socket_dir(settings),
        "hba_file": os.path.join(data_dir, HBA_FILE),
        "hot_standby": True,
        "recovery_target_timeline": "latest",
        "primary_conninfo": conninfo,
        "primary_slot_name": managed.slot or "",
        "synchronous_standby_names": managed.synchronous_standby_names,
    }
    lines = [_HEADER + STATE_MARKER + json.dumps(state, sort_keys=True)]
    lines += [render_line(k, v) for k, v in own.items()]
    lines.append("\n# replication defaults, then cluster parameters, then node parameters")
    # cluster_name names the processes in ps; the user may choose another.
    merged, ignored = merge_parameters(settings, managed.cluster_parameters)
    merged = {"cluster_name": member, **merged}
    refused = refused or {}
    lines += [render_line(k, v) for k, v in merged.items() if k not in refused]
    for name, why in sorted(ignored.items()):
        lines.append(f"# ignored {name}: {why}")
    for name, message in sorted(refused.items()):
        if name in merged:
            lines.append(f"# refused {render_line(name, merged[name])}: {_one_line(message)}")
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def parse_managed(text: str) -> ManagedConf:
    """Read back the inputs stored by render_conf; an unreadable file gives the defaults."""
    for line in text.splitlines():
        if not line.startswith(STATE_MARKER):
            continue
        try:
            state = json.loads(line[len(STATE_MARKER) :])
            up = state.get("upstream")
            return ManagedConf(
                upstream=StandbyUpstream(str(up["name"]), str(up["host"]), int(up["port"])) if up else None,
                slot=state.get("slot") or None,
                synchronous_standby_names=str(state.get("synchronous_standby_names") or ""),
                cluster_parameters=dict(state.get("cluster_parameters") or {}),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return ManagedConf()
    return ManagedConf()


def _hba_token(name: str) -> str:
    if any(c in name for c in '"\n\r\0') or not name:
        raise ValueError(f"user name cannot be used in pg_hba.conf: {name!r}")
    if _HBA_PLAIN.fullmatch(name) and name.lower() not in _HBA_KEYWORDS:
        return name
    return f'"{name}"'


def render_hba(settings: PostgresSettings) -> str:
    """The full text of pg_hba.conf: loopback only, plus the lines the node config adds."""
    superuser = _hba_token(settings.superuser.username)
    replication = _hba_token(settings.replication.username)
    for line in settings.pg_hba:
        if any(c in line for c in "\n\r\0"):
            raise ValueError(f"pg_hba line cannot contain line breaks: {line!r}")
    rows = [
        _HEADER.rstrip("\n"),
        "# TYPE  DATABASE     USER  ADDRESS  METHOD",
        f"local   all          {superuser}  scram-sha-256",
        f"host    replication  {replication}  127.0.0.0/8  scram-sha-256",
        *settings.pg_hba,
        "host    all          all  127.0.0.0/8  scram-sha-256",
    ]
    return "\n".join(rows) + "\n"


def write_atomically(settings: PostgresSettings, path: str | Path, text: str) -> bool:
    """Replace ``path`` with ``text`` (tmp + rename, 0600, owned by the PostgreSQL user).

    Returns whether the content changed.
    """
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        if path.read_text() == text:
            return False
    tmp = path.with_name(f".{path.name}.pgwarden-{os.getpid()}.tmp")
    user = run_as_user(settings)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            if user is not None:
                os.fchown(f.fileno(), user.uid, user.gid)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


def ensure_include(settings: PostgresSettings) -> bool:
    """Append ``include 'pgwarden.conf'`` to postgresql.conf once; returns whether it changed.

    A postgresql.conf Patroni wrote is first replaced by the original it includes (foreign_conf).
    """
    path = Path(settings.data_dir) / "postgresql.conf"
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = ""
    if any(_INCLUDE.match(line) for line in text.splitlines()):
        return False
    original = foreign_conf.original_text(Path(settings.data_dir), text)
    if original is not None:
        text = original[0]
        log.warning(
            "postgresql.conf was written by Patroni: replaced by the original it included (%s, "
            "left in place for the way back), plus pgwarden's include",
            original[1],
        )
    if text and not text.endswith("\n"):
        text += "\n"
    return write_atomically(settings, path, text + INCLUDE_LINE + "\n")


def write_all(
    settings: PostgresSettings,
    member: str,
    managed: ManagedConf,
    refused: Mapping[str, str] | None = None,
) -> bool:
    """Write pgwarden.conf, pg_hba.conf and the include line; returns whether anything changed."""
    data_dir = Path(settings.data_dir)
    text = render_conf(settings, member, managed, refused)
    changed = write_atomically(settings, data_dir / CONF_FILE, text)
    changed |= write_atomically(settings, data_dir / HBA_FILE, render_hba(settings))
    changed |= ensure_include(settings)
    return changed


def read_managed(settings: PostgresSettings) -> ManagedConf:
    try:
        return parse_managed((Path(settings.data_dir) / CONF_FILE).read_text())
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return ManagedConf()
