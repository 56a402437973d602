"""The state of one conversion: the pgwarden document being built and the notes about it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pgwarden.config.explain import Loc
from pgwarden.migrate.notes import Note, Severity

Path = tuple[str, ...]


def dotted(path: Path) -> str:
    return ".".join(path)


@dataclass
class Conversion:
    """Built by the mapping functions: ``out`` is the node config, ``notes`` the report, and
    ``targets`` which pgwarden key each Patroni key became (to name a replacement variable)."""

    lines: Mapping[Loc, int] = field(default_factory=dict)
    out: dict[str, Any] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)
    targets: dict[Path, Path] = field(default_factory=dict)
    # pgwarden keys this version may not know yet (another release adds them): left out, with a
    # note, when the validator refuses them as unknown.
    optional: dict[Path, Path] = field(default_factory=dict)  # target -> source

    def put(self, target: Path, value: Any, source: Path, optional: bool = False) -> None:
        section = self.out
        for key in target[:-1]:
            child = section.get(key)
            if not isinstance(child, dict):
                child = section[key] = {}
            section = child
        section[target[-1]] = value
        self.targets[source] = target
        if optional:
            self.optional[target] = source

    def get(self, target: Path) -> Any:
        value: Any = self.out
        for key in target:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    def remove(self, target: Path) -> None:
        section: Any = self.out
        for key in target[:-1]:
            section = section.get(key) if isinstance(section, dict) else None
        if isinstance(section, dict):
            section.pop(target[-1], None)
            # An emptied section goes too: it would be a section with nothing in it.
            if not section and len(target) > 1:
                self.remove(target[:-1])

    def note(
        self,
        source: Path | str,
        severity: Severity,
        message: str,
        target: Path | None = None,
        fix: str = "",
    ) -> None:
        path = tuple(source.split(".")) if isinstance(source, str) else source
        self.notes.append(
            Note(
                source=dotted(path) if isinstance(source, tuple) else source,
                severity=severity,
                message=message,
                target=dotted(target) if target else None,
                fix=fix,
                line=self.line(path),
            )
        )

    def dropped(self, source: Path, why: str, fix: str = "", severity: Severity = Severity.WARNING) -> None:
        self.note(source, severity, f"not carried over: {why}", fix=fix)

    def line(self, path: Path) -> int | None:
        for n in range(len(path), 0, -1):
            line = self.lines.get(path[:n])
            if line is not None:
                return line
        return None
