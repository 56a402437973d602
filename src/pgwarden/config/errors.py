"""The one exception config loading raises: where the problem is, what is wrong, how to fix it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config: a dotted field path ("" for the whole document) and a fix."""

    path: str
    problem: str
    fix: str
    line: int | None = None  # 1-based line in the YAML file, when known
    env_var: str | None = None  # the PGWARDEN_... variable the faulty value came from

    def render(self, source: str) -> str:
        where = source if self.line is None else f"{source}:{self.line}"
        if self.env_var is not None:
            where = f"environment variable {self.env_var} (applied to {source})"
        field = f"{self.path}: " if self.path else ""
        return f"{where}: {field}{self.problem}. Fix: {self.fix}"


class ConfigError(Exception):
    """A config file, environment variable or API payload that pgwarden refuses, with every reason.

    ``str(error)`` names the source (file, ``PATCH /config``, an etcd key), each faulty field as a
    dotted path such as ``postgresql.listen``, what is wrong with it, and what to do instead.
    """

    def __init__(self, source: str, issues: Sequence[ConfigIssue]) -> None:
        if not issues:
            raise ValueError("a ConfigError needs at least one issue")
        self.source = source
        self.issues = tuple(issues)
        super().__init__(self._message())

    @classmethod
    def one(cls, source: str, path: str, problem: str, fix: str) -> ConfigError:
        return cls(source, [ConfigIssue(path, problem, fix)])

    @property
    def path(self) -> str:
        """The field path of the first issue (convenient when there is only one)."""
        return self.issues[0].path

    def _message(self) -> str:
        if len(self.issues) == 1:
            return self.issues[0].render(self.source)
        lines = [f"{self.source}: {len(self.issues)} problems"]
        lines.extend(f"  - {issue.render(self.source)}" for issue in self.issues)
        return "\n".join(lines)
