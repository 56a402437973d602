"""Reads the health-check settings of an HAProxy configuration: the section that routes writes.

The write section is the ``listen``/``backend`` whose ``option httpchk`` asks an agent for
``/primary`` (or Patroni's other names for it). Its checks' ``inter``, ``fastinter``,
``downinter``, ``rise`` and ``fall`` come from ``default-server`` lines (in ``defaults``, then
in the section) and the first ``server`` line's own keywords, HAProxy's order of precedence;
``timeout check`` likewise. Anything not set keeps HAProxy's default (inter 2 s, rise 2, fall 3).
"""

from __future__ import annotations

import contextlib
import itertools
import re
from dataclasses import replace
from pathlib import Path

from pgwarden.doctor.facts import HaproxyChecks

SECTIONS = ("global", "defaults", "frontend", "backend", "listen", "peers", "resolvers", "userlist",
            "mailers", "program", "http-errors", "cache", "ring")  # fmt: skip
WRITE_PATHS = ("/primary", "/master", "/read-write", "/leader", "/")
_TIME = re.compile(r"^(\d+(?:\.\d+)?)(us|ms|s|m|h|d)?$")
_UNIT = {"us": 1e-6, "ms": 1e-3, None: 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class HaproxyConfigError(Exception):
    """The file cannot be read, or routes no writes by an agent's health check."""


def seconds(text: str) -> float:
    """An HAProxy time: ``500ms``, ``2s``, ``1m``; a bare number is milliseconds."""
    found = _TIME.match(text)
    if found is None:
        raise ValueError(f"not an HAProxy time: {text!r}")
    return float(found.group(1)) * _UNIT[found.group(2)]


def _apply(checks: HaproxyChecks, words: list[str]) -> HaproxyChecks:
    """The check keywords among ``words`` (a server or default-server line) applied to ``checks``."""
    changes: dict[str, float | int] = {}
    for keyword, value in itertools.pairwise(words):
        try:
            if keyword in ("inter", "fastinter", "downinter"):
                changes[keyword] = seconds(value)
            elif keyword in ("rise", "fall"):
                changes[keyword] = int(value)
        except ValueError:
            continue  # a keyword's value we cannot read keeps the setting before it
    return replace(checks, **changes)  # type: ignore[arg-type]


def parse(text: str, source: str) -> HaproxyChecks:
    defaults = HaproxyChecks(source=source)
    sections: list[tuple[str, HaproxyChecks, list[list[str]]]] = []
    kind = ""
    lines: list[list[str]] = []
    inherited = defaults
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if not raw[:1].isspace() and words[0] in SECTIONS:
            if kind == "defaults":
                inherited = _section(defaults, lines)
                defaults = inherited
            elif kind in ("listen", "backend"):
                sections.append((kind, inherited, lines))
            kind, lines = words[0], []
            continue
        lines.append(words)
    if kind == "defaults":
        defaults = _section(defaults, lines)
    elif kind in ("listen", "backend"):
        sections.append((kind, inherited, lines))
    for _, base, body in sections:
        if _checks_writes(body):
            return _section(base, body, with_server=True)
    raise HaproxyConfigError(
        f"{source} has no listen or backend section checking an agent's /primary "
        "(option httpchk ... /primary)"
    )


def _checks_writes(body: list[list[str]]) -> bool:
    for words in body:
        if words[:2] == ["option", "httpchk"]:
            path = next((w for w in words[2:] if w.startswith("/")), None)
            if path is not None and path.split("?")[0].rstrip("/") in [p.rstrip("/") for p in WRITE_PATHS]:
                return True
    return False


def _section(base: HaproxyChecks, body: list[list[str]], with_server: bool = False) -> HaproxyChecks:
    checks = base
    for words in body:
        if words[0] == "default-server":
            checks = _apply(checks, words[1:])
        elif words[:2] == ["timeout", "check"] and len(words) > 2:
            with contextlib.suppress(ValueError):
                checks = replace(checks, timeout_check=seconds(words[2]))
    if with_server:
        server = next((w for w in body if w[0] == "server"), None)
        if server is not None:
            checks = _apply(checks, server[2:])
    return checks


def read(path: Path) -> HaproxyChecks:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise HaproxyConfigError(f"cannot read {path}: {exc}") from None
    return parse(text, str(path))
