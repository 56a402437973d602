"""Keeps the last valid value of each etcd key whose safe reading is "as it was", and reports changes.

`ClusterStore.decode` marks a key it cannot read and gives it a neutral reading. For five keys
the agent can do better, because it read them before:

- ``config``: the last valid config stays in force (never the defaults: that silently switched
  synchronous mode and pause off and reset ttl); before any valid one was read since the agent
  started, the node's ``bootstrap.dcs`` is the fallback. The memory is the process's: a restart
  with junk in the key starts from ``bootstrap.dcs``.
- ``history``: the last valid history, so fork decisions keep their switch points; an append
  writes it back with the new entry, or is refused if there is none (see `known_history`).
- ``status``: the leader's last valid position, so ``maximum_lag_on_failover`` still bounds a
  candidate (the leader republishes it every cycle).
- ``initialize``: the last valid system identifier, so the foreign-data-directory check still
  compares (the leader rewrites the key).
- ``failsafe``: the last valid topology, beside the racers' reading of the junk (a topology of
  nobody, which stays): a leader still asks its members to promise and keeps them when it
  republishes (``ClusterView.failsafe_last_good``).

Each change of what is unreadable (and of unknown config keys ignored) is logged once, not
every cycle.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

from pgwarden.model import ClusterView, DynamicConfig, HistoryEntry, LeaderStatus, StoreKey

log = logging.getLogger(__name__)


@dataclasses.dataclass
class _Kept:
    config: DynamicConfig | None = None
    config_revision: int = 0
    history: tuple[HistoryEntry, ...] | None = None
    folded: int = 0
    status: LeaderStatus | None = None
    initialize: str | None = None
    failsafe: Mapping[str, str] | None = None


class LastGood:
    """One agent's memory of the valid values it read, and of what it last reported unreadable."""

    def __init__(self, bootstrap: DynamicConfig) -> None:
        self._bootstrap = bootstrap
        self._kept = _Kept()
        self._reported: Mapping[str, str] = {}
        self._ignored: tuple[str, ...] = ()

    def known_history(self) -> tuple[HistoryEntry, ...] | None:
        """The last valid history read, or None if none was (an append must then be refused)."""
        return self._kept.history

    def apply(self, view: ClusterView, config_present: bool, config_revision: int = 0) -> ClusterView:
        """``view`` with the last valid value of each unreadable key in force, noted in its reasons."""
        unreadable = dict(view.unreadable)
        kept = self._kept
        changes: dict[str, object] = {}
        why = unreadable.get(StoreKey.CONFIG)
        if why is not None:
            if kept.config is not None:
                changes["config"] = kept.config
                unreadable[StoreKey.CONFIG] = (
                    f"{why}; keeping the last valid config (etcd revision {kept.config_revision})"
                )
            else:
                changes["config"] = self._bootstrap
                unreadable[StoreKey.CONFIG] = (
                    f"{why}; no valid config read since this agent started: using bootstrap.dcs"
                )
        elif not config_present:
            changes["config"] = self._bootstrap  # before bootstrap writes it, the config is ours
        else:
            kept.config, kept.config_revision = view.config, config_revision
        if StoreKey.HISTORY in unreadable:
            changes["history"], changes["history_folded"] = kept.history or (), kept.folded
        else:
            kept.history, kept.folded = view.history, view.history_folded
        if StoreKey.STATUS in unreadable:
            changes["status"] = kept.status
        else:
            kept.status = view.status
        if StoreKey.INITIALIZE in unreadable:
            changes["initialize"] = kept.initialize
        else:
            kept.initialize = view.initialize
        self._keep_failsafe(view, unreadable, changes)
        view = dataclasses.replace(view, unreadable=unreadable, **changes)  # type: ignore[arg-type]
        self._report(view)
        return view

    def _keep_failsafe(
        self, view: ClusterView, unreadable: dict[str, str], changes: dict[str, object]
    ) -> None:
        """The racers' reading of a junk topology ({}, nobody) stays; the last valid one goes beside it."""
        kept = self._kept
        why = unreadable.get(StoreKey.FAILSAFE)
        if why is None:
            kept.failsafe = view.failsafe
            return
        changes["failsafe_last_good"] = kept.failsafe
        if kept.failsafe is not None:
            note = f"the last valid topology read: {', '.join(sorted(kept.failsafe)) or 'empty'}"
        else:
            note = "none read before: a leader cannot rely on failsafe mode until it reads its own back"
        unreadable[StoreKey.FAILSAFE] = f"{why}; {note}"

    def _report(self, view: ClusterView) -> None:
        now = view.unreadable
        for key, why in sorted(now.items()):
            if self._reported.get(key) != why:
                log.warning("etcd key %s is unreadable: %s", key, why)
        for key in sorted(set(self._reported) - set(now)):
            log.info("etcd key %s is readable again", key)
        self._reported = dict(now)
        if view.config_ignored != self._ignored and view.config_ignored:
            log.warning(
                "the config in etcd holds keys this version does not know, ignored: %s",
                ", ".join(view.config_ignored),
            )
        self._ignored = view.config_ignored
