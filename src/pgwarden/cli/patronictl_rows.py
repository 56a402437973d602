"""``list``/``topology -f json|yaml|tsv``: patronictl 4.1.5's row objects, so a script parsing
``patronictl list -f json`` reads pgwarden's unchanged.

Built from ``GET /cluster``'s document (documents/render.py), which is already Patroni's shape,
the way patronictl builds its rows from its own: one object per member with the columns
``Cluster``, ``Member``, ``Host``, ``Role``, ``State``, ``TL``, ``Receive LSN``, ``Receive Lag``
(MB), ``Replay LSN``, ``Replay Lag`` (MB), then ``Pending restart``, ``Pending restart reason``,
``Scheduled restart`` and ``Tags`` when ``-e`` asks or a member has one. In json and yaml an empty
cell is left out of its object, as patronictl does. pgwarden's own member document stays with
``pgwarden members -f json``.
"""

from __future__ import annotations

from typing import Any

import yaml

from pgwarden.documents.render import cluster_document, tags_document
from pgwarden.documents.shapes import MemberDoc
from pgwarden.model import ClusterView
from pgwarden.model.cluster import Tags

COLUMNS = [
    "Cluster",
    "Member",
    "Host",
    "Role",
    "State",
    "TL",
    "Receive LSN",
    "Receive Lag",
    "Replay LSN",
    "Replay Lag",
]
OPTIONAL_COLUMNS = ["Pending restart", "Pending restart reason", "Scheduled restart", "Tags"]
DEFAULT_PORT = 5432  # patronictl shows host:port only when a port differs or hosts repeat


def patronictl_rows(view: ClusterView, extended: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """Every member's row (cells patronictl leaves empty are ``""``) and the columns shown."""
    members = cluster_document(view)["members"]
    rows = [_row(view.name, m) for m in members]
    with_port = any(m["port"] != DEFAULT_PORT for m in members) or len({m["host"] for m in members}) < len(
        members
    )
    for row, member in zip(rows, members, strict=True):
        row["Host"] = f"{member['host']}:{member['port']}" if with_port and member["host"] else member["host"]
    shown = [c for c in OPTIONAL_COLUMNS if extended or any(row[c] for row in rows)]
    return rows, COLUMNS + shown


def as_objects(rows: list[dict[str, Any]], columns: list[str]) -> list[dict[str, Any]]:
    """patronictl's ``-f json|yaml``: each row's columns in order, empty cells left out."""
    return [{c: row[c] for c in columns if str(row[c])} for row in rows]


def as_tsv_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """patronictl's ``-f tsv``: tags in YAML's flow style (``{nofailover: true}``)."""
    return [{**row, "Tags": _flow(row["Tags"])} for row in rows]


def _row(cluster: str, member: MemberDoc) -> dict[str, Any]:
    reason = member.get("pending_restart_reason") or {}
    scheduled = member.get("scheduled_restart")
    row: dict[str, Any] = {
        "Cluster": cluster,
        "Member": member["name"],
        "Host": member["host"],
        "Role": member["role"].replace("_", " ").title(),
        "State": member["state"],
        "TL": member["timeline"] if member["timeline"] is not None else "",
        "Pending restart": "*" if member.get("pending_restart") else "",
        "Pending restart reason": "\n".join(
            f"{name}: {change['old_value']}->{change['new_value']}" for name, change in reason.items()
        ),
        "Scheduled restart": scheduled["schedule"] if scheduled else "",
        "Tags": _set_tags(member),
    }
    for kind in ("receive", "replay"):
        # The leader has no positions (Patroni leaves them out); a standby's unknown one is "unknown".
        lsn_key, lag_key = f"{kind}_lsn", f"{kind}_lag"
        lsn, lag = member.get(lsn_key, ""), member.get(lag_key)
        row[f"{kind.title()} LSN"] = "unknown" if lsn is None else lsn
        row[f"{kind.title()} Lag"] = round(lag / 1024 / 1024) if isinstance(lag, int) else ""
    return row


def _set_tags(member: MemberDoc) -> dict[str, Any] | str:
    """The tags set to something else than their default ("" if none): Patroni shows only the tags
    configured, where pgwarden's documents show the four HA tags always."""
    defaults: dict[str, Any] = dict(tags_document(Tags()))
    tags: dict[str, Any] = dict(member.get("tags") or {})
    return {k: v for k, v in tags.items() if k not in defaults or defaults[k] != v} or ""


def _flow(tags: dict[str, Any] | str) -> str:
    return yaml.safe_dump(tags, default_flow_style=True).strip() if tags else ""
