"""etcd v3 authentication through the JSON gateway: the token, and etcd's refusals in words.

With ``etcd.username``/``password`` the client asks ``/v3/auth/authenticate`` for a token and
sends it in the ``Authorization`` header of every call. etcd 3.4's simple tokens live in each
member's memory: they are handed to every member through raft when issued, each member forgets
one after ``--auth-token-ttl`` seconds without use *there*, and a restarted member forgets them
all. So a token kept alive by the member the agent talks to has long expired on the others, and
the first call that moves to another member (its member died) is answered "invalid auth token".
The store then forgets the token and repeats the call with a new one, within the same time
budget (`EtcdStore._exchange`). Tokens are asked for by `TokenSource`, on a thread of its own
and one request at a time, each member given AUTH_TIMEOUT: etcd checks the password with bcrypt
and replicates the token through raft, which on a loaded machine takes longer than one call's
budget; a call that gives up waiting leaves the request running for the next one. Lease
renewals never wait for a token they do not need: etcd 3.4 does not check tokens on keepalives,
so a renewal is sent with the token at hand (or none) and asks for one only if refused.

When etcd answers that authentication is not enabled, calls go without a token (said once);
should it be enabled later, the first refusal ("user name is empty") asks for one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

log = logging.getLogger(__name__)

AUTHENTICATE = "/v3/auth/authenticate"
_UNAUTHENTICATED = 16  # gRPC code of "invalid auth token"
_NOT_ENABLED = "authentication is not enabled"


class EtcdAuth:
    """The credentials and the current token; thread-safe."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self._password = password
        self._lock = threading.Lock()
        self._token: str | None = None  # None: none yet (or forgotten); "": etcd needs none
        self._told_disabled = False

    @property
    def request(self) -> dict[str, str]:
        """The body of an authenticate call."""
        return {"name": self.username, "password": self._password}

    def token(self) -> str | None:
        with self._lock:
            return self._token

    def accept(self, answer: dict[str, object]) -> str:
        """Keep the token of an authenticate answer (without an error) and return it."""
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise ValueError("answered the authentication without a token")
        with self._lock:
            self._token = token
        return token

    def not_enabled(self) -> str:
        """etcd has authentication off: calls go without a token."""
        if not self._told_disabled:
            log.warning(
                "etcd answers that authentication is not enabled: etcd.username %r is not used "
                "(enable it: docs/production.md, etcd TLS and authentication)",
                self.username,
            )
            self._told_disabled = True
        with self._lock:
            self._token = ""
        return ""

    def forget(self, stale: str | None) -> None:
        """The token ``stale`` was refused: ask for a new one next, unless another thread did."""
        with self._lock:
            if self._token == stale:
                self._token = None


class TokenSource:
    """Asks for tokens on a thread of its own, one request at a time: a call waits for the token
    within its own budget, and a call that gives up leaves the request running, so a password
    check slower than any one call's budget (bcrypt on a loaded machine) still ends with a token.
    ``authenticate`` asks etcd and returns the token, or raises (the next `wait` asks again)."""

    def __init__(self, authenticate: Callable[[], str]) -> None:
        self._authenticate = authenticate
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="etcd-auth")
        self._lock = threading.Lock()
        self._running: Future[str] | None = None

    def wait(self, deadline: float) -> str:
        """The token being asked for (a new request when none runs), by the monotonic ``deadline``;
        ValueError when it is not there by then, else what ``authenticate`` raised."""
        with self._lock:
            if self._running is None or self._running.done():
                try:
                    self._running = self._pool.submit(self._authenticate)
                except RuntimeError as exc:  # the pool is shut down: the store was closed
                    raise ValueError(f"etcd client closed: {exc}") from None
            running = self._running
        try:
            return running.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            raise ValueError("still waiting for an auth token (etcd is slow to check the password)") from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def is_token_refusal(code: int | None, message: str) -> bool:
    """etcd refused the call's token (expired, unknown to this member) or missed one it needs."""
    return code == _UNAUTHENTICATED or "invalid auth token" in message or "user name is empty" in message


def is_not_enabled(message: str) -> bool:
    return _NOT_ENABLED in message


def explain(message: str, username: str | None) -> str:
    """etcd's refusal ``message`` with the setting that fixes it."""
    who = f"user {username!r}" if username else "this client"
    if "authentication failed" in message:
        return f"{message}: check etcd.username ({username!r}) and etcd.password"
    if "permission denied" in message:
        return (
            f"{message}: {who} may not use these keys; its etcd role needs readwrite on the "
            "cluster's prefix (<etcd.prefix>/<cluster>/, docs/production.md)"
        )
    if "user name is empty" in message or "invalid auth token" in message:
        if username is None:
            return f"{message}: etcd requires authentication: set etcd.username and etcd.password"
        return message
    return message
