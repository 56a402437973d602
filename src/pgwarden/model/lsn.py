"""PostgreSQL WAL positions (LSNs) as an ordered value type with a parser."""

from __future__ import annotations

import re
from dataclasses import dataclass

_TEXT = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


@dataclass(frozen=True, order=True, slots=True)
class Lsn:
    """A WAL position: a 64-bit byte offset, written by PostgreSQL as ``HI/LO`` in hex."""

    value: int

    def __post_init__(self) -> None:
        if not 0 <= self.value < 2**64:
            raise ValueError(f"LSN out of range: {self.value}")

    @classmethod
    def parse(cls, text: str) -> Lsn:
        """Parse ``'16/B374D848'``; raise ValueError naming the text when it is not an LSN."""
        match = _TEXT.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"not an LSN (expected HI/LO, each 1-8 hex digits): {text[:40]!r}")
        return cls((int(match.group(1), 16) << 32) | int(match.group(2), 16))

    def __str__(self) -> str:
        return f"{self.value >> 32:X}/{self.value & 0xFFFFFFFF:X}"

    def __sub__(self, other: Lsn) -> int:
        """Bytes between two positions (may be negative)."""
        return self.value - other.value


ZERO = Lsn(0)
