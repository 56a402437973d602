"""The PostgreSQL controller against real PostgreSQL 15: bootstrap, clone, failover, rewind, probes."""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgwarden.fence.postmaster import postmaster_pid
from pgwarden.model.local import ControlState, DataDir, LocalState
from pgwarden.postgres import (
    DataDirState,
    PostgresController,
    PostgresError,
    StandbyUpstream,
    classify,
    probe,
    slot_name,
)
from pgwarden.postgres.controller import SQL_TIMEOUT
from pgwarden.postgres.sql import local_session
from tests.support.pg import PgNode, PgNodes, postgres_available, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not postgres_available(), reason="needs root and PostgreSQL 15 binaries"),
]


@pytest.fixture
def two_nodes() -> Iterator[PgNodes]:
    with PgNodes(2, first=1) as nodes:
        yield nodes


@pytest.fixture
def primary() -> Iterator[tuple[PgNode, PostgresController]]:
    """One initialised, running primary (node3, OS user pgwtest3)."""
    with PgNodes(1, first=3) as nodes:
        node = nodes[0]
        pg = PostgresController(node.settings, node.name)
        pg.initdb()
        pg.start()
        yield node, pg


def upstream(node: PgNode) -> StandbyUpstream:
    return StandbyUpstream(node.name, node.host, node.port)


def owner(path: Path) -> str:
    return pwd.getpwuid(path.stat().st_uid).pw_name


def execute_sql(pg: PostgresController, query: str, timeout: float = SQL_TIMEOUT) -> list[tuple[object, ...]]:
    """One statement as the superuser over a session of its own (the controller keeps one for its
    probes); the rows when it returns any."""
    with local_session(pg.settings, timeout) as conn:
        cursor = conn.execute(query)
        return cursor.fetchall() if cursor.description else []


def rows(pg: PostgresController, query: str) -> list[tuple[object, ...]]:
    return execute_sql(pg, query)


def restart(pg: PostgresController) -> None:
    pg.stop("fast")
    pg.start()


def test_bootstrap_clone_failover_and_rewind(two_nodes: PgNodes) -> None:
    n1, n2 = two_nodes[0], two_nodes[1]
    pg1 = PostgresController(n1.settings, n1.name)
    pg2 = PostgresController(n2.settings, n2.name)

    # Bootstrap: a primary with data checksums, files owned by its OS user.
    pg1.initdb()
    stopped = probe(n1.settings)
    assert (stopped.data_dir, stopped.running, stopped.control_state) == (
        DataDir.VALID, False, ControlState.SHUT_DOWN,
    )  # fmt: skip
    pg1.start()
    pg1.start()  # already running: fine
    state = pg1.probe()
    assert state.is_primary and state.timeline == 1 and state.write_lsn is not None
    assert state.system_id == stopped.system_id
    assert rows(pg1, "SHOW data_checksums") == [("on",)]
    assert owner(n1.data_dir / "pgwarden.conf") == n1.user
    assert (n1.data_dir / "pgwarden.conf").stat().st_mode & 0o777 == 0o600
    pg1.create_replication_user()
    pg1.create_replication_user()  # idempotent

    # Clone a standby (another OS user) through its slot; it follows the primary.
    progress: list[str] = []
    pg2.clone(upstream(n1), slot_name(n2.name), progress.append)
    assert any("kB" in line for line in progress)
    assert owner(n2.data_dir) == n2.user and owner(n2.data_dir / "PG_VERSION") == n2.user
    pg2.start()
    execute_sql(pg1, "CREATE TABLE t (id int PRIMARY KEY, v text)")
    execute_sql(pg1, "INSERT INTO t VALUES (1, 'one')")
    wait_until(lambda: rows(pg2, "SELECT v FROM t WHERE id = 1") == [("one",)])
    wait_until(lambda: pg2.probe().streaming_from == f"{n1.host}:{n1.port}")
    standby = pg2.probe()
    assert standby.is_standby and standby.timeline == 1
    assert standby.configured_upstream == n1.name
    assert standby.received_lsn is not None and standby.replayed_lsn is not None
    slots = pg1.list_slots()
    assert slots[slot_name(n2.name)].active
    assert slots[slot_name(n2.name)].restart_lsn is not None
    assert (slots[slot_name(n2.name)].wal_retained_bytes or 0) >= 0

    # Failover: the standby is promoted and shows timeline 2 at once.
    pg2.promote()
    promoted = pg2.probe()
    assert promoted.is_primary and promoted.timeline == 2
    assert promoted.control_timeline == 2  # checkpointed: pg_rewind elsewhere reads it
    assert promoted.configured_upstream is None
    assert not (n2.data_dir / "standby.signal").exists()
    assert pg2.current_timeline() == 2
    history = pg2.timeline_history(2)
    assert [tli for tli, _, _ in history] == [1]
    execute_sql(pg2, "INSERT INTO t VALUES (2, 'after failover')")

    # The old primary diverged (a write nobody received) and crashed.
    execute_sql(pg1, "INSERT INTO t VALUES (3, 'lost')")
    pg1.stop("immediate")
    pg1.stop("immediate")  # already stopped: fine
    assert not pg1.probe().running

    # Rejoin: rewind onto the new primary, follow it, see its writes and not the lost one.
    pg2.create_slot(slot_name(n1.name))
    pg1.rewind(upstream(n2))
    rewound = pg1.probe()
    assert rewound.data_dir is DataDir.VALID and rewound.configured_upstream is None
    assert (n1.data_dir / "standby.signal").exists()  # never comes back as a writer
    assert "127.0.2.11" in (n1.data_dir / "pgwarden.conf").read_text()  # ours, not the source's
    pg1.configure_standby(upstream(n2), slot_name(n1.name))
    pg1.start()
    execute_sql(pg2, "INSERT INTO t VALUES (4, 'four')")
    wait_until(lambda: rows(pg1, "SELECT id FROM t ORDER BY id") == [(1,), (2,), (4,)])
    rejoined = pg1.probe()
    assert rejoined.is_standby and rejoined.timeline == 2
    assert rejoined.configured_upstream == n2.name
    wait_until(lambda: pg2.list_slots()[slot_name(n1.name)].active)


def test_probe_of_a_stopped_instance_is_quick_and_ignores_a_stale_pid_file(
    primary: tuple[PgNode, PostgresController],
) -> None:
    node, pg = primary
    pg.stop("fast")
    # A crash leaves postmaster.pid behind; its PID may belong to anyone by now (here: us).
    (node.data_dir / "postmaster.pid").write_text(f"{os.getpid()}\n{node.data_dir}\n")
    started = time.monotonic()
    state = probe(node.settings, timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert not state.running and not state.probe_ok
    assert state.data_dir is DataDir.VALID and state.control_state is ControlState.SHUT_DOWN
    pg.start()  # PostgreSQL itself also sees through the stale file
    assert pg.probe().is_primary


def test_probe_through_a_wrong_socket_returns_quickly(primary: tuple[PgNode, PostgresController]) -> None:
    node, _ = primary
    wrong = dataclasses.replace(node.settings, socket_dir=str(node.socket_dir) + "-missing")
    started = time.monotonic()
    state = probe(wrong, timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert state.running and not state.probe_ok


def test_probe_of_a_frozen_postmaster_times_out(primary: tuple[PgNode, PostgresController]) -> None:
    node, pg = primary
    pid = postmaster_pid(str(node.data_dir))
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        state = probe(node.settings, timeout=1.0)
        elapsed = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert state.running and not state.probe_ok
    assert elapsed < 4.0  # the connection attempt is bounded (libpq's minimum is 2 s)
    assert pg.probe().is_primary


def test_a_query_on_a_frozen_backend_is_cut_by_the_client(
    primary: tuple[PgNode, PostgresController],
) -> None:
    node, _ = primary
    backend = None
    started = 0.0
    with (
        pytest.raises(PostgresError, match="did not answer"),
        local_session(node.settings, timeout=1.0) as conn,
    ):
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        backend = int(str(row[0]))
        os.kill(backend, signal.SIGSTOP)  # statement_timeout cannot fire in a stopped process
        started = time.monotonic()
        conn.execute("SELECT 1")
    assert time.monotonic() - started < 2.0
    assert backend is not None
    os.kill(backend, signal.SIGCONT)


def test_a_slow_statement_hits_statement_timeout(primary: tuple[PgNode, PostgresController]) -> None:
    _, pg = primary
    started = time.monotonic()
    with pytest.raises(PostgresError):
        execute_sql(pg, "SELECT pg_sleep(10)", timeout=1.0)
    assert time.monotonic() - started < 3.0


def test_an_existing_cluster_is_never_overwritten(
    primary: tuple[PgNode, PostgresController], two_nodes: PgNodes
) -> None:
    node, pg = primary
    system_id = pg.probe().system_id
    other = two_nodes[0]
    intruder = PostgresController(node.settings, "intruder")
    with pytest.raises(PostgresError, match="refusing to initdb"):
        intruder.initdb()
    with pytest.raises(PostgresError, match="refusing to wipe"):
        pg.wipe()  # a running instance's files are never removed
    pg.stop("fast")
    with pytest.raises(PostgresError, match="refusing to clone"):
        intruder.clone(upstream(other), None, lambda line: None)
    pg.start()
    assert pg.probe().system_id == system_id
    pg.promote()  # already a primary: promotion is idempotent
    assert pg.probe().is_primary


def test_a_failed_clone_leaves_the_data_dir_missing(two_nodes: PgNodes) -> None:
    node = two_nodes[1]
    pg = PostgresController(node.settings, node.name)
    nobody = StandbyUpstream("nobody", "127.0.2.99", two_nodes[0].port)
    with pytest.raises(PostgresError, match="pg_basebackup failed"):
        pg.clone(nobody, None, lambda line: None, timeout=30)
    assert probe(node.settings).data_dir is DataDir.MISSING
    assert node.data_dir.is_dir() and owner(node.data_dir) == node.user


def test_parameters_reload_or_require_restart(primary: tuple[PgNode, PostgresController]) -> None:
    _, pg = primary
    change = pg.update_parameters({"work_mem": "8MB"})
    assert change.changed == {"work_mem"} and not change.restart_required
    wait_until(lambda: rows(pg, "SHOW work_mem") == [("8MB",)])
    assert not pg.update_parameters({"work_mem": "8MB"}).changed
    change = pg.update_parameters({"work_mem": "8MB", "max_wal_senders": 12})
    assert change.restart_required == {"max_wal_senders"}
    wait_until(lambda: pg.probe().pending_restart)
    pg.set_synchronous_standby_names('ANY 1 ("node9")')
    wait_until(lambda: rows(pg, "SHOW synchronous_standby_names") == [('ANY 1 ("node9")',)])
    restart(pg)
    state = pg.probe()
    assert state.is_primary and not state.pending_restart
    assert rows(pg, "SHOW max_wal_senders") == [("12",)]
    # A new controller (an agent restart) keeps what the file says.
    again = PostgresController(pg.settings, pg.name)
    assert not again.update_parameters({"work_mem": "8MB", "max_wal_senders": 12}).changed


def test_slots_are_created_and_dropped_idempotently(primary: tuple[PgNode, PostgresController]) -> None:
    _, pg = primary
    assert pg.create_slot("node7")
    assert not pg.create_slot("node7")
    slot = pg.list_slots()["node7"]
    assert not slot.active and slot.restart_lsn is not None
    assert pg.drop_slot("node7")
    assert not pg.drop_slot("node7")
    assert "node7" not in pg.list_slots()


def test_an_idle_slot_is_advanced_only_forward(primary: tuple[PgNode, PostgresController]) -> None:
    _, pg = primary
    assert pg.create_slot("node8")
    held = pg.list_slots()["node8"].restart_lsn
    assert held is not None
    execute_sql(pg, "SELECT pg_switch_wal()")
    execute_sql(pg, "CREATE TABLE IF NOT EXISTS advance_me AS SELECT generate_series(1, 1000) AS g")
    now = pg.probe().write_lsn
    assert now is not None and now > held
    assert pg.advance_slot("node8", now)
    assert pg.list_slots()["node8"].restart_lsn == now
    assert not pg.advance_slot("node8", held)  # never backwards
    assert pg.list_slots()["node8"].restart_lsn == now
    assert pg.drop_slot("node8")


def test_data_dir_classification(two_nodes: PgNodes) -> None:
    settings = two_nodes[0].settings
    data = two_nodes[0].data_dir
    assert classify(settings).kind is DataDir.MISSING  # empty
    (data / "lost+found").mkdir()
    assert classify(settings).kind is DataDir.MISSING  # a bare mount point
    (data / "base").mkdir()
    assert classify(settings).kind is DataDir.INCOMPLETE  # files, no pg_control
    (data / "global").mkdir()
    (data / "global" / "pg_control").write_bytes(b"\0" * 8192)
    (data / "backup_label").write_text("START WAL LOCATION: 0/2000028\n")
    assert classify(settings).kind is DataDir.INCOMPLETE  # an interrupted clone
    (data / "PG_VERSION").write_text("15\n")
    state = classify(settings)
    assert state.kind is DataDir.INCOMPLETE and "pg_controldata" in state.reason  # bad CRC
    shutil.rmtree(data)
    assert classify(settings).kind is DataDir.MISSING  # absent


def _process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _probe_backends(pg: PostgresController) -> list[int]:
    """The backends of the controller's kept session (execute_sql's own one-shot one left out)."""
    found = rows(
        pg,
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgwarden' AND pid <> pg_backend_pid()",
    )
    return [int(str(pid)) for (pid,) in found]


def test_the_probe_reads_pg_control_as_pg_controldata_does(two_nodes: PgNodes) -> None:
    n1, n2 = two_nodes
    pg1 = PostgresController(n1.settings, n1.name)
    pg2 = PostgresController(n2.settings, n2.name)
    pg1.initdb()
    pg1.start()
    pg1.create_replication_user()
    pg2.clone(upstream(n1), None, lambda line: None)
    pg2.configure_standby(upstream(n1), None)
    pg2.start()
    wait_until(lambda: pg2.probe().streaming_from is not None)
    pg1.checkpoint()
    for pg, state in ((pg1, ControlState.IN_PRODUCTION), (pg2, ControlState.IN_ARCHIVE_RECOVERY)):
        # A restartpoint on the standby may move pg_control between two reads: read until stable.
        wait_until(lambda pg=pg: _control_fields(pg.probe()) == _control_fields(classify(pg.settings)))
        seen = pg.probe()
        assert seen.probe_ok and seen.control_state is state and seen.data_dir is DataDir.VALID


def _control_fields(found: LocalState | DataDirState) -> tuple[object, ...]:
    if isinstance(found, DataDirState):
        c = found.control
        assert c is not None
        return c.system_id, c.timeline, c.checkpoint_lsn, c.state
    return found.system_id, found.control_timeline, found.control_lsn, found.control_state


def test_the_probe_keeps_one_session_across_cycles_a_restart_and_a_terminated_backend(
    primary: tuple[PgNode, PostgresController],
) -> None:
    _, pg = primary
    assert pg.probe().is_primary
    kept = _probe_backends(pg)
    assert len(kept) == 1
    for _ in range(5):
        assert pg.probe().is_primary
        pg.list_slots()  # the slots' queries share it
    assert _probe_backends(pg) == kept
    restart(pg)  # the kept connection is gone with the old postmaster: not one probe fails
    assert pg.probe().is_primary
    renewed = _probe_backends(pg)
    assert len(renewed) == 1 and renewed != kept
    rows(pg, f"SELECT pg_terminate_backend({renewed[0]})")
    assert pg.probe().is_primary  # reconnects at once
    assert _probe_backends(pg) not in ([], renewed)


def test_a_kept_session_sees_its_postmaster_frozen(primary: tuple[PgNode, PostgresController]) -> None:
    node, pg = primary
    assert pg.probe().is_primary  # the session exists; its backend keeps answering when frozen
    pid = postmaster_pid(str(node.data_dir))
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: _process_state(pid) == "T")  # the signal is taken when next scheduled
        started = time.monotonic()
        state = pg.probe(timeout=1.0)
        elapsed = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert state.running and not state.probe_ok
    assert state.data_dir is DataDir.VALID and state.control_state is ControlState.IN_PRODUCTION
    assert elapsed < 4.0
    assert pg.probe().is_primary


def test_a_kept_session_whose_backend_freezes_is_cut_and_replaced(
    primary: tuple[PgNode, PostgresController],
) -> None:
    _, pg = primary
    assert pg.probe().is_primary
    (backend,) = _probe_backends(pg)
    os.kill(backend, signal.SIGSTOP)  # statement_timeout cannot fire in a stopped process
    try:
        started = time.monotonic()
        state = pg.probe(timeout=1.0)
        elapsed = time.monotonic() - started
    finally:
        os.kill(backend, signal.SIGCONT)
    assert state.running and not state.probe_ok
    assert elapsed < 4.0
    assert pg.probe().is_primary  # a new connection
    assert backend not in _probe_backends(pg)
