"""The secure local stack's spec: etcd over TLS with auth in node configs, stack.json and etcd's flags."""

from __future__ import annotations

import json
from pathlib import Path

from pgwarden.client.target import target_from_stack
from pgwarden.config import parse_node_config
from pgwarden.local import etcd_members
from pgwarden.local.pki import Pki
from pgwarden.local.spec import StackSpec


def secure(tmp_path: Path, **changes: object) -> StackSpec:
    return StackSpec(dir=tmp_path / "stack", network="127.0.150", etcd_tls=True, api_tls=True, **changes)  # type: ignore[arg-type]


def test_every_agent_reaches_etcd_over_tls_as_the_clusters_etcd_user(tmp_path: Path) -> None:
    s = secure(tmp_path)
    for i in range(3):
        etcd = parse_node_config(s.node_config(i, None), "n.yml", env={}).etcd
        assert etcd.protocol == "https"
        assert [etcd.url(h) for h in etcd.hosts] == s.etcd_urls()
        assert etcd.cacert == str(s.tls_dir / "ca.crt")
        assert (etcd.cert, etcd.key) == s.tls_files(f"etcd-node{i + 1}")  # each agent its own
        assert (etcd.username, etcd.password) == ("pgwarden", s.etcd_password)


def test_the_etcd_user_may_use_only_this_clusters_keys(tmp_path: Path) -> None:
    assert secure(tmp_path).etcd_prefix == "/pgwarden/local/"
    assert secure(tmp_path, cluster="other").etcd_prefix == "/pgwarden/other/"


def test_stack_json_lists_https_endpoints_the_ca_and_the_clis_etcd_identity(tmp_path: Path) -> None:
    s = secure(tmp_path)
    s.save()
    doc = json.loads((s.dir / "stack.json").read_text())
    assert doc["etcd"] == [
        "https://127.0.150.21:2379",
        "https://127.0.150.22:2379",
        "https://127.0.150.23:2379",
    ]
    cert, key = s.tls_files("etcd-cli")
    assert doc["etcd_client"] == {
        "cacert": str(s.tls_dir / "ca.crt"),
        "cert": cert,
        "key": key,
        "username": "pgwarden",
        "password": s.etcd_password,
    }
    target = target_from_stack(s.dir)  # what `pgwarden list` finds
    assert target.etcd_client is not None
    assert target.etcd_client.protocol == "https"
    assert (target.etcd_client.cert, target.etcd_client.username) == (cert, "pgwarden")
    assert target.member_networks is not None
    assert str(target.member_networks) == "127.0.150.0/24"


def test_an_insecure_stack_has_no_etcd_client_section(tmp_path: Path) -> None:
    s = StackSpec(dir=tmp_path / "stack")
    assert "etcd_client" not in s.document()
    assert "cacert" not in s.node_config(0, None)["etcd"]
    s.save()
    target = target_from_stack(s.dir)
    assert target.etcd_client is not None and target.etcd_client.protocol == "http"


def test_a_stack_json_without_member_networks_derives_them_from_its_nodes(tmp_path: Path) -> None:
    s = StackSpec(dir=tmp_path / "stack", network="127.0.151")
    s.save()
    path = s.dir / "stack.json"
    doc = json.loads(path.read_text())
    del doc["member_networks"]
    path.write_text(json.dumps(doc))
    networks = target_from_stack(s.dir).member_networks
    assert networks is not None and str(networks) == "127.0.151.0/24"


def test_secure_settings_survive_a_save_and_load(tmp_path: Path) -> None:
    s = secure(tmp_path, etcd_auth_token_ttl=5)
    s.save()
    assert StackSpec.load(s.dir) == s


def test_etcd_members_serve_tls_and_require_client_certificates_on_both_ports(tmp_path: Path) -> None:
    s = secure(tmp_path, etcd_auth_token_ttl=5)
    pki = Pki(s.tls_dir)
    command = etcd_members.command(s, 1, pki)
    flags = " ".join(command)
    for url_flag in ("--listen-client-urls", "--advertise-client-urls", "--listen-peer-urls"):
        assert command[command.index(url_flag) + 1].startswith("https://127.0.150.22:")
    assert "etcd1=https://127.0.150.21:2380" in flags
    for flag in (
        "--client-cert-auth",
        "--peer-client-cert-auth",
        "--trusted-ca-file",
        "--peer-trusted-ca-file",
    ):
        assert flag in command
    assert command[command.index("--cert-file") + 1] == str(s.tls_dir / "etcd2.crt")
    assert command[command.index("--auth-token-ttl") + 1] == "5"
    plain = etcd_members.command(StackSpec(dir=tmp_path / "plain"), 0, pki)
    assert "--client-cert-auth" not in plain and all("https" not in part for part in plain)


def test_make_up_is_one_command_and_starts_the_secure_stack(tmp_path: Path) -> None:
    from pgwarden.cli.stack import _spec_for_up

    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text().splitlines()
    start = makefile.index(next(line for line in makefile if line.startswith("up:")))
    recipe = [line.strip() for line in makefile[start + 1 :] if line.startswith("\t")][:1]
    following = makefile[start + 1 : start + 3]
    assert recipe == ["$(BIN)/pgwarden up"] and not following[1].startswith("\t"), following
    spec = _spec_for_up(tmp_path / "stack", None, None, None)  # `pgwarden up` without options
    assert spec.etcd_tls and spec.api_tls


def test_up_says_where_the_web_view_is_and_what_a_browser_needs(tmp_path: Path) -> None:
    from pgwarden.cli.stack import web_view_access, web_view_url

    s = secure(tmp_path)
    assert web_view_url(s) == "https://127.0.150.11:8008/ui"
    access = web_view_access(s)
    assert f"{s.tls_dir}/ca.crt" in access and "openssl pkcs12" in access and f"{s.tls_dir}/cli.key" in access
    assert "client certificate" not in web_view_access(secure(tmp_path, api_verify_client="optional"))
    plain = StackSpec(dir=tmp_path / "plain", network="127.0.150")
    assert web_view_url(plain) == "http://127.0.150.11:8008/ui"
