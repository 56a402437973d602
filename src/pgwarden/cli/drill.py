"""``pgwarden drill``: a failover drill through the router, reporting RTO, lost writes and rejoin time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from pgwarden.cli.connect import (
    USAGE,
    ConfigOption,
    DirOption,
    FormatOption,
    OutputFormat,
    cluster_client,
    fail,
    is_pretty,
    print_result,
)
from pgwarden.client import DEFAULT_STACK_DIR

if TYPE_CHECKING:  # the drill's modules (psycopg among them) load only when a drill runs
    from pgwarden.drill.faults import Fault
    from pgwarden.drill.report import DrillReport, RoundResult
    from pgwarden.local.stack import Stack


def drill(
    ctx: typer.Context,
    unplanned: Annotated[
        bool,
        typer.Option(
            "--unplanned",
            help="kill the primary's node (agent and PostgreSQL) instead of a switchover; local stack only",
        ),
    ] = False,
    rounds: Annotated[int, typer.Option("--rounds", min=1, max=100, help="how many failovers in a row")] = 1,
    heal_timeout: Annotated[
        float,
        typer.Option("--heal-timeout", min=10.0, max=3600.0, help="seconds a round may take to heal"),
    ] = 120.0,
    dsn: Annotated[
        str | None,
        typer.Option(
            "--dsn",
            help="libpq connection string of the router's write port (required with -c)",
            show_default=False,
        ),
    ] = None,
    format: FormatOption = OutputFormat.PRETTY,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Failover drill: writes through the router while the primary changes, and reports per round
    the write gap (RTO), writes acknowledged and lost, when the old primary streamed again and the
    agents' reason codes. Exit 1 when a round did not heal in time, or a write was lost while
    synchronous_mode is on."""
    stack_dir = dir if dir is not None else DEFAULT_STACK_DIR
    if config is not None and unplanned:
        fail("--unplanned kills processes of a local stack: use --dir DIR (a stack.json), not -c", USAGE)
    if config is not None and dsn is None:
        fail(
            "with -c, give the router's write port as --dsn 'host=... port=... user=... password=...'", USAGE
        )
    writes_to = dsn or _stack_dsn(stack_dir)
    with cluster_client(ctx, config, dir) as client:
        from pgwarden.drill.cluster import DrillCluster
        from pgwarden.drill.drill import Drill, DrillSettings
        from pgwarden.drill.faults import KillPrimary, Switchover

        cluster = DrillCluster(client, client.target.nodes)
        fault: Fault = KillPrimary(_local_stack(stack_dir)) if unplanned else Switchover(cluster)
        settings = DrillSettings(dsn=writes_to, rounds=rounds, heal_timeout=heal_timeout)
        table = is_pretty(format)
        report = Drill(cluster, fault, settings).run(on_round=_print_round if table else lambda _: None)
    print_result(format, report.document(), summary_table(report))
    if table:
        for problem in report.problems():
            typer.echo(f"pgwarden: {problem}", err=True)
    if not report.ok:
        raise typer.Exit(1)


def _stack_document(stack_dir: Path) -> dict[str, Any]:
    path = stack_dir / "stack.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        fail(f"no --dsn and no readable local stack at {path} ({exc}); pass --dsn or --dir DIR", USAGE)
    if not isinstance(doc, dict):
        fail(f"{path} is not a stack description", USAGE)
    return doc


def _stack_dsn(stack_dir: Path) -> str:
    """The router's write port and the superuser, from the local stack's stack.json."""
    doc = _stack_document(stack_dir)
    try:
        host, port = str(doc["haproxy"]["primary"]).rsplit(":", 1)
        user, password = doc["superuser"]["username"], doc["superuser"]["password"]
    except (KeyError, TypeError, ValueError):
        fail(f"{stack_dir / 'stack.json'} names no haproxy.primary or superuser; pass --dsn", USAGE)
    return f"host={host} port={port} user={user} password={password} dbname=postgres connect_timeout=2"


def _local_stack(stack_dir: Path) -> Stack:
    from pgwarden.local.spec import StackSpec
    from pgwarden.local.stack import Stack

    spec = StackSpec.load(stack_dir)
    if spec is None:
        fail(f"--unplanned needs a local stack; none at {stack_dir}", USAGE)
    return Stack(spec)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _print_round(r: RoundResult) -> None:
    reasons = ", ".join(f"{n} {code}" for n, code in sorted(r.reasons.items()))
    verdict = "healed" if r.healed else f"NOT HEALED ({r.error})"
    typer.echo(
        f"round {r.number} ({r.kind}): {r.old_primary} -> {r.new_primary}, {verdict} in "
        f"{_seconds(r.heal_seconds)} s; RTO {_seconds(r.rto_seconds)} s; writes {r.acknowledged} "
        f"acknowledged, {r.lost} lost; old primary streaming after "
        f"{_seconds(r.old_primary_streams_after)} s; reasons: {reasons}"
    )


def summary_table(report: DrillReport) -> Table:
    table = Table(title=f"Drill of cluster {report.cluster}: {len(report.rounds)} {report.kind} round(s)")
    for column in ("Round", "From", "To", "Healed", "RTO s", "Acked", "Lost", "Old primary streams s"):
        table.add_column(column, justify="right" if column.endswith(("s", "d", "t")) else "left")
    for r in report.rounds:
        table.add_row(
            str(r.number),
            r.old_primary or "-",
            r.new_primary or "-",
            "yes" if r.healed else "NO",
            _seconds(r.rto_seconds),
            str(r.acknowledged),
            str(r.lost),
            _seconds(r.old_primary_streams_after),
        )
    s = report.summary()
    table.add_section()
    table.add_row(
        "all",
        "",
        "",
        f"{s['healed']}/{s['rounds']}",
        _seconds(s["max_rto_seconds"]),
        str(s["writes_acknowledged"]),
        str(s["writes_lost"]),
        _seconds(s["max_old_primary_streams_after_seconds"]),
    )
    return table
