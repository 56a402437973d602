"""Node config: etcd TLS and authentication settings, and member_networks (given or derived)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from pgwarden.config import parse_node_config
from pgwarden.model import Address
from tests.unit.test_config import error_of, minimal


def parse(env: dict[str, str] | None = None, **changes: Any):  # type: ignore[no-untyped-def]
    return parse_node_config(minimal(**changes), "node.yml", env=env or {})


def test_plain_etcd_by_default() -> None:
    etcd = parse().etcd
    assert (etcd.protocol, etcd.cacert, etcd.cert, etcd.key, etcd.username) == (
        "http",
        None,
        None,
        None,
        None,
    )
    assert etcd.url(Address("127.0.0.21", 2379)) == "http://127.0.0.21:2379"


def test_https_hosts_set_the_protocol_and_keep_the_addresses() -> None:
    etcd = parse(etcd__hosts="https://127.0.0.21:2379, https://127.0.0.22:2379/").etcd
    assert etcd.protocol == "https"
    assert etcd.hosts == (Address("127.0.0.21", 2379), Address("127.0.0.22", 2379))
    assert etcd.url(etcd.hosts[0]) == "https://127.0.0.21:2379"


def test_every_setting_of_a_secured_etcd() -> None:
    etcd = parse(
        etcd__protocol="HTTPS",
        etcd__cacert="/etc/pgwarden/ca.crt",
        etcd__cert="/etc/pgwarden/etcd.crt",
        etcd__key="/etc/pgwarden/etcd.key",
        etcd__username="pgwarden",
        etcd__password="s3cret",
    ).etcd
    assert (etcd.protocol, etcd.cacert, etcd.cert, etcd.key) == (
        "https",
        "/etc/pgwarden/ca.crt",
        "/etc/pgwarden/etcd.crt",
        "/etc/pgwarden/etcd.key",
    )
    assert (etcd.username, etcd.password) == ("pgwarden", "s3cret")
    assert "s3cret" not in repr(etcd)  # the settings may be logged; the password stays out


def test_a_certificate_file_alone_means_https() -> None:
    assert parse(etcd__cacert="/etc/pgwarden/ca.crt").etcd.protocol == "https"


def test_env_overrides_every_etcd_security_setting() -> None:
    env = {
        "PGWARDEN_ETCD_PROTOCOL": "https",
        "PGWARDEN_ETCD_CACERT": "/e/ca.crt",
        "PGWARDEN_ETCD_CERT": "/e/c.crt",
        "PGWARDEN_ETCD_KEY": "/e/c.key",
        "PGWARDEN_ETCD_USERNAME": "agent",
        "PGWARDEN_ETCD_PASSWORD": "from-env",
        "PGWARDEN_MEMBER_NETWORKS": "127.0.0.0/24, db.example.com",
    }
    cfg = parse(env=env)
    etcd = cfg.etcd
    assert (etcd.protocol, etcd.cacert, etcd.cert, etcd.key) == ("https", "/e/ca.crt", "/e/c.crt", "/e/c.key")
    assert (etcd.username, etcd.password) == ("agent", "from-env")
    assert cfg.member_networks is not None
    assert cfg.member_networks.networks == (ipaddress.ip_network("127.0.0.0/24"),)
    assert cfg.member_networks.names == ("db.example.com",)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"etcd__hosts": ["https://127.0.0.21:2379", "http://127.0.0.22:2379"]}, "etcd.hosts", ["mixes"]),
        ({"etcd__hosts": ["ftp://127.0.0.21:2379"]}, "etcd.hosts[0]", ["ftp://", "https://host:port"]),
        ({"etcd__hosts": ["https://127.0.0.21:2379/v3"]}, "etcd.hosts[0]", ["has a path"]),
        (
            {"etcd__hosts": ["https://127.0.0.21:2379"], "etcd__protocol": "http"},
            "etcd.protocol",
            ["https://", "leave protocol out"],
        ),
        ({"etcd__protocol": "http", "etcd__cacert": "/e/ca.crt"}, "etcd.protocol", ["etcd.cacert", "https"]),
        ({"etcd__protocol": "tls"}, "etcd.protocol", ["http or https"]),
        ({"etcd__key": "/e/c.key"}, "etcd.key", ["without etcd.cert"]),
        ({"etcd__username": "pgwarden"}, "etcd.password", ["PGWARDEN_ETCD_PASSWORD"]),
        ({"etcd__password": "x"}, "etcd.username", ["etcd.username"]),
        ({"etcd__cacert": "ca.crt"}, "etcd.cacert", ["absolute path"]),
        ({"member_networks": ["not a network!"]}, "member_networks[0]", ["neither an IP network"]),
        ({"member_networks": ["127.0.9.0/24"]}, "member_networks", ["127.0.0.11 is outside", "add"]),
        (
            {"postgresql__data_dir": "/srv/pg", "etcd__key": "/srv/pg/k", "etcd__cert": "/x/c"},
            "postgresql.data_dir",
            ["etcd.key /srv/pg/k"],
        ),
    ],
)  # fmt: skip
def test_unusable_etcd_security_names_field_and_fix(
    changes: dict[str, Any], field: str, words: list[str]
) -> None:
    message = str(error_of(minimal(**changes)))
    assert f"{field}: " in message, message
    for word in words:
        assert word in message, message


# --- member_networks ---------------------------------------------------------------------------


def test_member_networks_default_to_the_subnet_of_the_nodes_own_addresses() -> None:
    cfg = parse(api__connect_address="127.0.5.11:8008", postgresql__connect_address="127.0.6.11:5432")
    assert cfg.member_networks is not None
    assert set(cfg.member_networks.networks) == {
        ipaddress.ip_network("127.0.5.0/24"),
        ipaddress.ip_network("127.0.6.0/24"),
    }


def test_an_ipv6_node_trusts_its_own_slash_64() -> None:
    cfg = parse(
        api__listen="[fd00::11]:8008",
        postgresql__listen="[fd00::11]:5432",
        api__allow_unauthenticated_writes=True,
    )
    assert cfg.member_networks is not None
    assert cfg.member_networks.networks == (ipaddress.ip_network("fd00::/64"),)


def test_a_node_named_by_dns_trusts_its_domain() -> None:
    cfg = parse(
        api__connect_address="db1.pg.example.com:8008", postgresql__connect_address="db1.pg.example.com:5432"
    )
    assert cfg.member_networks is not None
    assert cfg.member_networks.host_refusal("db3.pg.example.com") is None
    assert cfg.member_networks.host_refusal("evil.example.com") is not None
    assert cfg.member_networks.host_refusal("127.0.0.12") is not None


def test_localhost_trusts_loopback() -> None:
    cfg = parse(api__listen="localhost:8008")
    assert cfg.member_networks is not None
    assert cfg.member_networks.host_refusal("127.0.9.1") is None


@pytest.mark.parametrize("host", ["db1", "db1.com"])
def test_no_default_is_guessed_from_a_name_without_a_domain_of_its_own(host: str) -> None:
    message = str(error_of(minimal(postgresql__connect_address=f"{host}:5432")))
    assert "member_networks: not set, and it cannot be derived" in message
    assert host in message


def test_configured_member_networks_take_names_and_networks() -> None:
    cfg = parse(member_networks=["127.0.0.0/24", "*.db.example.com", "Other.Example.COM."])
    networks = cfg.member_networks
    assert networks is not None
    assert networks.names == ("*.db.example.com", "other.example.com")
    assert networks.host_refusal("a.db.example.com") is None
    assert networks.host_refusal("OTHER.example.com") is None
    assert networks.host_refusal("db.example.com") is not None  # the suffix is not the name itself
    assert networks.host_refusal("127.0.1.1") is not None
