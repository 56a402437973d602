"""postgresql.data_dir at config load: its form, and overlaps with the other paths a node uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pgwarden.config import ConfigError, load_node_config, parse_node_config
from pgwarden.config.paths import data_dir_findings
from pgwarden.local.siblings import data_dirs_beside
from tests.unit.test_config import minimal


def refusal(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_node_config(data, "node.yml", env={})
    assert caught.value.path == "postgresql.data_dir", str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize(
    ("data_dir", "words"),
    [
        ("/", ["cannot be /", "Fix: point postgresql.data_dir at the PostgreSQL data directory itself"]),
        ("///", ["cannot be /"]),
        ("data", ["absolute path", "starting with /"]),
        ("../var/lib/pg", ["absolute path"]),
        ("/var/lib/postgresql/15/../14/main", ["'..'", "e.g. '/var/lib/postgresql/14/main'"]),
        ("/var/lib/postgresql/./15/main", ["'.'", "e.g. '/var/lib/postgresql/15/main'"]),
        ("/var//lib/postgresql/15/main", ["'//'", "e.g. '/var/lib/postgresql/15/main'"]),
        ("/var/lib/postgresql", ["system directory"]),
        ("/etc", ["system directory"]),
        ("/home/", ["system directory"]),
    ],
)
def test_data_dir_forms_that_are_refused(data_dir: str, words: list[str]) -> None:
    message = refusal(minimal(postgresql__data_dir=data_dir))
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("data_dir", ["/var/lib/postgresql/15/main", "/pgdata", "/srv/pg/15/main/"])
def test_ordinary_data_dirs_pass(data_dir: str) -> None:
    cfg = parse_node_config(minimal(postgresql__data_dir=data_dir), "node.yml", env={})
    assert cfg.postgresql.data_dir == data_dir.rstrip("/")


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"postgresql__data_dir": "/usr/lib/postgresql/15/bin/data"}, ["bin_dir", "overlap"]),
        ({"postgresql__data_dir": "/usr/lib/postgresql/15"}, ["bin_dir", "overlap"]),
        (
            {"postgresql__data_dir": "/srv/pg", "postgresql__socket_dir": "/srv/pg/run"},
            ["socket_dir /srv/pg/run is inside the data directory /srv/pg", "leave socket_dir out"],
        ),
        (
            {"postgresql__data_dir": "/srv/pg", "api__tls": {"certfile": "/srv/pg/api.crt"}},
            ["api.tls.certfile /srv/pg/api.crt is inside the data directory /srv/pg"],
        ),
    ],
)
def test_data_dir_overlapping_another_path_of_the_node_is_refused(
    changes: dict[str, Any], words: list[str]
) -> None:
    message = refusal(minimal(**changes))
    for word in words:
        assert word in message, message


def test_the_sockets_may_stay_in_the_data_directory_itself() -> None:
    cfg = parse_node_config(
        minimal(postgresql__data_dir="/srv/pg", postgresql__socket_dir="/srv/pg"), "node.yml", env={}
    )
    assert cfg.postgresql.socket_dir == "/srv/pg"


def test_a_config_file_inside_the_data_directory_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = data_dir / "node.yml"
    path.write_text(yaml.safe_dump(minimal(postgresql__data_dir=str(data_dir))))
    with pytest.raises(ConfigError) as caught:
        load_node_config(path, env={})
    assert f"this config file {path} is inside the data directory {data_dir}" in str(caught.value)
    # Beside the data directory is where it belongs.
    beside = tmp_path / "node.yml"
    path.rename(beside)
    assert load_node_config(beside, env={}).postgresql.data_dir == str(data_dir)


@pytest.mark.parametrize(
    ("mine", "theirs", "words"),
    [
        ("/s/node1", "/s/node1/data", "contains the data directory of node node1"),
        ("/s/node1/data", "/s/node1/data", "node node1 uses the same data directory"),
    ],
)
def test_a_data_dir_nesting_with_another_nodes_is_refused(mine: str, theirs: str, words: str) -> None:
    findings = data_dir_findings(
        mine, bin_dir="/usr/lib/postgresql/15/bin", other_data_dirs={"node1": theirs}
    )
    assert [f.loc for f in findings] == [("postgresql", "data_dir")]
    assert words in findings[0].problem
    assert data_dir_findings("/s/node2/data", bin_dir="/usr/bin/pg", other_data_dirs={"node1": theirs}) == []


def test_the_other_nodes_of_a_local_stack_are_read_from_their_configs(tmp_path: Path) -> None:
    """node2.yml was edited to point at node1's directory: its agent refuses to load it."""
    nodes = []
    for name, data_dir in (("node1", tmp_path / "node1" / "data"), ("node2", tmp_path / "node1")):
        config = tmp_path / f"{name}.yml"
        config.write_text(yaml.safe_dump(minimal(name=name, postgresql__data_dir=str(data_dir))))
        generated = str(tmp_path / name / "data")
        nodes.append({"name": name, "config": str(config), "data_dir": generated})
    (tmp_path / "stack.json").write_text(json.dumps({"cluster": "local", "nodes": nodes}))
    node2 = tmp_path / "node2.yml"
    assert data_dirs_beside(node2) == {"node1": str(tmp_path / "node1" / "data")}
    with pytest.raises(ConfigError) as caught:
        load_node_config(node2, env={}, other_data_dirs=data_dirs_beside(node2))
    assert f"contains the data directory of node node1 ({tmp_path / 'node1' / 'data'})" in str(caught.value)
    assert load_node_config(
        tmp_path / "node1.yml", env={}, other_data_dirs=data_dirs_beside(tmp_path / "node1.yml")
    )


def test_outside_a_stack_there_are_no_other_nodes(tmp_path: Path) -> None:
    assert data_dirs_beside(tmp_path / "node.yml") == {}
    (tmp_path / "stack.json").write_text("not json")
    assert data_dirs_beside(tmp_path / "node.yml") == {}
