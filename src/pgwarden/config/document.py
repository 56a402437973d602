"""Reads a YAML config file into plain data plus the line of every key, refusing duplicate keys."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from pgwarden.config.errors import ConfigError, ConfigIssue
from pgwarden.config.explain import Loc, dotted

_MAX_DEPTH = 64  # config files are shallow; this bounds recursion on hostile alias structures


def read_text(path: str | os.PathLike[str]) -> str:
    """The file's text, or a ConfigError saying why it cannot be read."""
    source = str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        problem, fix = "file not found", "check the path given with -c, or create the file"
    except PermissionError:
        problem = "permission denied"
        fix = f"make the file readable by the user running pgwarden (uid {os.geteuid()})"
    except IsADirectoryError:
        problem, fix = "is a directory, not a file", "give the path of the YAML file itself"
    except UnicodeDecodeError as exc:
        problem = f"is not UTF-8 text (byte {exc.start})"
        fix = "save the file as UTF-8"
    except OSError as exc:
        problem, fix = f"cannot be read: {exc.strerror or exc}", "check the file and its directory"
    raise ConfigError(source, [ConfigIssue("", problem, fix)])


def parse_yaml(text: str, source: str) -> tuple[Any, dict[Loc, int]]:
    """Parse one YAML document; return the data and the 1-based line of each key and list item."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = f", column {mark.column + 1}" if mark else ""
        what = exc.problem or "cannot be parsed"
        if exc.context and exc.context_mark:
            what = f"{exc.context} (line {exc.context_mark.line + 1}): {what}"
        issue = ConfigIssue(
            "",
            f"malformed YAML: {what}",
            f"correct the YAML syntax near line {line}{column} (indentation, a missing ':', "
            "or a value that needs quotes)",
            line,
        )
        raise ConfigError(source, [issue]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            source, [ConfigIssue("", f"malformed YAML: {exc}", "correct the YAML syntax")]
        ) from None
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    duplicates: list[ConfigIssue] = []
    if node is not None:
        _walk(node, (), lines, duplicates)
    if duplicates:
        raise ConfigError(source, duplicates)
    return data, lines


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], duplicates: list[ConfigIssue]) -> None:
    if len(loc) > _MAX_DEPTH:
        return
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            key, line = str(key_node.value), key_node.start_mark.line + 1
            if key in seen:
                # PyYAML silently keeps the last one; an operator editing the first would be misled.
                duplicates.append(
                    ConfigIssue(
                        dotted((*loc, key)),
                        f"key appears twice (lines {seen[key]} and {line})",
                        "keep one of them",
                        line,
                    )
                )
            seen[key] = line
            lines[(*loc, key)] = line
            _walk(value_node, (*loc, key), lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*loc, index)] = item.start_mark.line + 1
            _walk(item, (*loc, index), lines, duplicates)
