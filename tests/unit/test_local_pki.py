"""local/pki.py: what it issues, that it reuses what is still good, rotation; and the local stack's
TLS layout (node configs, stack.json, HAProxy's checks)."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from pgwarden.client import target_from_stack
from pgwarden.config import parse_node_config
from pgwarden.local.pki import Pki
from pgwarden.local.spec import StackSpec
from pgwarden.model.node import VerifyClient


def cert_of(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_a_server_certificate_names_its_addresses_chains_to_the_ca_and_keeps_its_key_private(
    tmp_path: Path,
) -> None:
    pki = Pki(tmp_path)
    issued = pki.issue_server("etcd1", ["127.0.5.21", "::1"], dns=["localhost"], client_auth=True)
    cert = cert_of(issued.cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.5.21"), ipaddress.ip_address("::1")
    }  # fmt: skip
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usages == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    cert.verify_directly_issued_by(cert_of(pki.ca_cert))
    assert issued.key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600
    # OpenSSL agrees: the pair loads, and a client trusting the CA would accept it.
    ssl.create_default_context(cafile=str(pki.ca_cert)).load_cert_chain(str(issued.cert), str(issued.key))


def test_a_client_certificate_carries_the_identity_asked_for(tmp_path: Path) -> None:
    cert = cert_of(Pki(tmp_path).issue_client("etcd-root", "root").cert)
    assert cert.subject.rfc4514_string() == "CN=root"
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]


def test_issuing_again_keeps_what_is_still_good_and_replaces_what_is_not(tmp_path: Path) -> None:
    Pki(tmp_path).issue_server("node1", ["127.0.5.11"], client_auth=True)
    first = (tmp_path / "node1.crt").read_bytes()
    again = Pki(tmp_path)  # a new process: `pgwarden up` run again
    again.issue_server("node1", ["127.0.5.11"], client_auth=True)
    assert (tmp_path / "node1.crt").read_bytes() == first
    again.issue_server("node1", ["127.0.5.12"], client_auth=True)  # another address: re-issued
    assert (tmp_path / "node1.crt").read_bytes() != first
    moved = (tmp_path / "node1.crt").read_bytes()
    (tmp_path / "node1.key").chmod(0o644)  # a key others can read is not kept
    again.issue_server("node1", ["127.0.5.12"], client_auth=True)
    assert (tmp_path / "node1.crt").read_bytes() != moved
    assert (tmp_path / "node1.key").stat().st_mode & 0o777 == 0o600


def test_a_new_ca_re_issues_every_certificate(tmp_path: Path) -> None:
    Pki(tmp_path).issue_client("cli")
    old = (tmp_path / "cli.crt").read_bytes()
    (tmp_path / "ca.key").unlink()
    pki = Pki(tmp_path)
    pki.issue_client("cli")
    cert_of(tmp_path / "cli.crt").verify_directly_issued_by(cert_of(pki.ca_cert))
    assert (tmp_path / "cli.crt").read_bytes() != old


def test_rotation_issues_a_new_key_and_serial_for_the_same_names(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    issued = pki.issue_server("node1", ["127.0.5.11"], client_auth=True)
    before, key_before = cert_of(issued.cert), issued.key.read_bytes()
    pki.rotate("node1")
    after = cert_of(issued.cert)
    assert after.serial_number != before.serial_number and issued.key.read_bytes() != key_before
    assert after.extensions.get_extension_for_class(x509.SubjectAlternativeName).value == (
        before.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    )
    bundle = issued.bundle()
    assert bundle.read_bytes() == issued.cert.read_bytes() + issued.key.read_bytes()
    assert bundle.stat().st_mode & 0o777 == 0o600


# --- the local stack ------------------------------------------------------------------------------


@pytest.fixture
def spec(tmp_path: Path) -> StackSpec:
    return StackSpec(dir=tmp_path, network="127.0.5", api_tls=True, api_allowlist=("127.0.5.0/26",))


def test_a_tls_stack_node_config_serves_https_and_asks_for_client_certificates(spec: StackSpec) -> None:
    node = parse_node_config(spec.node_config(0, None), "node1.yml", env={})
    api = node.api
    assert api.url == "https://127.0.5.11:8008" == spec.api_url(0)
    assert api.verify_client is VerifyClient.REQUIRED
    assert api.cafile == str(spec.tls_dir / "ca.crt")
    assert (api.certfile, api.keyfile) == spec.tls_files("node1")
    assert [str(n) for n in api.allowlist] == ["127.0.5.0/26"] and api.allowlist_include_members


def test_a_tls_stack_tells_the_cli_its_ca_and_certificate(spec: StackSpec) -> None:
    spec.save()
    target = target_from_stack(spec.dir)
    assert target.tls_ca == str(spec.tls_dir / "ca.crt")
    assert (target.tls_cert, target.tls_key) == spec.tls_files("cli")
    assert target.router_crt == str(spec.tls_dir / "haproxy.pem") and target.client_cert_required
    assert all(n.api_url.startswith("https://") for n in target.nodes)
    assert StackSpec.load(spec.dir) == spec  # the allowlist survives save and load


def test_a_plain_stack_has_no_tls(tmp_path: Path) -> None:
    plain = StackSpec(dir=tmp_path)
    assert "tls" not in plain.node_config(0, None)["api"] and "tls" not in plain.document()
    assert plain.api_url(0).startswith("http://")
