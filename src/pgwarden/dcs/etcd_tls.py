"""TLS towards etcd: the client context from ``etcd.cacert``/``cert``/``key``, and TLS failures in words.

The context verifies each member's certificate against ``cacert`` (the system's CAs without
one) and checks that it names the address dialled (hostname or IP SAN: ``check_hostname``), so
a member reached at an address its certificate does not hold is refused, not trusted. The
client certificate is presented when etcd asks (``--client-cert-auth``). etcd's JSON gateway
(3.4.10 and later) refuses any client certificate with a CommonName (it would not be used as the
user name there, so etcd says so rather than ignore it): authentication is by user name and
password (dcs/etcd_auth.py), and the certificate only proves the client may connect at all.

OpenSSL's reasons are turned into sentences that name the setting to change; each failure is
reported per member, so a message says which endpoint refused and why.
"""

from __future__ import annotations

import ssl

from pgwarden.model.node import EtcdSettings
from pgwarden.tls import ReloadableClientContext

# What etcd answers when a client certificate carries a CommonName, on the JSON gateway.
GATEWAY_CN = "CommonName of client sending a request against gateway"
PLAIN_TO_TLS = "Client sent an HTTP request to an HTTPS server"
# An etcd that requires client certificates drops a plain HTTP request without an answer.
PLAIN_TO_TLS_HINT = "an etcd serving TLS does this to plain HTTP: set etcd.protocol: https?"


class EtcdTlsError(Exception):
    """The TLS files cannot be used; the message names them and why."""


def client_context(settings: EtcdSettings) -> ssl.SSLContext | None:
    """The context to reach etcd with (None over plain http); EtcdTlsError for unusable files."""
    if not settings.tls:
        return None
    try:
        context = ssl.create_default_context(cafile=settings.cacert)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if settings.cert:
            context.load_cert_chain(settings.cert, settings.key)
    except (OSError, ssl.SSLError) as exc:
        raise EtcdTlsError(_file_problem(settings, exc)) from None
    return context


def reloadable_context(settings: EtcdSettings) -> ReloadableClientContext | None:
    """`client_context` kept reloadable (``.reload()``) for new connections; None over http."""
    if not settings.tls:
        return None
    return ReloadableClientContext(lambda: _context(settings))


def _context(settings: EtcdSettings) -> ssl.SSLContext:
    context = client_context(settings)
    assert context is not None  # settings.tls
    return context


def tls_files(settings: EtcdSettings) -> tuple[str, ...]:
    """The files the context is built from (what a reload watches)."""
    return tuple(f for f in (settings.cacert, settings.cert, settings.key) if f)


def tls_problems(settings: EtcdSettings) -> list[str]:
    """Why the agent could not reach etcd over TLS with these files (checked before it starts)."""
    try:
        client_context(settings)
    except EtcdTlsError as exc:
        return [str(exc)]
    return []


def _file_problem(settings: EtcdSettings, exc: Exception) -> str:
    files = ", ".join(f"etcd.{n} {v}" for n in ("cacert", "cert", "key") if (v := getattr(settings, n)))
    if isinstance(exc, ssl.SSLError) and exc.reason == "KEY_VALUES_MISMATCH":
        why = "the private key does not match the certificate"
    elif isinstance(exc, ssl.SSLError):
        why = f"a file is not a PEM certificate or key ({exc})"
    else:
        why = str(exc)
    return f"etcd: cannot use {files}: {why}"


def describe_tls(exc: Exception, settings: EtcdSettings, host: str) -> str | None:
    """A TLS failure towards the member at ``host`` in words, or None when it is no TLS failure."""
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        if "mismatch" in text or "not valid for" in text:
            return (
                f"TLS: its certificate is not valid for {host} (hostname/IP mismatch): issue it with "
                f"{host} among its subject alternative names, or list the member by a name it holds"
            )
        if "expired" in text:
            return "TLS: its certificate has expired"
        ca = (
            f"etcd.cacert {settings.cacert}"
            if settings.cacert
            else "the system's CAs (etcd.cacert is not set)"
        )
        return f"TLS: its certificate is not signed by {ca}"
    if any(sign in text for sign in ("ALERT_BAD_CERTIFICATE", "CERTIFICATE_REQUIRED", "ALERT_UNKNOWN_CA")):
        if not settings.cert:
            return "TLS: it requires a client certificate (--client-cert-auth): set etcd.cert and etcd.key"
        return (
            f"TLS: it refused the client certificate etcd.cert {settings.cert} "
            "(not signed by a CA in its --trusted-ca-file?)"
        )
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return "TLS: it does not speak TLS here: set etcd.protocol: http, or enable TLS on etcd's client port"
    if "SSL" in text or "TLS" in text:
        return f"TLS: {text}"
    return None


def describe_refusal(status: int, body: str, settings: EtcdSettings) -> str | None:
    """A non-JSON answer that is a TLS set-up mistake, in words; None for anything else."""
    if GATEWAY_CN in body:
        cert = f"etcd.cert {settings.cert}" if settings.cert else "the client certificate"
        return (
            f"TLS: etcd's JSON gateway refuses {cert} because it has a CommonName: issue it "
            "without one (authentication is by etcd.username and etcd.password)"
        )
    if PLAIN_TO_TLS in body:
        return "it speaks HTTPS: set etcd.protocol: https (or write the hosts as https://host:port)"
    return None
