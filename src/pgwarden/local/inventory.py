"""Finds every running process of a local stack by its directory, never by its program's name.

A stack's processes are not only those whose PIDs it recorded: a drill restarts killed agents,
an agent starts PostgreSQL and its tools, PostgreSQL forks backends that rename themselves. A
process belongs to the stack in ``dir`` when

1. its environment carries ``PGWARDEN_STACK_DIR=<dir>``: the stack starts etcd, every agent and
   HAProxy with it (``marked_environment``), so an agent a drill restarted carries it too;
2. one of its arguments, resolved against its working directory, is one of the stack's own
   paths or lies below one: a node config (``-c``), a data directory (``-D``), etcd's data
   directory, HAProxy's config. This finds PostgreSQL (whose tools get a clean environment) and
   agents started without the marker (by an older pgwarden, or with a relative path);
3. it descends from such a process (PostgreSQL backends, callbacks).

The process asking, and its ancestors (the shell or test runner that called it), never belong.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from pgwarden.fence.files import MODULE as FENCE_MODULE
from pgwarden.fence.postmaster import postmaster_pid
from pgwarden.local import processes
from pgwarden.local.spec import StackSpec

MARKER = "PGWARDEN_STACK_DIR"


def marked_environment(dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a stack starts its processes with: ``base`` (default: ours) plus the marker."""
    return {**(os.environ if base is None else base), MARKER: str(dir)}


def find(dir: Path, paths: Iterable[Path]) -> list[int]:
    """Every live process of the stack in ``dir`` (rules 1 to 3 above); ``paths`` are its own."""
    parent_of = processes.parents()
    asking = _ancestors(os.getpid(), parent_of)
    own = [str(p) for p in paths]
    roots = [pid for pid in parent_of if pid not in asking and _belongs(pid, str(dir), own)]
    found = dict.fromkeys(roots)
    for root in roots:
        found.update(dict.fromkeys(p for p in processes.children(root, parent_of) if p not in asking))
    return [pid for pid in found if processes.alive(pid)]


def _ancestors(pid: int, parent_of: Mapping[int, int]) -> set[int]:
    chain = set()
    while pid in parent_of and pid not in chain:
        chain.add(pid)
        pid = parent_of[pid]
    return chain


def named_paths(pid: int) -> list[str]:
    """The paths among ``pid``'s arguments (after the program), absolute and normalised: relative
    ones are read from its working directory, ``--option=path`` as ``path``."""
    argv = processes.command_line(pid)
    if len(argv) < 2:
        return []
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        cwd = "/"
    texts = [text for arg in argv[1:] for text in (arg, arg.partition("=")[2]) if "/" in text]
    return [os.path.normpath(os.path.join(cwd, text)) for text in texts]


def _belongs(pid: int, dir: str, own: list[str]) -> bool:
    if f"{MARKER}={dir}".encode() in _environment(pid):
        return True
    return any(path == p or path.startswith(p + "/") for path in named_paths(pid) for p in own)


def _environment(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:  # gone, or another user's (readable by root and by that user only)
        return []


# --- a stack's own paths and parts -----------------------------------------------------------


def own_paths(spec: StackSpec) -> list[Path]:
    """Paths that only the stack's processes name in their arguments: etcd's data, HAProxy's
    config, every node's config and directory (nodes beyond the spec's count included)."""
    d = spec.dir
    nodes = {spec.node_name(i) for i in range(spec.nodes)}
    nodes |= {p.stem for p in d.glob("node*.yml")} | {p.name for p in d.glob("node*") if p.is_dir()}
    return [d / "etcd", d / "haproxy.cfg", *(d / f"{n}.yml" for n in nodes), *(d / n for n in nodes)]


def parts(spec: StackSpec, found: Iterable[int], recorded: Mapping[str, int]) -> list[tuple[str, int]]:
    """The parts among ``found`` with their names: the name ``recorded`` for them (pids.json),
    else what the stack's path in their arguments says; PostgreSQL and tools are no part."""
    names = {pid: name for name, pid in recorded.items()}
    named = ((names.get(pid) or _part_name(spec, pid), pid) for pid in found)
    return [(name, pid) for name, pid in named if name is not None]


_FENCE = " fence"


def fence_part(node: str) -> str:
    """The part name of ``node``'s fence (it names the node's config too: no agent for that)."""
    return node + _FENCE


def is_fence_part(name: str) -> bool:
    return name.endswith(_FENCE)


def _part_name(spec: StackSpec, pid: int) -> str | None:
    d = str(spec.dir)
    if FENCE_MODULE in processes.command_line(pid):
        for path in named_paths(pid):  # python -m pgwarden.fence --data-dir DIR/nodeN/data ...
            parent, _, base = path.rpartition("/")
            if parent.rpartition("/")[0] == d and base == "data":
                return fence_part(parent.rpartition("/")[2])
        return None
    for path in named_paths(pid):
        parent, _, base = path.rpartition("/")
        if parent == d and base.startswith("node") and base.endswith(".yml"):
            return base.removesuffix(".yml")  # pgwarden agent -c DIR/nodeN.yml
        if parent == f"{d}/etcd":
            return base  # etcd --data-dir DIR/etcd/etcdN
        if path == f"{d}/haproxy.cfg":
            return "haproxy"
    return None


def postmasters(spec: StackSpec, found: Iterable[int]) -> dict[str, int]:
    """The postmaster of each node's data directory, if it is among ``found``: a stale
    postmaster.pid naming a PID since reused is no process of the stack, and is left alone."""
    dirs = {spec.node_name(i): spec.data_dir(i) for i in range(spec.nodes)}
    for data_dir in sorted(spec.dir.glob("node*/data")):  # nodes beyond the spec's count
        dirs.setdefault(data_dir.parent.name, data_dir)
    ours = set(found)
    pids = {name: postmaster_pid(str(d)) for name, d in dirs.items()}
    return {name: pid for name, pid in pids.items() if pid is not None and pid in ours}
