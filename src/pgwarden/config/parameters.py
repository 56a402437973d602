"""Validates PostgreSQL ``parameters`` in any config: names, owned settings, directives, one-line values.

What PostgreSQL itself accepts (a setting's type, range and enum values) is checked apart, against
the node's PostgreSQL (postgres/parameter_check.py): these rules need no server and hold in every
config, the node YAML and the dynamic config alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator, PlainValidator

from pgwarden.config.fields import reject, shown
from pgwarden.model.parameters import GUC_NAME, INCLUDE_DIRECTIVES, WAL_LEVELS, ParamValue, owned

_LINE_BREAKS = "\n\r\0"


def check_name(value: object) -> str:
    """A parameter name a config may set, as written; refuses directives and owned names."""
    if not isinstance(value, str) or not GUC_NAME.fullmatch(value):
        reject(
            f"{shown(value)} is not a PostgreSQL parameter name",
            "use the name as in postgresql.conf, e.g. shared_buffers or pg_stat_statements.max",
        )
    if value.lower() in INCLUDE_DIRECTIVES:
        # Rendered, it would include that file after pgwarden's own settings: any file on the
        # node could then override (or break) them, and a missing one stops the next start.
        reject(
            f"`{value}` is a directive that includes another file, not a setting",
            "put the settings themselves under parameters",
        )
    reason = owned(value)
    if reason is not None:
        reject(f"`{value}` is set by pgwarden: {reason.why}", reason.instead)
    return value


def check_value(value: object) -> ParamValue:
    fix = "write a string, number or boolean, e.g. 128MB, 200 or on"
    if isinstance(value, float) and not math.isfinite(value):
        reject(f"{value!r} is not a usable value", fix)
    if isinstance(value, str) and any(c in value for c in _LINE_BREAKS):
        # postgresql.conf has no way to continue a value over several lines.
        reject("the value contains a line break, carriage return or NUL byte", "write it on one line")
    if isinstance(value, str | int | float | bool):
        return value
    reject(f"expected a string, number or boolean, got {shown(value)}", fix)


def check_parameters(parameters: Mapping[str, ParamValue]) -> dict[str, ParamValue]:
    """Rules across names and values, after each name and value passed on its own."""
    seen: dict[str, str] = {}
    for name, value in parameters.items():
        other = seen.setdefault(name.lower(), name)
        if other != name:
            reject(
                f"`{other}` and `{name}` name the same setting (names are case-insensitive)",
                "keep one of them",
            )
        if name.lower() == "wal_level" and str(value).lower() not in WAL_LEVELS:
            reject(
                f"wal_level {shown(value)} cannot stream WAL to standbys",
                f"use {' or '.join(WAL_LEVELS)}",
            )
    return dict(parameters)


Parameters = Annotated[
    dict[Annotated[str, PlainValidator(check_name)], Annotated[ParamValue, PlainValidator(check_value)]],
    AfterValidator(check_parameters),
]
