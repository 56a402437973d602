"""``pgwarden migrate from-patroni``: a Patroni node's config converted into a pgwarden node config."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from pgwarden.cli.connect import REFUSED, USAGE, fail
from pgwarden.config.document import parse_yaml, read_text
from pgwarden.config.errors import ConfigError
from pgwarden.config.explain import Loc
from pgwarden.migrate.convert import Result, convert
from pgwarden.migrate.notes import Note

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Move a cluster to pgwarden")
_DCS_TIMEOUT = 10.0


class ReportFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


@app.command("from-patroni")
def from_patroni(
    patroni_config: Annotated[Path, typer.Argument(help="the node's Patroni config (patroni.yml)")],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="write the node config here (0600); default: standard output"),
    ] = None,
    format: Annotated[
        ReportFormat, typer.Option("--format", help="the report on stderr: text, or json on stdout")
    ] = ReportFormat.TEXT,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="the directory Patroni ran in, to resolve its relative paths"),
    ] = None,
    dcs: Annotated[
        str | None,
        typer.Option(
            "--dcs",
            help="the running cluster's dynamic config, used as bootstrap.dcs: a YAML file "
            "(`patronictl show-config > dcs.yml`) or a Patroni REST API URL (its GET /config)",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite the output file")] = False,
) -> None:
    """Convert a Patroni node config; say, line by line, what did not map and why.

    PATRONI_* environment variables are read as Patroni reads them, each with a warning naming
    pgwarden's variable. The result is checked with pgwarden's own loader: exit 0 when it loads,
    1 when it was written but pgwarden refuses it (the reasons and fixes are listed), 2 when
    nothing could be converted.
    """
    origin = str(patroni_config)
    tree, lines = _mapping_file(origin, "not a Patroni config (expected a mapping at the top level)")
    live = _read_dcs(dcs) if dcs else None
    absolute = str(workdir.resolve()) if workdir else None
    result = convert(tree, lines, os.environ, absolute, live)
    text = result.yaml(origin)
    if output is None:
        if format is ReportFormat.JSON:
            fail("--format json prints the report on stdout: give the config a file with -o", USAGE)
        sys.stdout.write(text)
    else:
        _write(output, text, force)
    _report(result, origin, output, format)
    if not result.valid:
        raise typer.Exit(REFUSED)


def _read_dcs(source: str) -> dict[str, Any]:
    if source.startswith(("http://", "https://")):
        import httpx  # only for this option

        url = source if source.rstrip("/").endswith("/config") else source.rstrip("/") + "/config"
        try:
            response = httpx.get(url, timeout=_DCS_TIMEOUT)
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            fail(f"cannot read the dynamic config from {url}: {exc}", USAGE)
        if not isinstance(data, dict):
            fail(f"{source}: the dynamic config is not a mapping", USAGE)
        return data
    return _mapping_file(source, "the dynamic config is not a mapping")[0]


def _mapping_file(path: str, not_a_mapping: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    """A YAML file whose top level is a mapping, with the line of each key; anything else ends
    the command (exit 2) naming the file and what is wrong."""
    try:
        data, lines = parse_yaml(read_text(path), path)
    except ConfigError as exc:
        fail(str(exc), USAGE)
    if not isinstance(data, dict):
        fail(f"{path}: {not_a_mapping}", USAGE)
    return data, lines


def _write(path: Path, text: str, force: bool) -> None:
    """Created 0600 from the start: the file holds passwords."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        fail(f"{path} exists; give another path, or --force to overwrite it", USAGE)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}", USAGE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)


def _ordered(notes: tuple[Note, ...]) -> list[Note]:
    """Line by line through the Patroni file; notes without a line (environment, defaults) last."""
    return sorted(notes, key=lambda n: (n.line is None, n.line or 0))


def _report(result: Result, origin: str, output: Path | None, format: ReportFormat) -> None:
    notes = _ordered(result.notes)
    if format is ReportFormat.JSON:
        document = {
            "source": origin,
            "output": str(output) if output else None,
            "valid": result.valid,
            "notes": [n.as_json() for n in notes],
            "refused": [{"path": i.path, "problem": i.problem, "fix": i.fix} for i in result.issues],
        }
        typer.echo(json.dumps(document, indent=2))
        return
    for note in notes:
        typer.echo(note.render(origin), err=True)
    for issue in result.issues:
        typer.echo(f"pgwarden refuses the result: {issue.render('the converted config')}", err=True)
    where = str(output) if output else "standard output"
    if result.valid:
        typer.echo(f"wrote {where}: it loads (pgwarden's own check); {len(notes)} notes above", err=True)
    else:
        typer.echo(f"wrote {where}, which needs the fixes above before an agent can use it", err=True)
