"""The kept PostgreSQL session sets statement_timeout only when a use asks for another bound, and
the cycle's two uses (the probe, then the slots) ask for the same one: no set_config round trip
before each (two a cycle on every node, before)."""

from __future__ import annotations

import inspect
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from pgwarden.postgres.controller import PostgresController
from pgwarden.postgres.session import LocalSession, _Deadline


class Recording:
    """Stands in for a psycopg connection: records what is executed on it."""

    closed = False
    broken = False

    def __init__(self) -> None:
        self.executed: list[str] = []

    def execute(self, query: str, params: Any = None) -> Recording:
        self.executed.append(query)
        return self

    def close(self) -> None:
        self.closed = True


class Kept(LocalSession):
    """The session with its connection already made (as connect() leaves it: 2000 ms)."""

    def __init__(self) -> None:
        super().__init__(None)  # type: ignore[arg-type]  # settings are used only to connect
        self.conn = Recording()
        self.pair = socket.socketpair()
        self._statement_timeout_ms = 2000

    def _connection(self, timeout: float, postmaster: int | None) -> tuple[Any, socket.socket, bool]:
        if self._deadline is None:
            self._deadline = _Deadline()
        return self.conn, self.pair[0], True


@pytest.fixture
def session() -> Iterator[Kept]:
    kept = Kept()
    try:
        yield kept
    finally:
        kept.close()
        for end in kept.pair:
            end.close()


def _set_configs(session: Kept) -> int:
    return sum("set_config" in q for q in session.conn.executed)


def test_the_same_bound_again_costs_no_round_trip(session: Kept) -> None:
    for _ in range(3):
        session.run(lambda conn: conn.execute("SELECT 1"), 2.0)
    assert _set_configs(session) == 0
    session.run(lambda conn: conn.execute("SELECT 1"), 10.0)
    session.run(lambda conn: conn.execute("SELECT 1"), 2.0)
    assert _set_configs(session) == 2, "another bound: set before the use, and back"


def test_the_cycles_probe_and_slot_listing_share_one_bound() -> None:
    def default(method: Any) -> object:
        return inspect.signature(method).parameters["timeout"].default

    assert default(PostgresController.list_slots) == default(PostgresController.probe)
