"""The local stack's spec: node configs that load, stack.json as INTERFACE.md shows it, saving and loading."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import psycopg.conninfo
import pytest

from pgwarden.config import parse_node_config
from pgwarden.local.spec import SPEC_FILE, STACK_FILE, SpecError, StackSpec
from pgwarden.router.haproxy import RouterPorts


def spec(tmp_path: Path, **changes: object) -> StackSpec:
    return StackSpec(dir=tmp_path / "stack", **changes)  # type: ignore[arg-type]


def test_every_node_config_loads_with_api_auth_and_its_own_addresses(tmp_path: Path) -> None:
    s = spec(tmp_path, nodes=3, network="127.0.150", run_as=("u1", None))
    for i in range(3):
        node = parse_node_config(s.node_config(i, s.user_for(i)), f"node{i + 1}.yml", env={})
        assert node.name == f"node{i + 1}"
        assert str(node.api.listen) == f"127.0.150.{11 + i}:8008"
        assert str(node.postgresql.listen) == f"127.0.150.{11 + i}:5432"
        assert (node.api.username, node.api.password) == ("pgwarden", s.api_password)
        assert node.etcd.bind_address == f"127.0.150.{11 + i}"
        assert [str(h) for h in node.etcd.hosts] == [
            "127.0.150.21:2379",
            "127.0.150.22:2379",
            "127.0.150.23:2379",
        ]
    assert parse_node_config(s.node_config(0, "u1"), "n", env={}).postgresql.run_as == "u1"


def test_api_auth_can_be_left_out(tmp_path: Path) -> None:
    s = spec(tmp_path, api_password=None)
    assert "auth" not in s.node_config(0, None)["api"]
    assert "api_auth" not in s.document()


def test_stack_document_has_the_interface_layout_plus_api_auth(tmp_path: Path) -> None:
    s = spec(tmp_path, nodes=2)
    doc = s.document()
    assert list(doc) == ["cluster", "nodes", "etcd", "member_networks", "haproxy", "superuser", "api_auth"]
    assert doc["nodes"][1] == {
        "name": "node2",
        "host": "127.0.0.12",
        "port": 5432,
        "api_url": "http://127.0.0.12:8008",
        "data_dir": str(s.dir / "node2" / "data"),
        "config": str(s.dir / "node2.yml"),
    }
    assert doc["etcd"] == ["http://127.0.0.21:2379", "http://127.0.0.22:2379", "http://127.0.0.23:2379"]
    assert doc["member_networks"] == ["127.0.0.0/24"]
    assert doc["haproxy"] == {
        "primary": "127.0.0.1:5000",
        "replicas": "127.0.0.1:5001",
        "stats": "http://127.0.0.1:7000/",
    }
    assert doc["superuser"] == {"username": "postgres", "password": s.superuser_password}
    assert doc["api_auth"] == {"username": "pgwarden", "password": s.api_password}


def test_passwords_differ_between_stacks_and_between_roles(tmp_path: Path) -> None:
    a, b = spec(tmp_path), spec(tmp_path)
    assert a.superuser_password != b.superuser_password
    assert len({a.superuser_password, a.replication_password, a.api_password}) == 3


def test_saved_spec_loads_back_equal_and_both_files_are_private(tmp_path: Path) -> None:
    s = spec(
        tmp_path,
        nodes=2,
        network="127.0.160",
        router=RouterPorts(bind_host="127.0.160.1"),
        run_as=("u1", "u2"),
        dcs={"ttl": 6},
    )
    s.save()
    assert StackSpec.load(s.dir) == s
    for name in (SPEC_FILE, STACK_FILE):
        assert stat.S_IMODE((s.dir / name).stat().st_mode) == 0o600
    assert json.loads((s.dir / STACK_FILE).read_text()) == s.document()


def test_saving_again_keeps_the_files_private(tmp_path: Path) -> None:
    s = spec(tmp_path)
    s.save()
    (s.dir / STACK_FILE).chmod(0o644)
    s.save()
    assert stat.S_IMODE((s.dir / STACK_FILE).stat().st_mode) == 0o600


def test_load_finds_nothing_in_an_empty_directory(tmp_path: Path) -> None:
    assert StackSpec.load(tmp_path) is None


def test_a_stack_json_alone_gives_its_node_count(tmp_path: Path) -> None:
    (tmp_path / STACK_FILE).write_text(json.dumps(spec(tmp_path, nodes=5).document()))
    loaded = StackSpec.load(tmp_path)
    assert loaded is not None and loaded.nodes == 5


def test_an_unreadable_spec_is_an_error_that_names_the_file(tmp_path: Path) -> None:
    (tmp_path / SPEC_FILE).write_text("{not json")
    with pytest.raises(SpecError, match=SPEC_FILE):
        StackSpec.load(tmp_path)


def test_connection_strings_parse_and_target_the_write_port_and_every_node(tmp_path: Path) -> None:
    s = spec(tmp_path, nodes=3, superuser_password="p@ss/word")
    urls = s.connection_strings()
    writes = psycopg.conninfo.conninfo_to_dict(urls["writes"])
    assert (writes["host"], writes["port"], writes["password"]) == ("127.0.0.1", "5000", "p@ss/word")
    assert psycopg.conninfo.conninfo_to_dict(urls["reads"])["port"] == "5001"
    multi = psycopg.conninfo.conninfo_to_dict(urls["multi-host"])
    assert multi["host"] == "127.0.0.11,127.0.0.12,127.0.0.13"
    assert multi["target_session_attrs"] == "read-write"


def test_listen_addresses_cover_every_server(tmp_path: Path) -> None:
    addresses = spec(tmp_path, nodes=2).listen_addresses()
    assert len(addresses) == 3 * 2 + 2 * 2 + 3
    assert ("127.0.0.12", 8008) in addresses and ("127.0.0.1", 7000) in addresses
