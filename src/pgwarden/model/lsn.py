"""PostgreSQL WAL positions (LSNs) as an ordered value type with a parser."""

from __future__ import annotations

from dataclasses import dataclass


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
        hi, sep, lo = text.strip().partition("/")
        if not sep or not hi or not lo:
            raise ValueError(f"not an LSN (expected HI/LO in hex): {text!r}")
        try:
            return cls((int(hi, 16) << 32) | int(lo, 16))
        except ValueError:
            raise ValueError(f"not an LSN (expected HI/LO in hex): {text!r}") from None

    def __str__(self) -> str:
        return f"{self.value >> 32:X}/{self.value & 0xFFFFFFFF:X}"

    def __sub__(self, other: Lsn) -> int:
        """Bytes between two positions (may be negative)."""
        return self.value - other.value


ZERO = Lsn(0)
