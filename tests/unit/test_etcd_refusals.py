"""How the etcd client words TLS and authentication refusals, and keeps its auth token (no etcd here:
the integration tests meet the same refusals from a real one)."""

from __future__ import annotations

import ssl

import httpx
import pytest

from pgwarden.dcs import etcd_tls
from pgwarden.dcs.etcd_auth import EtcdAuth, explain, is_not_enabled, is_token_refusal
from pgwarden.model import Address
from pgwarden.model.node import EtcdSettings

SECURE = EtcdSettings(
    (Address("127.0.0.21", 2379),), protocol="https", cacert="/e/ca.crt", cert="/e/c.crt", key="/e/c.key"
)


@pytest.mark.parametrize(
    ("openssl", "words"),
    [
        (
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: IP address mismatch, "
            "certificate is not valid for '127.0.0.21'. (_ssl.c:1006)",
            ["not valid for 127.0.0.21", "subject alternative names"],
        ),
        (
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer "
            "certificate",
            ["not signed by etcd.cacert /e/ca.crt"],
        ),
        (
            "[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate",
            ["refused the client certificate"],
        ),
        ("[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert", ["refused the client certificate"]),
        ("[SSL: WRONG_VERSION_NUMBER] wrong version number", ["does not speak TLS", "etcd.protocol: http"]),
    ],
)
def test_tls_failures_name_the_cause_and_the_setting(openssl: str, words: list[str]) -> None:
    text = etcd_tls.describe_tls(httpx.ConnectError(openssl), SECURE, "127.0.0.21")
    assert text is not None
    for word in words:
        assert word in text


def test_a_client_without_a_certificate_is_told_to_set_one() -> None:
    no_cert = EtcdSettings(SECURE.hosts, protocol="https", cacert="/e/ca.crt")
    text = etcd_tls.describe_tls(httpx.ReadError("[SSL: SSLV3_ALERT_BAD_CERTIFICATE]"), no_cert, "h")
    assert text is not None and "set etcd.cert and etcd.key" in text


def test_other_failures_are_no_tls_failures() -> None:
    assert etcd_tls.describe_tls(httpx.ConnectError("[Errno 111] Connection refused"), SECURE, "h") is None


def test_gateway_and_plain_http_refusals_are_explained() -> None:
    body = "CommonName of client sending a request against gateway will be ignored and not used as expected\n"
    text = etcd_tls.describe_refusal(400, body, SECURE)
    assert text is not None and "CommonName" in text and "etcd.cert /e/c.crt" in text
    text = etcd_tls.describe_refusal(400, "Client sent an HTTP request to an HTTPS server.\n", SECURE)
    assert text is not None and "etcd.protocol: https" in text
    assert etcd_tls.describe_refusal(502, "Bad Gateway", SECURE) is None


def test_unusable_files_are_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = EtcdSettings(SECURE.hosts, protocol="https", cacert=str(tmp_path / "missing.crt"))
    problems = etcd_tls.tls_problems(settings)
    assert len(problems) == 1 and f"etcd.cacert {tmp_path / 'missing.crt'}" in problems[0]
    garbage = tmp_path / "c.crt"
    garbage.write_text("not a certificate")
    problems = etcd_tls.tls_problems(EtcdSettings(SECURE.hosts, protocol="https", cert=str(garbage)))
    assert len(problems) == 1 and "not a PEM certificate or key" in problems[0]
    assert etcd_tls.client_context(EtcdSettings(SECURE.hosts)) is None  # plain http: no context
    assert isinstance(etcd_tls.client_context(EtcdSettings(SECURE.hosts, protocol="https")), ssl.SSLContext)


@pytest.mark.parametrize(
    ("message", "username", "words"),
    [
        ("etcdserver: authentication failed, invalid user ID or password", "pgwarden", ["etcd.password"]),
        ("etcdserver: permission denied", "pgwarden", ["user 'pgwarden'", "readwrite", "prefix"]),
        ("etcdserver: user name is empty", None, ["set etcd.username and etcd.password"]),
    ],
)
def test_auth_refusals_say_which_setting_to_fix(message: str, username: str | None, words: list[str]) -> None:
    text = explain(message, username)
    for word in words:
        assert word in text


def test_which_answers_call_for_a_new_token() -> None:
    assert is_token_refusal(16, "etcdserver: invalid auth token")
    assert is_token_refusal(3, "etcdserver: user name is empty")
    assert not is_token_refusal(7, "etcdserver: permission denied")
    assert not is_token_refusal(3, "etcdserver: authentication failed, invalid user ID or password")
    assert is_not_enabled("etcdserver: authentication is not enabled")


def test_a_refused_token_is_forgotten_only_while_it_is_the_current_one() -> None:
    auth = EtcdAuth("pgwarden", "pw")
    assert auth.token() is None
    assert auth.accept({"token": "first.1"}) == "first.1"
    auth.forget("stale.0")  # another thread already replaced the token this one was refused
    assert auth.token() == "first.1"
    auth.forget("first.1")
    assert auth.token() is None
    with pytest.raises(ValueError):
        auth.accept({"header": {}})
    assert auth.not_enabled() == "" and auth.token() == ""  # calls go without a token
