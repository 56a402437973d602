"""Health and status answers, rendered once per snapshot; lease-bound verdicts picked at answer time.

A health check costs a dictionary lookup: the status document is serialised once per snapshot,
and each (target, variant) answer is rendered on first use and kept until the snapshot changes.
The verdicts that depend on the clock are never cached as a fixed answer: ``/primary`` must stop
answering 200 at the lease deadline even when the snapshot is old (a frozen loop, a loop stuck in
etcd requests), and ``/liveness`` must fail once the loop is late. Both variants of those two
facts (``api.facts.clock_facts``) are cached side by side and the one true *now* is picked.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from pgwarden.agent.snapshot import Snapshot, SnapshotHolder
from pgwarden.api import wire
from pgwarden.api.facts import clock_facts, facts_at, query_of, split_target
from pgwarden.documents.status import status_document
from pgwarden.ha.health import verdict

JSON = "application/json"
# Distinct targets remembered per snapshot; a flood of made-up query strings is answered but
# not remembered, so the cache cannot grow with what clients send.
_MAX_REMEMBERED = 256

_Answer = tuple[int, bytes]  # status, JSON body
_Variant = tuple[bool, bool]  # clock_facts: leads, loop alive


class _Rendered:
    """Everything rendered for one snapshot."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.status_body = json.dumps(status_document(snap)).encode()
        self.answers: dict[tuple[str, _Variant], _Answer] = {}
        self.wire: dict[tuple[str, str, bool, _Variant], tuple[bytes, bytes]] = {}


class HealthAnswers:
    """The health verdicts and ``/patroni`` of the latest snapshot, as values or as wire bytes."""

    def __init__(self, snapshots: SnapshotHolder, status_endpoints: frozenset[str]) -> None:
        self._snapshots = snapshots
        self._status_endpoints = status_endpoints
        self._rendered: _Rendered | None = None

    def answer(self, target: str, now: float) -> _Answer:
        """Status and JSON body of ``GET target`` (a health check, ``/patroni``, or an unknown path)."""
        rendered = self._current()
        variant = clock_facts(rendered.snap, now)
        key = (target, variant)
        found = rendered.answers.get(key)
        if found is None:
            found = self._render(rendered, target, variant)
            if len(rendered.answers) < _MAX_REMEMBERED:
                rendered.answers[key] = found
        return found

    def wire(self, method: str, target: str, keep_alive: bool, now: float) -> bytes:
        """The whole HTTP answer; HEAD and OPTIONS get the status line alone."""
        rendered = self._current()
        variant = clock_facts(rendered.snap, now)
        key = (method, target, keep_alive, variant)
        found = rendered.wire.get(key)
        if found is None:
            status, body = self.answer(target, now)
            bare = method != "GET"
            found = (wire.status_line(status), wire.response_tail(JSON, body, keep_alive, bare=bare))
            if len(rendered.wire) < _MAX_REMEMBERED:
                rendered.wire[key] = found
        return found[0] + wire.date_line() + found[1]

    def _current(self) -> _Rendered:
        snap = self._snapshots.get()
        rendered = self._rendered
        if rendered is None or rendered.snap is not snap:
            rendered = self._rendered = _Rendered(snap)
        return rendered

    def _render(self, rendered: _Rendered, target: str, variant: _Variant) -> _Answer:
        endpoint, params = split_target(target)
        if endpoint in self._status_endpoints:
            return 200, rendered.status_body
        return self._verdict(rendered, endpoint, params, variant)

    @staticmethod
    def _verdict(rendered: _Rendered, endpoint: str, params: Mapping[str, str], variant: _Variant) -> _Answer:
        try:
            query = query_of(params)
        except ValueError as exc:
            return 400, json.dumps({"error": str(exc)}).encode()
        leads, alive = variant
        # The loop's age only matters to /liveness, and only as "within its limit or not".
        facts = facts_at(rendered.snap, leads, 0.0 if alive else math.inf)
        return (200 if verdict(endpoint, facts, query) else 503), rendered.status_body
