"""``pgwarden switchover``, ``failover``, ``pause``, ``resume`` (``restart``, ``reload``, ``reinit``:
cli/members.py).

Each asks an agent's REST API to act and prints its answer; the agents check whether the
operation is safe and refuse with a reason when it is not (printed, exit 1).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated

import typer

from pgwarden.api.bodies import MAX_TIMEOUT
from pgwarden.api.contract import DEFAULT_OPERATION_TIMEOUT
from pgwarden.cli.connect import (
    ClusterArgument,
    ConfigOption,
    DirOption,
    ForceOption,
    cluster_client,
    confirm,
    fail,
)
from pgwarden.client import ClientError, ClusterClient

# An operation's answer may take its whole timeout; allow this much more for the HTTP round trip.
_ANSWER_MARGIN = 10.0

TimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=1.0,
        max=MAX_TIMEOUT,
        help="seconds the agent may take before answering with the state reached",
    ),
]
WaitOption = Annotated[bool, typer.Option("--wait", help="wait until every member's agent says so")]
# How long pause/resume --wait waits for every agent: a few of their loops.
WAIT_SECONDS = 60.0


def parse_scheduled(text: str | None) -> datetime | None:
    """``--scheduled``: None/"now" for at once, else an ISO 8601 time (local time zone if none given)."""
    if text is None or text.strip().lower() == "now":
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 time, e.g. 2025-01-31T03:00:00+00:00 or now",
            param_hint="--scheduled",
        ) from None
    return when if when.tzinfo is not None else when.astimezone()


def switchover(
    ctx: typer.Context,
    cluster: ClusterArgument = None,
    leader: Annotated[
        str | None,
        typer.Option("--leader", "--primary", help="the current leader; refused if it is no longer"),
    ] = None,
    candidate: Annotated[
        str | None, typer.Option("--candidate", help="the standby to promote; default: the leader picks")
    ] = None,
    scheduled: Annotated[
        str | None, typer.Option("--scheduled", help="when: an ISO 8601 time, or now", show_default=False)
    ] = None,
    cancel: Annotated[bool, typer.Option("--cancel", help="remove a scheduled switchover instead")] = False,
    force: ForceOption = False,
    timeout: TimeoutOption = DEFAULT_OPERATION_TIMEOUT,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Planned, lossless handover of the primary role to a standby (or --cancel a scheduled one)."""
    when = parse_scheduled(scheduled)
    with cluster_client(ctx, config, dir, cluster) as client:
        view = client.view()
        current = client.leader(view)
        if cancel:
            if not force:
                confirm("Cancel the scheduled switchover?")
            typer.echo(client.call(current, "DELETE", "/switchover").message)
            return
        for name in (leader, candidate):
            if name is not None:
                client.member(name, view)
        source = leader or current.name
        if not force:
            to = candidate or "a healthy standby the leader picks"
            at = f" at {when.isoformat()}" if when else " now"
            confirm(f"Switch over from {source} to {to}{at}?")
        body = {
            "leader": source,
            "candidate": candidate,
            "scheduled_at": when.isoformat() if when else None,
            "timeout": timeout,
        }
        answer = client.call(current, "POST", "/switchover", body, timeout=timeout + _ANSWER_MARGIN)
        typer.echo(answer.message)


def failover(
    ctx: typer.Context,
    cluster: ClusterArgument = None,
    candidate: Annotated[
        str | None, typer.Option("--candidate", help="the standby to promote (asked for when left out)")
    ] = None,
    force: ForceOption = False,
    timeout: TimeoutOption = DEFAULT_OPERATION_TIMEOUT,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Manual promotion of a chosen standby, with or without a healthy leader."""
    with cluster_client(ctx, config, dir, cluster) as client:
        view = client.view()
        if candidate is None:
            if force:
                fail("name the standby to promote with --candidate (--force asks nothing)")
            others = [m.name for m in view.members if view.leader is None or m.name != view.leader.name]
            candidate = typer.prompt(f"Candidate {others}")
        chosen = client.member(candidate, view)
        if not force:
            demoted = f" ({view.leader.name} stops being the leader)" if view.leader else ""
            confirm(f"Fail over to {candidate}{demoted}?")
        # The leader carries the handover when it is alive; else any agent records the intent.
        first = [m for m in (view.leader_member, chosen) if m is not None]
        order = first + [m for m in view.members if m.name not in {f.name for f in first}]
        answer = client.call_first(
            order, "POST", "/failover", {"candidate": candidate, "timeout": timeout}, timeout + _ANSWER_MARGIN
        )
        typer.echo(answer.message)


def pause(
    ctx: typer.Context,
    cluster: ClusterArgument = None,
    wait: WaitOption = False,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Stop automatic failover cluster-wide (agents keep running and reporting)."""
    with cluster_client(ctx, config, dir, cluster) as client:
        typer.echo(client.set_pause(True))
        if wait:
            _wait_pause(client, True)


def resume(
    ctx: typer.Context,
    cluster: ClusterArgument = None,
    wait: WaitOption = False,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Turn automatic failover back on after `pause`."""
    with cluster_client(ctx, config, dir, cluster) as client:
        typer.echo(client.set_pause(False))
        if wait:
            _wait_pause(client, False)


def _wait_pause(client: ClusterClient, paused: bool) -> None:
    """Until every member's agent answers GET /patroni with ``pause`` as wanted (patronictl's
    --wait); exit 1 naming the members that did not within WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    waiting: list[str] = []
    while time.monotonic() < deadline:
        waiting = []
        for member in client.view().members:
            try:
                seen = client.call(member, "GET", "/patroni", timeout=3.0).document.get("pause")
            except ClientError:
                seen = None
            if seen is not paused:
                waiting.append(member.name)
        if not waiting:
            typer.echo(f"every member's agent is {'paused' if paused else 'running automatic failover'}")
            return
        time.sleep(0.5)
    fail(f"after {WAIT_SECONDS:g}s, not yet seen by {', '.join(waiting)}")
