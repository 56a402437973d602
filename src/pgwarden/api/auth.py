"""Checks HTTP Basic credentials on the REST API's write calls."""

from __future__ import annotations

import base64
import binascii
import hmac

from pgwarden.model import ApiSettings

CHALLENGE = 'Basic realm="pgwarden"'


class BasicAuth:
    """The configured credentials; with no username every request is allowed."""

    def __init__(self, settings: ApiSettings) -> None:
        self.required = bool(settings.username)
        self._username = (settings.username or "").encode()
        self._password = (settings.password or "").encode()

    def allows(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries the configured credentials."""
        if not self.required:
            return True
        given = _decode_basic(authorization)
        if given is None:
            return False
        username, password = given
        # Compare both halves in constant time, and always both, so timing tells nothing.
        user_ok = hmac.compare_digest(username, self._username)
        password_ok = hmac.compare_digest(password, self._password)
        return user_ok and password_ok


def _decode_basic(authorization: str | None) -> tuple[bytes, bytes] | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    username, sep, password = decoded.partition(b":")
    return (username, password) if sep else None
