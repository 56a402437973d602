"""libpq connection strings: the upstream a standby follows, built with proper quoting and parsed back."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_PLAIN = re.compile(r"[A-Za-z0-9_.:/@+-]+")


@dataclass(frozen=True, slots=True)
class StandbyUpstream:
    """The member a standby streams from (or clones / rewinds from): its name and address."""

    name: str
    host: str
    port: int


def quote_value(value: str) -> str:
    """Quote a conninfo value when needed (libpq: single quotes, backslash escapes)."""
    if value and _PLAIN.fullmatch(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def make_conninfo(params: Mapping[str, str | int | None]) -> str:
    """``key=value`` pairs in the given order; None values are left out."""
    return " ".join(f"{k}={quote_value(str(v))}" for k, v in params.items() if v is not None)


def parse_conninfo(text: str) -> dict[str, str]:
    """Parse ``key=value`` pairs as libpq does (quoted values, backslash escapes).

    Raises ValueError on malformed input; URIs are not supported (we only write key=value).
    """
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return params
        eq = text.find("=", i)
        if eq < 0:
            raise ValueError(f"missing '=' after {text[i:]!r} in connection string")
        key = text[i:eq].strip()
        i = eq + 1
        while i < n and text[i].isspace():
            i += 1
        value: list[str] = []
        if i < n and text[i] == "'":
            i += 1
            while True:
                if i >= n:
                    raise ValueError("unterminated quoted value in connection string")
                ch = text[i]
                if ch == "\\" and i + 1 < n:
                    value.append(text[i + 1])
                    i += 2
                elif ch == "'":
                    i += 1
                    break
                else:
                    value.append(ch)
                    i += 1
        else:
            while i < n and not text[i].isspace():
                if text[i] == "\\" and i + 1 < n:
                    value.append(text[i + 1])
                    i += 2
                else:
                    value.append(text[i])
                    i += 1
        params[key] = "".join(value)
