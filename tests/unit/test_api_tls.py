"""The REST API's client certificates, allowlist and certificate reload, over real loopback sockets.

Certificates come from ``local/pki.py`` (two separate CAs: the cluster's and a stranger's). No
cluster: an ``ApiServer`` over a fixed snapshot, called by httpx clients that present a
certificate or not and bind a loopback source address of their choice.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from pgwarden.api.server import ApiServer
from pgwarden.local.pki import Issued, Pki
from pgwarden.model.node import VerifyClient
from pgwarden.tls import ReloadableClientContext, client_context, tls_problems
from tests.support import api_fakes as fake
from tests.support import builders as b

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    pki = Pki(tmp_path_factory.mktemp("pki"), "cluster CA")
    pki.issue_server("server", ["127.0.0.1"], client_auth=True)
    pki.issue_client("admin")
    return pki


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    pki = Pki(tmp_path_factory.mktemp("stranger"), "another CA")
    pki.issue_client("admin")
    return pki


@contextmanager
def serving(pki: Pki, snap: Any = None, **settings: Any) -> Iterator[tuple[ApiServer, str]]:
    server_files = pki.paths("server")
    api = fake.api_settings(
        certfile=str(server_files.cert), keyfile=str(server_files.key), cafile=str(pki.ca_cert), **settings
    )
    server = ApiServer(api, fake.SnapshotHolder(snap or fake.primary()), fake.FakeOperations())
    server.start()
    try:
        yield server, f"https://127.0.0.1:{server.port}"
    finally:
        server.stop()


def client(pki: Pki, identity: Issued | None, source: str | None = None) -> httpx.Client:
    """Trusts ``pki``'s CA; presents ``identity`` (None: no certificate); binds ``source``."""
    context = client_context(
        str(pki.ca_cert), str(identity.cert) if identity else None, str(identity.key) if identity else None
    )
    return httpx.Client(transport=httpx.HTTPTransport(verify=context, local_address=source), timeout=5)


def refused(http: httpx.Client, method: str, url: str) -> bool:
    """True when the TLS handshake (or the first read after it: TLS 1.3) refused the call."""
    try:
        http.request(method, url, json={} if method == "POST" else None)
    except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
        return True
    return False


# --- verify_client --------------------------------------------------------------------------------


def test_required_refuses_every_call_without_a_certificate_of_the_cluster_ca(pki: Pki, stranger: Pki) -> None:
    with serving(pki, verify_client=VerifyClient.REQUIRED) as (_server, url):
        with client(pki, None) as anonymous:
            for method, path in (("GET", "/primary"), ("OPTIONS", "/primary"), ("GET", "/patroni"),
                                 ("POST", "/reload")):  # fmt: skip
                assert refused(anonymous, method, url + path), (method, path)
        # A certificate signed by another CA (the client trusts the server, the server not it).
        foreign = client_context(str(pki.ca_cert), *map(str, dataclasses.astuple(stranger.paths("admin"))))
        with httpx.Client(verify=foreign, timeout=5) as outsider:
            assert refused(outsider, "GET", url + "/primary")
            assert refused(outsider, "POST", url + "/reload")
        with client(pki, pki.paths("admin")) as admin:
            assert admin.get(url + "/primary").status_code == 200
            assert admin.post(url + "/reload", json={}).status_code == 200


def test_optional_opens_reads_and_closes_operations_without_a_certificate(pki: Pki, stranger: Pki) -> None:
    with serving(pki, verify_client=VerifyClient.OPTIONAL) as (_server, url):
        with client(pki, None) as anonymous:
            assert anonymous.get(url + "/primary").status_code == 200
            assert anonymous.options(url + "/replica").status_code == 503  # answered: a verdict
            reply = anonymous.post(url + "/reload", json={})
            assert reply.status_code == 403
            assert "client certificate" in reply.json()["error"]
        with client(pki, pki.paths("admin")) as admin:
            assert admin.post(url + "/reload", json={}).status_code == 200
        # A presented certificate must verify, even for a read.
        foreign = client_context(str(pki.ca_cert), *map(str, dataclasses.astuple(stranger.paths("admin"))))
        with httpx.Client(verify=foreign, timeout=5) as outsider:
            assert refused(outsider, "GET", url + "/primary")


def test_none_asks_for_no_certificate(pki: Pki) -> None:
    with serving(pki) as (_server, url), client(pki, None) as anonymous:
        assert anonymous.post(url + "/reload", json={}).status_code == 200


# --- allowlist ------------------------------------------------------------------------------------


def test_allowlist_refuses_operations_from_outside_and_leaves_reads_open() -> None:
    allow = fake.api_settings(allowlist=(ipaddress.ip_network("127.0.0.0/30"),))
    with serving_plain(allow) as url:
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.9"), timeout=5) as outside:
            reply = outside.post(url + "/reload", json={})
            assert reply.status_code == 403
            assert "127.0.0.9 may not call operations" in reply.json()["error"]
            assert outside.get(url + "/primary").status_code == 200
            assert outside.get(url + "/patroni").status_code == 200
            assert outside.get(url + "/cluster").status_code == 200
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=5) as inside:
            assert inside.post(url + "/reload", json={}).status_code == 200


def test_allowlist_include_members_lets_a_member_address_in() -> None:
    members = b.view(members=[dataclasses.replace(b.member("node2"), api_url="https://127.0.0.9:8008")])
    snap = dataclasses.replace(fake.primary(), view=members)
    only_members = fake.api_settings(allowlist_include_members=True)
    with serving_plain(only_members, snap) as url:
        for source, status in (("127.0.0.9", 200), ("127.0.0.10", 403)):
            with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=5) as http:
                assert http.post(url + "/reload", json={}).status_code == status, source


def test_allowlist_comes_before_credentials() -> None:
    """Patroni's order: 403 for an address outside the list, whatever the credentials say."""
    settings = fake.api_settings(
        allowlist=(ipaddress.ip_network("127.0.0.2/32"),), username="admin", password="secret"
    )
    with serving_plain(settings) as url:
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.3"), timeout=5) as http:
            assert http.post(url + "/reload", json={}).status_code == 403
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=5) as http:
            assert http.post(url + "/reload", json={}).status_code == 401
            assert http.post(url + "/reload", json={}, auth=("admin", "secret")).status_code == 200


@contextmanager
def serving_plain(settings: Any, snap: Any = None) -> Iterator[str]:
    server = ApiServer(settings, fake.SnapshotHolder(snap or fake.primary()), fake.FakeOperations())
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


# --- certificate reload ---------------------------------------------------------------------------


def served_serial(url: str, ca: Path) -> int:
    """The serial number of the certificate a new connection to ``url`` is served."""
    host, port = url.removeprefix("https://").split(":")
    context = ssl.create_default_context(cafile=str(ca))
    with context.wrap_socket(socket.create_connection((host, int(port)), 5), server_hostname=host) as sock:
        der = sock.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def serial_of(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


@pytest.fixture
def own_pki(tmp_path: Path) -> Pki:
    pki = Pki(tmp_path / "pki")
    pki.issue_server("server", ["127.0.0.1"], client_auth=True)
    return pki


def test_a_rotated_certificate_is_served_once_its_files_change(own_pki: Pki) -> None:
    with serving(own_pki) as (server, url):
        first = served_serial(url, own_pki.ca_cert)
        server.certificates.check_now()
        assert served_serial(url, own_pki.ca_cert) == first  # nothing changed: nothing reloaded
        own_pki.rotate("server")
        server.certificates.check_now()
        assert served_serial(url, own_pki.ca_cert) == serial_of(own_pki.paths("server").cert) != first


def test_a_failed_reload_keeps_the_pair_in_use_and_a_later_good_one_loads(
    own_pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    files = own_pki.paths("server")
    with serving(own_pki) as (server, url), caplog.at_level(logging.ERROR):
        first = served_serial(url, own_pki.ca_cert)
        good_cert, good_key = files.cert.read_bytes(), files.key.read_bytes()
        files.cert.write_bytes(good_cert[: len(good_cert) // 2])  # half written
        server.certificates.check_now()
        assert served_serial(url, own_pki.ca_cert) == first
        assert "cannot reload the REST API's certificate" in caplog.text
        assert "not a complete PEM" in caplog.text
        # A new certificate with the old key: the pair does not match.
        files.cert.write_bytes(good_cert)
        own_pki.rotate("server")
        files.key.write_bytes(good_key)
        caplog.clear()
        server.certificates.check_now()
        assert served_serial(url, own_pki.ca_cert) == first
        assert "the private key does not match the certificate" in caplog.text
        caplog.clear()
        server.certificates.check_now()  # the same broken files again: not logged again
        assert "cannot reload" not in caplog.text
        own_pki.rotate("server")
        server.certificates.check_now()
        assert served_serial(url, own_pki.ca_cert) == serial_of(files.cert) != first


def test_a_reload_request_reloads_even_unchanged_files_and_the_thread_polls(own_pki: Pki) -> None:
    with serving(own_pki) as (server, url):
        own_pki.rotate("server")
        server.request_reload()  # what SIGHUP calls: the watch thread reloads at once
        deadline = time.monotonic() + 10
        while served_serial(url, own_pki.ca_cert) != serial_of(own_pki.paths("server").cert):
            assert time.monotonic() < deadline, "the reload request was not carried out"
            time.sleep(0.05)


def test_open_connections_keep_their_certificate_across_a_reload(own_pki: Pki) -> None:
    with serving(own_pki) as (server, url):
        with httpx.Client(verify=ssl.create_default_context(cafile=str(own_pki.ca_cert)), timeout=5) as http:
            assert http.get(url + "/primary").status_code == 200
            own_pki.rotate("server")
            server.certificates.check_now()
            # The same keep-alive connection goes on working; new ones get the new certificate.
            assert http.get(url + "/primary").status_code == 200
        assert served_serial(url, own_pki.ca_cert) == serial_of(own_pki.paths("server").cert)


def test_a_reloadable_client_context_presents_the_rotated_certificate(own_pki: Pki) -> None:
    own_pki.issue_client("agent")
    agent = own_pki.paths("agent")
    with serving(own_pki, verify_client=VerifyClient.REQUIRED) as (_server, url):
        context = ReloadableClientContext(
            lambda: client_context(str(own_pki.ca_cert), str(agent.cert), str(agent.key))
        )
        with httpx.Client(verify=context, timeout=5) as http:
            assert http.get(url + "/primary").status_code == 200
            before = context.current
            own_pki.rotate("agent")
            context.reload()
            assert context.current is not before
            with httpx.Client(verify=context, timeout=5) as fresh:
                assert fresh.get(url + "/primary").status_code == 200
        broken = ReloadableClientContext(
            lambda: client_context(str(own_pki.ca_cert), str(agent.cert), str(agent.key))
        )
        agent.key.write_text("not a key")
        with pytest.raises(ssl.SSLError):
            broken.reload()
        assert broken.current is not None  # the working context stays


def test_unusable_tls_files_are_named_before_the_agent_starts(own_pki: Pki, tmp_path: Path) -> None:
    files = own_pki.paths("server")
    settings = fake.api_settings(
        certfile=str(files.cert), keyfile=str(files.key), cafile=str(own_pki.ca_cert),
        verify_client=VerifyClient.REQUIRED,
    )  # fmt: skip
    assert tls_problems(settings) == []
    own_pki.issue_client("other")
    mismatched = dataclasses.replace(settings, keyfile=str(own_pki.paths("other").key))
    problems = tls_problems(mismatched)
    assert len(problems) == 2  # serving, and presenting the same pair to peers
    assert all("the private key does not match the certificate" in p for p in problems)
    missing = dataclasses.replace(settings, cafile=str(tmp_path / "nope.crt"))
    assert any(str(tmp_path / "nope.crt") in p for p in tls_problems(missing))
