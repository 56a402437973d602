"""Asks this node's PostgreSQL binaries whether they accept parameter values, before anything uses them.

The trial: the parameters are rendered exactly as pgwarden.conf would hold them into a scratch
file, and ``postgres -C`` reads that file as a server start would (same parser, same units, same
ranges, enum lists and check hooks, every context including ``postmaster`` settings) and exits
without starting anything, whether or not this node's server runs. It needs no data directory
and about 15 ms. ``set_config()`` in a rolled-back transaction was measured too (4-8 ms) but
cannot judge the ``postmaster`` and ``sighup`` settings (147 of 354 in PostgreSQL 15:
``shared_buffers``, ``max_connections``, ``wal_level`` ...).

What the trial cannot see: settings of extensions (``name.sub``: placeholders until the library is
loaded) and limits that only a real start meets (memory, kernel). Those still show up as
pg_file_settings errors (file_settings.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pgwarden.model.node import PostgresSettings
from pgwarden.model.parameters import ParamValue
from pgwarden.postgres.commands import PostgresError, run, secret_file
from pgwarden.postgres.settings import render_line

log = logging.getLogger(__name__)

TRIAL_TIMEOUT = 5.0
# "LOG:  invalid value for parameter "work_mem": "lots"" -> level, message
_LINE = re.compile(r"^(LOG|WARNING|ERROR|FATAL|DETAIL|HINT):\s+(.*)$")
_NAMED = re.compile(r'parameter "([^"]+)"')
_LINE_NO = re.compile(r" line (\d+)\b")
_WHERE = re.compile(r' in file "[^"]*"( line \d+)?')  # the scratch file's path means nothing to a user
_UNRECOGNIZED = "unrecognized configuration parameter"
# Said by every trial run: the scratch data directory deliberately does not exist.
_NOISE = ("skipping missing configuration file", "contains errors")


@dataclass(frozen=True, slots=True)
class ParameterCheck:
    """PostgreSQL's verdict: each refused parameter (as named by the caller) with its message."""

    problems: Mapping[str, str] = field(default_factory=dict)
    skipped: str | None = None  # why nothing could be checked (then ``problems`` is empty)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_parameters(
    settings: PostgresSettings, parameters: Mapping[str, ParamValue], timeout: float = TRIAL_TIMEOUT
) -> ParameterCheck:
    """The parameters PostgreSQL refuses, by name; a check that could not run says why instead.

    Unknown names stop PostgreSQL's reading of the file before any value is checked, so a trial
    that finds some is run once more without them.
    """
    names = list(parameters)
    problems: dict[str, str] = {}
    while names:
        try:
            verdict = _trial(settings, {n: parameters[n] for n in names}, timeout)
        except _Unusable as exc:
            log.warning("parameter check skipped: %s", exc)
            return ParameterCheck(skipped=str(exc))
        problems.update(verdict)
        unknown = {n for n, message in verdict.items() if message.startswith(_UNRECOGNIZED)}
        if not unknown:
            break
        names = [n for n in names if n not in unknown]
    return ParameterCheck(problems)


class _Unusable(Exception):
    """The trial itself failed (no binary, a timeout, a refusal naming no parameter)."""


def _trial(
    settings: PostgresSettings, parameters: Mapping[str, ParamValue], timeout: float
) -> dict[str, str]:
    lines = [render_line(name, value) for name, value in parameters.items()]
    with secret_file(settings, "\n".join(lines) + "\n") as path:
        args = [
            "-c", f"config_file={path}",
            # None of these exist: no postgresql.auto.conf is read, no hba file is opened.
            "-c", f"data_directory={path}.none",
            "-c", f"hba_file={path}.none",
            "-c", f"ident_file={path}.none",
            "-c", "log_line_prefix=",
            "-c", "lc_messages=C",
            "-C", "port",
        ]  # fmt: skip
        try:
            result = run(settings, "postgres", args, timeout=timeout, check=False)
        except PostgresError as exc:
            raise _Unusable(str(exc).splitlines()[0]) from None
    if result.returncode == 0:
        return {}
    found = read_refusals(result.stderr, list(parameters))
    if not found:
        tail = " ".join(result.stderr.split())[-300:] or f"exit code {result.returncode}"
        raise _Unusable(f"postgres -C refused the trial file without naming a setting: {tail}")
    return found


def read_refusals(stderr: str, names: list[str]) -> dict[str, str]:
    """Each name PostgreSQL's messages blame, with the message (and its DETAIL/HINT) on one line.

    A message names its setting in double quotes, possibly in another case (``TimeZone``); a
    syntax error gives the line instead, and line N of the trial file holds names[N - 1].
    """
    by_lower = {name.lower(): name for name in names}
    found: dict[str, str] = {}
    last: str | None = None
    for raw in stderr.splitlines():
        match = _LINE.match(raw.strip())
        if match is None:
            continue
        level, message = match.groups()
        if level in ("DETAIL", "HINT"):
            if last is not None:
                found[last] += f" ({message})"
            continue
        last = None
        if any(noise in message for noise in _NOISE):
            continue
        blamed = _blamed(message, by_lower, names)
        if blamed is not None and blamed not in found:
            found[blamed] = _WHERE.sub("", message)
            last = blamed
    return found


def _blamed(message: str, by_lower: Mapping[str, str], names: list[str]) -> str | None:
    for quoted in _NAMED.findall(message):
        if quoted.lower() in by_lower:
            return by_lower[quoted.lower()]
    number = _LINE_NO.search(message)
    if number is not None and 1 <= int(number.group(1)) <= len(names):
        return names[int(number.group(1)) - 1]
    return None
