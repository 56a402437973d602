"""Data directories on a real cluster: pgwarden empties only what it made or what is this cluster's.

One 3-node cluster serves the module; the tests run in file order. The first keeps a standby's own
directory working in every state pgwarden may find it (made by an older version without a marker,
group-readable, a clone cut short); the second points agents at directories that are not theirs
(another cluster's data, the parent of a real cluster) and checks that nothing in them changes,
byte for byte, whatever the agent or an operator's reinitialize asks, and that the reason is shown.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from pgwarden.cli.main import app
from pgwarden.config.node import load_node_config
from pgwarden.fence.postmaster import postmaster_pid
from pgwarden.local import processes
from pgwarden.local.stack import Stack
from pgwarden.model import DataDir
from pgwarden.postgres import PostgresController, StandbyUpstream, probe
from pgwarden.postgres.origin import check_marker, marker_path
from tests.support.cluster import primary_name, running_stack, wait_for
from tests.support.pg import PgNodes, postgres_available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not postgres_available(), reason="needs root and PostgreSQL 15 binaries"),
]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as s:
        yield s


def _index(name: str) -> int:
    return int(name.removeprefix("node")) - 1


def _status(stack: Stack, name: str) -> dict[str, Any]:
    return stack.statuses().get(name) or {}


def _streaming(stack: Stack, name: str) -> bool:
    return _status(stack, name).get("replication_state") == "streaming"


def _standbys(stack: Stack) -> list[str]:
    primary = wait_for(lambda: primary_name(stack), 60, "a primary")
    return [stack.spec.node_name(i) for i in range(stack.spec.nodes) if stack.spec.node_name(i) != primary]


def _stop_agent(stack: Stack, name: str, data_dir: Path) -> None:
    """SIGTERM: the agent stops its PostgreSQL cleanly and exits."""
    processes.stop(stack.pids[name], timeout=60)
    wait_for(lambda: postmaster_pid(str(data_dir)) is None, 30, f"{name}'s PostgreSQL stopped")


def _log(stack: Stack, name: str) -> str:
    return (stack.spec.dir / "logs" / f"{name}.log").read_text(errors="replace")


def _tree(root: Path) -> dict[str, str]:
    """Every entry below ``root`` with a digest of its bytes (directories as such): what must not change."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        found[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _reinitialize(stack: Stack, name: str) -> httpx.Response:
    creds = stack.describe().get("api_auth")
    auth = (creds["username"], creds["password"]) if creds else None
    url = f"http://{stack.spec.node_host(_index(name))}:{stack.spec.api_port}/reinitialize"
    return httpx.post(url, json={}, auth=auth, timeout=60)


def _cli_reinit(stack: Stack, name: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["reinit", name, "--force", "-c", str(stack.spec.config_path(0))], env={"COLUMNS": "300"}
    )
    return result.exit_code, result.output


def test_initdb_and_clone_mark_their_directory_first_and_a_parent_is_described_with_the_fix() -> None:
    with PgNodes(2, first=1) as nodes:
        n1, n2 = nodes[0], nodes[1]
        pg1, pg2 = PostgresController(n1.settings, n1.name), PostgresController(n2.settings, n2.name)
        pg1.initdb()
        assert json.loads(marker_path(n1.data_dir).read_text())["member"] == "node1"
        assert probe(n1.settings).origin.marked
        pg1.start()
        pg1.create_replication_user()
        seen: list[bool] = []  # while pg_basebackup runs, the marker is already there
        pg2.clone(
            StandbyUpstream(n1.name, n1.host, n1.port),
            None,
            lambda _: seen.append(check_marker(n2.settings).ours),
        )
        assert seen and all(seen)
        assert not (n2.data_dir / "data.pgwarden").exists()  # beside, never copied from the primary
        state = probe(n2.settings)
        assert (state.data_dir, state.origin.marked) == (DataDir.VALID, True)
        # Adoption writes a lost marker again (the executor's AdoptDataDir).
        marker_path(n2.data_dir).unlink()
        assert not probe(n2.settings).origin.marked
        pg2.adopt()
        assert probe(n2.settings).origin.marked
        # The node's directory as data_dir: the real cluster in data/ below it is pointed out.
        parent = dataclasses.replace(n2.settings, data_dir=str(n2.data_dir.parent))
        seen_parent = probe(parent)
        assert (seen_parent.data_dir, seen_parent.origin.marked) == (DataDir.INCOMPLETE, False)
        assert seen_parent.origin.found.startswith("contains 2 entries (data/, data.pgwarden)")
        assert seen_parent.origin.hint.endswith(f"is postgresql.data_dir meant to be {n2.data_dir}?")


def test_pgwardens_own_directory_keeps_working_unmarked_group_readable_or_half_cloned(stack: Stack) -> None:
    name = _standbys(stack)[0]
    i = _index(name)
    data_dir = stack.spec.data_dir(i)
    marker = marker_path(data_dir)
    assert json.loads(marker.read_text())["data_dir"] == str(data_dir)  # the clone wrote it

    # Made by an older pgwarden (no marker): it is this cluster's data, so it is used and adopted.
    _stop_agent(stack, name, data_dir)
    marker.unlink()
    stack.start_agent(i)
    wait_for(lambda: _streaming(stack, name), 90, f"{name} streaming again")
    wait_for(marker.exists, 30, "the marker written by adoption")
    assert "data directory of this cluster adopted" in _log(stack, name)

    # Group-readable (PostgreSQL accepts 0750): pgwarden's own directory gets 0700 back.
    _stop_agent(stack, name, data_dir)
    keep = data_dir / "pgwarden-test-keep"
    keep.write_bytes(os.urandom(4096))
    kept = keep.read_bytes()
    data_dir.chmod(0o750)
    stack.start_agent(i)
    wait_for(lambda: _streaming(stack, name), 90, f"{name} streaming again")
    assert data_dir.stat().st_mode & 0o777 == 0o700
    assert "had mode 0750; set it back to 0700" in _log(stack, name)
    assert keep.read_bytes() == kept

    # A clone cut short (pg_basebackup sends pg_control last): ours, so emptied and cloned again.
    _stop_agent(stack, name, data_dir)
    (data_dir / "global" / "pg_control").unlink()
    stack.start_agent(i)
    wait_for(lambda: _streaming(stack, name), 120, f"{name} streaming after the re-clone")
    assert "removing it and re-cloning from" in _log(stack, name)
    assert not keep.exists()  # it was in pgwarden's directory, which the re-clone emptied
    assert check_marker(load_node_config(stack.spec.config_path(i), env={}).postgresql).ours


def test_a_directory_that_is_not_ours_is_never_emptied_and_reinitialize_is_refused(stack: Stack) -> None:
    first, second = _standbys(stack)

    # Another cluster's data at first's path (removed by hand, initdb run there): refused as
    # foreign, and an operator's reinitialize is refused too. The old marker beside it names the
    # removed directory, although ext4 gives the new one the same inode number.
    i = _index(first)
    data_dir = stack.spec.data_dir(i)
    _stop_agent(stack, first, data_dir)
    shutil.rmtree(data_dir)
    user = str(stack.spec.user_for(i))
    initdb = [f"{stack.spec.bin_dir}/initdb", "-D", str(data_dir), "-U", "postgres"]
    subprocess.run(["runuser", "-u", user, "--", *initdb], check=True, capture_output=True, timeout=120)
    before = _tree(data_dir)
    stack.start_agent(i)
    wait_for(lambda: _status(stack, first).get("reason_code") == "FOREIGN_DATA_DIRECTORY", 60, "the refusal")
    refused = _reinitialize(stack, first)
    assert refused.status_code == 412, refused.text
    error = refused.json()["error"]
    assert f"reinitialize refused: {data_dir} holds the data of PostgreSQL system" in error
    assert (
        f"not created by pgwarden (marker {marker_path(data_dir)} was written for another directory" in error
    )
    code, output = _cli_reinit(stack, first)
    assert code == 1 and "not created by pgwarden" in output, output
    assert _tree(data_dir) == before

    # The parent of a real cluster as data_dir (the real one in main/ below it, a file beside):
    # nothing in it is removed or changed, and the reason, with the likely fix, is in /patroni.
    j = _index(second)
    node_dir, real = stack.spec.node_dir(j), stack.spec.data_dir(j)
    _stop_agent(stack, second, real)
    parent = node_dir / "pg15"
    parent.mkdir(mode=0o700)
    real.rename(parent / "main")
    (parent / "notes.txt").write_bytes(os.urandom(1024))
    owner = pwd.getpwnam(str(stack.spec.user_for(j)))
    os.chown(parent, owner.pw_uid, owner.pw_gid)
    config = stack.spec.config_path(j)
    document = yaml.safe_load(config.read_text())
    document["postgresql"]["data_dir"] = str(parent)
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    before = _tree(parent)
    stack.start_agent(j)
    wait_for(
        lambda: _status(stack, second).get("reason_code") == "DATA_DIRECTORY_NOT_OURS", 60, "the refusal"
    )
    reason = _status(stack, second)["reason"]
    assert f"{parent} contains 2 entries (main/, notes.txt), no PG_VERSION / pg_control" in reason
    assert f"not created by pgwarden (no marker {marker_path(parent)})" in reason
    assert f"is postgresql.data_dir meant to be {parent / 'main'}?" in reason
    refused = _reinitialize(stack, second)
    assert refused.status_code == 412 and "not created by pgwarden" in refused.json()["error"], refused.text
    time.sleep(3)  # a few more cycles of the agent looking at it
    assert _tree(parent) == before

    # The same directory readable by others: the agent refuses to start at all, and says why.
    processes.stop(stack.pids[second], timeout=60)
    parent.chmod(0o755)
    pid = stack.start_agent(j)
    wait_for(lambda: not processes.alive(pid), 60, "the agent to exit")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 2
    assert f"postgresql.data_dir {parent} has mode 0755, not 0700, and pgwarden did not make it" in _log(
        stack, second
    )
    assert _tree(parent) == before
    assert primary_name(stack) is not None
