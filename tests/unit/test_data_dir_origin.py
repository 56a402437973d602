"""Whose data directory: the marker beside it, what the observer describes, the start-up owner and mode
check, and the pure verdict on removal. Real directories in a temporary directory, no PostgreSQL."""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pgwarden.ha.actions import Clone, StopMode, StopPostgres, WipeDataDir
from pgwarden.ha.decision import act
from pgwarden.ha.observation import Request
from pgwarden.ha.reasons import Reason
from pgwarden.ha.rules.datadir import guard_removal, removal_refusal
from pgwarden.model import DataDir, DataDirOrigin, LocalState
from pgwarden.model.node import Address, Credentials, PostgresSettings
from pgwarden.postgres.controldata import classify
from pgwarden.postgres.origin import check_marker, describe, marker_path, origin, write_marker
from pgwarden.postgres.permissions import DataDirRefused, check_at_start
from tests.support.builders import (
    OTHER_SYSTEM_ID,
    SYSTEM_ID,
    incomplete_local,
    observation,
    stopped_local,
    unmarked,
)

NOBODY = pwd.getpwnam("nobody").pw_uid
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="changes file owners")


def settings(data_dir: Path, run_as: str | None = None) -> PostgresSettings:
    return PostgresSettings(
        listen=Address("127.0.0.1", 5432),
        connect_address=Address("127.0.0.1", 5432),
        data_dir=str(data_dir),
        bin_dir="/usr/lib/postgresql/15/bin",
        superuser=Credentials("postgres", "x"),
        replication=Credentials("replicator", "y"),
        run_as=run_as,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    yield path


def make_pgdata(path: Path) -> None:
    """Enough of a PostgreSQL data directory to be recognised by its files."""
    (path / "global").mkdir(parents=True)
    (path / "PG_VERSION").write_text("15\n")
    (path / "global" / "pg_control").write_bytes(b"\0" * 8192)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` with its bytes: what must survive a refusal unchanged."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- the marker -----------------------------------------------------------------------------------


def test_the_marker_beside_the_directory_names_it(data_dir: Path) -> None:
    s = settings(data_dir)
    assert check_marker(s).ours is False
    assert check_marker(s).note == f"no marker {data_dir}.pgwarden"
    written = write_marker(s, "node2")
    assert written == marker_path(data_dir) == data_dir.with_name("data.pgwarden")
    document = json.loads(written.read_text())
    assert (document["written_by"], document["data_dir"], document["member"]) == (
        "pgwarden",
        str(data_dir),
        "node2",
    )
    assert oct(written.stat().st_mode & 0o777) == oct(0o644)
    assert list(data_dir.iterdir()) == []  # nothing inside: pg_basebackup wants it empty
    assert check_marker(s).ours is True


def test_a_directory_made_again_at_the_same_path_is_not_covered_by_the_old_marker(data_dir: Path) -> None:
    s = settings(data_dir)
    write_marker(s, "node2")
    data_dir.rmdir()
    data_dir.mkdir()  # ext4 hands out the same inode number at once; the generation differs
    (data_dir / "precious.txt").write_text("not pgwarden's")
    check = check_marker(s)
    assert check.ours is False
    assert "written for another directory" in check.note


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[]", b'{"data_dir": 1}', b"[" * 4000, b"{" + b" " * 5000 + b"}"],
    ids=["empty", "text", "list", "wrong fields", "deep", "too long"],
)
def test_a_marker_that_is_not_pgwardens_does_not_count(data_dir: Path, content: bytes) -> None:
    marker_path(data_dir).write_bytes(content)
    check = check_marker(settings(data_dir))
    assert check.ours is False and "not pgwarden's" in check.note


def test_a_marker_written_for_another_path_does_not_count(tmp_path: Path, data_dir: Path) -> None:
    write_marker(settings(data_dir), "node2")
    other = tmp_path / "other"
    data_dir.rename(other)
    marker_path(data_dir).rename(marker_path(other))
    assert check_marker(settings(other)).ours is False


# --- what the observer describes ------------------------------------------------------------------


def test_the_parent_of_a_real_cluster_is_described_with_the_likely_fix(tmp_path: Path) -> None:
    parent = tmp_path / "15"
    make_pgdata(parent / "main")
    found, hint = describe(parent)
    assert found == "contains 1 entry (main/), no PG_VERSION / pg_control"
    assert (
        hint
        == f"main/ holds a PostgreSQL data directory: is postgresql.data_dir meant to be {parent / 'main'}?"
    )


def test_a_description_shows_a_few_names_and_counts_the_rest(data_dir: Path) -> None:
    for name in ("b", "a", "c", "d", "e", "f", "g"):
        (data_dir / name).write_text(name)
    (data_dir / "PG_VERSION").write_text("15\n")
    found, hint = describe(data_dir, "no global/pg_control")
    assert found == "contains 8 entries (PG_VERSION, a, b, c, d, ...), PG_VERSION but no global/pg_control"
    assert hint == ""


def test_odd_paths_are_described_not_raised(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert describe(tmp_path / "file") == ("is not a directory", "")
    assert describe(tmp_path / "dangling") == ("is a dangling symbolic link", "")
    state = classify(settings(tmp_path / "file"))
    assert state.kind is DataDir.INCOMPLETE  # never MISSING: a clone must not go there


def test_origin_describes_only_a_directory_that_is_not_usable(data_dir: Path) -> None:
    (data_dir / "notes.txt").write_text("mine")
    s = settings(data_dir)
    incomplete = origin(s, DataDir.INCOMPLETE, "no global/pg_control")
    assert incomplete == DataDirOrigin(
        path=str(data_dir),
        marked=False,
        marker=f"no marker {data_dir}.pgwarden",
        found="contains 1 entry (notes.txt), no PG_VERSION / pg_control",
    )
    write_marker(s, "node2")
    valid = origin(s, DataDir.VALID)
    assert (valid.marked, valid.found) == (True, "")


# --- the pure verdict -------------------------------------------------------------------------------


def test_the_refusal_names_the_path_what_is_there_and_the_fix() -> None:
    local = unmarked(
        incomplete_local(), found="contains 1 entry (main/)", hint="main/ holds ...: is it /x/main?"
    )
    why = removal_refusal(local, SYSTEM_ID)
    assert why == (
        "/var/lib/postgresql/15/main contains 1 entry (main/); not created by pgwarden "
        "(no marker /var/lib/postgresql/15/main.pgwarden); main/ holds ...: is it /x/main?"
    )


@pytest.mark.parametrize(
    ("local", "cluster_id", "allowed"),
    [
        (LocalState(data_dir=DataDir.MISSING), SYSTEM_ID, True),
        (incomplete_local(), SYSTEM_ID, True),
        (unmarked(incomplete_local()), SYSTEM_ID, False),
        (unmarked(stopped_local()), SYSTEM_ID, True),
        (unmarked(stopped_local()), None, False),
        (unmarked(stopped_local(system_id=OTHER_SYSTEM_ID)), SYSTEM_ID, False),
        (stopped_local(system_id=OTHER_SYSTEM_ID), SYSTEM_ID, True),
    ],
    ids=[
        "empty",
        "pgwardens_interrupted_clone",
        "files_of_unknown_origin",
        "this_clusters_data_without_marker",
        "valid_data_while_the_cluster_id_is_unknown",
        "another_systems_data",
        "pgwardens_directory_of_an_earlier_cluster",
    ],
)
def test_what_may_be_emptied(local: LocalState, cluster_id: str | None, allowed: bool) -> None:
    assert (removal_refusal(local, cluster_id) is None) is allowed


def test_the_guard_turns_any_removal_that_is_not_ours_into_a_refusal_that_does_nothing() -> None:
    obs = observation(local=unmarked(incomplete_local(), found="contains 1 entry (x)"))
    asked = act(
        Reason.REINITIALIZING, StopPostgres(StopMode.IMMEDIATE), WipeDataDir(), Clone("node1"), source="x"
    )
    asked = replace(asked, answers={Request.REINITIALIZE: None})
    guarded = guard_removal(obs, asked)
    assert (guarded.reason, guarded.actions) == (Reason.DATA_DIRECTORY_NOT_OURS, ())
    assert "contains 1 entry (x)" in str(guarded.answers[Request.REINITIALIZE])
    ours = observation(local=incomplete_local())
    assert guard_removal(ours, asked) is asked


# --- owner and mode at start ------------------------------------------------------------------------


def test_a_missing_or_empty_directory_passes_whatever_its_mode(tmp_path: Path, data_dir: Path) -> None:
    assert check_at_start(settings(tmp_path / "absent")) == []
    data_dir.chmod(0o755)
    assert check_at_start(settings(data_dir)) == []


def test_pgwardens_directory_gets_mode_0700_back_and_keeps_every_byte(data_dir: Path) -> None:
    make_pgdata(data_dir)
    (data_dir / "base.dat").write_bytes(os.urandom(4096))
    write_marker(settings(data_dir), "node2")
    data_dir.chmod(0o750)
    before = snapshot(data_dir)
    fixed = check_at_start(settings(data_dir))
    assert fixed == [f"data directory {data_dir} had mode 0750; set it back to 0700 (pgwarden made it)"]
    assert data_dir.stat().st_mode & 0o777 == 0o700
    assert snapshot(data_dir) == before


@pytest.mark.parametrize("pgdata", [False, True], ids=["other_files", "postgresql_data"])
def test_a_directory_pgwarden_did_not_make_with_a_wrong_mode_is_refused_untouched(
    data_dir: Path, pgdata: bool
) -> None:
    (data_dir / "precious.txt").write_text("keep me")
    if pgdata:
        make_pgdata(data_dir)
    data_dir.chmod(0o755)
    before = snapshot(data_dir)
    with pytest.raises(DataDirRefused) as refused:
        check_at_start(settings(data_dir))
    message = str(refused.value)
    assert str(data_dir) in message and "mode 0755" in message and "did not make it" in message
    assert f"chmod 700 {data_dir}" in message
    assert data_dir.stat().st_mode & 0o777 == 0o755
    assert snapshot(data_dir) == before


@as_root
def test_a_directory_of_another_owner_is_refused_even_when_pgwarden_made_it(data_dir: Path) -> None:
    (data_dir / "precious.txt").write_text("keep me")
    write_marker(settings(data_dir), "node2")
    os.chown(data_dir, NOBODY, -1)
    with pytest.raises(DataDirRefused) as refused:
        check_at_start(settings(data_dir))
    assert "owned by nobody, not by root" in str(refused.value)
    assert f"chown -R root: {data_dir}" in str(refused.value)
    # With run_as, the owner must be that user.
    assert check_at_start(settings(data_dir, run_as="nobody")) == []


def test_a_file_instead_of_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("x")
    with pytest.raises(DataDirRefused, match="is not a directory"):
        check_at_start(settings(tmp_path / "data"))
