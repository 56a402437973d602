"""The data directories of the other nodes of a local stack, read from the node configs beside one.

``pgwarden agent -c DIR/node2.yml`` of a stack started by ``pgwarden up`` checks that node2's
``data_dir`` neither contains nor sits inside another node's (config/paths.py), since each agent
empties only its own. Outside a stack (no ``stack.json`` beside the config) there is nothing to know.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pgwarden.config.document import parse_yaml, read_text
from pgwarden.config.errors import ConfigError
from pgwarden.local.spec import STACK_FILE


def data_dirs_beside(config_path: str | os.PathLike[str]) -> dict[str, str]:
    """Node name -> data_dir of every other node listed in the stack.json beside ``config_path``;
    each node's own config file wins over the (generated) stack.json. Best effort: a node whose
    files cannot be read is left out, as its own agent reports that."""
    config = Path(config_path).absolute()
    try:
        document = json.loads((config.parent / STACK_FILE).read_text())
    except (OSError, ValueError):
        return {}
    nodes = document.get("nodes") if isinstance(document, dict) else None
    found: dict[str, str] = {}
    for node in nodes if isinstance(nodes, list) else []:
        if not isinstance(node, dict) or not isinstance(node.get("name"), str):
            continue
        path = node.get("config")
        if isinstance(path, str) and Path(path).absolute() == config:
            continue
        data_dir = _configured_data_dir(path) if isinstance(path, str) else None
        data_dir = data_dir or node.get("data_dir")
        if isinstance(data_dir, str) and data_dir.startswith("/"):
            found[node["name"]] = data_dir
    return found


def _configured_data_dir(path: str) -> str | None:
    try:
        data, _ = parse_yaml(read_text(path), path)
    except ConfigError:
        return None
    return _get(data, "postgresql", "data_dir")


def _get(data: Any, *keys: str) -> str | None:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data if isinstance(data, str) else None
