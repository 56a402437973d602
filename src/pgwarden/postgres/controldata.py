"""Read pg_control through pg_controldata and classify the data directory (missing, incomplete, valid)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pgwarden.model.local import ControlState, DataDir
from pgwarden.model.lsn import Lsn
from pgwarden.model.node import PostgresSettings
from pgwarden.postgres.commands import PostgresError, run

CONTROLDATA_TIMEOUT = 10.0
# A mount point's lost+found does not make a data directory non-empty.
IGNORED_ENTRIES = {"lost+found"}


@dataclass(frozen=True, slots=True)
class ControlData:
    """The fields of pg_controldata that failover decisions use."""

    system_id: str
    state: ControlState
    timeline: int
    checkpoint_lsn: Lsn
    min_recovery_lsn: Lsn | None  # None when 0/0: no minimum (a clean primary)


@dataclass(frozen=True, slots=True)
class DataDirState:
    kind: DataDir
    control: ControlData | None = None
    reason: str = ""  # why it is INCOMPLETE


def _control_state(text: str) -> ControlState:
    try:
        return ControlState(text)
    except ValueError:
        return ControlState.OTHER


def parse_controldata(text: str) -> ControlData:
    """Parse pg_controldata's output (C locale); raise ValueError when a needed field is absent."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    try:
        min_recovery = Lsn.parse(fields["Minimum recovery ending location"])
        return ControlData(
            system_id=fields["Database system identifier"],
            state=_control_state(fields["Database cluster state"]),
            timeline=int(fields["Latest checkpoint's TimeLineID"]),
            checkpoint_lsn=Lsn.parse(fields["Latest checkpoint location"]),
            min_recovery_lsn=min_recovery if min_recovery.value else None,
        )
    except KeyError as exc:
        raise ValueError(f"pg_controldata output lacks {exc.args[0]!r}") from None


def read_controldata(settings: PostgresSettings, timeout: float = CONTROLDATA_TIMEOUT) -> ControlData:
    result = run(settings, "pg_controldata", ["-D", settings.data_dir], timeout=timeout)
    if "untrustworthy" in result.stdout:
        # A CRC mismatch exits 0 and prints garbage after a warning on stdout.
        warning = "\n".join(line for line in result.stdout.splitlines() if "WARNING" in line)
        raise PostgresError(
            "pg_control is corrupt", command=result.args, returncode=result.returncode, stderr_tail=warning
        )
    try:
        return parse_controldata(result.stdout)
    except ValueError as exc:
        raise PostgresError(f"cannot parse pg_controldata output: {exc}") from None


def _entries(path: Path) -> set[str] | None:
    try:
        return {p.name for p in path.iterdir()} - IGNORED_ENTRIES
    except FileNotFoundError:
        return None


def classify(settings: PostgresSettings, timeout: float = CONTROLDATA_TIMEOUT) -> DataDirState:
    """Tell whether the data directory is safe to fill (MISSING), broken (INCOMPLETE) or usable.

    A pg_controldata that cannot run at all (timeout, missing binary) raises PostgresError rather
    than calling the directory INCOMPLETE: an INCOMPLETE directory pgwarden made may be wiped.
    """
    data_dir = Path(settings.data_dir)
    try:
        entries = _entries(data_dir)
    except OSError as exc:
        # Not a directory, or not ours to read: not MISSING (that would invite a clone into it).
        return DataDirState(DataDir.INCOMPLETE, reason=f"cannot be listed: {exc.strerror}")
    if not entries:
        return DataDirState(DataDir.MISSING)
    if not (data_dir / "global" / "pg_control").is_file():
        return DataDirState(DataDir.INCOMPLETE, reason="no global/pg_control")
    if "backup_label" in entries and "PG_VERSION" not in entries:
        return DataDirState(DataDir.INCOMPLETE, reason="backup_label without PG_VERSION")
    try:
        control = read_controldata(settings, timeout)
    except PostgresError as exc:
        if exc.returncode is None:
            raise
        return DataDirState(DataDir.INCOMPLETE, reason=f"pg_controldata failed: {exc.stderr_tail}")
    return DataDirState(DataDir.VALID, control)
