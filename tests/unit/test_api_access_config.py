"""api.tls client-certificate settings, api.allowlist, the CLI's TLS options and HAProxy's TLS checks:
how they are read, refused, and rendered."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import typer
import yaml

from pgwarden.agent.reloads import Reloads
from pgwarden.api.access import member_addresses, parse_peer
from pgwarden.cli.router import check_tls
from pgwarden.client import ClientTls, ClusterTarget, target_from_node_config
from pgwarden.config import ConfigError, parse_node_config
from pgwarden.model import Address
from pgwarden.model.node import VerifyClient
from pgwarden.router.haproxy import Backend, CheckTls, RouterPorts, render
from pgwarden.tls import calls_peers_over_tls, peer_identity
from tests.support import builders as b
from tests.unit.test_config import minimal

TLS = {
    "certfile": "/etc/pgwarden/api.crt",
    "keyfile": "/etc/pgwarden/api.key",
    "cafile": "/etc/pgwarden/ca.crt",
}


def api_of(env: dict[str, str] | None = None, **changes: object):  # type: ignore[no-untyped-def]
    return parse_node_config(minimal(**changes), "node.yml", env=env or {}).api


def problems(**changes: object) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_node_config(minimal(**changes), "node.yml", env={})
    return str(caught.value)


# --- config ---------------------------------------------------------------------------------------


def test_defaults_ask_for_no_client_certificate_and_allow_every_address() -> None:
    api = api_of()
    assert (api.verify_client, api.cafile, api.allowlist, api.allowlist_include_members) == (
        VerifyClient.NONE, None, (), False
    )  # fmt: skip
    assert not api.restricts_callers


@pytest.mark.parametrize("mode", ["none", "optional", "required", "Required"])
def test_verify_client_takes_patronis_values(mode: str) -> None:
    api = api_of(api__tls={**TLS, "verify_client": mode})
    assert api.verify_client is VerifyClient(mode.lower())
    assert api.cafile == "/etc/pgwarden/ca.crt"


def test_verify_client_needs_a_ca_and_names_the_fix() -> None:
    text = problems(api__tls={"certfile": "/etc/pgwarden/api.crt", "verify_client": "required"})
    assert "api.tls.cafile" in text and "verify_client is required" in text
    assert "verify_client" in problems(api__tls={**TLS, "verify_client": "sometimes"})
    assert "client_certfile" in problems(api__tls={**TLS, "client_keyfile": "/etc/pgwarden/c.key"})


def test_allowlist_takes_networks_and_addresses_and_refuses_names() -> None:
    api = api_of(
        api__allowlist=["192.0.2.0/28", "198.51.100.7", "fd00::/64"], api__allowlist_include_members=True
    )
    assert [str(n) for n in api.allowlist] == ["192.0.2.0/28", "198.51.100.7/32", "fd00::/64"]
    assert api.allowlist_include_members and api.restricts_callers
    text = problems(api__allowlist=["db1.example.net"])
    assert "api.allowlist[0]" in text and "host names are not accepted" in text


def test_environment_overrides_the_tls_and_allowlist_settings() -> None:
    env = {
        "PGWARDEN_API_TLS_CERTFILE": "/etc/pgwarden/api.crt",
        "PGWARDEN_API_TLS_CAFILE": "/etc/pgwarden/ca.crt",
        "PGWARDEN_API_TLS_VERIFY_CLIENT": "optional",
        "PGWARDEN_API_ALLOWLIST": "192.0.2.0/28, 198.51.100.0/24",
    }
    api = api_of(env)
    assert api.verify_client is VerifyClient.OPTIONAL and api.cafile == "/etc/pgwarden/ca.crt"
    assert [str(n) for n in api.allowlist] == ["192.0.2.0/28", "198.51.100.0/24"]


def test_tls_files_inside_the_data_directory_are_refused() -> None:
    text = problems(api__tls={**TLS, "cafile": "/var/lib/postgresql/15/main/ca.crt"})
    assert "api.tls.cafile" in text


def test_agents_present_their_client_certificate_or_their_server_certificate() -> None:
    own = api_of(api__tls=TLS)
    assert peer_identity(own) == ("/etc/pgwarden/api.crt", "/etc/pgwarden/api.key")
    client = {"client_certfile": "/etc/pgwarden/c.crt", "client_keyfile": "/etc/pgwarden/c.key"}
    split = api_of(api__tls={**TLS, **client})
    assert peer_identity(split) == ("/etc/pgwarden/c.crt", "/etc/pgwarden/c.key")
    assert calls_peers_over_tls(own) and not calls_peers_over_tls(api_of())


# --- access helpers -------------------------------------------------------------------------------


def test_peer_addresses_are_read_as_ip_addresses() -> None:
    assert parse_peer("::ffff:127.0.0.5") == ipaddress.ip_address("127.0.0.5")
    assert parse_peer("fe80::1%lo") == ipaddress.ip_address("fe80::1")
    assert parse_peer("") is None and parse_peer("db1") is None


def test_member_addresses_are_the_ip_literals_of_api_urls_and_hosts() -> None:
    import dataclasses

    members = [
        dataclasses.replace(b.member("node1"), api_url="https://192.0.2.11:8008", host="192.0.2.11"),
        dataclasses.replace(b.member("node2"), api_url="https://db2.example.net:8008", host="192.0.2.12"),
        dataclasses.replace(b.member("node3"), api_url="not a url[", host="db3"),
    ]
    found = member_addresses(b.view(members=members))
    assert found == {ipaddress.ip_address("192.0.2.11"), ipaddress.ip_address("192.0.2.12")}


def test_sighup_asks_every_part_even_after_one_fails() -> None:
    asked: list[str] = []
    reloads = Reloads()

    def broken() -> None:
        raise RuntimeError("bug")

    reloads.add("broken", broken)
    reloads.add("certificates", lambda: asked.append("certificates"))
    reloads.request()
    assert asked == ["certificates"] and reloads.parts == ["broken", "certificates"]


# --- the CLI's options ----------------------------------------------------------------------------


def test_a_node_config_gives_the_cli_its_ca_and_client_certificate(tmp_path: Path) -> None:
    path = tmp_path / "node.yml"
    path.write_text(yaml.safe_dump(minimal(api__tls={**TLS, "verify_client": "required"})))
    target = target_from_node_config(path)
    assert (target.tls_ca, target.tls_cert, target.tls_key) == (
        "/etc/pgwarden/ca.crt", "/etc/pgwarden/api.crt", "/etc/pgwarden/api.key"
    )  # fmt: skip
    assert target.client_cert_required
    path.write_text(yaml.safe_dump(minimal(api__tls={"certfile": "/etc/pgwarden/api.crt"})))
    plain = target_from_node_config(path)
    assert (plain.tls_ca, plain.tls_cert, plain.client_cert_required) == (TLS["certfile"], None, False)


def test_command_line_tls_options_replace_the_files() -> None:
    target = ClusterTarget("demo", (Address("127.0.0.1", 1),), tls_ca="/a/ca.crt", tls_cert="/a/c.crt")
    changed = ClientTls(cafile="/b/ca.crt", certfile="/b/c.pem", insecure=True).applied_to(target)
    assert (changed.tls_ca, changed.tls_cert, changed.tls_key, changed.tls_insecure) == (
        "/b/ca.crt", "/b/c.pem", None, True
    )  # fmt: skip
    assert ClientTls().applied_to(target) is target


# --- HAProxy ---------------------------------------------------------------------------------------

BACKENDS = [Backend("node1", "127.0.10.11", 5432, "127.0.10.11", 8008, api_tls=True)]


def test_haproxy_verifies_the_agents_and_presents_its_certificate() -> None:
    cfg = render(BACKENDS, RouterPorts(), tls=CheckTls("/etc/haproxy/ca.crt", "/etc/haproxy/pgw.pem"))
    assert "port 8008 check-ssl verify required ca-file /etc/haproxy/ca.crt crt /etc/haproxy/pgw.pem\n" in cfg
    assert "check-ssl verify required ca-file /etc/haproxy/ca.crt\n" in render(
        BACKENDS, RouterPorts(), tls=CheckTls("/etc/haproxy/ca.crt")
    )


def test_haproxy_config_needs_a_ca_and_the_certificate_the_agents_require() -> None:
    target = ClusterTarget("demo", (Address("127.0.0.1", 1),))
    with pytest.raises(typer.Exit):
        check_tls(target, None, None)  # no CA known: it would verify nothing
    assert check_tls(target, "/etc/haproxy/ca.crt", None) == CheckTls("/etc/haproxy/ca.crt")
    insecure = ClusterTarget("demo", (Address("127.0.0.1", 1),), tls_ca="/x/ca.crt", tls_insecure=True)
    assert check_tls(insecure, None, None) == CheckTls(None)
    strict = ClusterTarget("demo", (Address("127.0.0.1", 1),), tls_ca="/x/ca.crt", client_cert_required=True)
    with pytest.raises(typer.Exit):
        check_tls(strict, None, None)
    assert check_tls(strict, None, "/etc/haproxy/pgw.pem") == CheckTls("/x/ca.crt", "/etc/haproxy/pgw.pem")
