"""EtcdStore against a real etcd with TLS, client certificates and etcd authentication.

The members run as ``pgwarden up`` runs them (local/etcd_security.py): TLS with client
certificates on client and peer ports, ``auth enable`` with root and users limited to a prefix.
The whole Store contract passes over it; every way a client can be refused is refused with the
cause in words; tokens that expire (``--auth-token-ttl 2``) or vanish with a restarted member are
asked for again without a failed call and without a late lease renewal.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("tests.support.store_contract")

from pgwarden.dcs.etcd import EtcdStore  # noqa: E402
from pgwarden.dcs.etcd_tls import EtcdTlsError  # noqa: E402
from pgwarden.dcs.store import StoreError  # noqa: E402
from pgwarden.local.etcd_security import EtcdUser  # noqa: E402
from pgwarden.local.pki import Pki  # noqa: E402
from pgwarden.model.node import Address  # noqa: E402
from tests.support.cluster import cluster_network  # noqa: E402
from tests.support.etcd import EtcdCluster  # noqa: E402
from tests.support.store_contract import CONTRACT, StoreHarness  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TIMEOUT = 1.0
TOKEN_TTL = 2  # seconds a token lives on a member that sees no call carrying it
AGENT = EtcdUser("agent", "agent-secret", "agent", "/contract/")
OTHER = EtcdUser("other", "other-secret", "other", "/pgwarden/other/")


@pytest.fixture(scope="module")
def secure_etcd() -> Iterator[EtcdCluster]:
    network = cluster_network()
    hosts = tuple(f"{network}.{21 + i}" for i in range(3))
    with EtcdCluster(hosts, secure=True, users=[AGENT, OTHER], auth_token_ttl=TOKEN_TTL) as cluster:
        yield cluster


def agent_store(cluster: EtcdCluster, **changes: str | None) -> EtcdStore:
    return EtcdStore.connect(cluster.settings(AGENT.name, AGENT.password, **changes), TIMEOUT)


@pytest.fixture
def harness(secure_etcd: EtcdCluster) -> Iterator[StoreHarness]:
    clients: list[EtcdStore] = []

    def new_client() -> EtcdStore:
        clients.append(EtcdStore.connect(secure_etcd.settings(AGENT.name, AGENT.password), TIMEOUT * 2))
        return clients[-1]

    try:
        yield StoreHarness(
            store=new_client(),
            prefix=f"/contract/{uuid.uuid4().hex[:8]}/",
            new_client=new_client,
            sleep=time.sleep,
            now=time.monotonic,
        )
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize("check", CONTRACT, ids=lambda c: c.__name__)
def test_store_contract_over_tls_with_etcd_auth(
    harness: StoreHarness, check: Callable[[StoreHarness], None]
) -> None:
    check(harness)


# -- refusals ------------------------------------------------------------------------------------


def refusal(store: EtcdStore) -> str:
    with store, pytest.raises(StoreError) as caught:
        store.get_prefix("/contract/")
    return str(caught.value)


def test_a_client_without_a_certificate_is_refused_naming_the_setting(secure_etcd: EtcdCluster) -> None:
    text = refusal(agent_store(secure_etcd, cert=None, key=None))
    assert "requires a client certificate" in text and "etcd.cert" in text
    assert str(secure_etcd.endpoints[0]) in text  # each member named with its answer


def test_a_certificate_from_another_ca_is_refused(secure_etcd: EtcdCluster, tmp_path: Path) -> None:
    stranger = Pki(tmp_path / "stranger").issue_client("intruder", common_name="")
    text = refusal(agent_store(secure_etcd, cert=str(stranger.cert), key=str(stranger.key)))
    assert f"refused the client certificate etcd.cert {stranger.cert}" in text


def test_a_certificate_with_a_common_name_is_refused_by_the_gateway(
    secure_etcd: EtcdCluster, tmp_path: Path
) -> None:
    named = secure_etcd.pki.issue_client("named", common_name="agent")
    text = refusal(agent_store(secure_etcd, cert=str(named.cert), key=str(named.key)))
    assert "CommonName" in text and "issue it without one" in text


def test_a_wrong_password_is_refused_naming_the_user(secure_etcd: EtcdCluster) -> None:
    text = refusal(EtcdStore.connect(secure_etcd.settings(AGENT.name, "wrong"), TIMEOUT))
    assert "authentication failed" in text and "etcd.username ('agent') and etcd.password" in text


def test_a_client_without_credentials_is_told_to_set_them(secure_etcd: EtcdCluster) -> None:
    text = refusal(EtcdStore.connect(secure_etcd.settings(), TIMEOUT))
    assert "set etcd.username and etcd.password" in text


def test_a_role_limited_to_another_prefix_is_refused(secure_etcd: EtcdCluster) -> None:
    with EtcdStore.connect(secure_etcd.settings(OTHER.name, OTHER.password), TIMEOUT) as store:
        store.put("/pgwarden/other/mine", "yes")  # its own prefix: allowed
        with pytest.raises(StoreError) as caught:
            store.get_prefix("/contract/")
    assert "permission denied" in str(caught.value) and "user 'other'" in str(caught.value)


def test_members_not_signed_by_the_configured_ca_are_refused(
    secure_etcd: EtcdCluster, tmp_path: Path
) -> None:
    other_ca = Pki(tmp_path / "other")
    other_ca.issue_client("x")
    text = refusal(agent_store(secure_etcd, cacert=str(other_ca.ca_cert)))
    assert f"not signed by etcd.cacert {other_ca.ca_cert}" in text


def test_plain_http_to_a_tls_member_says_to_use_https(secure_etcd: EtcdCluster) -> None:
    text = refusal(EtcdStore(secure_etcd.endpoints, TIMEOUT))
    assert "etcd.protocol: https" in text


class TlsServer:
    """Completes TLS handshakes with ``cert``, answers nothing: a member whose certificate names
    another address than the one dialled."""

    def __init__(self, host: str, cert: Path, key: Path) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._sock = socket.create_server((host, 0))
        self._sock.settimeout(0.2)
        self.address = Address(host, self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            with (
                contextlib.suppress(OSError, ssl.SSLError),
                self._context.wrap_socket(conn, server_side=True),
            ):
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


def test_a_member_certificate_for_another_address_is_refused_naming_the_endpoint(
    secure_etcd: EtcdCluster,
) -> None:
    host = secure_etcd.hosts[0].rsplit(".", 1)[0] + ".29"
    wrong = secure_etcd.pki.issue_server("elsewhere", [secure_etcd.hosts[1]])  # not ``host``
    server = TlsServer(host, wrong.cert, wrong.key)
    try:
        settings = secure_etcd.settings(AGENT.name, AGENT.password)
        with (
            EtcdStore([server.address], TIMEOUT, settings=settings) as store,
            pytest.raises(StoreError) as caught,
        ):
            store.get_prefix("/contract/")
    finally:
        server.close()
    assert f"{server.address} TLS: its certificate is not valid for {host}" in str(caught.value)


# -- tokens --------------------------------------------------------------------------------------


def test_a_token_that_expired_is_asked_for_again_without_a_failed_call(secure_etcd: EtcdCluster) -> None:
    with agent_store(secure_etcd) as store:
        store.put("/contract/token", "1")
        first = store._auth.token() if store._auth else None
        time.sleep(TOKEN_TTL + 1.5)  # unused, the token expires on every member
        assert store.put("/contract/token", "2") > 0
        assert store.get_prefix("/contract/token").get("/contract/token") is not None
        assert store.watch("/contract/token", 1, 0.2), "the watch came back with the events"
        assert store._auth is not None and store._auth.token() not in (None, first)


def test_renewals_every_quarter_second_never_miss_while_tokens_expire_and_a_member_restarts(
    secure_etcd: EtcdCluster,
) -> None:
    """The lease keeper's pace, for 12 s: tokens expire on the members not asked (TTL 2 s), a
    member restarts (forgetting every token), and a reader moves between members meanwhile."""
    latencies: list[float] = []
    failures: list[str] = []
    with agent_store(secure_etcd) as keeper, agent_store(secure_etcd) as reader:
        lease = keeper.grant_lease(4)
        stop = time.monotonic() + 12

        def read_around() -> None:
            while time.monotonic() < stop:
                try:
                    reader.get_prefix("/contract/")
                except StoreError as exc:
                    failures.append(f"read: {exc}")
                time.sleep(0.5)

        thread = threading.Thread(target=read_around)
        thread.start()
        restarted = False
        try:
            while time.monotonic() < stop:
                started = time.monotonic()
                try:
                    keeper.renew_lease(lease, started + 2.5)
                    latencies.append(time.monotonic() - started)
                except StoreError as exc:
                    failures.append(f"renewal: {exc}")
                if not restarted and time.monotonic() > stop - 8:
                    secure_etcd.kill(keeper._preferred)  # the member the keeper talks to
                    secure_etcd.start(keeper._preferred)
                    restarted = True
                time.sleep(max(0.0, 0.25 - (time.monotonic() - started)))
        finally:
            thread.join(15)
        secure_etcd.wait_healthy(30)
    assert failures == []
    assert len(latencies) > 30
    p99 = statistics.quantiles(latencies, n=100)[98]
    p50 = statistics.median(latencies)
    print(f"renewals {len(latencies)}: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    assert max(latencies) < 2.5  # within the lease's budget, whatever the machine's load


def test_a_tls_handshake_happens_once_per_connection_not_per_call(secure_etcd: EtcdCluster) -> None:
    with agent_store(secure_etcd) as store:
        store.get_prefix("/contract/")
        assert store._tls is not None
        # Every new connection is wrapped by the store's context: count the wrappings (handshakes).
        handshakes: list[str] = []
        wrap = store._tls.wrap_socket

        def counted(sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
            handshakes.append(str(kwargs.get("server_hostname")))
            return wrap(sock, *args, **kwargs)

        store._tls.wrap_socket = counted  # type: ignore[method-assign]
        for _ in range(20):
            store.get_prefix("/contract/")
        assert handshakes == []
        store._client.close()  # the kept connections gone: the next call shakes hands once
        store.get_prefix("/contract/")
        assert len(handshakes) == 1


def test_a_rotated_client_certificate_is_taken_for_new_connections_and_a_bad_one_is_refused(
    secure_etcd: EtcdCluster, tmp_path: Path
) -> None:
    pki = secure_etcd.pki
    mine = pki.issue_client("rotating", common_name="")
    settings = secure_etcd.settings(AGENT.name, AGENT.password, cert=str(mine.cert), key=str(mine.key))
    with EtcdStore.connect(settings, TIMEOUT) as store:
        store.get_prefix("/contract/")
        assert store._tls is not None
        before = store._tls.current
        pki.rotate("rotating")  # a new key and certificate in place, as a rotation script does
        store.reload_tls()
        assert store._tls.current is not before
        store._client.close()  # no connection left to reuse: the next call shakes hands anew
        store._client = store._new_client(None, store._tls)
        store.get_prefix("/contract/")
        rotated = store._tls.current
        # Half a rotation: another certificate beside the key in place; the pair in use stays.
        mine.cert.write_bytes(Pki(tmp_path / "stranger").issue_client("x", common_name="").cert.read_bytes())
        with pytest.raises(EtcdTlsError, match="does not match"):
            store.reload_tls()
        assert store._tls.current is rotated
        store.get_prefix("/contract/")
