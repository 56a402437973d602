"""Asks this node's PostgreSQL about the parameters a config write changes, before anything reaches etcd.

Only the parameters whose value changes are checked (a setting already in force elsewhere is not
this write's doing, and ``pause`` must work whatever else is stored). A check that cannot run does
not refuse the write: the answer says it was skipped, and every agent still leaves a value its
PostgreSQL refuses out of pgwarden.conf (postgres/controller.py) and reports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pgwarden.config import ConfigError, ConfigIssue
from pgwarden.ha.rules.parameters import changed_parameters, cluster_parameters
from pgwarden.model import DynamicConfig
from pgwarden.model.parameters import ParamValue
from pgwarden.postgres.parameter_check import ParameterCheck
from pgwarden.postgres.settings import render_value

ParameterChecker = Callable[[Mapping[str, ParamValue]], ParameterCheck]

_TOP_LEVEL = "max_slot_wal_keep_size"  # the one PostgreSQL setting with a key of its own


@dataclass(frozen=True, slots=True)
class ParameterVerdict:
    refusal: ConfigError | None = None  # 400: every refused setting, named by its config key
    refused: Mapping[str, str] = field(default_factory=dict)  # config key -> PostgreSQL's message
    note: str | None = None  # what was checked where, for the answer (None: nothing changed)


def check_changed_parameters(
    cfg: DynamicConfig,
    current: DynamicConfig | None,
    checker: ParameterChecker | None,
    member: str,
    source: str,
) -> ParameterVerdict:
    wanted = cluster_parameters(cfg)
    before = cluster_parameters(current) if current is not None else {}
    changed = {name: wanted[name] for name in changed_parameters(wanted, before) if name in wanted}
    if not changed:
        return ParameterVerdict()
    if checker is None:
        return ParameterVerdict(note=f"skipped on {member}: no PostgreSQL to ask")
    check = checker(changed)
    if check.skipped is not None:
        return ParameterVerdict(note=f"skipped on {member}: {check.skipped}")
    if not check.problems:
        return ParameterVerdict(note=f"accepted by PostgreSQL on {member}: {', '.join(sorted(changed))}")
    issues, refused = [], {}
    for name, message in check.problems.items():
        key = name if name == _TOP_LEVEL else f"parameters.{name}"
        refused[key] = message
        issues.append(
            ConfigIssue(key, f"PostgreSQL refuses {render_value(changed[name])}: {message}", _fix(message))
        )
    return ParameterVerdict(ConfigError(source, issues), refused)


def _fix(message: str) -> str:
    if message.startswith("unrecognized configuration parameter"):
        return (
            "check the spelling (SHOW ALL lists every setting); an extension's setting is written "
            "prefix.name, e.g. pg_stat_statements.max"
        )
    return "write a value PostgreSQL accepts (its message says which), or remove the setting"
