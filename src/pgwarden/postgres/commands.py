"""Run PostgreSQL binaries as the right OS user, with a timeout, raising PostgresError on failure."""

from __future__ import annotations

import contextlib
import os
import pwd
import select
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pgwarden import own_children
from pgwarden.model.node import PostgresSettings

STDERR_TAIL_LINES = 20
# How much lower than the agent a bulk copy (pg_basebackup, pg_rewind) runs: when the node's CPU
# is short, the agent's health answers and cycle go first and the copy waits (measured in
# docs/benchmarks.md, "Health endpoint under work"); with CPU to spare it changes nothing.
BULK_COPY_NICE = 10
# Variables a parent shell may carry that would silently redirect or authenticate a child.
_LEAKY_PREFIXES = ("PG",)


class PostgresError(Exception):
    """A PostgreSQL command or query failed; carries the command, exit code and stderr's tail."""

    def __init__(
        self,
        message: str,
        *,
        command: Sequence[str] = (),
        returncode: int | None = None,
        stderr_tail: str = "",
    ) -> None:
        self.command = tuple(command)
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        details = []
        if command:
            details.append(f"command: {' '.join(self.command)}")
        if returncode is not None:
            details.append(f"exit code {returncode}")
        text = message if not details else f"{message} ({'; '.join(details)})"
        if stderr_tail:
            text += f"\n{stderr_tail}"
        super().__init__(text)


@dataclass(frozen=True, slots=True)
class OsUser:
    """The OS account PostgreSQL files and processes belong to."""

    name: str
    uid: int
    gid: int
    home: str


def run_as_user(settings: PostgresSettings) -> OsUser | None:
    """The user to switch to, or None when commands run as the current user.

    Switching is only possible (and only needed) when this process is root.
    """
    if settings.run_as is None or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(settings.run_as)
    except KeyError:
        raise PostgresError(f"run_as user {settings.run_as!r} does not exist") from None
    return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def child_env(user: OsUser | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment: no inherited PG* variables (no PGPASSWORD leaks), C messages."""
    if user is not None:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": user.home, "USER": user.name}
    else:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIXES)}
    # English messages: pg_controldata and pg_basebackup output is parsed.
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    env.update(extra or {})
    return env


def chown_to_run_as(settings: PostgresSettings, path: str | Path) -> None:
    """Give a file the agent wrote to the PostgreSQL user (no-op when not switching users)."""
    user = run_as_user(settings)
    if user is not None:
        os.chown(path, user.uid, user.gid)


def binary(settings: PostgresSettings, name: str) -> str:
    return str(Path(settings.bin_dir) / name)


def _tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run(
    settings: PostgresSettings,
    name: str,
    args: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    new_session: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``bin_dir/name args`` as the PostgreSQL user; raise PostgresError on failure or timeout."""
    user = run_as_user(settings)
    command = [binary(settings, name), *args]
    try:
        result = own_children.run(
            command,
            timeout,
            stdin=subprocess.DEVNULL,
            text=True,
            env=child_env(user, env),
            start_new_session=new_session,
            user=user.uid if user else None,
            group=user.gid if user else None,
            extra_groups=[] if user else None,
            cwd="/" if user else None,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise PostgresError(
            f"{name} timed out after {timeout:g} s", command=command, stderr_tail=_tail(stderr)
        ) from None
    except OSError as exc:
        raise PostgresError(f"{name} could not be started: {exc}", command=command) from None
    if check and result.returncode != 0:
        raise PostgresError(
            f"{name} failed",
            command=command,
            returncode=result.returncode,
            stderr_tail=_tail(result.stderr or result.stdout),
        )
    return result


def run_streaming(
    settings: PostgresSettings,
    name: str,
    args: Sequence[str],
    *,
    timeout: float,
    on_line: Callable[[str], None],
    env: Mapping[str, str] | None = None,
    nice: int = 0,
) -> None:
    """Run a long command, handing each stderr line (split on CR or LF) to ``on_line``.

    ``nice``: how much lower than this process the child runs (``BULK_COPY_NICE`` for a copy).
    The child is killed when ``timeout`` runs out; failures raise PostgresError.
    """
    user = run_as_user(settings)
    command = [binary(settings, name), *args]
    deadline = time.monotonic() + timeout
    tail: list[str] = []
    try:
        proc = own_children.start(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=child_env(user, env),
            user=user.uid if user else None,
            group=user.gid if user else None,
            extra_groups=[] if user else None,
            cwd="/" if user else None,
        )
    except OSError as exc:
        raise PostgresError(f"{name} could not be started: {exc}", command=command) from None
    if nice:
        lower(proc.pid, nice)
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    pending = b""
    timed_out = False
    eof = False
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                eof = True
                break
            pending += chunk
            *lines, pending = pending.replace(b"\r", b"\n").split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace").strip()
                if line:
                    tail = [*tail[-(STDERR_TAIL_LINES - 1) :], line]
                    on_line(line)
    finally:
        if not eof:  # timed out, or on_line raised: never leave the child running
            proc.kill()
        try:
            returncode = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            returncode = proc.wait(timeout=10)
            timed_out = True
        finally:
            own_children.forget(proc)
        proc.stderr.close()
    if timed_out:
        raise PostgresError(
            f"{name} timed out after {timeout:g} s", command=command, stderr_tail="\n".join(tail)
        )
    if returncode != 0:
        raise PostgresError(
            f"{name} failed", command=command, returncode=returncode, stderr_tail="\n".join(tail)
        )


def lower(pid: int, nice: int) -> None:
    """Run process ``pid`` ``nice`` steps below this process (at most 19), from right after its
    start: Popen has no such option, and preexec_fn is unsafe in a threaded agent. The processes
    pg_basebackup forks (its WAL stream) come after its first connection and inherit this. A
    failure only costs the priority, never the command."""
    # OSError: gone already (it fails on its own), or not permitted here.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice))


@contextlib.contextmanager
def secret_file(settings: PostgresSettings, content: str) -> Iterator[str]:
    """A 0600 file readable only by the PostgreSQL user, removed on exit (e.g. initdb --pwfile)."""
    fd, path = tempfile.mkstemp(prefix="pgwarden-", suffix=".secret")
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            user = run_as_user(settings)
            if user is not None:
                os.fchown(f.fileno(), user.uid, user.gid)
            f.write(content)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
