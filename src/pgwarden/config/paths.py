"""Where ``postgresql.data_dir`` may be: its own form, and how it sits among the other paths a node uses.

pgwarden empties the data directory before a clone (only when it is its own, see ha/rules/datadir.py),
so a data_dir that is a system directory, or that contains another path the node needs (its binaries,
its config file, its TLS keys, its socket directory, another node's data), is refused when the config
is read, with the field and the fix. Whether the directory on disk is ours is the agent's business at
run time; this module only compares paths, it reads nothing from the disk.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Annotated

from pydantic import PlainValidator

from pgwarden.config.explain import Finding, Loc
from pgwarden.config.fields import reject, shown

_DATA_DIR: Loc = ("postgresql", "data_dir")
_FIX = "point postgresql.data_dir at the PostgreSQL data directory itself, e.g. /var/lib/postgresql/15/main"
# Directories whose contents belong to the system: a data_dir there is a typo with a big blast radius.
SYSTEM_DIRECTORIES = frozenset(
    {
        "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/media", "/mnt",
        "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin",
        "/usr/lib", "/usr/local", "/usr/lib/postgresql", "/var", "/var/lib", "/var/log", "/var/run",
        "/var/tmp", "/var/lib/postgresql",
    }
)  # fmt: skip


def data_dir_path(value: object) -> str:
    """The validator of ``postgresql.data_dir``: an absolute, normalised path below a system directory."""
    if not isinstance(value, str) or not value.startswith("/"):
        # Relative paths would depend on the agent's working directory.
        reject(f"expected an absolute path, got {shown(value)}", "give an absolute path, starting with /")
    path = value.rstrip("/") or "/"
    if path == "/":
        reject("the data directory cannot be / (the whole file system)", _FIX)
    parts = path.split("/")[1:]
    if ".." in parts or "." in parts or "" in parts:
        # normpath would quietly pick a directory; the operator should see which one was meant.
        reject(
            f"{path!r} contains '.', '..' or '//'",
            f"write the path without them, e.g. {posixpath.normpath(path)!r}",
        )
    if path in SYSTEM_DIRECTORIES:
        reject(f"{path} is a system directory, not a PostgreSQL data directory", _FIX)
    return path


DataDirPath = Annotated[str, PlainValidator(data_dir_path)]


def data_dir_findings(
    data_dir: str,
    *,
    bin_dir: str,
    socket_dir: str | None = None,
    key_files: Mapping[str, str] | None = None,
    config_file: str | None = None,
    other_data_dirs: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Every way ``data_dir`` overlaps another path this node (or a node beside it) uses."""
    data = _path(data_dir)
    found: list[tuple[str, str]] = []
    emptied = f"inside the data directory {data}, which pgwarden may empty"
    if _path(bin_dir).is_relative_to(data) or data.is_relative_to(_path(bin_dir)):
        found.append((f"{data} and bin_dir {bin_dir} overlap: the binaries would sit with the data", _FIX))
    if socket_dir is not None and _path(socket_dir) != data and _path(socket_dir).is_relative_to(data):
        fix = "leave socket_dir out (sockets then go in the data directory), or use e.g. /var/run/postgresql"
        found.append((f"socket_dir {socket_dir} is {emptied}", fix))
    for field, path in (key_files or {}).items():
        if _path(path).is_relative_to(data):
            found.append((f"{field} {path} is {emptied}", f"keep {field} outside the data directory"))
    if config_file is not None and _path(config_file).is_relative_to(data):
        found.append((f"this config file {config_file} is {emptied}", "keep the config file elsewhere"))
    # Only this direction: emptying this node's directory would take the other's with it. The
    # other node's agent, whose directory is the parent, is the one refused for the reverse.
    own = "give every node a data directory of its own, none inside another"
    for name, other in sorted((other_data_dirs or {}).items()):
        if _path(other) == data:
            found.append((f"node {name} uses the same data directory {data}", own))
        elif _path(other).is_relative_to(data):
            found.append((f"{data} contains the data directory of node {name} ({other})", own))
    return [Finding(_DATA_DIR, problem, fix) for problem, fix in found]


def _path(text: str) -> PurePosixPath:
    return PurePosixPath(posixpath.normpath(text))
