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
from pgwarden.cli.connect import USAGE, ConfigOption, DirOption, ForceOption, cluster_client, confirm, fail
from pgwarden.client import ClusterClient, RollingRestart, plan_rolling_restart

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
    node: Annotated[
        str | None, typer.Argument(metavar="NODE", help="member name, as `pgwarden list` shows it")
    ] = None,
    pending: Annotated[
        bool, typer.Option("--pending", help="restart every member waiting for a restart, standbys first")
    ] = False,
    switchover: Annotated[
        bool,
        typer.Option(
            "--switchover", help="with --pending: switch over instead of restarting the primary in place"
        ),
    ] = False,
    scheduled: Annotated[
        str | None,
        typer.Option("--scheduled", help="restart NODE later, at an ISO 8601 time", show_default=False),
    ] = None,
    cancel: Annotated[bool, typer.Option("--cancel", help="remove the restart scheduled on NODE")] = False,
    force: ForceOption = False,
    timeout: TimeoutOption = DEFAULT_OPERATION_TIMEOUT,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Restart PostgreSQL on NODE (a leader keeps its key meanwhile), or on every member --pending."""
    if pending == (node is not None):
        fail("name one NODE to restart, or use --pending (not both)", USAGE)
    if switchover and not pending:
        fail("--switchover goes with --pending", USAGE)
    if (scheduled is not None or cancel) and node is None:
        fail("--scheduled and --cancel apply to one NODE", USAGE)
    when = parse_scheduled(scheduled)
    with cluster_client(ctx, config, dir) as client:
        if node is None:
            _restart_pending(client, switchover, force, timeout)
            return
        member = client.member(node)
        if cancel:
            typer.echo(client.call(member, "DELETE", "/restart").message)
            return
        at = f" at {when.isoformat()}" if when else ""
        if not force:
            confirm(f"Restart PostgreSQL on {node} ({member.role}){at}?")
        body: dict[str, object] = {"timeout": timeout}
        if when is not None:
            body["schedule"] = when.isoformat()
        answer = client.call(member, "POST", "/restart", body, timeout + _ANSWER_MARGIN)
        typer.echo(answer.message)


def _restart_pending(client: ClusterClient, switchover: bool, force: bool, timeout: float) -> None:
    steps = plan_rolling_restart(client.view(), switchover)
    if not steps:
        typer.echo("no member is waiting for a restart")
        return
    typer.echo("rolling restart: " + "; then ".join(str(step) for step in steps))
    if not force:
        confirm("Go ahead?")
    RollingRestart(client, timeout, typer.echo, _ANSWER_MARGIN).run(steps)
    typer.echo("rolling restart done: nothing waits for a restart")


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
