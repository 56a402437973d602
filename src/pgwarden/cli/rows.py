"""The rows of ``list`` and ``history`` for ``-f tsv``: one dict per member or promotion, keyed by
column name, built from the same documents the tables and ``-f json`` show (cli/views.py)."""

from __future__ import annotations

from typing import Any

from pgwarden.cli.views import member_document
from pgwarden.model.cluster import ClusterView

MEMBER_COLUMNS = ["Cluster", "Member", "Host", "Role", "State", "TL", "LSN", "Lag in MB"]
EXTENDED_COLUMNS = ["Pending restart", "Pending restart reason", "Scheduled restart", "Tags"]
HISTORY_COLUMNS = ["TL", "LSN", "Reason", "Timestamp", "New Leader"]


def member_columns(extended: bool) -> list[str]:
    return MEMBER_COLUMNS + (EXTENDED_COLUMNS if extended else [])


def member_rows(view: ClusterView) -> list[dict[str, Any]]:
    """Every column of every member (``member_columns`` picks which are printed)."""
    rows = []
    for member in view.members:
        doc = member_document(view, member)
        reason = doc["pending_restart_reason"]
        rows.append(
            {
                "Cluster": view.name,
                "Member": doc["name"],
                "Host": f"{doc['host']}:{doc['port']}",
                "Role": doc["role"],
                "State": doc["state"],
                "TL": doc["timeline"],
                "LSN": doc["lsn"],
                "Lag in MB": None if doc["leader"] else _mb(doc["lag_mb"]),
                "Pending restart": "*" if doc["pending_restart"] else None,
                "Pending restart reason": ", ".join(
                    f"{name}: {change['old_value']}->{change['new_value']}" for name, change in reason.items()
                )
                or None,
                "Scheduled restart": doc["scheduled_restart"],
                "Tags": ", ".join(f"{k}={v}" for k, v in doc["tags"].items()) or None,
            }
        )
    return rows


def _mb(value: float | None) -> float | int | str:
    """As the table shows it: 0 and 2, not 0.0 and 2.0; unknown when a position is missing."""
    if value is None:
        return "unknown"
    return int(value) if float(value).is_integer() else value


def history_rows(view: ClusterView) -> list[dict[str, Any]]:
    return [
        {
            "TL": h.timeline,
            "LSN": str(h.switch_lsn),
            "Reason": h.reason,
            "Timestamp": h.timestamp,
            "New Leader": h.new_leader,
        }
        for h in view.history
    ]
