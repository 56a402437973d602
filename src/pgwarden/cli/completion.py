"""``pgwarden completion bash|zsh|fish``: the shell script that completes pgwarden's commands and options.

The script calls ``pgwarden`` back with ``_PGWARDEN_COMPLETE`` set (typer's completion protocol),
so the completions always match the installed version's commands.
"""

from __future__ import annotations

import enum
import os

import typer

PROG = "pgwarden"
COMPLETE_VAR = "_PGWARDEN_COMPLETE"

if COMPLETE_VAR in os.environ:
    # The shell asks for completions: typer answers them once its completion classes are
    # registered (the app has add_completion=False, so that `--install-completion` and
    # `--show-completion` do not crowd the help; `pgwarden completion SHELL` replaces them).
    from typer._completion_classes import completion_init

    completion_init()


class Shell(enum.StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completion(shell: Shell = typer.Argument(..., help="bash, zsh or fish")) -> None:
    """Print the shell completion script for pgwarden.

    bash: `source <(pgwarden completion bash)` in ~/.bashrc, or save it as
    /etc/bash_completion.d/pgwarden. zsh: save it as `_pgwarden` in a directory of $fpath.
    fish: `pgwarden completion fish > ~/.config/fish/completions/pgwarden.fish`.
    """
    # typer keeps its script templates in a private module (no public accessor for them).
    from typer._completion_shared import get_completion_script

    typer.echo(get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell.value))
