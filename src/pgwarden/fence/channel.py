"""The channel from the agent to its fence: a small file holding the lease deadline.

A file rather than a pipe or socket because the fence must hold the deadline whether or not the
agent lives: a dead agent's last word stays on disk, a restarted agent rewrites it, and a fence
started afresh (or restarted) reads it at once.

The deadline is in CLOCK_MONOTONIC seconds (Python's ``time.monotonic()``), which on Linux is one
clock for every process of the machine, so agent and fence compare it with the same clock. The
clock restarts at boot, so every record names the boot it was written in: a record of another
boot is not a deadline (the fence does nothing on it). ``deadline`` null means "released": the
agent holds no lease and counts on none.

Two kinds of record, both read by this fence:

- **Version 1**, one line of JSON, written only by replacing the whole file (a temporary file
  renamed over it: the fence reads the old record or the new one, never half of one)::

      {"version": 1, "boot_id": "6f0c...", "deadline": 1234.567, "writer": 4242}

  Fences before version 2 read nothing else, so the agent writes version 1 whenever the running
  fence did not announce that it reads version 2 (``files.CHANNEL_FLAG`` on its command line: an
  older fence adopted after an upgrade), and when no fence runs.

- **Version 2**, ``RECORD_SIZE`` bytes: a fixed header, a check, the same JSON with version 2,
  padded with spaces::

      pgwarden-deadline 2 <16 hex digits: BLAKE2b-64 of the JSON> {"version": 2, ...}

  Written in place (`InPlaceWriter`): a renewal every 0.25 s cost a file created, written,
  renamed and unlinked each time (≈ 130-180 µs of CPU on ext4, the journal), now one ``pwrite``
  (≈ 5 µs).

Why an in-place record is never read as a deadline it was not (safety rule 1: the fence must
never hold a later deadline than the agent wrote):

1. The file is always whole. The writer's first record goes to a temporary file of exactly
   ``RECORD_SIZE`` bytes renamed over the path (atomic, as version 1); every later record is one
   ``pwrite`` of ``RECORD_SIZE`` bytes at offset 0 into that same file, so its size never changes
   and no reader ever sees it short or empty because of us.
2. A torn read is detected. Linux does not make a buffered read atomic against a write to the
   same page (the reader copies from the page cache while the writer copies into it), so a read
   racing a write may return a mix of the old record's bytes and the new one's, e.g. the new
   record's integer part with the old one's fraction: a deadline later than either. Every
   version-2 record shares its first bytes (the header), so any mix still says version 2, and a
   version-2 record is accepted only when the BLAKE2b-64 of its JSON equals its check: a mix of
   two different records passes with probability 2^-64. The reader then reads again (a write
   takes microseconds); after ``READ_TRIES`` failures the record is a BadRecord, and the fence
   keeps the deadline it already holds — an earlier one, which can only stop PostgreSQL too
   early, never too late. Version 1 and version 2 bytes never mix: the switch from one to the
   other is a rename.
3. Nothing stale. A checked record is one record the agent wrote whole; once a ``pwrite``
   returns, every later read sees it (one page cache), so the fence sees each record no later
   than a rename would have shown it. The agent writes under a lock in the order it read the
   deadline (agent/fence.py), as before.
4. The file the fence reads is the one written. Before each ``pwrite`` the writer checks that
   the path still names the file it holds (one ``stat``: the fence's directory removed and made
   again, or another agent's rename); if not, it starts over with a rename (1.).

No fsync, in either version: the fence reads the page cache, and after a crash of the machine
the record is of another boot anyway.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

try:
    # CPython's own BLAKE2, as hashlib.blake2b is: importing hashlib would load OpenSSL's
    # libcrypto into the fence, +3.6 MB of its ~14 MB (measured), for nothing it uses.
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - an interpreter without the builtin module
    from hashlib import blake2b

VERSION = 1  # the replaced JSON record, which every fence reads
CHECKED_VERSION = 2  # the fixed-size record written in place, with its check
RECORD_SIZE = 256  # bytes of a version-2 record: the JSON is at most ~150 (boot_id is 36)
HEADER = b"pgwarden-deadline 2 "
_CHECK_HEX = 16  # BLAKE2b with an 8-byte digest
# A version-2 record that fails its check is read again this often before it is a BadRecord:
# a read that raced a write sees the whole record the next time.
READ_TRIES = 3
# The farthest ahead a deadline may lie: no lease is that long, so a record saying otherwise is
# garbage, which must never keep PostgreSQL writable for a day.
MAX_AHEAD = 86_400.0
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class BadRecord(ValueError):
    """The deadline file holds something the fence cannot trust; the message says what."""


class TornRecord(BadRecord):
    """A version-2 record whose check fails: read while being written, or damaged."""


@dataclass(frozen=True, slots=True)
class DeadlineRecord:
    deadline: float | None  # CLOCK_MONOTONIC seconds; None: released
    writer: int  # the PID of the agent that wrote it (for the logs)


def boot_id() -> str:
    """This boot's identity: a CLOCK_MONOTONIC value means something only within one boot."""
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""  # not Linux, or /proc hidden: records then carry "" and match each other


def render(deadline: float | None, boot: str, writer: int) -> str:
    """A version-1 record."""
    doc = {"version": VERSION, "boot_id": boot, "deadline": deadline, "writer": writer}
    return json.dumps(doc) + "\n"


def _check(payload: bytes) -> bytes:
    return blake2b(payload, digest_size=_CHECK_HEX // 2).hexdigest().encode()


def render_checked(deadline: float | None, boot: str, writer: int) -> bytes:
    """A version-2 record: exactly RECORD_SIZE bytes, ending in a newline."""
    doc = {"version": CHECKED_VERSION, "boot_id": boot, "deadline": deadline, "writer": writer}
    payload = json.dumps(doc).encode()
    record = HEADER + _check(payload) + b" " + payload
    if len(record) >= RECORD_SIZE:
        raise ValueError(f"a deadline record of {len(record)} bytes does not fit in {RECORD_SIZE}")
    return record.ljust(RECORD_SIZE - 1) + b"\n"


def write_deadline(path: Path, deadline: float | None, boot: str) -> None:
    """Replace the record with a version-1 one (what a fence of any version reads)."""
    _replace(path, render(deadline, boot, os.getpid()).encode())


def _replace(path: Path, data: bytes, keep: bool = False) -> int | None:
    """Write ``data`` to a temporary file and rename it over ``path``: readers see the old file
    or the new one. With ``keep``, the new file's descriptor (open for writing) is returned."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        _write_all(fd, data, 0)
        os.rename(tmp, path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if keep:
        return fd
    os.close(fd)
    return None


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(f"wrote {written} of {len(view)} bytes")
        view, offset = view[written:], offset + written


class InPlaceWriter:
    """The agent's version-2 records: the first by a rename, then each one ``pwrite`` into the
    same file (see the module docstring for why a reader never takes a mix for a deadline)."""

    def __init__(self, path: Path, boot: str) -> None:
        self._path = path
        self._boot = boot
        self._fd: int | None = None
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) of the file behind _fd

    def write(self, deadline: float | None) -> None:
        record = render_checked(deadline, self._boot, os.getpid())
        if self._fd is not None and self._still_there():
            try:
                written = os.pwrite(self._fd, record, 0)
            except OSError:
                self.close()  # the next record starts over with a rename
                raise
            if written == RECORD_SIZE:
                return
            # Never seen for 256 bytes over an existing page, but if it happens the file holds
            # half a record: its check fails and the fence keeps the deadline before. Start over.
            self.close()
        fd = _replace(self._path, record, keep=True)
        assert fd is not None
        self.close()
        stat = os.fstat(fd)
        self._fd, self._file = fd, (stat.st_dev, stat.st_ino)

    def _still_there(self) -> bool:
        try:
            stat = os.stat(self._path)
        except OSError:
            return False
        return (stat.st_dev, stat.st_ino) == self._file

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._file = None, None


def parse_deadline(text: str | bytes, boot: str, now: float) -> DeadlineRecord | None:
    """The record in ``text`` (either version); None when it belongs to another boot (no
    deadline in force).

    Raises TornRecord for a version-2 record whose check fails, BadRecord for anything else that
    is not a well-formed record of a plausible deadline.
    """
    raw = text.encode() if isinstance(text, str) else text
    if raw.startswith(HEADER):
        check = raw[len(HEADER) : len(HEADER) + _CHECK_HEX]
        payload = raw[len(HEADER) + _CHECK_HEX + 1 :].rstrip(b" \n")
        if _check(payload) != check:
            raise TornRecord(f"a version-2 record whose check fails: {raw[:60]!r}...")
        return _parse_json(payload, CHECKED_VERSION, boot, now)
    return _parse_json(raw, VERSION, boot, now)


def _parse_json(raw: bytes, version: int, boot: str, now: float) -> DeadlineRecord | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise BadRecord(f"not JSON: {raw[:60]!r}") from None
    if not isinstance(doc, dict):
        raise BadRecord(f"not a JSON object: {raw[:60]!r}")
    if doc.get("version") != version:
        raise BadRecord(f"version {doc.get('version')!r}, expected {version}")
    if doc.get("boot_id") != boot:
        return None
    writer = doc.get("writer")
    if not isinstance(writer, int) or isinstance(writer, bool) or writer <= 0:
        raise BadRecord(f"writer {writer!r} is not a PID")
    deadline = doc.get("deadline")
    if deadline is None:
        return DeadlineRecord(None, writer)
    if isinstance(deadline, bool) or not isinstance(deadline, int | float) or not math.isfinite(deadline):
        raise BadRecord(f"deadline {deadline!r} is not a number of seconds")
    if deadline <= 0 or deadline > now + MAX_AHEAD:
        raise BadRecord(f"deadline {deadline!r} is not within a day of now ({now:.3f})")
    return DeadlineRecord(float(deadline), writer)


def read_deadline(path: Path, boot: str, now: float) -> DeadlineRecord | None:
    """The record at ``path``; None when there is none (never written, or of another boot).

    Raises BadRecord when the file exists but cannot be trusted (a record that fails its check
    READ_TRIES times in a row included).
    """
    raw = _read(path)
    for _ in range(READ_TRIES - 1):
        if raw is None:
            return None
        try:
            return parse_deadline(raw, boot, now)
        except TornRecord:
            raw = _read(path)  # raced a write: the next read sees the whole record
    return None if raw is None else parse_deadline(raw, boot, now)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BadRecord(f"cannot read {path}: {exc}") from None
