"""What ``pgwarden doctor`` reports: findings with a severity, the evidence and the fix, and the exit code.

Exit codes follow the monitoring-plugin convention (Nagios, Icinga, Sensu), so ``doctor`` can be
a check as it is: 0 when nothing is worse than info, 1 for a warning, 2 for a critical finding.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class Severity(enum.IntEnum):
    OK = 0  # checked, nothing to say
    INFO = 1  # worth knowing, nothing to fix
    WARNING = 2  # will hurt in some failure; fix it
    CRITICAL = 3  # hurts now, or the next failure loses data or availability

    @property
    def label(self) -> str:
        return self.name.lower()


EXIT_CODES = {Severity.OK: 0, Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # the check's name (doctor/checks/__init__.py), stable for scripts
    severity: Severity
    title: str  # one sentence: what is the matter
    evidence: tuple[str, ...] = ()  # what was seen, with numbers
    fix: str = ""  # what to do (empty when there is nothing to do)
    members: tuple[str, ...] = ()  # the members it is about (empty: the cluster)

    def document(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "severity": self.severity.label,
            "title": self.title,
            "evidence": list(self.evidence),
            "fix": self.fix or None,
            "members": list(self.members),
        }


def ok(check: str, title: str, *evidence: str) -> Finding:
    return Finding(check, Severity.OK, title, tuple(evidence))


@dataclass(frozen=True, slots=True)
class Report:
    cluster: str
    findings: tuple[Finding, ...]

    @classmethod
    def of(cls, cluster: str, findings: Iterable[Finding]) -> Report:
        """Findings ordered worst first, then by check, as the checks produced them."""
        listed = list(findings)
        order = {id(f): i for i, f in enumerate(listed)}
        return cls(cluster, tuple(sorted(listed, key=lambda f: (-f.severity, order[id(f)]))))

    @property
    def worst(self) -> Severity:
        return max((f.severity for f in self.findings), default=Severity.OK)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.worst]

    def document(self) -> dict[str, Any]:
        counts = {s.label: sum(f.severity is s for f in self.findings) for s in Severity}
        return {
            "cluster": self.cluster,
            "worst": self.worst.label,
            "exit_code": self.exit_code,
            "counts": counts,
            "findings": [f.document() for f in self.findings],
        }
