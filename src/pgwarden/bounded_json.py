"""Parses JSON that came from outside (an etcd value, a peer's answer) into plain values, bounded.

``json.loads`` recurses once per nesting level: 200,000 nested brackets in one etcd value raised
``RecursionError`` and stopped every agent that read it. pydantic-core's parser (jiter, already a
dependency through pydantic) nests at most 200 levels, refuses non-UTF-8 input, numbers past
64 bits and lone surrogates, and reports every problem as ``ValueError``; the size cap is checked
before any parsing, so a value's size bounds the memory it can cost.
"""

from __future__ import annotations

from pydantic_core import from_json


class BadJson(ValueError):
    """The input is too large or not JSON; the message says which, in a few words."""


def parse_json(data: str | bytes, max_bytes: int) -> object:
    """The JSON value in ``data``; `BadJson` when larger than ``max_bytes`` or not JSON.

    The literals NaN and Infinity are refused (JSON has none); a number too large for a float
    (``1e999``) still reads as infinity, so callers check that floats are finite.
    """
    if isinstance(data, str):
        if len(data) > max_bytes:  # at least one byte per character: too large, no need to encode
            raise BadJson(f"{_size(len(data))} characters, more than the {_size(max_bytes)} allowed")
        # A lone surrogate (etcd text decoded leniently) becomes bytes the parser then refuses.
        data = data.encode("utf-8", errors="surrogatepass")
    if len(data) > max_bytes:
        raise BadJson(f"{_size(len(data))}, more than the {_size(max_bytes)} allowed")
    try:
        return from_json(data, allow_inf_nan=False)
    except ValueError as exc:
        raise BadJson(f"not JSON: {exc}") from None


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n} bytes"
