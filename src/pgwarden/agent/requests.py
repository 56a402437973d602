"""Operator requests (restart, reload, reinitialize, scheduled restarts) handed from API threads to the loop.

The API thread submits and waits; the loop puts the pending requests into its observation, and
after acting on the decision answers each request the decision covered: carried out, refused
(why), or failed (the executor's error). Two callers asking for the same thing share one answer;
a caller asking the same kind with other options (a restart's conditions, a reinitialize's
force) while one is pending is told so (``RequestPending``) rather than given the other's answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from pgwarden.ha.observation import Request
from pgwarden.model import ReinitializeOptions, RestartConditions

Options = RestartConditions | ReinitializeOptions | None


class RequestPending(Exception):
    """The same kind of request is pending with other options; its caller waits for its answer."""


class Ticket:
    def __init__(self, request: Request, options: Options = None) -> None:
        self.request = request
        self.options = options
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
        self._scheduled_conditions = RestartConditions()

    # A scheduled restart outlives the API call: the agent publishes it in its member record, and
    # decide restarts when it falls due (ha/rules/restarts.py). It lasts as long as this agent.
    def schedule_restart(self, at: float, conditions: RestartConditions | None = None) -> bool:
        """Keep a restart for ``at`` (epoch seconds), done then only if ``conditions`` hold; False
        when one is already scheduled."""
        with self._lock:
            if self._scheduled_restart is not None:
                return False
            self._scheduled_restart = at
            self._scheduled_conditions = conditions or RestartConditions()
        self._wake()
        return True

    def scheduled_restart(self) -> float | None:
        with self._lock:
            return self._scheduled_restart

    def scheduled_conditions(self) -> RestartConditions:
        with self._lock:
            return self._scheduled_conditions

    def cancel_scheduled_restart(self, at: float | None = None) -> float | None:
        """Forget the scheduled restart (only the one for ``at`` when given); returns what it was."""
        with self._lock:
            found = self._scheduled_restart
            if found is not None and (at is None or found == at):
                self._scheduled_restart = None
                return found
            return None

    def submit(self, request: Request, options: Options = None) -> Ticket:
        with self._lock:
            ticket = self._pending.get(request)
            if ticket is None:
                ticket = self._pending[request] = Ticket(request, options)
            elif ticket.options != options:
                raise RequestPending(
                    f"a {request.value} request with other options is pending; retry after it"
                )
        self._wake()
        return ticket

    def options(self, request: Request) -> Options:
        """What the pending ``request`` asks beyond its kind (None: nothing, or none pending)."""
        with self._lock:
            ticket = self._pending.get(request)
            return ticket.options if ticket is not None else None

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
