"""How pgwarden's HTTPS is set up: the REST API's server context and the clients' contexts.

The server context serves ``api.tls.certfile``/``keyfile`` (TLS 1.2 or later) and, with
``verify_client`` other than ``none``, asks for a client certificate and verifies it against
``api.tls.cafile`` (``optional``: one presented must verify; ``required``: the handshake fails
without one). The event loop wraps each accepted socket with whichever server context it holds;
a certificate reload (``tls_watch.py``) builds a whole new context and hands it over, rather than
calling ``load_cert_chain`` again on the live one: a failed second load (the key of a half-rotated
pair) leaves OpenSSL with the new certificate and no key, and a new context is also the only way
to drop a CA from the trusted set. Open connections keep the context they were made with.

Client contexts are for agents calling their peers and for the CLI: they verify the server
against a CA file (hostname and IP SANs checked) and present a client certificate when given one.
``ReloadableClientContext`` lets a long-lived HTTP client pick up a rotated client certificate:
each new connection is wrapped by the context built last.

It sits at the package's top, beside outbound_http.py, because both the REST API (api/) and the
agent's own clients (agent/peers.py, agent/failsafe.py) build their contexts here, and the agent
may not import the API (import-linter).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from typing import Any

from pgwarden.model.node import ApiSettings, VerifyClient

_VERIFY_MODES = {
    VerifyClient.NONE: ssl.CERT_NONE,
    VerifyClient.OPTIONAL: ssl.CERT_OPTIONAL,
    VerifyClient.REQUIRED: ssl.CERT_REQUIRED,
}


def tls_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """A server context for ``certfile``/``keyfile``; raises OSError/ssl.SSLError when unreadable."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context


def server_context(settings: ApiSettings) -> ssl.SSLContext:
    """The API's server context from ``api.tls``; raises OSError/ssl.SSLError (a missing or
    unreadable file, a key that does not match the certificate, a CA file with no certificate)."""
    if settings.certfile is None:
        raise ValueError("api.tls.certfile is not set")
    context = tls_context(settings.certfile, settings.keyfile)
    if settings.verify_client is not VerifyClient.NONE:
        if settings.cafile is None:
            raise ValueError(f"verify_client {settings.verify_client.value} needs api.tls.cafile")
        context.load_verify_locations(cafile=settings.cafile)
        context.verify_mode = _VERIFY_MODES[settings.verify_client]
    return context


def server_files(settings: ApiSettings) -> tuple[str, ...]:
    """The files the server context is built from (what a reload watches)."""
    files = (settings.certfile, settings.keyfile, settings.cafile)
    return tuple(f for f in files if f)


def client_context(
    cafile: str | None, certfile: str | None = None, keyfile: str | None = None, *, insecure: bool = False
) -> ssl.SSLContext:
    """A client context: the server verified against ``cafile`` (None: the system's CAs), or not at
    all with ``insecure``; ``certfile``/``keyfile`` presented when a server asks for a certificate.
    Raises OSError/ssl.SSLError for unreadable files."""
    if insecure:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    return context


def peer_identity(settings: ApiSettings) -> tuple[str | None, str | None]:
    """The certificate and key an agent presents to its peers: ``client_certfile``/``client_keyfile``,
    else the API's own ``certfile``/``keyfile`` (Patroni does the same with ``restapi.certfile``)."""
    if settings.client_certfile:
        return settings.client_certfile, settings.client_keyfile
    return settings.certfile, settings.keyfile


def calls_peers_over_tls(settings: ApiSettings) -> bool:
    """Whether the agent has TLS settings of its own to call its peers with; without them peers
    are called as before client certificates existed (https not verified: set ``api.tls.cafile``)."""
    return settings.cafile is not None or peer_identity(settings)[0] is not None


def peer_context(settings: ApiSettings) -> ssl.SSLContext:
    """The context an agent calls its peers with: their certificates verified against ``cafile``
    (not verified without one), this agent's ``peer_identity`` presented."""
    certfile, keyfile = peer_identity(settings)
    return client_context(settings.cafile, certfile, keyfile, insecure=settings.cafile is None)


def peer_files(settings: ApiSettings) -> tuple[str, ...]:
    certfile, keyfile = peer_identity(settings)
    return tuple(f for f in (settings.cafile, certfile, keyfile) if f)


_BAD_PEM = ("NO_START_LINE", "BAD_END_LINE", "NO_CERTIFICATE_OR_CRL_FOUND")


def explain(exc: Exception) -> str:
    """What went wrong loading a certificate, in words (OpenSSL's own are cryptic)."""
    if isinstance(exc, ssl.SSLError):
        if exc.reason == "KEY_VALUES_MISMATCH":
            return "the private key does not match the certificate"
        if "PEM lib" in str(exc) or exc.reason in _BAD_PEM:
            return f"a file is not a complete PEM certificate or key (still being written?): {exc}"
    return str(exc)


def tls_problems(settings: ApiSettings) -> list[str]:
    """Why the agent could not start its HTTPS (server, or calls to its peers), in words naming the
    files; checked before the agent starts, so a bad file is a clear refusal, not a traceback."""
    found = []
    if settings.certfile:
        try:
            server_context(settings)
        except (OSError, ValueError) as exc:
            files = ", ".join(server_files(settings))
            found.append(f"api.tls: cannot serve HTTPS with {files}: {explain(exc)}")
    if calls_peers_over_tls(settings):
        try:
            peer_context(settings)
        except (OSError, ValueError) as exc:
            files = ", ".join(peer_files(settings))
            found.append(f"api.tls: cannot call the peers' APIs with {files}: {explain(exc)}")
    return found


class ReloadableClientContext(ssl.SSLContext):
    """A client context that hands every new connection to the context ``build`` made last.

    HTTP clients (the agent's, pgwarden/outbound_http.py; the CLI's httpx) keep the context they
    are given for their whole life; wrapping through this object lets ``reload`` swap the
    certificate without rebuilding the client, and a failed build leaves the working context in
    place. Settings made on this object itself (ALPN, by the
    HTTP client) are not used: the built context is what connects.
    """

    _current: ssl.SSLContext
    _build: Callable[[], ssl.SSLContext]

    def __new__(cls, build: Callable[[], ssl.SSLContext]) -> ReloadableClientContext:
        return super().__new__(cls, ssl.PROTOCOL_TLS_CLIENT)

    def __init__(self, build: Callable[[], ssl.SSLContext]) -> None:
        self._build = build
        self._current = build()

    def reload(self) -> None:
        """Build the context again; raises (and keeps the current one) when that fails."""
        self._current = self._build()

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        return self._current.wrap_socket(sock, *args, **kwargs)

    @property
    def current(self) -> ssl.SSLContext:
        return self._current
