"""The field readers under dcs/codec.py's decoders: each takes one field of a parsed JSON object and
returns it typed and bounded, or raises ValueError naming the field and what is wrong; `read_value`
parses a stored value within MAX_VALUE_BYTES and turns any such problem into `Unreadable`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pgwarden.bounded_json import parse_json
from pgwarden.config.errors import ConfigError
from pgwarden.model.lsn import Lsn

T = TypeVar("T")
Obj = Mapping[str, Any]

# The largest value any key may hold: a member record is about 1 KiB, a full history (100 entries,
# see ClusterStore) about 30 KiB. Larger values are refused before they are parsed.
MAX_VALUE_BYTES = 256 * 1024
INT32 = (-(2**31), 2**31 - 1)


class Unreadable(ValueError):
    """A stored value that cannot be read; the message names the field and what is wrong."""


def dumps(data: object) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def read_object(data: object, what: str) -> Obj:
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a JSON object, not {kind_of(data)}")
    return data


def kind_of(data: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(data), "a number")


def read_str(data: Obj, field: str, default: str | None = None) -> str:
    value = data.get(field, default)
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string, not {kind_of(value)}")
    return value


def read_opt_str(data: Obj, field: str) -> str | None:
    value = data.get(field)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{field} must be a string or null, not {kind_of(value)}")
    return value


def read_int(data: Obj, field: str, default: int | None = None, bounds: tuple[int, int] = INT32) -> int:
    value: object = data.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field} must be an integer, not {kind_of(value)}")
    low, high = bounds
    if not low <= value <= high:
        raise ValueError(f"{field} must be between {low} and {high}")
    return value


def read_opt_int(data: Obj, field: str, bounds: tuple[int, int] = INT32) -> int | None:
    return None if data.get(field) is None else read_int(data, field, bounds=bounds)


def read_opt_float(data: Obj, field: str) -> float | None:
    value = data.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field} must be a number or null, not {kind_of(value)}")
    number = float(value)  # an integer too large for a float raises OverflowError, an ArithmeticError
    if not math.isfinite(number):
        raise ValueError(f"{field} must be a finite number")
    return number


def read_bool(data: Obj, field: str, default: bool) -> bool:
    value = data.get(field, default)
    if not isinstance(value, bool):
        raise ValueError(f"{field} must be true or false, not {kind_of(value)}")
    return value


def read_opt_bool(data: Obj, field: str) -> bool | None:
    value = data.get(field)
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{field} must be true, false or null, not {kind_of(value)}")
    return value


def read_lsn(data: Obj, field: str) -> Lsn:
    return Lsn.parse(read_str(data, field))


def read_opt_lsn(data: Obj, field: str) -> Lsn | None:
    text = read_opt_str(data, field)
    return None if text is None else Lsn.parse(text)


def read_str_map(data: Obj, field: str) -> dict[str, str]:
    value = read_object(data.get(field, {}), field)
    if not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"{field} values must be strings")
    return dict(value)


def read_names(data: Obj, field: str) -> frozenset[str]:
    """An optional list of member names (absent: none)."""
    value = data.get(field, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{field} must be a list of names")
    return frozenset(value)


def read_value(text: str, parse: Callable[[Any], T]) -> T:
    """``parse`` applied to the JSON in ``text``; `Unreadable` for any problem of the value."""
    try:
        return parse(parse_json(text, MAX_VALUE_BYTES))
    except (ValueError, TypeError, KeyError, ArithmeticError, ConfigError) as exc:
        raise Unreadable(str(exc) or type(exc).__name__) from None
