"""Turns validation failures into ConfigIssues that name the field, the problem and the fix."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from pgwarden.config.errors import ConfigError, ConfigIssue

Loc = tuple[str | int, ...]

# Keys a Patroni user will reach for, and what they are called here.
_RENAMED = {
    "scope": "cluster",
    "restapi": "api",
    "etcd3": "etcd",
    "loglevel": "log_level",
    "log": "log_level",
    "master_start_timeout": "primary_start_timeout",
}
_MAPPING_TYPES = {"model_type", "dict_type", "model_attributes_type"}


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem at a location in the raw document, before it is tied to a file line or variable."""

    loc: Loc
    problem: str
    fix: str


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a document came from: its name, the line of each key, and env-overridden paths."""

    source: str
    lines: Mapping[Loc, int] = field(default_factory=dict)
    overrides: Mapping[Loc, str] = field(default_factory=dict)  # path -> PGWARDEN_... name

    def issue(self, finding: Finding) -> ConfigIssue:
        loc = finding.loc
        env_var = next((v for p, v in self.overrides.items() if loc[: len(p)] == p), None)
        line = next((self.lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in self.lines), None)
        return ConfigIssue(dotted(loc), finding.problem, finding.fix, line, env_var)

    def error(self, findings: Iterable[Finding]) -> ConfigError:
        return ConfigError(self.source, [self.issue(f) for f in findings])


def dotted(loc: Loc) -> str:
    """``("etcd", "hosts", 1)`` -> ``etcd.hosts[1]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def unknown_key(loc: Loc, known: Sequence[str]) -> Finding:
    """An unknown key, with the closest known key (or the list of known ones) as the fix."""
    key = str(loc[-1])
    guess = _RENAMED.get(key.lower())
    if guess not in known:
        close = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.6)
        guess = close[0] if close else None
    if guess is not None:
        fix = f"did you mean `{guess}`? Otherwise remove it"
    else:
        fix = f"remove it; the keys allowed here are: {', '.join(known)}"
    return Finding(loc, f"unknown key `{key}`", fix)


def findings_from_validation(exc: ValidationError, model: type[BaseModel], prefix: Loc) -> list[Finding]:
    """One Finding per pydantic error of ``model``, whose document sits at ``prefix``."""
    return [_finding(err, model, prefix) for err in exc.errors(include_url=False)]


def _finding(err: ErrorDetails, model: type[BaseModel], prefix: Loc) -> Finding:
    # pydantic appends "[key]" when a mapping's key, rather than its value, is wrong.
    loc: Loc = tuple(p for p in err["loc"] if p != "[key]")
    full = prefix + loc
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "pgwarden":
        problem = "has an unusable value (not shown: it is secret)" if _secret(full) else ctx["problem"]
        return Finding(full, str(problem), str(ctx["fix"]))
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        return unknown_key(full, list(parent.model_fields) if parent else [])
    example = _example(model, loc)
    like = f"e.g. `{example[0]}: {example[1]}`" if example else "see the example config"
    if kind == "missing":
        where = f"under `{dotted(full[:-1])}`" if len(full) > 1 else "at the top level"
        return Finding(full, "is required but missing", f"add it {where}, {like}")
    if kind in _MAPPING_TYPES:
        return Finding(
            full,
            f"should be a mapping of settings, got {_shown(err, full)}",
            f"write it as key: value lines, {like}",
        )
    if kind == "invalid_key":
        return Finding(full, f"key {err['input']!r} is not text", "quote the key, or remove it")
    if kind == "too_short":
        return Finding(full, "is empty", f"give at least one entry, {like}")
    problem = err["msg"].replace("Input should", "should", 1) + f", got {_shown(err, full)}"
    if kind == "string_type":
        return Finding(full, problem, f"write it as text, in quotes if it looks like a number, {like}")
    if kind in ("bool_type", "bool_parsing"):
        return Finding(full, problem, "write true or false, without quotes")
    if kind in ("greater_than", "greater_than_equal", "enum", "literal_error"):
        return Finding(full, problem, f"change it accordingly, {like}")
    return Finding(full, problem, f"write a value of the right type, {like}")


def _secret(loc: Loc) -> bool:
    return any("password" in str(part) for part in loc)


def _shown(err: ErrorDetails, loc: Loc) -> str:
    if _secret(loc):
        return "a value that is not shown (it is secret)"
    text = repr(err["input"])
    return text if len(text) <= 60 else text[:57] + "..."


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for part in loc:
        info = current.model_fields.get(str(part)) if current else None
        current = _model_of(info.annotation) if info else None
    return current


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if (found := _model_of(arg)) is not None:
                return found
    return None


def _example(model: type[BaseModel], loc: Loc) -> tuple[str, object] | None:
    """The nearest field along ``loc`` that has an example, as (key, example)."""
    for n in range(len(loc), 0, -1):
        parent = _model_at(model, loc[: n - 1])
        info: FieldInfo | None = parent.model_fields.get(str(loc[n - 1])) if parent else None
        if info is not None:
            return (str(loc[n - 1]), info.examples[0]) if info.examples else None
    return None
