"""pgwarden's marker beside the data directory, and what the observer finds in a directory that is not usable.

The marker is ``<data_dir>.pgwarden`` in the data directory's parent (beside ``<data_dir>.log``),
never inside it: pg_basebackup and initdb demand an empty directory, so a marker inside could not be
written before a clone and would not survive its interruption; pg_basebackup copies the source's
files (it skips only postmaster.pid, backup_label and a few others), so a marker inside would
arrive from the primary; and pg_rewind removes every file of the target that the source lacks. No
PostgreSQL tool reads or writes outside the data directory, so the marker is left alone by all.

The marker records the directory's identity: device, inode and the inode's generation number. A
directory removed by hand and made again at the same path is not covered by an old marker, even
where the file system hands out the same inode number again at once (ext4 does): the generation
differs. On file systems without generation numbers (tmpfs, which does not reuse inode numbers
soon) device and inode alone are compared.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import struct
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pgwarden import __version__
from pgwarden.model.local import DataDir, DataDirOrigin
from pgwarden.model.node import PostgresSettings
from pgwarden.postgres.commands import chown_to_run_as

MARKER_SUFFIX = ".pgwarden"
_MARKER_MAX_BYTES = 4096
# What the observer reads of a directory that is not ours, every cycle: bounded, however big.
_LISTING_CAP = 10_000
_SHOWN = 5
_NESTED_CHECKED = 50
# ioctl(FS_IOC_GETVERSION): the inode's generation number, which the kernel writes as an int.
_FS_IOC_GETVERSION = 0x80087601

Identity = tuple[int, int, int | None]


def marker_path(data_dir: str | Path) -> Path:
    path = Path(data_dir)
    return path.with_name(path.name + MARKER_SUFFIX)


@dataclass(frozen=True, slots=True)
class MarkerCheck:
    """Whether the marker names the directory now at the path, and if not, why (for messages)."""

    ours: bool
    note: str


def write_marker(settings: PostgresSettings, member: str) -> Path:
    """Claim the (existing) data directory for pgwarden: atomically, readable, owned like it."""
    data_dir = Path(settings.data_dir)
    device, inode, generation = identity(data_dir)
    document = {
        "written_by": "pgwarden",
        "version": __version__,
        "data_dir": settings.data_dir,
        "device": device,
        "inode": inode,
        "generation": generation,
        "member": member,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    target = marker_path(data_dir)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o644)  # no secret in it; operators should be able to read it
            json.dump(document, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        chown_to_run_as(settings, tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def check_marker(settings: PostgresSettings) -> MarkerCheck:
    """Does the marker beside the data directory name the directory that is there now?"""
    data_dir = Path(settings.data_dir)
    path = marker_path(data_dir)
    try:
        with path.open("rb") as f:
            raw = f.read(_MARKER_MAX_BYTES + 1)
    except FileNotFoundError:
        return MarkerCheck(False, f"no marker {path}")
    except OSError as exc:
        return MarkerCheck(False, f"marker {path} unreadable ({exc.strerror})")
    try:
        if len(raw) > _MARKER_MAX_BYTES:
            raise ValueError("too long")
        document = json.loads(raw)
        generation = document["generation"]
        generation = None if generation is None else int(generation)
        recorded = (document["data_dir"], (int(document["device"]), int(document["inode"]), generation))
    except (ValueError, TypeError, KeyError, RecursionError):
        return MarkerCheck(False, f"marker {path} is not pgwarden's")
    try:
        current = identity(data_dir)
    except OSError:
        return MarkerCheck(False, f"marker {path}, but no directory {data_dir}")
    if recorded != (settings.data_dir, current):
        return MarkerCheck(False, f"marker {path} was written for another directory at that path")
    return MarkerCheck(True, f"marker {path}")


def identity(directory: Path) -> Identity:
    """Device, inode and (where the file system keeps one) the inode's generation number."""
    st = directory.stat()
    generation: int | None = None
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            generation = struct.unpack("i", fcntl.ioctl(fd, _FS_IOC_GETVERSION, bytes(8))[:4])[0]
        except OSError:
            pass  # ENOTTY: no generation numbers here (tmpfs)
        finally:
            os.close(fd)
    return st.st_dev, st.st_ino, generation


def origin(settings: PostgresSettings, kind: DataDir, reason: str = "") -> DataDirOrigin:
    """Who made the data directory, and (only when it is not usable) what it holds."""
    marker = check_marker(settings)
    if kind is not DataDir.INCOMPLETE:
        return DataDirOrigin(settings.data_dir, marker.ours, marker.note)
    found, hint = describe(Path(settings.data_dir), reason)
    return DataDirOrigin(settings.data_dir, marker.ours, marker.note, found, hint)


def describe(path: Path, reason: str = "") -> tuple[str, str]:
    """What a directory holds, in words an operator can act on, read in bounded time; and a hint.

    e.g. ("contains 3 entries (a.txt, main/, notes/), no PG_VERSION / pg_control", "main/ holds
    a PostgreSQL data directory: is postgresql.data_dir meant to be /var/lib/postgresql/15/main?")
    """
    if path.is_symlink() and not path.exists():
        return "is a dangling symbolic link", ""
    if path.exists() and not path.is_dir():
        return "is not a directory", ""
    try:
        with os.scandir(path) as it:
            entries = [(e.name, _is_dir(e)) for e in itertools.islice(it, _LISTING_CAP + 1)]
    except OSError as exc:
        return f"cannot be listed ({exc.strerror})", ""
    entries.sort()
    count = f"more than {_LISTING_CAP}" if len(entries) > _LISTING_CAP else str(len(entries))
    shown = ", ".join(name + ("/" if is_dir else "") for name, is_dir in entries[:_SHOWN])
    more = ", ..." if len(entries) > _SHOWN else ""
    text = f"contains {count} {'entry' if count == '1' else 'entries'} ({shown}{more}), {_pg_files(path)}"
    if reason.startswith(("pg_controldata", "backup_label")):
        text += f" ({reason})"
    dirs = [name for name, is_dir in entries if is_dir][:_NESTED_CHECKED]
    nested = [name for name in dirs if _looks_like_pgdata(path / name)]
    hint = ""
    if nested:
        hint = (
            f"{nested[0]}/ holds a PostgreSQL data directory: "
            f"is postgresql.data_dir meant to be {path / nested[0]}?"
        )
    return text, hint


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _pg_files(path: Path) -> str:
    version = (path / "PG_VERSION").is_file()
    control = (path / "global" / "pg_control").is_file()
    if not version and not control:
        return "no PG_VERSION / pg_control"
    if not control:
        return "PG_VERSION but no global/pg_control"
    if not version:
        return "global/pg_control but no PG_VERSION"
    return "PG_VERSION and global/pg_control"


def _looks_like_pgdata(path: Path) -> bool:
    try:
        return (path / "PG_VERSION").is_file() and (path / "global" / "pg_control").is_file()
    except OSError:
        return False
