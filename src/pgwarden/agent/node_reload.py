"""SIGHUP reloads the node config: what can change live is applied, the rest waits for a restart.

``request`` (called from the SIGHUP handler through agent/reloads.py) only sets a flag and wakes
the loop; the loop calls ``take`` at the start of its next cycle, which reads the file again.
A file that does not load is refused with its errors, and the config in force stays. Otherwise
``plan`` compares the two: the settings in ``LIVE`` take effect from this cycle on, every other
difference is named in the log as needing an agent restart, and is not applied (the config in
force keeps its old value, so what the agent runs with is always one coherent file's worth).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pgwarden.model import NodeConfig
from pgwarden.model.node import Address

log = logging.getLogger(__name__)

# Settings the agent takes up while it runs: the next cycle publishes the tags and decides with
# them, the next callback runs the new command, the next log line has the new level and format.
LIVE = ("log_level", "log_format", "tags", "callbacks", "callback_timeout")
_BOOTSTRAP_NOTE = (
    "bootstrap.dcs is read only when the cluster is created: change the cluster's config with "
    "`pgwarden edit-config` instead"
)


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    config: NodeConfig  # what the agent runs with from now on
    live: tuple[str, ...]  # settings applied now
    restart: tuple[str, ...]  # settings changed in the file that need an agent restart
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        if not self.live and not self.restart:
            return "node config reloaded: nothing changed"
        parts = []
        if self.live:
            parts.append(f"changed live: {', '.join(self.live)}")
        if self.restart:
            parts.append(f"changed in the file but needing an agent restart: {', '.join(self.restart)}")
        return "node config reloaded; " + "; ".join(parts + list(self.notes))


def plan(current: NodeConfig, loaded: NodeConfig) -> ReloadPlan:
    """What to run with after ``loaded`` was read while ``current`` was in force (no I/O)."""
    live = tuple(name for name in LIVE if getattr(current, name) != getattr(loaded, name))
    restart: list[str] = []
    notes: list[str] = []
    for f in dataclasses.fields(NodeConfig):
        if f.name in LIVE:
            continue
        changed = _changed(f.name, getattr(current, f.name), getattr(loaded, f.name))
        restart += changed
        if f.name == "bootstrap" and changed:
            notes.append(_BOOTSTRAP_NOTE)
    config = dataclasses.replace(current, **{name: getattr(loaded, name) for name in live})
    return ReloadPlan(config, live, tuple(restart), tuple(notes))


def _changed(path: str, old: Any, new: Any) -> list[str]:
    """The names of the settings that differ, as node.yml spells them (never their values: some
    are passwords)."""
    if old == new:
        return []
    if dataclasses.is_dataclass(old) and type(old) is type(new) and not isinstance(old, Address):
        found = [
            name
            for f in dataclasses.fields(old)
            for name in _changed(f"{path}.{f.name}", getattr(old, f.name), getattr(new, f.name))
        ]
        return found or [_file_name(path)]
    return [_file_name(path)]


# NodeConfig's fields whose place in node.yml differs from their place in the value.
_IN_FILE = {
    "api.username": "api.auth.username",
    "api.password": "api.auth.password",
    "postgresql.superuser": "postgresql.authentication.superuser",
    "postgresql.replication": "postgresql.authentication.replication",
    "bootstrap": "bootstrap.dcs",
}
_TLS = ("certfile", "keyfile", "cafile", "verify_client", "client_certfile", "client_keyfile")


def _file_name(path: str) -> str:
    for prefix, spelled in {**_IN_FILE, **{f"api.{k}": f"api.tls.{k}" for k in _TLS}}.items():
        if path == prefix or path.startswith(prefix + "."):
            return spelled + path[len(prefix) :]
    return path


class NodeConfigReload:
    """The SIGHUP part that re-reads node.yml; ``take`` runs in the loop's thread."""

    def __init__(self, load: Callable[[], NodeConfig], wake: Callable[[], None]) -> None:
        self._load = load
        self._wake = wake
        self._requested = threading.Event()

    def request(self) -> None:
        """From the signal handler: only a flag and a wake-up."""
        self._requested.set()
        self._wake()

    def take(self, current: NodeConfig) -> ReloadPlan | None:
        """When a reload was asked for: read the file and return the plan (None: no request, or
        a file that does not load, logged with its errors; ``current`` stays in force)."""
        if not self._requested.is_set():
            return None
        self._requested.clear()
        try:
            loaded = self._load()
        except Exception as exc:  # ConfigError above all, but nothing may end the loop here
            log.error("SIGHUP: the node config was not reloaded; the config in force stays:\n%s", exc)
            return None
        return plan(current, loaded)
