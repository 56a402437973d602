"""etcd v3 authentication through the JSON gateway: the token, and etcd's refusals in words.

With ``etcd.username``/``password`` the client asks ``/v3/auth/authenticate`` for a token and
sends it in the ``Authorization`` header of every call. etcd 3.4's simple tokens live in each
member's memory: they are handed to every member through raft when issued, each member forgets
one after ``--auth-token-ttl`` seconds without use *there*, and a restarted member forgets them
all. So a token kept alive by the member the agent talks to has long expired on the others, and
the first call that moves to another member (its member died) is answered "invalid auth token".
The store then asks for a new token at that member and repeats the call at once, within the
same time budget (`EtcdStore._exchange`): one more round trip and etcd's bcrypt check, on one
request; the others go on meanwhile. Nothing waits on a lock while a token is asked for (two
threads may both ask; both tokens are good), so a token refresh never holds up a lease renewal
sent to another member. etcd 3.4 does not check tokens on lease keepalives at all.

When etcd answers that authentication is not enabled, calls go without a token (said once);
should it be enabled later, the first refusal ("user name is empty") asks for one.
"""

from __future__ import annotations

import logging
import threading

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
