"""The REST API's TLS server context: the one place that says how the API's HTTPS is set up.

The event loop wraps each accepted socket with this context and completes the handshake without
blocking. Both later needs of the secure-transport work land here alone: client-certificate
verification is ``verify_mode = CERT_REQUIRED`` plus ``load_verify_locations(cafile)`` on this
context, and a certificate reload is ``load_cert_chain`` again on the same object (OpenSSL then
uses the new pair for every handshake that starts afterwards; open connections keep theirs).
"""

from __future__ import annotations

import ssl


def tls_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """A server context for ``certfile``/``keyfile``; raises OSError/ssl.SSLError when unreadable."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context
