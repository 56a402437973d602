"""A small certificate authority for the local stack and the tests: one CA, server certificates
with IP SANs (agents' APIs, etcd members), client certificates (agents, the CLI, HAProxy, etcd
users), keys 0600; idempotent, and a rotation that re-issues one certificate in place.

Everything lives in one directory: ``ca.crt``/``ca.key`` and ``NAME.crt``/``NAME.key`` per
certificate. ``issue_server``/``issue_client`` keep a certificate that is still good (signed by
this CA, its key matching, the same names and purposes, more than ``RENEW_BEFORE`` left) and
replace it otherwise, so running ``pgwarden up`` again reuses what exists. Keys are ECDSA P-256:
small, and the cheapest handshakes for HAProxy's checks. Files are replaced atomically (a reader
sees the old file or the new one), the key before the certificate; a process that reloads in
between sees a mismatched pair, keeps its old one and loads the new pair on its next look.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=30)  # a certificate closer than this to its end is re-issued
_SERVER = ExtendedKeyUsageOID.SERVER_AUTH
_CLIENT = ExtendedKeyUsageOID.CLIENT_AUTH


@dataclass(frozen=True, slots=True)
class Issued:
    """Where one certificate and its private key are."""

    cert: Path
    key: Path

    def bundle(self) -> Path:
        """Certificate then key in one file, ``NAME.pem`` (mode 0600), as HAProxy's ``crt`` takes
        them; rewritten on every call, so it follows a rotation."""
        path = self.cert.with_suffix(".pem")
        _write(path, self.cert.read_bytes() + self.key.read_bytes(), 0o600)
        return path


@dataclass(frozen=True, slots=True)
class _Wanted:
    common_name: str
    ips: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]
    dns: frozenset[str]
    usages: frozenset[x509.ObjectIdentifier]


class Pki:
    """The CA in ``dir`` (created on first use) and the certificates it issues there."""

    def __init__(self, dir: Path, ca_name: str = "pgwarden local CA") -> None:
        self.dir = dir
        self._ca_name = ca_name
        self._ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    def paths(self, name: str) -> Issued:
        return Issued(self.dir / f"{name}.crt", self.dir / f"{name}.key")

    # --- issuing ---------------------------------------------------------------------------------
    def issue_server(
        self, name: str, ips: Sequence[str], dns: Sequence[str] = (), client_auth: bool = False
    ) -> Issued:
        """A server certificate for ``ips`` (and ``dns`` names); with ``client_auth`` it serves as
        a client certificate too (an agent calling its peers, an etcd member calling the others)."""
        usages = {_SERVER, _CLIENT} if client_auth else {_SERVER}
        addresses = frozenset(ipaddress.ip_address(i) for i in ips)
        wanted = _Wanted(name, addresses, frozenset(dns), frozenset(usages))
        return self._ensure(name, wanted)

    def issue_client(self, name: str, common_name: str | None = None) -> Issued:
        """A client certificate; ``common_name`` (default ``name``) is the identity a server reads
        from it. ``""`` issues one without a CommonName (subject ``O=pgwarden``), as etcd's JSON
        gateway requires: it refuses any client certificate that has one."""
        wanted = _Wanted(
            name if common_name is None else common_name, frozenset(), frozenset(), frozenset({_CLIENT})
        )
        return self._ensure(name, wanted)

    def rotate(self, name: str) -> Issued:
        """Re-issue ``name`` with a new key and serial, the same names and purposes."""
        paths = self.paths(name)
        cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
        self._issue(name, _wanted_of(cert))
        return paths

    def _ensure(self, name: str, wanted: _Wanted) -> Issued:
        paths = self.paths(name)
        if not self._still_good(paths, wanted):
            self._issue(name, wanted)
        return paths

    def _still_good(self, paths: Issued, wanted: _Wanted) -> bool:
        try:
            cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
            key = serialization.load_pem_private_key(paths.key.read_bytes(), password=None)
        except (OSError, ValueError):
            return False
        ca_cert, _ = self._authority()
        try:
            cert.verify_directly_issued_by(ca_cert)  # a re-created CA: everything is issued again
        except (InvalidSignature, ValueError, TypeError):
            return False
        return (
            _same_key(cert, key)
            and _wanted_of(cert) == wanted
            and cert.not_valid_after_utc - _now() > RENEW_BEFORE
            and (paths.key.stat().st_mode & 0o077) == 0
        )

    def _issue(self, name: str, wanted: _Wanted) -> None:
        ca_cert, ca_key = self._authority()
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_subject(wanted.common_name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))  # clocks a little apart still agree
            .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_usage(), critical=True)
            .add_extension(x509.ExtendedKeyUsage(sorted(wanted.usages, key=_dotted)), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in sorted(wanted.dns)]
        names += [x509.IPAddress(ip) for ip in sorted(wanted.ips, key=lambda a: (a.version, int(a)))]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        paths = self.paths(name)
        _write(paths.key, _key_pem(key), 0o600)
        _write(paths.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)

    # --- the CA ----------------------------------------------------------------------------------
    def _authority(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if self._ca is None:
            self._ca = self._load_ca() or self._new_ca()
        return self._ca

    def _load_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
        try:
            cert = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
            key = serialization.load_pem_private_key((self.dir / "ca.key").read_bytes(), password=None)
        except (OSError, ValueError):
            return None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not _same_key(cert, key):
            return None
        if cert.not_valid_after_utc - _now() <= RENEW_BEFORE:
            return None
        return cert, key

    def _new_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        self.dir.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self._ca_name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write(self.dir / "ca.key", _key_pem(key), 0o600)
        _write(self.ca_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return cert, key


def _subject(common_name: str) -> x509.Name:
    if not common_name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pgwarden")])
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _dotted(oid: x509.ObjectIdentifier) -> str:
    return oid.dotted_string


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _wanted_of(cert: x509.Certificate) -> _Wanted:
    """What a certificate was issued for: its common name, SANs and extended key usages."""
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ips = frozenset(san.get_values_for_type(x509.IPAddress))
        dns = frozenset(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        ips, dns = frozenset(), frozenset()
    try:
        usages = frozenset(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        usages = frozenset()
    name = common[0].value if common else ""
    return _Wanted(str(name), ips, dns, usages)  # type: ignore[arg-type]


def _same_key(cert: x509.Certificate, key: object) -> bool:
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return False
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = serialization.Encoding.PEM
    return cert.public_key().public_bytes(pem, spki) == key.public_key().public_bytes(pem, spki)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` atomically with ``data``, created with ``mode`` from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, mode)  # the umask may have taken bits off
    os.replace(tmp, path)
