"""What ``list``, ``topology`` and ``history`` show, from a ClusterView: JSON documents and rich renderables.

Pure: a view in, a value out, so the tables are tested on views built by hand. Dates, tags, lag,
intents and history entries come from ``pgwarden.documents.render``, as in the REST API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, JustifyMethod, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from pgwarden.documents.render import (
    config_errors_document,
    history_objects,
    intent_document,
    iso_time,
    pending_reason_document,
    tags_document,
    untrusted_document,
)
from pgwarden.model.cluster import (
    MEMBERS,
    ClusterView,
    Member,
    Role,
    StoreKey,
    SwitchoverIntent,
    SyncMode,
    Tags,
)

MB = 1024 * 1024
_DEFAULT_TAGS = Tags()
# What the agents make of a key they cannot read (docs/faults.md, "bad input"), for `list`.
SAFE_READING: dict[str, str] = {
    StoreKey.CONFIG: "the agents keep their last valid config; repair it with `pgwarden edit-config`",
    StoreKey.LEADER: "still held: its holder rewrites it; nobody else races for it",
    StoreKey.HISTORY: "the agents keep the last valid history; a new entry is written on top of it",
    StoreKey.SYNC: "nobody may promote on an unknown synchronous claim; the leader republishes it",
    StoreKey.SWITCHOVER: "no switchover pending; the leader removes the key",
    StoreKey.STATUS: "the agents keep the leader's last valid position; the leader republishes it",
    StoreKey.INITIALIZE: "the cluster counts as initialized; the leader rewrites its system identifier",
    StoreKey.FAILSAFE: (
        "in failsafe mode nobody may race; the leader asks the last valid topology it read and republishes it"
    ),
    MEMBERS: "that member is unknown until its agent republishes its record (every loop)",
}


# -- members ------------------------------------------------------------------------------------


def tag_items(tags: Tags) -> dict[str, str | int | bool]:
    """The tags that differ from the defaults (the table's cell), out of the one tags document."""
    defaults = tags_document(_DEFAULT_TAGS)
    return {k: v for k, v in tags_document(tags).items() if defaults.get(k) != v}


def role_label(view: ClusterView, member: Member) -> str:
    in_sync = view.in_sync_set(member.name)
    if member.role == Role.REPLICA and in_sync:
        return "sync replica"
    return str(member.role)


def member_document(view: ClusterView, member: Member) -> dict[str, Any]:
    lag = view.lag(member.name, member.lsn, member.timeline)
    return {
        "name": member.name,
        "host": member.host,
        "port": member.port,
        "api_url": member.api_url,
        "role": role_label(view, member),
        "state": str(member.state),
        "timeline": member.timeline,
        "lsn": str(member.lsn) if member.lsn is not None else None,
        "lag": lag,
        "lag_mb": None if lag is None else round(lag / MB, 1),
        "tags": tag_items(member.tags),
        "pending_restart": member.pending_restart,
        "pending_restart_reason": pending_reason_document(member.pending_restart_reason),
        "scheduled_restart": (
            iso_time(member.scheduled_restart) if member.scheduled_restart is not None else None
        ),
        "leader": view.leader is not None and view.leader.name == member.name,
        "config_errors": config_errors_document(member.config_errors),
        "loop_error": member.loop_error,
        "reason": member.reason or None,
        "reason_code": member.reason_code or None,
        "progress": member.progress or None,
    }


def switchover_document(intent: SwitchoverIntent | None) -> dict[str, Any] | None:
    return dict(intent_document(intent)) if intent is not None else None


def cluster_document(view: ClusterView) -> dict[str, Any]:
    """``list --format json``."""
    return {
        "cluster": view.name,
        "system_id": view.initialize,
        "leader": view.leader.name if view.leader and view.leader.readable else None,
        "pause": view.config.pause,
        "synchronous_mode": view.config.synchronous_mode.value,
        "synchronous": (
            {
                "members": sorted(view.sync.members),
                "quorum": view.sync.quorum,
                "degraded_since": iso_time(view.sync.degraded_since) if view.sync.degraded_since else None,
            }
            if view.sync is not None
            else None
        ),
        "switchover": switchover_document(view.switchover),
        "failsafe_mode": view.config.failsafe_mode,
        "failsafe": dict(view.failsafe) if view.failsafe is not None else None,
        "members": [member_document(view, m) for m in view.members],
        "untrusted_members": untrusted_document(view),
        "unreadable_keys": dict(sorted(view.unreadable.items())),
        "config_ignored_keys": list(view.config_ignored),
    }


def switchover_text(intent: SwitchoverIntent) -> str:
    kind = "failover" if intent.failover else "switchover"
    source = f" from {intent.leader}" if intent.leader else ""
    to = intent.candidate or "a standby the leader picks"
    when = f" at {iso_time(intent.scheduled_at)}" if intent.scheduled_at is not None else " now"
    return f"{kind}{source} to {to}{when}"


def cluster_header(view: ClusterView) -> str:
    parts = [f"Cluster: {view.name}"]
    if view.initialize:
        parts.append(f"system id {view.initialize}")
    if view.leader is not None and not view.leader.readable:
        parts.append("leader: UNREADABLE KEY")
    else:
        parts.append(f"leader: {view.leader.name}" if view.leader else "leader: none")
    if StoreKey.CONFIG in view.unreadable:
        parts.append("config UNREADABLE (agents keep the last valid one)")
    if view.bootstrapping:
        parts.append(f"bootstrapping: {view.bootstrapping}")
    if view.config.pause:
        parts.append("PAUSED (no automatic failover)")
    parts.extend(_sync_header(view))
    if view.config.failsafe_mode:
        members = f"{len(view.failsafe)} members" if view.failsafe is not None else "no topology yet"
        parts.append(f"failsafe mode: on ({members})")
    if view.switchover is not None:
        parts.append(f"pending {switchover_text(view.switchover)}")
    refusing = [m.name for m in view.members if m.config_errors]
    if refusing:
        parts.append(f"CONFIG ERRORS on {', '.join(refusing)} (!)")
    return " | ".join(parts)


def _sync_header(view: ClusterView) -> list[str]:
    mode = view.config.synchronous_mode
    if mode is SyncMode.OFF:
        return []
    claim = view.sync
    if claim is None:
        return [f"synchronous {mode.value}: no claim yet"]
    if claim.degraded_since is not None:
        return [f"synchronous {mode.value}: DEGRADED to asynchronous since {iso_time(claim.degraded_since)}"]
    if not claim.members:
        return [f"synchronous {mode.value}: no standby holds every commit yet"]
    return [f"synchronous {mode.value}: {claim.quorum} of {', '.join(sorted(claim.members))}"]


def members_table(view: ClusterView, with_reason: bool = False) -> RenderableType:
    """``list``: one row per member, under a header naming the cluster, leader and pause;
    ``with_reason`` (``list --watch``) adds each member's last decision."""
    table = Table()
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("Member", "left"),
        ("Host", "left"),
        ("Role", "left"),
        ("State", "left"),
        ("TL", "right"),
        ("Lag in MB", "right"),
        ("Tags", "left"),
        ("Pending restart", "center"),
    )
    for column, justify in columns:
        table.add_column(column, justify=justify)
    if with_reason:
        table.add_column("Reason", overflow="fold", ratio=1)
    for member in view.members:
        doc = member_document(view, member)
        row = [
            member.name,
            f"{member.host}:{member.port}",
            doc["role"],
            doc["state"] + _progress_text(member.progress) + (" !" if member.config_errors else ""),
            "" if member.timeline is None else str(member.timeline),
            _lag_cell(view, member, doc["lag"]),
            ", ".join(f"{k}={_tag_text(v)}" for k, v in doc["tags"].items()),
            _pending_cell(member),
        ]
        table.add_row(*row, *([member.reason] if with_reason else []))
    header = Text(cluster_header(view))
    notes = [Text(line) for line in problem_lines(view)]
    if not view.members:
        notes.append(Text(f"no members in etcd for cluster {view.name!r} (wrong cluster name or prefix?)"))
    notes += [Text(line) for line in config_error_lines(view)]
    notes += [Text(line) for line in untrusted_lines(view)]
    return Group(header, table, *notes)


def untrusted_lines(view: ClusterView) -> list[str]:
    """Why each member whose record names an address outside member_networks is not listed."""
    return [f"! {why}: not listed, nothing sent to it" for _, why in sorted(view.untrusted.items())]


def config_error_lines(view: ClusterView) -> list[str]:
    """``! node1: work_mem = lots: <PostgreSQL's message>``, one line per setting a member refuses."""
    return [f"! {m.name}: {e.name} = {e.value}: {e.error}" for m in view.members for e in m.config_errors]


def problem_lines(view: ClusterView) -> list[str]:
    """What is wrong beyond the table: unreadable keys (and what the agents do about each),
    config keys ignored, members whose HA loop fails with internal errors."""
    lines = [unreadable_line(key, why) for key, why in sorted(view.unreadable.items())]
    if view.config_ignored:
        lines.append(f"config keys this version ignores: {', '.join(view.config_ignored)}")
    for member in view.members:
        if member.loop_error:
            lines.append(
                f"{member.name}: INTERNAL_ERROR, its HA loop fails: {member.loop_error} (see its log)"
            )
    return lines


def unreadable_line(key: str, why: str) -> str:
    reading = SAFE_READING.get(MEMBERS if key.startswith(MEMBERS) else key, "")
    return f"etcd key {key} is unreadable: {why}" + (f" -> {reading}" if reading else "")


def _pending_cell(member: Member) -> str:
    """``*`` and the settings waiting for a restart (old -> new), then any scheduled restart."""
    parts = []
    if member.pending_restart:
        changes = [f"{n} {old}->{new}" for n, (old, new) in sorted(member.pending_restart_reason.items())]
        parts.append(" ".join(["*", ", ".join(changes)]).strip())
    if member.scheduled_restart is not None:
        parts.append(f"restart at {iso_time(member.scheduled_restart)}")
    return "; ".join(parts)


_PERCENT = re.compile(r"\((\d+)%\)")


def _progress_text(progress: str) -> str:
    """`` 42%`` of a running clone or rewind (its tool's own count), else nothing."""
    found = _PERCENT.search(progress)
    return f" {found.group(1)}%" if found else ""


def _lag_cell(view: ClusterView, member: Member, lag: int | None) -> str:
    if view.leader is not None and member.name == view.leader.name:
        return ""
    return "unknown" if lag is None else f"{lag / MB:.1f}".removesuffix(".0")


def _tag_text(value: str | int | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# -- topology -----------------------------------------------------------------------------------


@dataclass
class TopologyNode:
    member: Member
    standbys: list[TopologyNode] = field(default_factory=list)


def upstreams(view: ClusterView) -> dict[str, str | None]:
    """Each member's place in the tree: the leader at the top, a standby under its
    ``replicatefrom`` member when that one exists, else under the leader."""
    leader = view.leader.name if view.leader and view.member(view.leader.name) else None
    parent: dict[str, str | None] = {}
    for m in view.members:
        wanted = m.tags.replicatefrom
        if m.name == leader:
            parent[m.name] = None
        elif wanted and wanted != m.name and view.member(wanted) is not None:
            parent[m.name] = wanted
        else:
            parent[m.name] = leader
    # A replicatefrom loop reaches no root: hang its members off the leader instead.
    for name in parent:
        seen: set[str] = set()
        up: str | None = name
        while up is not None and up not in seen:
            seen.add(up)
            up = parent[up]
        if up is not None:
            parent[name] = leader
    return parent


def topology(view: ClusterView) -> list[TopologyNode]:
    """The roots of the replication tree: the leader (or, without one, every top member)."""
    parent = upstreams(view)
    nodes = {m.name: TopologyNode(m) for m in view.members}
    roots: list[TopologyNode] = []
    for m in sorted(view.members, key=lambda m: (parent[m.name] is not None, m.name)):
        up = parent[m.name]
        (nodes[up].standbys if up is not None else roots).append(nodes[m.name])
    return roots


def topology_document(view: ClusterView) -> dict[str, Any]:
    def node(n: TopologyNode) -> dict[str, Any]:
        return {**member_document(view, n.member), "standbys": [node(s) for s in n.standbys]}

    return {
        "cluster": view.name,
        "leader": view.leader.name if view.leader else None,
        "tree": [node(n) for n in topology(view)],
    }


def topology_tree(view: ClusterView) -> RenderableType:
    tree = Tree(Text(cluster_header(view), style="bold"))

    def add(branch: Tree, n: TopologyNode) -> None:
        doc = member_document(view, n.member)
        lag = "" if doc["leader"] else f", lag {_lag_cell(view, n.member, doc['lag'])} MB"
        tl = "" if n.member.timeline is None else f", TL {n.member.timeline}"
        label = f"{n.member.name} ({n.member.host}:{n.member.port}) {doc['role']}, {doc['state']}{tl}{lag}"
        child = branch.add(label)
        for s in n.standbys:
            add(child, s)

    for root in topology(view):
        add(tree, root)
    return tree


# -- history ------------------------------------------------------------------------------------


def history_document(view: ClusterView) -> list[dict[str, Any]]:
    return [dict(entry) for entry in history_objects(view)]


def history_table(view: ClusterView) -> RenderableType:
    table = Table()
    table.add_column("TL", justify="right")
    table.add_column("LSN")
    table.add_column("Reason")
    table.add_column("Time")
    table.add_column("New leader")
    for h in view.history:
        table.add_row(str(h.timeline), str(h.switch_lsn), h.reason, h.timestamp, h.new_leader)
    header = Text(f"Cluster: {view.name} | timeline history")
    junk = view.unreadable.get(StoreKey.HISTORY)
    notes = [Text(unreadable_line(StoreKey.HISTORY, junk))] if junk is not None else []
    if view.history_folded:
        notes.append(Text(f"{view.history_folded} older entries folded (the key keeps the latest)"))
    if notes:
        return Group(header, table, *notes)
    if not view.history:
        return Group(header, table, Text("no promotions yet: the cluster is on its first timeline"))
    return Group(header, table)
