"""``pgwarden restart``, ``reload``, ``reinit``, ``flush`` and ``version``: one or more members, chosen
the patronictl way (``restart CLUSTER [MEMBER...] --role replica --any``) or pgwarden's
(``restart NODE``, ``restart --pending``).

The positional arguments are patronictl's ``CLUSTER [MEMBER...]``; when the first one is not the
cluster's name but a member's, they are pgwarden's ``NODE...`` (so ``pgwarden restart node2``
keeps working). Each member is asked through its own REST API, which refuses with a reason when
the operation is not safe; one member's refusal is printed and the others are still asked.
"""

from __future__ import annotations

import random
import time
from dataclasses import replace
from enum import StrEnum
from typing import Annotated

import typer

from pgwarden import __version__
from pgwarden.api.bodies import MAX_TIMEOUT, BodyError, postgres_version
from pgwarden.api.contract import DEFAULT_OPERATION_TIMEOUT
from pgwarden.cli.connect import USAGE, ConfigOption, DirOption, ForceOption, cluster_client, confirm, fail
from pgwarden.client import ClientError, ClusterClient, RollingRestart, UnknownMember, plan_rolling_restart
from pgwarden.model.cluster import ClusterView, Member, PgState

# An operation's answer may take its whole timeout; allow this much more for the HTTP round trip.
ANSWER_MARGIN = 10.0


class RoleChoice(StrEnum):
    """patronictl's ``-r/--role`` values."""

    LEADER = "leader"
    PRIMARY = "primary"
    STANDBY_LEADER = "standby-leader"
    REPLICA = "replica"
    STANDBY = "standby"
    ANY = "any"


Names = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[CLUSTER] [MEMBER]...",
        help="the cluster's name, then members (default: all, or those --role picks); or just NODE...",
        show_default=False,
    ),
]
# The role a restart body names, so the agent refuses if the member's role changed since the list.
_BODY_ROLE = {
    RoleChoice.LEADER: "primary",
    RoleChoice.PRIMARY: "primary",
    RoleChoice.STANDBY_LEADER: "standby_leader",
    RoleChoice.REPLICA: "replica",
    RoleChoice.STANDBY: "replica",
}

RoleOption = Annotated[
    RoleChoice, typer.Option("--role", "-r", help="only members with this role", show_default=False)
]
TimeoutOption = Annotated[
    float,
    typer.Option("--timeout", min=1.0, max=MAX_TIMEOUT, help="seconds the agent may take before answering"),
]


def parse_names(view: ClusterView, args: list[str] | None) -> list[str]:
    """The member names in ``CLUSTER [MEMBER...]`` or ``NODE...`` (exit 1 naming what is neither)."""
    given = list(args or [])
    if given and given[0] == view.name:
        given = given[1:]
    known = {m.name for m in view.members}
    unknown = [name for name in given if name not in known]
    if unknown:
        fail(f"{UnknownMember(unknown[0], sorted(known))}, and the cluster is {view.name!r}")
    return given


def with_role(view: ClusterView, member: Member, role: RoleChoice) -> bool:
    """patronictl's role filter: leader/primary is the leader key's holder, replica/standby the rest."""
    leads = view.leader is not None and view.leader.name == member.name
    if role in (RoleChoice.LEADER, RoleChoice.PRIMARY):
        return leads and str(member.role) != "standby_leader"
    if role is RoleChoice.STANDBY_LEADER:
        return leads and str(member.role) == "standby_leader"
    if role in (RoleChoice.REPLICA, RoleChoice.STANDBY):
        return not leads
    return True


def choose(
    view: ClusterView,
    args: list[str] | None,
    role: RoleChoice,
    force: bool,
    action: str,
    pick_one: bool = False,
) -> list[Member]:
    """The members an action applies to, standbys first and the leader last.

    No member named: all of ``role`` with --force, else the user is asked (empty: all)."""
    names = parse_names(view, args)
    candidates = [m for m in view.members if with_role(view, m, role)]
    if not names and not force and role is RoleChoice.ANY and not pick_one:
        offered = ", ".join(m.name for m in candidates)
        answer = typer.prompt(f"Which member do you want to {action} [{offered}] (empty: all)?", default="")
        names = [n.strip() for n in answer.replace(",", " ").split() if n.strip()]
        names = parse_names(view, names)
    chosen = [m for m in candidates if not names or m.name in names]
    if names and not chosen:
        fail(f"{', '.join(names)}: not a {role.value} member of cluster {view.name!r}")
    if pick_one and chosen:
        chosen = [random.choice(chosen)]
    leader = view.leader.name if view.leader else None
    return sorted(chosen, key=lambda m: (m.name == leader, m.name))


def _each(
    client: ClusterClient,
    members: list[Member],
    method: str,
    path: str,
    body: dict[str, object],
    timeout: float | None = None,
) -> bool:
    """Ask each member in turn, printing each answer; True when every one did it."""
    ok = True
    for member in members:
        try:
            answer = client.call(member, method, path, body, timeout)
        except ClientError as exc:
            typer.echo(f"pgwarden: {member.name}: {exc}", err=True)
            ok = False
            continue
        typer.echo(f"{member.name}: {answer.message}")
    return ok


def restart(
    ctx: typer.Context,
    names: Names = None,
    role: RoleOption = RoleChoice.ANY,
    any_one: Annotated[
        bool, typer.Option("--any", help="restart one member only (picked at random)")
    ] = False,
    pending: Annotated[
        bool,
        typer.Option(
            "--pending",
            help="only members waiting for a restart, one after the other, standbys first (with "
            "--scheduled or --pg-version: patronictl's way, each member restarts only if pending)",
        ),
    ] = False,
    pg_version: Annotated[
        str | None,
        typer.Option(
            "--pg-version",
            help="restart only members whose PostgreSQL is older than this (e.g. 16.2)",
            show_default=False,
        ),
    ] = None,
    switchover: Annotated[
        bool,
        typer.Option(
            "--switchover", help="with --pending: switch over instead of restarting the primary in place"
        ),
    ] = False,
    scheduled: Annotated[
        str | None,
        typer.Option("--scheduled", help="restart later, at an ISO 8601 time (or now)", show_default=False),
    ] = None,
    cancel: Annotated[bool, typer.Option("--cancel", help="remove the scheduled restart instead")] = False,
    force: ForceOption = False,
    timeout: TimeoutOption = DEFAULT_OPERATION_TIMEOUT,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Restart PostgreSQL on members (a leader keeps its key meanwhile); --pending: a rolling restart."""
    from pgwarden.cli.operations import parse_scheduled

    if pending and cancel:
        fail("--pending restarts members, --cancel removes scheduled restarts: choose one", USAGE)
    try:
        below = postgres_version(pg_version)
    except BodyError:
        fail(f"--pg-version must be X.Y (X.Y.Z before PostgreSQL 10), e.g. 16.2, not {pg_version!r}", USAGE)
    rolling = pending and scheduled is None and below is None
    if switchover and not rolling:
        fail("--switchover goes with --pending alone (a rolling restart)", USAGE)
    when = parse_scheduled(scheduled)
    with cluster_client(ctx, config, dir) as client:
        view = client.view()
        if cancel:
            members = choose(view, names, role, True, "flush", any_one)
            # Named members are asked whatever their record says (it may trail their agent by a loop).
            if not parse_names(view, names):
                members = [m for m in members if m.scheduled_restart is not None]
            ok = _each(client, members, "DELETE", "/restart", {})
            raise typer.Exit(0 if ok else 1)
        if rolling:
            chosen = choose(view, names, role, True, "restart", any_one)
            _rolling(client, replace(view, members=tuple(chosen)), switchover, force, timeout)
            return
        members = choose(view, names, role, force, "restart", any_one)
        if pending and when is None:  # as patronictl: a scheduled one is checked when it falls due
            members = [m for m in members if m.pending_restart]
        if not members:
            fail(f"no {role.value} member to restart in cluster {view.name!r}")
        at = f" at {when.isoformat()}" if when else ""
        if not force:
            confirm(f"Restart PostgreSQL on {', '.join(f'{m.name} ({m.role})' for m in members)}{at}?")
        # The agent checks the conditions itself (Patroni's body): a member whose role, version or
        # pending flag no longer matches answers 503 and is not restarted.
        body: dict[str, object] = {"timeout": timeout}
        if when is not None:
            body["schedule"] = when.isoformat()
        if pending:
            body["restart_pending"] = True
        if pg_version is not None:
            body["postgres_version"] = pg_version
        if role in _BODY_ROLE:
            body["role"] = _BODY_ROLE[role]
        if not _each(client, members, "POST", "/restart", body, timeout + ANSWER_MARGIN):
            raise typer.Exit(1)


def _rolling(client: ClusterClient, view: ClusterView, switchover: bool, force: bool, timeout: float) -> None:
    steps = plan_rolling_restart(view, switchover)
    if not steps:
        typer.echo("no member is waiting for a restart")
        return
    typer.echo("rolling restart: " + "; then ".join(str(step) for step in steps))
    if not force:
        confirm("Go ahead?")
    RollingRestart(client, timeout, typer.echo, ANSWER_MARGIN).run(steps)
    typer.echo("rolling restart done: nothing waits for a restart")


def reload(
    ctx: typer.Context,
    names: Names = None,
    role: RoleOption = RoleChoice.ANY,
    force: ForceOption = False,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Make members' agents re-read their config and reload PostgreSQL."""
    with cluster_client(ctx, config, dir) as client:
        view = client.view()
        members = choose(view, names, role, force, "reload")
        if not members:
            fail(f"no {role.value} member to reload in cluster {view.name!r}")
        if not _each(client, members, "POST", "/reload", {}):
            raise typer.Exit(1)


def reinit(
    ctx: typer.Context,
    names: Names = None,
    wait: Annotated[bool, typer.Option("--wait", help="wait until each member runs again")] = False,
    from_leader: Annotated[
        bool, typer.Option("--from-leader", help="clone from the leader even if a member is tagged clonefrom")
    ] = False,
    force: ForceOption = False,
    timeout: TimeoutOption = DEFAULT_OPERATION_TIMEOUT,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Wipe members' data directories and clone them again from the leader (standbys only)."""
    with cluster_client(ctx, config, dir) as client:
        view = client.view()
        members = choose(view, names, RoleChoice.ANY, force, "reinitialize")
        if not members:
            fail(f"no member to reinitialize in cluster {view.name!r}")
        if not force:
            confirm(
                f"Remove the data of {', '.join(m.name for m in members)} and clone it again from the leader?"
            )
        ok = True
        for member in members:
            # As patronictl: --force also reinitializes after a clone or rewind running there.
            body: dict[str, object] = {"force": force, "from_leader": from_leader, "timeout": timeout}
            if not _each(client, [member], "POST", "/reinitialize", body, timeout + ANSWER_MARGIN):
                ok = False
            elif wait:
                typer.echo(f"waiting until {member.name} is reinitialized and running")
                ok = _wait_reinitialized(client, member.name, timeout) and ok
        if not ok:
            raise typer.Exit(1)


def _wait_reinitialized(client: ClusterClient, name: str, timeout: float) -> bool:
    """The member's record leaves ``running`` (its agent took the request up) and comes back to it."""
    deadline = time.monotonic() + timeout
    left = False
    while time.monotonic() < deadline:
        member = client.view().member(name)
        state = member.state if member is not None else PgState.STOPPED
        left = left or state is not PgState.RUNNING
        if left and state is PgState.RUNNING:
            typer.echo(f"{name}: reinitialized, running")
            return True
        time.sleep(0.5)
    typer.echo(f"pgwarden: {name} was not running again after {timeout:g}s", err=True)
    return False


class Event(StrEnum):
    RESTART = "restart"
    SWITCHOVER = "switchover"


def flush(
    ctx: typer.Context,
    args: Annotated[
        list[str],
        typer.Argument(metavar="[CLUSTER] [MEMBER]... restart|switchover", help="what to discard, last"),
    ],
    role: RoleOption = RoleChoice.ANY,
    force: ForceOption = False,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Discard scheduled events: members' scheduled restarts, or the scheduled switchover."""
    try:
        event = Event(args[-1])
    except ValueError:
        fail(f"the last argument is what to flush: restart or switchover, not {args[-1]!r}", USAGE)
    with cluster_client(ctx, config, dir) as client:
        view = client.view()
        if event is Event.SWITCHOVER:
            parse_names(view, args[:-1])
            if view.switchover is None or view.switchover.scheduled_at is None:
                typer.echo("no scheduled switchover")
                return
            if not force:
                confirm("Discard the scheduled switchover?")
            typer.echo(client.call(client.leader(view), "DELETE", "/switchover").message)
            return
        members = choose(view, args[:-1], role, True, "flush")
        scheduled = [m for m in members if m.scheduled_restart is not None]
        for member in members:
            if member.scheduled_restart is None:
                typer.echo(f"{member.name}: no scheduled restart")
        if scheduled and not force:
            confirm(f"Discard the scheduled restart of {', '.join(m.name for m in scheduled)}?")
        if not _each(client, scheduled, "DELETE", "/restart", {}):
            raise typer.Exit(1)


def version(
    ctx: typer.Context,
    names: Names = None,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """The pgwarden version; given the cluster (and members), each member's agent version too."""
    typer.echo(f"pgwarden {__version__}")
    if not names:
        return
    with cluster_client(ctx, config, dir) as client:
        view = client.view()
        chosen = parse_names(view, names)
    for member in view.members:
        if not chosen or member.name in chosen:
            typer.echo(f"{member.name}: pgwarden {member.version or 'unknown'}")
