"""Edits of the dynamic config as values: ``--set key=value`` parsing, the YAML shown, and the diff.

Pure functions: nothing here reads etcd or the terminal, so the CLI and tests share them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from pgwarden.config.dynamic import dynamic_config_to_dict, merge_patch, parse_dynamic_config
from pgwarden.config.errors import ConfigError
from pgwarden.model.cluster import DynamicConfig

Scalar = str | int | float | bool | None
Path = tuple[str, ...]

# Patroni nests these under `postgresql:`; the stored config keeps them at the top level.
_POSTGRESQL_KEYS = frozenset({"parameters", "use_pg_rewind", "remove_data_directory_on_diverged_timelines"})
EDIT_SOURCE = "edit-config"
_DEFAULTS = dynamic_config_to_dict(DynamicConfig())


@dataclass(frozen=True, slots=True)
class Assignment:
    """One ``--set``: where in the config document, and the value (None removes the key)."""

    path: Path
    value: Scalar

    def patch(self) -> dict[str, Any]:
        """The merge patch (RFC 7386) that makes this assignment."""
        patch: dict[str, Any] = {self.path[-1]: self.value}
        for key in reversed(self.path[:-1]):
            patch = {key: patch}
        return patch


@dataclass(frozen=True, slots=True)
class ConfigEdit:
    """A validated change of the config read at ``revision``."""

    before: DynamicConfig
    after: DynamicConfig
    revision: int

    @property
    def changed(self) -> bool:
        return config_document(self.before) != config_document(self.after)

    def diff(self) -> str:
        return config_diff(self.before, self.after)


def parse_assignment(text: str) -> Assignment:
    """``parameters.work_mem=8MB`` -> Assignment(("parameters", "work_mem"), "8MB"); ValueError if bad."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    example = "e.g. ttl=30, parameters.work_mem=8MB or parameters.work_mem=null"
    if not sep or not key:
        raise ValueError(f"{text!r} is not key=value ({example})")
    parts = tuple(part.strip() for part in key.split("."))
    if any(not part for part in parts):
        raise ValueError(f"{key!r} has an empty part between dots ({example})")
    return Assignment(_normalized(parts), parse_value(raw))


def _normalized(parts: Path) -> Path:
    if len(parts) > 1 and parts[0] == "postgresql" and parts[1] in _POSTGRESQL_KEYS:
        parts = parts[1:]
    if parts[0] == "parameters" and len(parts) > 2:
        # PostgreSQL parameter names may contain dots (pg_stat_statements.max).
        parts = ("parameters", ".".join(parts[1:]))
    return parts


def parse_value(raw: str) -> Scalar:
    """A YAML scalar (``30`` -> 30, ``true`` -> True, ``null`` -> None); anything else stays text."""
    if not raw.strip():
        return raw  # `key=` means the empty string, never "remove"
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return raw  # dates, lists, mappings: the text the user typed


def apply_assignments(document: Mapping[str, Any], assignments: Sequence[Assignment]) -> dict[str, Any]:
    """``document`` with each assignment applied in order (None removes the key)."""
    result = dict(document)
    for assignment in assignments:
        result = merge_patch(result, assignment.patch())
    return result


def plan_edit(current: DynamicConfig, revision: int, assignments: Sequence[Assignment]) -> ConfigEdit:
    """The config after ``assignments``, validated; raises ConfigError naming each bad field."""
    document = apply_assignments(config_document(current), assignments)
    return ConfigEdit(current, parse_dynamic_config(document, EDIT_SOURCE), revision)


def plan_patch(current: DynamicConfig, revision: int, text: str) -> ConfigEdit:
    """The config with the YAML mapping ``text`` merged in (patronictl's ``edit-config --apply``):
    RFC 7386, null removes a key; Patroni's ``postgresql: {parameters: ...}`` nesting is accepted."""
    patch = _yaml_mapping(text)
    document = merge_patch(config_document(current), flat_postgresql(patch))
    return ConfigEdit(current, parse_dynamic_config(document, EDIT_SOURCE), revision)


def flat_postgresql(document: Mapping[str, Any]) -> dict[str, Any]:
    """``{postgresql: {parameters: {...}, use_pg_rewind: ...}}`` -> the same keys at the top level,
    as the stored config keeps them; other ``postgresql`` keys stay where they are (and are reported)."""
    result = dict(document)
    nested = result.get("postgresql")
    if not isinstance(nested, Mapping):
        return result
    rest = {k: v for k, v in nested.items() if k not in _POSTGRESQL_KEYS}
    for key in _POSTGRESQL_KEYS & set(nested):
        value = nested[key]
        on_top = result.get(key)
        if isinstance(value, Mapping) and isinstance(on_top, Mapping):
            value = {**on_top, **value}
        result[key] = value
    if rest:
        result["postgresql"] = rest
    else:
        del result["postgresql"]
    return result


def _yaml_mapping(text: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError.one(EDIT_SOURCE, "", f"the text is not YAML ({exc})", "fix the syntax") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError.one(EDIT_SOURCE, "", "the text is not a YAML mapping", "write key: value lines")
    return document


def plan_replacement(current: DynamicConfig, revision: int, text: str) -> ConfigEdit:
    """The config written as YAML ``text`` (the editor's result), validated like `plan_edit`."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError.one(
            EDIT_SOURCE, "", f"the edited text is not YAML ({exc})", "fix the syntax"
        ) from None
    if document is None:
        document = {}
    return ConfigEdit(current, parse_dynamic_config(document, EDIT_SOURCE), revision)


def config_document(cfg: DynamicConfig) -> dict[str, Any]:
    """The config as shown and diffed: every field in declaration order, parameters sorted."""
    document = dynamic_config_to_dict(cfg)
    for name, default in _DEFAULTS.items():
        if isinstance(default, float):
            document[name] = float(document[name])  # `ttl: 30` and `ttl: 30.0` are one setting
    document["parameters"] = dict(sorted(document["parameters"].items()))
    return document


def config_yaml(cfg: DynamicConfig) -> str:
    return yaml.safe_dump(config_document(cfg), sort_keys=False, default_flow_style=False)


def config_diff(before: DynamicConfig, after: DynamicConfig) -> str:
    """A unified diff of the two configs' YAML ("" when equal)."""
    lines = difflib.unified_diff(
        config_yaml(before).splitlines(keepends=True),
        config_yaml(after).splitlines(keepends=True),
        fromfile="etcd",
        tofile="edited",
    )
    return "".join(lines)
