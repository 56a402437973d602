"""What a conversion says about each setting it could not carry over as it was: one Note each."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How much a note matters to the person migrating."""

    INFO = "info"  # carried over under another name or shape; nothing to do
    WARNING = "warning"  # left out or changed in meaning; read it, perhaps act on it
    ERROR = "error"  # the result cannot work as it is; the fix says what to do


@dataclass(frozen=True, slots=True)
class Note:
    """One line of the conversion's report.

    ``source`` is Patroni's dotted key (``postgresql.pgpass``) or an environment variable;
    ``target`` the pgwarden key it became, when it became one.
    """

    source: str
    severity: Severity
    message: str
    target: str | None = None
    fix: str = ""
    line: int | None = None  # 1-based line in the Patroni file, when known

    def render(self, origin: str) -> str:
        where = f"{origin}:{self.line}" if self.line is not None else origin
        arrow = f" -> {self.target}" if self.target else ""
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"{where}: {self.severity.value}: {self.source}{arrow}: {self.message}.{fix}"

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "line": self.line,
            "severity": self.severity.value,
            "target": self.target,
            "message": self.message,
            "fix": self.fix or None,
        }
