"""``pgwarden show-config`` and ``edit-config``: the cluster's dynamic config in etcd, shown and edited.

show-config reads etcd; edit-config reads and writes through an agent's REST API, so its
authentication and its checks (PostgreSQL's own verdict on changed parameters) apply to every
edit, and the write is compare-and-set on the revision read (If-Match).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pgwarden.api.contract import PARAMETER_CHECK_HEADER
from pgwarden.cli.connect import (
    USAGE,
    ClusterArgument,
    ConfigOption,
    DirOption,
    ForceOption,
    cluster_client,
    confirm,
    fail,
    warn,
)
from pgwarden.client import (
    ApiRefused,
    ClientError,
    ClusterClient,
    ConfigEdit,
    config_document,
    config_yaml,
    parse_assignment,
    plan_edit,
    plan_patch,
    plan_replacement,
)
from pgwarden.config.errors import ConfigError
from pgwarden.model.cluster import DynamicConfig


class ConfigFormat(StrEnum):
    YAML = "yaml"
    JSON = "json"


def show_config(
    ctx: typer.Context,
    cluster: ClusterArgument = None,
    format: Annotated[ConfigFormat, typer.Option("--format", help="yaml or json")] = ConfigFormat.YAML,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Print the cluster's dynamic config as stored in etcd."""
    with cluster_client(ctx, config, dir, cluster) as client:
        stored, revision, problem = client.config_problem()
        cfg = stored or _fallback(client, revision, problem)
    if format == ConfigFormat.JSON:
        typer.echo(json.dumps(config_document(cfg), indent=2))
    else:
        typer.echo(config_yaml(cfg), nl=False)


def edit_config(
    ctx: typer.Context,
    cluster: ClusterArgument = None,
    assignments: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            metavar="KEY=VALUE",
            help="set one key (repeatable): ttl=30, parameters.work_mem=8MB; KEY=null removes it",
        ),
    ] = None,
    parameters: Annotated[
        list[str] | None,
        typer.Option(
            "--pg",
            "-p",
            metavar="NAME=VALUE",
            help="set a PostgreSQL parameter (repeatable): -p work_mem=8MB = -s parameters.work_mem=8MB",
        ),
    ] = None,
    apply: Annotated[
        str | None,
        typer.Option("--apply", metavar="FILE", help="merge this YAML file (- for stdin) into the config"),
    ] = None,
    replace: Annotated[
        str | None,
        typer.Option(
            "--replace", metavar="FILE", help="replace the config with this YAML file (- for stdin)"
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="do not show the changes")] = False,
    force: ForceOption = False,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Change the dynamic config: --set/--pg keys, --apply/--replace a YAML file, or edit the YAML in
    $EDITOR; shows a diff, then writes (compare-and-set)."""
    try:
        parsed = [parse_assignment(text) for text in assignments or []]
        parsed += [parse_assignment(f"postgresql.parameters.{text}") for text in parameters or []]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--set/--pg") from None
    if apply is not None and replace is not None:
        fail("--apply merges, --replace replaces: give one of them", USAGE)
    file_text = _read_file(apply if apply is not None else replace)
    with cluster_client(ctx, config, dir, cluster) as client:
        read = client.read_config()
        stored, revision = read.config, read.revision
        problem = client.config_problem()[2]
        if problem is not None:
            # The agents answered with the config they keep in force: the edit starts from it.
            warn(f"the dynamic config in etcd is unreadable: {problem}")
            warn("editing the config the agents keep in force (their last valid one); writing replaces it")
        if stored is None:
            warn(_missing(revision) + "; editing the defaults")
        current = stored or DynamicConfig()
        try:
            if replace is not None:
                edit = plan_replacement(current, revision, file_text or "")
                edit = plan_edit(edit.after, revision, parsed) if parsed else edit
                edit = ConfigEdit(current, edit.after, revision)
            elif apply is not None:
                edit = plan_patch(current, revision, file_text or "")
                edit = ConfigEdit(current, plan_edit(edit.after, revision, parsed).after, revision)
            elif parsed:
                edit = plan_edit(current, revision, parsed)
            else:
                text = edit_in_editor(config_yaml(current))
                if text is None:
                    typer.echo("no change: the editor closed without changing the text")
                    return
                edit = plan_replacement(current, revision, text)
        except ConfigError as exc:
            fail(f"refused, nothing written: {exc}")
        if not edit.changed and stored is not None and problem is None:
            # (Over a junk stored value even "no change" writes: the write is the repair.)
            typer.echo("no change: the config already says that")
            return
        if not quiet:
            _print_diff(edit)
        if not force:
            confirm("Apply these changes?")
        try:
            answer = client.write_config(edit.after, read)
        except ApiRefused as exc:
            if exc.status != 400:
                raise
            fail(f"refused by {exc.member}, nothing written: {exc.error}")
        checked = answer.headers.get(PARAMETER_CHECK_HEADER.lower())
        if checked:
            typer.echo(f"parameter check: {checked}")
        typer.echo(
            f"config of cluster {client.target.cluster!r} updated through {answer.member}'s REST API; "
            "agents apply it on their next loop"
        )


def _read_file(name: str | None) -> str | None:
    """--apply/--replace's text: a file, or standard input for ``-``."""
    if name is None:
        return None
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text()
    except OSError as exc:
        fail(f"cannot read {name}: {exc}", USAGE)


def edit_in_editor(text: str) -> str | None:
    """Open $VISUAL/$EDITOR (default vi) on ``text``; the edited text, or None when unchanged."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    fd, name = tempfile.mkstemp(prefix="pgwarden-config-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        if subprocess.run([*shlex.split(editor), name], check=False).returncode != 0:
            fail(f"the editor {editor!r} failed; nothing written")
        edited = Path(name).read_text()
    finally:
        os.unlink(name)
    return None if edited == text else edited


def _missing(revision: int) -> str:
    if revision == 0:
        return "no dynamic config in etcd yet"
    return "the dynamic config in etcd is invalid (the agents' logs say why)"


def _fallback(client: ClusterClient, revision: int, problem: str | None) -> DynamicConfig:
    """What show-config shows when etcd holds no readable config: the config the agents run with
    (their last valid one, as their GET /config answers) when the stored one is junk, else the
    defaults. Saying so, on stderr."""
    if revision == 0:
        warn(_missing(revision) + "; showing the defaults")
        return DynamicConfig()
    warn(f"the dynamic config in etcd is unreadable: {problem}")
    try:
        in_force = client.read_config().config
    except ClientError:
        in_force = None
    if in_force is not None:
        warn("showing the config the agents keep in force (their last valid one)")
        return in_force
    warn("no agent answered with the config in force; showing the defaults")
    return DynamicConfig()


def _print_diff(edit: ConfigEdit) -> None:
    colours = {"+": "green", "-": "red", "@": "cyan"}
    for line in edit.diff().splitlines():
        typer.secho(line, fg=colours.get(line[:1]))
