"""``pgwarden switchover``, ``failover``, ``restart``, ``reload``, ``reinit``, ``pause``, ``resume``.

Each asks an agent's REST API to act and prints its answer; the agents check whether the
operation is safe and refuse with a reason when it is not (printed, exit 1).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from pgwarden.api.bodies import MAX_TIMEOUT
from pgwarden.api.contract import DEFAULT_OPERATION_TIMEOUT
from pgwarden.cli.connect import ConfigOption, DirOption, ForceOption, cluster_client, confirm

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
NodeArgument = Annotated[str, typer.Argument(metavar="NODE", help="member name, as `pgwarden list` shows it")]


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
    leader: Annotated[
        str | None, typer.Option("--leader", help="the current leader; refused if it is no longer")
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
    with cluster_client(ctx, config, dir) as client:
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
    candidate: Annotated[str, typer.Option("--candidate", help="the standby to promote")],
    force: ForceOption = False,
    timeout: TimeoutOption = DEFAULT_OPERATION_TIMEOUT,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Manual promotion of a chosen standby, with or without a healthy leader."""
    with cluster_client(ctx, config, dir) as client:
        view = client.view()
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


def restart(
    ctx: typer.Context,
    node: NodeArgument,
    force: ForceOption = False,
    timeout: TimeoutOption = DEFAULT_OPERATION_TIMEOUT,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Restart PostgreSQL on NODE (a leader keeps its key meanwhile)."""
    with cluster_client(ctx, config, dir) as client:
        member = client.member(node)
        if not force:
            confirm(f"Restart PostgreSQL on {node} ({member.role})?")
        answer = client.call(member, "POST", "/restart", {"timeout": timeout}, timeout + _ANSWER_MARGIN)
        typer.echo(answer.message)


def reload(
    ctx: typer.Context, node: NodeArgument, config: ConfigOption = None, dir: DirOption = None
) -> None:
    """Make NODE's agent re-read its config and reload PostgreSQL."""
    with cluster_client(ctx, config, dir) as client:
        answer = client.call(client.member(node), "POST", "/reload", {})
        typer.echo(answer.message)


def reinit(
    ctx: typer.Context,
    node: NodeArgument,
    force: ForceOption = False,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Wipe NODE's data directory and clone it again from the leader (standbys only)."""
    with cluster_client(ctx, config, dir) as client:
        member = client.member(node)
        if not force:
            confirm(f"Remove {node}'s data and clone it again from the leader?")
        answer = client.call(member, "POST", "/reinitialize", {})
        typer.echo(answer.message)


def pause(ctx: typer.Context, config: ConfigOption = None, dir: DirOption = None) -> None:
    """Stop automatic failover cluster-wide (agents keep running and reporting)."""
    with cluster_client(ctx, config, dir) as client:
        typer.echo(client.set_pause(True))


def resume(ctx: typer.Context, config: ConfigOption = None, dir: DirOption = None) -> None:
    """Turn automatic failover back on after `pause`."""
    with cluster_client(ctx, config, dir) as client:
        typer.echo(client.set_pause(False))
