"""Two questions about a process, answered from /proc: is it alive, and what was it started as."""

from __future__ import annotations


def state(pid: int) -> str | None:
    """The kernel's one-letter state of ``pid`` (R, S, D, T stopped, t traced, Z zombie, ...);
    None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def parent(pid: int) -> int | None:
    """The PID of ``pid``'s parent (a zombie's too: the process that has to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def alive(pid: int) -> bool:
    """True while ``pid`` runs or sleeps; False once it is gone or a zombie."""
    return state(pid) not in (None, "Z", "X")


def command_line(pid: int) -> list[str]:
    """The arguments ``pid`` was started with (empty when it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
