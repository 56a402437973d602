"""``pgwarden events``: what each agent decided and when, from the agents' recent decisions and the history.

Every member's ``GET /events`` (asked all at once) gives its last runs of decisions (consecutive
decisions with one reason code); the timeline history in etcd adds the promotions and the other
events kept there. Merged into one time line, oldest first, the last ``--limit`` rows.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from pgwarden.agent.decision_log import MAX_RUNS, read_run
from pgwarden.api.inspection import run_document
from pgwarden.cli.connect import (
    REFUSED,
    ConfigOption,
    DirOption,
    FormatOption,
    OutputFormat,
    cluster_client,
    fail,
    print_result,
    warn,
)
from pgwarden.client import ClientError, ClusterClient
from pgwarden.model import ClusterView, Member

EVENTS_TIMEOUT = 5.0


def _ask(client: ClusterClient, member: Member) -> list[dict[str, Any]] | str:
    try:
        answer = client.call(member, "GET", "/events", timeout=EVENTS_TIMEOUT)
    except ClientError as exc:
        return str(exc)
    events = answer.document.get("events")
    if not isinstance(events, list):
        return f"{member.name} answered GET /events without events (is its agent older than this command?)"
    runs = (read_run(e) for e in events[-MAX_RUNS:])
    return [run_document(r) for r in runs if r is not None]


def _history_rows(view: ClusterView) -> list[dict[str, Any]]:
    rows = []
    for entry in view.history:
        try:
            stamp = datetime.fromisoformat(entry.timestamp).timestamp()
        except ValueError:
            continue
        rows.append(
            {
                "member": entry.new_leader,
                "source": "history",
                "timestamp": stamp,
                "time": entry.timestamp,
                "reason_code": entry.event.upper().replace(" ", "_"),
                "message": f"timeline {entry.timeline} at {entry.switch_lsn}: {entry.reason}",
                "decisions": 1,
                "actions": [],
            }
        )
    return rows


def gather_events(client: ClusterClient, member: str | None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every decision run and history entry (of ``member`` only, when given), oldest first, and
    the members whose API did not answer."""
    view = client.view()
    members = [m for m in view.members if member is None or m.name == member]
    if member is not None and not members:
        client.member(member, view)  # raises UnknownMember, listing the known ones
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(members)))) as pool:
        answers = list(pool.map(lambda m: _ask(client, m), members))
    rows: list[dict[str, Any]] = []
    unreachable: dict[str, str] = {}
    for m, answer in zip(members, answers, strict=True):
        if isinstance(answer, str):
            unreachable[m.name] = answer
            continue
        rows += [{**e, "member": m.name, "source": "agent"} for e in answer]
    rows += [r for r in _history_rows(view) if member is None or r["member"] == member]
    rows.sort(key=lambda r: (r.get("timestamp") or 0, r["member"]))
    return rows, unreachable


def events(
    ctx: typer.Context,
    member: Annotated[
        str | None, typer.Option("--member", "-m", help="only this member's decisions", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="show the last N rows")] = 50,
    format: FormatOption = OutputFormat.PRETTY,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """What each agent decided and when (its recent decisions), with the timeline history."""
    with cluster_client(ctx, config, dir) as client:
        rows, unreachable = gather_events(client, member)
    rows = rows[-limit:]
    for name, why in sorted(unreachable.items()):
        warn(f"no decisions from {name}: {why}")
    print_result(format, {"events": rows, "unreachable": unreachable}, events_table(rows))
    if unreachable and not any(r["source"] == "agent" for r in rows):
        fail("no agent answered GET /events", REFUSED)


def _clock(stamp: object) -> str:
    if not isinstance(stamp, int | float):
        return "?"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def events_table(rows: list[dict[str, Any]]) -> RenderableType:
    table = Table()
    for column in ("Time (UTC)", "Member", "Reason", "Decision", "Times", "Actions"):
        table.add_column(column, overflow="fold")
    for r in rows:
        repeats = r.get("decisions")
        until = ""
        if isinstance(repeats, int) and repeats > 1:
            until = f" .. {_clock(r.get('last_timestamp'))[11:]}"
        style = "bold" if r["source"] == "history" else ""
        table.add_row(
            _clock(r.get("timestamp")) + until,
            str(r["member"]),
            Text(str(r.get("reason_code", "")), style="dim" if r["source"] == "agent" else "bold magenta"),
            Text(str(r.get("message", "")), style=style),
            str(repeats) if isinstance(repeats, int) and repeats > 1 else "",
            ", ".join(str(a) for a in r.get("actions") or []),
        )
    if not rows:
        return Group(table, Text("no decision recorded yet"))
    return table
