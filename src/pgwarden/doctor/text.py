"""How doctor writes sizes and durations in its evidence: short, exact enough to act on."""

from __future__ import annotations

_UNITS = (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2), ("kB", 1024))


def size(n: int | None) -> str:
    """``12.5 MB``; PostgreSQL's units (1 MB = 1024 kB)."""
    if n is None:
        return "unknown"
    for unit, scale in _UNITS:
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{n} B"


def seconds(s: float | None) -> str:
    if s is None:
        return "unknown"
    if s >= 120:
        return f"{s / 60:.0f} min"
    return f"{s:.2f} s" if s < 10 else f"{s:.0f} s"


def names(items: list[str] | tuple[str, ...]) -> str:
    return ", ".join(items) if items else "none"
