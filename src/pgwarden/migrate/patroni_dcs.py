"""Patroni's dynamic configuration (``bootstrap.dcs``, or a running cluster's ``GET /config``)
mapped onto pgwarden's, flattened into pgwarden's own shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pgwarden.migrate.conversion import Conversion, Path
from pgwarden.migrate.notes import Severity
from pgwarden.migrate.patroni_params import map_parameters

DCS: Path = ("bootstrap", "dcs")
_RENAMED = {"master_start_timeout": "primary_start_timeout"}
# Why a Patroni key has no place in pgwarden's dynamic config, for when the validator refuses it.
EXPLAINED: Mapping[str, tuple[Severity, str]] = {
    "check_timeline": (
        Severity.INFO,
        "pgwarden compares every candidate's timeline with etcd's history anyway",
    ),
    "max_timelines_history": (Severity.INFO, "pgwarden keeps the history from the migration on"),
    "primary_stop_timeout": (Severity.WARNING, "a switchover's stop is bounded by pgwarden's own timeout"),
    "master_stop_timeout": (Severity.WARNING, "a switchover's stop is bounded by pgwarden's own timeout"),
    "standby_cluster": (Severity.ERROR, "pgwarden does not run standby clusters"),
    "slots": (
        Severity.WARNING,
        "pgwarden has no permanent slots: member_slots_ttl after its agent started, its leader drops "
        "an inactive physical slot that belongs to no member (logical slots are left alone); keep "
        "such a slot's consumer connected, or recreate the slot",
    ),
    "ignore_slots": (
        Severity.INFO,
        "pgwarden never touches logical slots, and manages only members' physical ones",
    ),
    "postgresql.use_slots": (Severity.INFO, "pgwarden always streams each member through its own slot"),
    "postgresql.recovery_conf": (
        Severity.WARNING,
        "a standby's recovery settings (restore_command, ...) go into parameters",
    ),
    "postgresql.pg_ident": (
        Severity.INFO,
        "pgwarden does not write pg_ident.conf; the file is kept as it is",
    ),
    "postgresql.remove_data_directory_on_rewind_failure": (
        Severity.INFO,
        "remove_data_directory_on_diverged_timelines also covers a failed rewind in pgwarden",
    ),
    "pause": (
        Severity.INFO,
        "pgwarden starts unpaused, adopting each PostgreSQL as it runs (`pgwarden pause` later if wanted)",
    ),
}


def map_dcs(conv: Conversion, src: Path, dcs: Mapping[str, Any]) -> None:
    """Write pgwarden's bootstrap.dcs from Patroni's dynamic config found at ``src``."""
    conv.put(DCS, {}, src)
    for key, value in dcs.items():
        here = (*src, str(key))
        if key == "postgresql" and isinstance(value, Mapping):
            _nested(conv, here, value)
        elif key == "pause":
            _explain(conv, here, "pause")
        else:
            name = _RENAMED.get(str(key), str(key))
            conv.put((*DCS, name), value, here)
            if name != key:
                conv.note(here, Severity.INFO, f"renamed {name}", (*DCS, name))


def _nested(conv: Conversion, here: Path, section: Mapping[str, Any]) -> None:
    """Patroni nests PostgreSQL's part under ``postgresql:``; pgwarden keeps it at the top."""
    for key, value in section.items():
        path = (*here, str(key))
        if key == "parameters" and isinstance(value, Mapping):
            map_parameters(conv, path, value, (*DCS, "parameters"))
        elif key == "pg_hba":
            if conv.get(("postgresql", "pg_hba")) is None:
                conv.put(("postgresql", "pg_hba"), value, path)
                conv.note(
                    path,
                    Severity.INFO,
                    "pgwarden keeps pg_hba in each node's config",
                    ("postgresql", "pg_hba"),
                )
            else:
                conv.dropped(
                    path, "the node's own postgresql.pg_hba wins, as in Patroni", severity=Severity.INFO
                )
        elif key == "use_slots":  # pgwarden accepts only true, and always behaves so: nothing to carry
            _explain(conv, path, "postgresql.use_slots")
        elif key in ("use_pg_rewind", "remove_data_directory_on_diverged_timelines"):
            conv.put((*DCS, str(key)), value, path)
        else:
            conv.put((*DCS, "postgresql", str(key)), value, path)  # the validator judges it


def _explain(conv: Conversion, here: Path, key: str) -> None:
    severity, why = EXPLAINED[key]
    conv.dropped(here, why, severity=severity)


def explanation(source: Path) -> tuple[Severity, str] | None:
    """Why a dynamic-config key the validator refused has no pgwarden equivalent, when known."""
    rest = source[2:] if source[:2] == DCS else source[1:]  # bootstrap.dcs.X, or --dcs's dcs.X
    return EXPLAINED.get(".".join(rest))
