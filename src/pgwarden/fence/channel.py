"""The channel from the agent to its fence: a small file holding the lease deadline, replaced atomically.

A file rather than a pipe or socket because the fence must hold the deadline whether or not the
agent lives: a dead agent's last word stays on disk, a restarted agent rewrites it, and a fence
started afresh (or restarted) reads it at once. The agent writes a temporary file and renames it
over the old one, so the fence reads either the old record or the new one, never half of one.

The deadline is in CLOCK_MONOTONIC seconds (Python's ``time.monotonic()``), which on Linux is one
clock for every process of the machine, so agent and fence compare it with the same clock. The
clock restarts at boot, so every record names the boot it was written in: a record of another
boot is not a deadline (the fence does nothing on it).

One record, one line of JSON::

    {"version": 1, "boot_id": "6f0c...", "deadline": 1234.567, "writer": 4242}

``deadline`` null means "released": the agent holds no lease and counts on none.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

VERSION = 1
# The farthest ahead a deadline may lie: no lease is that long, so a record saying otherwise is
# garbage, which must never keep PostgreSQL writable for a day.
MAX_AHEAD = 86_400.0
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class BadRecord(ValueError):
    """The deadline file holds something the fence cannot trust; the message says what."""


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
    doc = {"version": VERSION, "boot_id": boot, "deadline": deadline, "writer": writer}
    return json.dumps(doc) + "\n"


def write_deadline(path: Path, deadline: float | None, boot: str) -> None:
    """Replace the record atomically (no fsync: the fence reads the page cache, and after a crash
    of the machine the record is of another boot anyway)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as out:
        out.write(render(deadline, boot, os.getpid()))
    os.replace(tmp, path)


def parse_deadline(text: str, boot: str, now: float) -> DeadlineRecord | None:
    """The record in ``text``; None when it belongs to another boot (no deadline in force).

    Raises BadRecord for anything else that is not a well-formed record of a plausible deadline.
    """
    try:
        doc = json.loads(text)
    except ValueError:
        raise BadRecord(f"not JSON: {text[:60]!r}") from None
    if not isinstance(doc, dict):
        raise BadRecord(f"not a JSON object: {text[:60]!r}")
    if doc.get("version") != VERSION:
        raise BadRecord(f"version {doc.get('version')!r}, expected {VERSION}")
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

    Raises BadRecord when the file exists but cannot be trusted.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BadRecord(f"cannot read {path}: {exc}") from None
    return parse_deadline(text, boot, now)
