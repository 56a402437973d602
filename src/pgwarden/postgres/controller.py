"""PostgresController: every action the agent takes on its local PostgreSQL, each bounded in time."""

from __future__ import annotations

import dataclasses
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg

from pgwarden import own_children
from pgwarden.fence import proc
from pgwarden.fence.postmaster import dead_postmaster, postmaster_pid, wait_reaped
from pgwarden.model.local import DataDir, LocalState
from pgwarden.model.lsn import Lsn
from pgwarden.model.node import PostgresSettings
from pgwarden.model.parameters import ParamValue
from pgwarden.postgres import settings as conf
from pgwarden.postgres import slots as slot_sql
from pgwarden.postgres import sql
from pgwarden.postgres.commands import (
    BULK_COPY_NICE,
    PostgresError,
    chown_to_run_as,
    run,
    run_streaming,
    secret_file,
)
from pgwarden.postgres.conninfo import StandbyUpstream, make_conninfo
from pgwarden.postgres.controldata import classify
from pgwarden.postgres.origin import write_marker
from pgwarden.postgres.probe import DEFAULT_PROBE_TIMEOUT, probe
from pgwarden.postgres.refusals import ConfigRefusals
from pgwarden.postgres.roles import ensure_replication_role
from pgwarden.postgres.session import LocalSession
from pgwarden.postgres.settings import ManagedConf
from pgwarden.postgres.slots import SlotInfo, slot_name

__all__ = ["ParamChange", "PostgresController", "StandbyUpstream", "StopMode", "slot_name"]

StopMode = Literal["fast", "immediate", "smart"]
SQL_TIMEOUT = 10.0
PEER_CONNECT_TIMEOUT = 10
# pg_ctl enforces its own -t; the subprocess bound leaves it room to report.
_PG_CTL_GRACE = 10.0
# At most, for a dead postmaster's parent to reap it (``_no_dead_postmaster``): a start runs in
# the HA cycle, which must not stall (it tries again next cycle); a rewind runs in a job thread.
ZOMBIE_WAIT_START = 0.2
ZOMBIE_WAIT_REWIND = 30.0


@dataclass(frozen=True, slots=True)
class ParamChange:
    """What update_parameters changed, and which of those only a restart applies."""

    changed: frozenset[str]
    restart_required: frozenset[str]


class PostgresController:
    """Acts on one local PostgreSQL instance: the only code that starts, stops or rewrites it.

    Methods are synchronous and bounded by their ``timeout``; they raise PostgresError when the
    action failed. Configuration writes are serialised so threads may share one controller.
    """

    def __init__(self, settings: PostgresSettings, name: str) -> None:
        self.settings = settings
        self.name = name  # the member name: application_name towards the upstream
        self._lock = threading.RLock()
        self._managed = conf.read_managed(settings)
        self._refusals = ConfigRefusals(settings)
        # The probe's and the slots' queries, every cycle: one kept connection, not one each.
        self._session = LocalSession(settings)

    # ---- observation -------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return Path(self.settings.data_dir)

    @property
    def log_file(self) -> Path:
        """Server log, beside (not inside) the data directory: clone and rewind copy that."""
        return self.data_dir.with_name(self.data_dir.name + ".log")

    def probe(self, timeout: float = DEFAULT_PROBE_TIMEOUT) -> LocalState:
        """The local state, as PostgreSQL reports it now (a standby's timeline as it reads now:
        ha/rules/timeline.py remembers the highest it was seen receiving)."""
        # Asked at the first probe too, so a promotion's rewrite of the files never waits for it.
        parameters = self._rendered_parameters()
        self._refusals.refused(parameters)
        return self._refusals.report(probe(self.settings, timeout, self._session), parameters, timeout)

    def is_running(self) -> bool:
        return postmaster_pid(self.settings.data_dir) is not None

    def current_timeline(self, timeout: float = DEFAULT_PROBE_TIMEOUT) -> int:
        """The timeline the instance runs on (pg_control's when it is stopped)."""
        state = self.probe(timeout)
        if state.running and not state.probe_ok:
            raise PostgresError("PostgreSQL runs but did not answer: its timeline is unknown")
        timeline = state.timeline if state.running else state.control_timeline
        if timeline is None:
            raise PostgresError("the current timeline is unknown (no answer and no pg_control)")
        return timeline

    def timeline_history(self, timeline: int) -> list[tuple[int, Lsn, str]]:
        """The switch points that led to ``timeline`` (pg_wal/<tli>.history); [] for timeline 1."""
        path = self.data_dir / "pg_wal" / f"{timeline:08X}.history"
        try:
            text = path.read_text()
        except FileNotFoundError:
            return []
        history = []
        for line in text.splitlines():
            parts = line.strip().split(None, 2)
            if len(parts) < 2 or parts[0].startswith("#"):
                continue
            history.append((int(parts[0]), Lsn.parse(parts[1]), parts[2] if len(parts) > 2 else ""))
        return history

    # ---- lifecycle ---------------------------------------------------------------------

    def initdb(self, timeout: float = 120.0) -> None:
        """Create a new cluster with data checksums (pg_rewind relies on them), then our config."""
        password = self.settings.superuser.password
        if not password:
            raise PostgresError("initdb needs a superuser password (local logins use SCRAM)")
        self._prepare_empty_data_dir("initdb")
        args = [
            "-D", self.settings.data_dir,
            "-k",
            "-U", self.settings.superuser.username,
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ]  # fmt: skip
        try:
            with secret_file(self.settings, password + "\n") as pwfile:
                run(self.settings, "initdb", [*args, f"--pwfile={pwfile}"], timeout=timeout)
        except BaseException:
            self._clear_data_dir()
            raise
        with self._lock:
            self._managed = ManagedConf(cluster_parameters=self._managed.cluster_parameters)
            self._write_config()

    def start(self, timeout: float = 60.0, wait: bool = True) -> None:
        """Start; with ``wait``, until connections are accepted. Fine when it already runs.

        Without ``wait`` it returns once the postmaster is launched; the probe tells when it is up.
        """
        if self.is_running():
            return
        if classify(self.settings).kind is not DataDir.VALID:
            raise PostgresError(f"cannot start: {self.data_dir} holds no valid cluster")
        self._no_dead_postmaster(min(ZOMBIE_WAIT_START, timeout))
        self._ensure_socket_dir()
        self.log_file.touch(mode=0o600, exist_ok=True)
        chown_to_run_as(self.settings, self.log_file)
        with self._lock:
            self._write_config()
        waiting = ["-w", "-t", str(int(timeout))] if wait else ["-W"]
        args = ["start", "-D", str(self.data_dir), *waiting, "-l", str(self.log_file)]
        try:
            # A new session: a Ctrl-C aimed at the agent must not reach the postmaster.
            run(self.settings, "pg_ctl", args, timeout=timeout + _PG_CTL_GRACE, new_session=True)
        except PostgresError as exc:
            raise PostgresError(
                f"PostgreSQL did not start; server log ends with:\n{self._log_tail()}",
                command=exc.command,
                returncode=exc.returncode,
                stderr_tail=exc.stderr_tail,
            ) from None

    def stop(self, mode: StopMode = "fast", timeout: float = 60.0) -> None:
        """Stop and wait until the postmaster is gone; fine when it is not running."""
        if mode not in ("fast", "immediate", "smart"):
            raise ValueError(f"unknown stop mode: {mode!r}")
        if not self.is_running():
            return
        if mode == "smart":
            self._session.close()  # a smart shutdown waits for every session to end, ours too
        args = ["stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", str(int(timeout))]
        try:
            run(self.settings, "pg_ctl", args, timeout=timeout + _PG_CTL_GRACE)
        except PostgresError:
            if self.is_running():
                raise

    def reload(self, timeout: float = SQL_TIMEOUT) -> None:
        """Make a running server re-read its configuration; a stopped one reads it at start."""
        if self.is_running():
            self._refusals.files_changed()
            run(self.settings, "pg_ctl", ["reload", "-D", str(self.data_dir)], timeout=timeout)

    def promote(self, timeout: float = 60.0, checkpoint: bool = True) -> None:
        """Promote and wait until the server accepts writes; idempotent.

        ``pg_promote(false)`` and a 20 ms poll rather than ``pg_ctl promote -w``, whose 100 ms
        polling adds to every switchover's write gap. With ``checkpoint``, an immediate
        checkpoint follows so pg_control carries the new timeline (other nodes' pg_rewind reads
        it there); the agent instead asks for it in its next cycle, after announcing the primary.
        """
        deadline = time.monotonic() + timeout
        with sql.local_session(self.settings, timeout) as conn:
            if _in_recovery(conn):
                conn.execute("SELECT pg_promote(false)")
            while _in_recovery(conn):
                if time.monotonic() >= deadline:
                    raise PostgresError(f"promotion did not finish within {timeout:.0f}s")
                time.sleep(0.02)
        if checkpoint:
            self.checkpoint(timeout)
        self.configure_primary()

    def checkpoint(self, timeout: float = 60.0) -> None:
        with sql.local_session(self.settings, timeout) as conn:
            conn.execute("CHECKPOINT")

    # ---- configuration -----------------------------------------------------------------

    def configure_standby(self, upstream: StandbyUpstream | None, slot: str | None) -> None:
        """Follow ``upstream`` through ``slot``; None: a standby following no one (read-only).

        A running standby picks the change up by reload; a running primary becomes a standby only
        when restarted (standby.signal is read at start).
        """
        with self._lock:
            self._managed = dataclasses.replace(
                self._managed, upstream=upstream, slot=slot if upstream else None
            )
            changed = self._write_config()
            self._touch(self.data_dir / "standby.signal")
        if changed:
            self.reload()

    def configure_primary(self) -> None:
        """Drop standby.signal and primary_conninfo: the next start runs read-write."""
        with self._lock:
            self._managed = dataclasses.replace(self._managed, upstream=None, slot=None)
            changed = self._write_config()
            (self.data_dir / "standby.signal").unlink(missing_ok=True)
        if changed:
            self.reload()

    def set_synchronous_standby_names(self, value: str) -> None:
        with self._lock:
            self._managed = dataclasses.replace(self._managed, synchronous_standby_names=value)
            changed = self._write_config()
        if changed:
            self.reload()

    def update_parameters(self, params: Mapping[str, ParamValue]) -> ParamChange:
        """Apply the cluster's parameters (node parameters still win); reload when running."""
        with self._lock:
            before = conf.effective_parameters(self.settings, self._managed.cluster_parameters)
            after = conf.effective_parameters(self.settings, params)
            changed = frozenset(
                k for k in before.keys() | after.keys()
                if _rendered(before.get(k)) != _rendered(after.get(k))
            )  # fmt: skip
            self._managed = dataclasses.replace(self._managed, cluster_parameters=dict(params))
            self._write_config()
        if not changed or not self.is_running():
            return ParamChange(changed, frozenset())
        with sql.local_session(self.settings, SQL_TIMEOUT) as conn:
            rows = conn.execute(
                "SELECT name, context FROM pg_settings WHERE name = ANY(%s)", (sorted(changed),)
            ).fetchall()
        contexts = {str(name): str(context) for name, context in rows}
        # A name the server does not know yet (an extension's) is assumed to need a restart.
        restart = frozenset(n for n in changed if contexts.get(n, "postmaster") == "postmaster")
        self.reload()
        return ParamChange(changed, restart)

    # ---- data directory ----------------------------------------------------------------

    def clone(
        self,
        source: StandbyUpstream,
        slot: str | None,
        progress: Callable[[str], None],
        timeout: float = 3600.0,
    ) -> None:
        """Copy ``source`` with pg_basebackup into the (missing or empty) data directory and
        configure this node as its standby through ``slot``. On failure the directory is emptied
        again, so it reads MISSING."""
        self._prepare_empty_data_dir("clone")
        try:
            if slot:
                with sql.remote_session(self.settings, source.host, source.port, SQL_TIMEOUT) as c:
                    slot_sql.create_slot(c, slot)
            conninfo = make_conninfo({
                "host": source.host,
                "port": source.port,
                "user": self.settings.replication.username,
                "application_name": self.name,
                "connect_timeout": PEER_CONNECT_TIMEOUT,
            })  # fmt: skip
            args = ["-D", self.settings.data_dir, "-X", "stream", "-c", "fast", "--progress",
                    "--no-password", "-d", conninfo, *(["-S", slot] if slot else [])]  # fmt: skip
            run_streaming(
                self.settings,
                "pg_basebackup",
                args,
                timeout=timeout,
                on_line=progress,
                nice=BULK_COPY_NICE,
                env=_password_env(self.settings.replication.password),
            )
        except BaseException:
            self._clear_data_dir()
            raise
        with self._lock:
            self._managed = ManagedConf(cluster_parameters=self._managed.cluster_parameters)
        self.configure_standby(source, slot)

    def rewind(
        self,
        source: StandbyUpstream,
        timeout: float = 600.0,
        progress: Callable[[str], None] = lambda _: None,
    ) -> None:
        """Rewind the stopped data directory onto ``source``'s timeline with pg_rewind.

        Afterwards, failed or not, the node is a standby following no one (safety rule 6): the
        caller configures its upstream.
        """
        if self.is_running():
            raise PostgresError("cannot rewind while PostgreSQL runs: stop it first")
        if classify(self.settings).kind is not DataDir.VALID:
            raise PostgresError(f"cannot rewind: {self.data_dir} holds no valid cluster")
        # pg_rewind finishes an unclean shutdown in single-user mode: refused while the crashed
        # postmaster's PID exists (a zombie), and refused in standby mode.
        self._no_dead_postmaster(ZOMBIE_WAIT_REWIND)
        for signal in ("standby.signal", "recovery.signal"):
            (self.data_dir / signal).unlink(missing_ok=True)
        conninfo = make_conninfo({
            "host": source.host,
            "port": source.port,
            "user": self.settings.superuser.username,
            "dbname": "postgres",
            "application_name": f"pgwarden-rewind-{self.name}",
            "connect_timeout": PEER_CONNECT_TIMEOUT,
        })  # fmt: skip
        try:
            run_streaming(
                self.settings,
                "pg_rewind",
                ["--target-pgdata", self.settings.data_dir, "--source-server", conninfo, "--progress"],
                timeout=timeout,
                on_line=progress,
                nice=BULK_COPY_NICE,
                env=_password_env(self.settings.superuser.password),
            )
        finally:
            # pg_rewind copied the source's pgwarden.conf and pg_hba.conf over ours.
            self.configure_standby(None, None)

    def _no_dead_postmaster(self, wait: float) -> None:
        """Make sure no dead postmaster's zombie holds the PID postmaster.pid names.

        A postmaster that died (SIGKILL, the OOM killer, a node's processes killed with its agent)
        stays a zombie until its parent waits for it, and PostgreSQL, pg_rewind's single-user
        run included, refuses to start while that PID exists ("lock file "postmaster.pid"
        already exists"). When the zombie is this process's (the agent is the subreaper of the
        postmasters it starts) it is reaped now; otherwise its parent is given ``wait`` seconds,
        then PostgresError names it: the caller tries again (the cycle next time round)."""
        data_dir = str(self.data_dir)
        pid = dead_postmaster(data_dir)
        if pid is None:
            return
        own_children.reap(pid)
        if wait_reaped(data_dir, wait):
            return
        parent = proc.parent(pid)
        named = " ".join(proc.command_line(parent)[:2]) if parent is not None else ""
        raise PostgresError(
            f"the previous postmaster (pid {pid}) is dead but its parent (pid {parent}: {named or '?'})"
            f" has not reaped it within {wait:g} s; PostgreSQL refuses to start while that PID exists"
            " (lock file postmaster.pid): trying again"
        )

    def wipe(self) -> None:
        """Empty the data directory, keeping the directory and its marker. The caller (the
        executor) has just checked, on a fresh probe, that the directory is ours to empty."""
        if self.is_running():
            raise PostgresError("refusing to wipe the data directory of a running PostgreSQL")
        self._clear_data_dir()

    def adopt(self) -> None:
        """Write the marker beside a data directory of this cluster made before markers existed."""
        if classify(self.settings).kind is not DataDir.VALID:
            raise PostgresError(f"not adopting {self.data_dir}: it holds no valid cluster")
        write_marker(self.settings, self.name)

    # ---- SQL ---------------------------------------------------------------------------

    def create_replication_user(self, timeout: float = SQL_TIMEOUT) -> None:
        creds = self.settings.replication
        with sql.local_session(self.settings, timeout) as conn:
            ensure_replication_role(conn, creds.username, creds.password)

    def create_slot(self, name: str, timeout: float = SQL_TIMEOUT) -> bool:
        return self._session.run(lambda conn: slot_sql.create_slot(conn, name), timeout)

    def drop_slot(self, name: str, timeout: float = SQL_TIMEOUT) -> bool:
        return self._session.run(lambda conn: slot_sql.drop_slot(conn, name), timeout)

    def advance_slot(self, name: str, position: Lsn, timeout: float = SQL_TIMEOUT) -> bool:
        return self._session.run(lambda conn: slot_sql.advance_slot(conn, name, position), timeout)

    def list_slots(self, timeout: float = DEFAULT_PROBE_TIMEOUT) -> dict[str, SlotInfo]:
        """The slots, read each cycle after the probe, with its bound: the kept session's
        statement_timeout then stays as set (alternating bounds cost two set_config a cycle)."""
        return self._session.run(slot_sql.list_slots, timeout)

    def close(self) -> None:
        """Close the kept session (the next probe opens it again)."""
        self._session.close()

    # ---- internals ---------------------------------------------------------------------

    def _write_config(self) -> bool:
        """Render the files, leaving out any parameter this node's PostgreSQL refuses: written into
        pgwarden.conf it would make the next start fail ("configuration file contains errors")."""
        refused = self._refusals.refused(self._rendered_parameters())
        changed = conf.write_all(self.settings, self.name, self._managed, refused)
        if changed:
            self._refusals.files_changed()
        return changed

    def _rendered_parameters(self) -> dict[str, ParamValue]:
        return conf.effective_parameters(self.settings, self._managed.cluster_parameters)

    def _touch(self, path: Path) -> None:
        path.touch(mode=0o600, exist_ok=True)
        chown_to_run_as(self.settings, path)

    def _prepare_empty_data_dir(self, action: str) -> None:
        """Refuse unless the directory is missing or empty (never overwrite a cluster), then
        create it 0700, owned by the PostgreSQL user, and mark it as pgwarden's before anything
        goes in: an interrupted clone or initdb leaves files that are still recognisably ours."""
        state = classify(self.settings)
        if state.kind is not DataDir.MISSING:
            raise PostgresError(f"refusing to {action}: {self.data_dir} is not empty ({state.kind.value})")
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        chown_to_run_as(self.settings, self.data_dir)
        write_marker(self.settings, self.name)

    def _clear_data_dir(self) -> None:
        path = self.data_dir
        if not path.is_absolute() or path == Path(path.anchor) or ".." in path.parts:
            # The config refuses such paths; this is the last line should a caller bypass it.
            raise PostgresError(f"refusing to empty {path}: not an absolute path below /")
        if not path.is_dir():
            return
        for entry in path.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def _ensure_socket_dir(self) -> None:
        path = Path(conf.socket_dir(self.settings))
        if not path.is_dir():
            path.mkdir(mode=0o755, parents=True)
            chown_to_run_as(self.settings, path)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def _rendered(value: ParamValue | None) -> str | None:
    return None if value is None else conf.render_value(value)


def _password_env(password: str | None) -> dict[str, str]:
    """The password for a child's libpq, in its environment only (never on its command line)."""
    return {"PGPASSWORD": password} if password else {}


def _in_recovery(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    return bool(row and row[0])
