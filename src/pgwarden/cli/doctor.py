"""``pgwarden doctor``: one report on the cluster's health and risks, each finding with evidence and a fix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.text import Text

from pgwarden.cli.connect import (
    ConfigOption,
    DirOption,
    FormatOption,
    OutputFormat,
    cluster_client,
    print_result,
)
from pgwarden.doctor.checks import examine
from pgwarden.doctor.findings import Report, Severity
from pgwarden.doctor.gather import gather

_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.WARNING: "bold yellow",
    Severity.INFO: "cyan",
    Severity.OK: "green",
}


def doctor(
    ctx: typer.Context,
    format: FormatOption = OutputFormat.PRETTY,
    haproxy_config: Annotated[
        Path | None,
        typer.Option(
            "--haproxy-config",
            help="the HAProxy configuration in use, for the timing checks (a local stack's is found)",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Check the cluster: data-loss window, slots, timing, rewind, archiving, etcd, clocks, API, fence ...

    Exit code: 0 when nothing is worse than info, 1 for a warning, 2 for a critical finding
    (the monitoring-plugin convention, so it can be a Nagios/Icinga check as it is).
    """
    with cluster_client(ctx, config, dir) as client:
        facts = gather(client, haproxy_config)
    report = examine(facts)
    print_result(format, report.document(), render(report))
    raise typer.Exit(report.exit_code)


def render(report: Report) -> RenderableType:
    counts = {s: sum(f.severity is s for f in report.findings) for s in Severity}
    summary = ", ".join(f"{counts[s]} {s.label}" for s in reversed(Severity) if counts[s])
    lines: list[RenderableType] = [
        Text.assemble(
            (f"pgwarden doctor: cluster {report.cluster}: ", "bold"),
            (report.worst.label.upper(), _STYLE[report.worst]),
            f" ({summary})",
        )
    ]
    for finding in report.findings:
        if finding.severity is Severity.OK:
            continue
        lines.append(Text())
        lines.append(
            Text.assemble(
                (f"{finding.severity.label.upper():<8} ", _STYLE[finding.severity]),
                (f"{finding.check}: ", "bold"),
                finding.title,
            )
        )
        for line in finding.evidence:
            lines.append(Text(f"         · {line}", style="dim"))
        if finding.fix:
            lines.append(Text.assemble(("         fix: ", "bold"), finding.fix))
    passed = [f for f in report.findings if f.severity is Severity.OK]
    if passed:
        lines.append(Text())
        lines.append(Text(f"passed ({len(passed)}):", style="bold green"))
        for finding in passed:
            lines.append(Text.assemble(("  ok ", "green"), (f"{finding.check}: ", "bold"), finding.title))
    return Group(*lines)
