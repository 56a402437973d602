"""PostgreSQL parameters from Patroni's config: kept, except those pgwarden sets itself or that
PostgreSQL 15 no longer knows under Patroni's spelling."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pgwarden.migrate.conversion import Conversion, Path
from pgwarden.migrate.notes import Severity
from pgwarden.model.parameters import owned

_SEGMENT_MB = 16  # wal_keep_segments counted 16MB segments; PostgreSQL 13 replaced it by a size


def map_parameters(
    conv: Conversion,
    here: Path,
    params: Mapping[str, Any],
    target: Path,
) -> None:
    """Copy ``params`` to ``target``, noting each one changed or left out."""
    kept: dict[str, Any] = {}
    for name, value in params.items():
        path = (*here, str(name))
        key = str(name).lower()
        if key == "unix_socket_directories":
            _socket_dir(conv, path, value)
        elif (reason := owned(key)) is not None:
            conv.dropped(path, f"pgwarden sets it itself: {reason.why}", severity=Severity.INFO)
        elif key == "wal_level" and str(value).lower() in ("hot_standby", "archive"):
            kept[str(name)] = "replica"
            conv.note(
                path, Severity.INFO, f"{value!r} is PostgreSQL's old name for replica", (*target, str(name))
            )
        elif key == "wal_keep_segments":
            size = f"{int(value) * _SEGMENT_MB}MB" if str(value).isdigit() else value
            kept["wal_keep_size"] = size
            conv.note(
                path,
                Severity.INFO,
                f"PostgreSQL 13 replaced it by wal_keep_size: {size}",
                (*target, "wal_keep_size"),
            )
        else:
            kept[str(name)] = value
    if kept:
        conv.put(target, {**(conv.get(target) or {}), **kept}, here)


def _socket_dir(conv: Conversion, path: Path, value: object) -> None:
    """The first of unix_socket_directories becomes socket_dir; PostgreSQL reads a relative one
    against the data directory."""
    first = str(value).split(",")[0].strip() if value is not None else ""
    if not first:
        conv.dropped(path, "empty: no unix socket", fix="set postgresql.socket_dir")
        return
    if conv.get(("postgresql", "socket_dir")) is not None:
        conv.dropped(path, "the node's own value is used", severity=Severity.INFO)
        return
    if not os.path.isabs(first):
        data_dir = conv.get(("postgresql", "data_dir"))
        if not isinstance(data_dir, str) or not os.path.isabs(data_dir):
            conv.note(
                path,
                Severity.ERROR,
                f"{first!r} is relative to the data directory, itself unknown",
                fix="write postgresql.socket_dir as an absolute path",
            )
            return
        first = os.path.normpath(os.path.join(data_dir, first))
    more = ", the others are not used" if "," in str(value) else ""
    conv.put(("postgresql", "socket_dir"), first, path)
    conv.note(path, Severity.INFO, f"the agent connects through it{more}", ("postgresql", "socket_dir"))
