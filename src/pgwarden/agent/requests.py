"""Operator requests (restart, reload, reinitialize, scheduled restarts) handed from API threads to the loop.

The API thread submits and waits; the loop puts the pending requests into its observation, and
after acting on the decision answers each request the decision covered: carried out, refused
(why), or failed (the executor's error). Two callers asking for the same thing share one answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from pgwarden.ha.observation import Request


class Ticket:
    def __init__(self, request: Request) -> None:
        self.request = request
        self._done = threading.Event()
        self.refusal: str | None = None
        self.failure: str | None = None
        self.message = ""

    def wait(self, timeout: float) -> bool:
        """True once answered; False when ``timeout`` ran out first."""
        return self._done.wait(timeout)

    @property
    def answered(self) -> bool:
        return self._done.is_set()

    def _answer(self, refusal: str | None, failure: str | None, message: str) -> None:
        self.refusal, self.failure, self.message = refusal, failure, message
        self._done.set()


class RequestBox:
    def __init__(self, wake: Callable[[], None] = lambda: None) -> None:
        self._lock = threading.Lock()
        self._pending: dict[Request, Ticket] = {}
        self._wake = wake
        self._scheduled_restart: float | None = None

    # A scheduled restart outlives the API call: the agent publishes it in its member record, and
    # decide restarts when it falls due (ha/rules/restarts.py). It lasts as long as this agent.
    def schedule_restart(self, at: float) -> bool:
        """Keep a restart for ``at`` (epoch seconds); False when one is already scheduled."""
        with self._lock:
            if self._scheduled_restart is not None:
                return False
            self._scheduled_restart = at
        self._wake()
        return True

    def scheduled_restart(self) -> float | None:
        with self._lock:
            return self._scheduled_restart

    def cancel_scheduled_restart(self, at: float | None = None) -> float | None:
        """Forget the scheduled restart (only the one for ``at`` when given); returns what it was."""
        with self._lock:
            found = self._scheduled_restart
            if found is not None and (at is None or found == at):
                self._scheduled_restart = None
                return found
            return None

    def submit(self, request: Request) -> Ticket:
        with self._lock:
            ticket = self._pending.get(request)
            if ticket is None:
                ticket = self._pending[request] = Ticket(request)
        self._wake()
        return ticket

    def withdraw(self, ticket: Ticket) -> None:
        """The caller gave up waiting: the loop must not act on it later, unasked."""
        with self._lock:
            if self._pending.get(ticket.request) is ticket:
                del self._pending[ticket.request]

    def pending(self) -> frozenset[Request]:
        with self._lock:
            return frozenset(self._pending)

    def answer(self, answers: Mapping[Request, str | None], failure: str | None, message: str) -> None:
        """Answer what a decision covered: a refusal as given, else the executor's failure if any."""
        with self._lock:
            tickets = [self._pending.pop(r) for r in answers if r in self._pending]
        for ticket in tickets:
            refusal = answers[ticket.request]
            ticket._answer(refusal, None if refusal else failure, message)
