"""``pgwarden query`` (SQL on a member or role) and ``pgwarden dsn`` (its libpq address), as patronictl.

Which member: ``-m MEMBER``, else the first of ``-r ROLE`` (default: the leader), from etcd.
Which credentials, explicitly: ``-U USER`` (default: the superuser the node config, or the local
stack's stack.json, names); the password from ``--password`` (asked for), else from libpq's own
sources (PGPASSWORD, ~/.pgpass), else the node config's/stack.json's superuser password when the
user is that superuser. Nothing else is tried.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from pgwarden.cli.connect import (
    USAGE,
    ClusterArgument,
    ConfigOption,
    DirOption,
    OutputFormat,
    cluster_client,
    fail,
    is_pretty,
    show,
)
from pgwarden.cli.members import RoleChoice, with_role
from pgwarden.client import ClusterTarget
from pgwarden.model.cluster import ClusterView, Member

RoleOption = Annotated[
    RoleChoice | None,
    typer.Option("--role", "-r", help="a member with this role (default: the leader)", show_default=False),
]
# query's -c is the SQL (patronictl's --command): its node config is --config, or -c before the command.
QueryConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="a node config file (or -c before the command)", show_default=False),
]
MemberOption = Annotated[str | None, typer.Option("--member", "-m", help="this member", show_default=False)]


def pick_member(view: ClusterView, role: RoleChoice | None, member: str | None) -> Member:
    """``-m`` names the member; else the first member of ``-r`` (default: the leader)."""
    if member is not None and role is not None:
        fail("give -m MEMBER or -r ROLE, not both", USAGE)
    if member is not None:
        found = view.member(member)
        if found is None:
            fail(f"no member named {member!r} in cluster {view.name!r}")
        return found
    wanted = role or RoleChoice.LEADER
    matching = [m for m in view.members if with_role(view, m, wanted)]
    if not matching:
        fail(f"no {wanted.value} member in cluster {view.name!r}")
    return matching[0]


def dsn_of(member: Member) -> str:
    return f"host={member.host} port={member.port}"


def dsn(
    ctx: typer.Context,
    cluster: ClusterArgument = None,
    role: RoleOption = None,
    member: MemberOption = None,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """The libpq address of a member (default: the leader): host=... port=..."""
    with cluster_client(ctx, config, dir, cluster) as client:
        view = client.view()
    typer.echo(dsn_of(pick_member(view, role, member)))


def connect_kwargs(
    target: ClusterTarget, member: Member, user: str | None, password: str | None, dbname: str | None
) -> dict[str, Any]:
    """psycopg's connection keywords, by the rule in this module's docstring."""
    superuser = target.superuser
    kwargs: dict[str, Any] = {
        "host": member.host,
        "port": member.port,
        "dbname": dbname or "postgres",
        "connect_timeout": 5,
        "application_name": "pgwarden query",
    }
    name = user or (superuser.username if superuser else None)
    if name:
        kwargs["user"] = name
    if password is not None:
        kwargs["password"] = password
    elif superuser is not None and superuser.password and name == superuser.username:
        # libpq's PGPASSWORD/.pgpass win: psycopg passes no password keyword when it is None.
        import os

        if "PGPASSWORD" not in os.environ:
            kwargs["password"] = superuser.password
    return kwargs


def run_sql(kwargs: dict[str, Any], sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The last statement's columns and rows (none for a statement without a result)."""
    import psycopg

    with psycopg.connect(**kwargs, autocommit=True) as conn:
        cursor = conn.execute(sql.encode())
        if cursor.description is None:
            return [], []
        return [c.name for c in cursor.description], list(cursor.fetchall())


def print_result(
    format: OutputFormat, columns: list[str], rows: list[tuple[Any, ...]], delimiter: str
) -> None:
    if format == OutputFormat.TSV:
        typer.echo(delimiter.join(columns))
        for row in rows:
            typer.echo(delimiter.join("" if v is None else str(v) for v in row))
    elif not is_pretty(format):
        records = [dict(zip(columns, (_plain(v) for v in row), strict=True)) for row in rows]
        if format == OutputFormat.JSON:
            typer.echo(json.dumps(records, indent=2, default=str))
        else:
            typer.echo(yaml.safe_dump(records, sort_keys=False), nl=False)
    else:
        table = Table()
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        show(table)


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def query(
    ctx: typer.Context,
    cluster: ClusterArgument = None,
    command: Annotated[
        str | None, typer.Option("--command", "-c", help="the SQL to run", show_default=False)
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="run the SQL in this file (- for stdin)", show_default=False),
    ] = None,
    role: RoleOption = None,
    member: MemberOption = None,
    username: Annotated[
        str | None,
        typer.Option(
            "--username", "-U", help="database user (default: the config's superuser)", show_default=False
        ),
    ] = None,
    password: Annotated[bool, typer.Option("--password", help="ask for the password")] = False,
    dbname: Annotated[
        str | None, typer.Option("--dbname", "-d", help="database (default: postgres)", show_default=False)
    ] = None,
    format: Annotated[
        OutputFormat, typer.Option("--format", help="pretty, tsv, json or yaml (-f is --file here)")
    ] = OutputFormat.TSV,
    delimiter: Annotated[str, typer.Option("--delimiter", help="tsv's column delimiter")] = "\t",
    watch_default: Annotated[bool, typer.Option("-W", help="run again every 2 seconds until Ctrl-C")] = False,
    watch: Annotated[
        float | None,
        typer.Option(
            "--watch", "-w", min=0.2, help="run again every SECONDS until Ctrl-C", show_default=False
        ),
    ] = None,
    config: QueryConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Run SQL on a member (default: the leader) and print the result."""
    if (command is None) == (file is None):
        fail("give the SQL with -c/--command or -f/--file (one of them)", USAGE)
    sql = command if command is not None else _read_sql(file)
    secret = typer.prompt("Password", hide_input=True) if password else None
    with cluster_client(ctx, config, dir, cluster) as client:
        view = client.view()
        target = client.target
    chosen = pick_member(view, role, member)
    kwargs = connect_kwargs(target, chosen, username, secret, dbname)
    every = watch if watch is not None else (2.0 if watch_default else None)
    try:
        while True:
            columns, rows = _run_or_fail(kwargs, sql, chosen)
            print_result(format, columns, rows, delimiter)
            if every is None:
                return
            time.sleep(every)
    except KeyboardInterrupt:
        return


def _run_or_fail(kwargs: dict[str, Any], sql: str, member: Member) -> tuple[list[str], list[tuple[Any, ...]]]:
    import psycopg

    try:
        return run_sql(kwargs, sql)
    except psycopg.Error as exc:
        fail(
            f"{member.name} ({member.host}:{member.port}, user {kwargs.get('user', 'libpq default')}): {exc}"
        )


def _read_sql(file: Path | None) -> str:
    assert file is not None
    if str(file) == "-":
        import sys

        return sys.stdin.read()
    try:
        return file.read_text()
    except OSError as exc:
        fail(f"cannot read {file}: {exc}", USAGE)
