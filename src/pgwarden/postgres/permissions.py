"""Owner and mode of an existing data directory, checked once when the agent starts.

PostgreSQL itself refuses a data directory of another owner, or one that others may read. pgwarden
checks first, so that a wrong ``data_dir`` is named before anything happens: a directory pgwarden
made (its marker names it) gets mode 0700 back; anything else with the wrong owner or mode is
refused, and the agent does not start. A missing or empty directory passes: the clone or initdb
that fills it sets both.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from pgwarden.model.node import PostgresSettings
from pgwarden.postgres.commands import PostgresError, run_as_user
from pgwarden.postgres.controldata import IGNORED_ENTRIES
from pgwarden.postgres.origin import check_marker


class DataDirRefused(Exception):
    """The data directory is not one the agent may use; the message names it and the fix."""


def check_at_start(settings: PostgresSettings) -> list[str]:
    """What was fixed (for the log); raises DataDirRefused when the directory must not be used."""
    path = Path(settings.data_dir)
    try:
        st = path.stat()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise DataDirRefused(f"postgresql.data_dir {path} cannot be examined: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise DataDirRefused(f"postgresql.data_dir {path} is not a directory; point it at the data directory")
    try:
        empty = not (set(os.listdir(path)) - IGNORED_ENTRIES)
    except OSError as exc:
        raise DataDirRefused(f"postgresql.data_dir {path} cannot be listed: {exc.strerror}") from None
    if empty:
        return []
    marked = check_marker(settings).ours
    owner, expected = _owner_name(st.st_uid), _expected_owner(settings)
    whose = "pgwarden made it" if marked else "pgwarden did not make it"
    if st.st_uid != expected[0]:
        raise DataDirRefused(
            f"postgresql.data_dir {path} is owned by {owner}, not by {expected[1]} whom PostgreSQL runs "
            f"as ({whose}); if it is this node's data directory: chown -R {expected[1]}: {path}; "
            "otherwise fix postgresql.data_dir"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode == 0o700:
        return []
    if marked:
        os.chmod(path, 0o700)
        return [f"data directory {path} had mode {mode:04o}; set it back to 0700 (pgwarden made it)"]
    raise DataDirRefused(
        f"postgresql.data_dir {path} has mode {mode:04o}, not 0700, and pgwarden did not make it; if it "
        f"is this cluster's data directory: chmod 700 {path} (pgwarden then adopts it); otherwise fix "
        "postgresql.data_dir"
    )


def _expected_owner(settings: PostgresSettings) -> tuple[int, str]:
    """The user PostgreSQL runs as: ``run_as`` when the agent runs as root, else the agent's own."""
    try:
        user = run_as_user(settings)
    except PostgresError as exc:
        raise DataDirRefused(str(exc)) from None
    uid = user.uid if user is not None else os.geteuid()
    return uid, _owner_name(uid)


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"
