"""``patroni.yml`` (plus PATRONI_* variables, plus optionally a running cluster's dynamic config)
to a pgwarden node config, checked by pgwarden's own loader before it is handed out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from pgwarden.config.env import ENV_VARIABLES
from pgwarden.config.errors import ConfigError, ConfigIssue
from pgwarden.config.explain import Loc
from pgwarden.config.node import parse_node_config
from pgwarden.migrate.conversion import Conversion, Path, dotted
from pgwarden.migrate.notes import Note, Severity
from pgwarden.migrate.patroni_dcs import DCS, explanation, map_dcs
from pgwarden.migrate.patroni_env import CONFIGURATION, EnvRead, apply_patroni_env
from pgwarden.migrate.patroni_node import map_postgresql, map_restapi, map_store, map_tags, map_top

_HANDLED = {
    "scope", "name", "namespace", "log", "ctl", "watchdog", "citus", "proxy_address", "restapi",
    "etcd", "etcd3", "consul", "zookeeper", "exhibitor", "kubernetes", "raft", "postgresql", "tags",
    "bootstrap", "ttl", "loop_wait", "retry_timeout", "maximum_lag_on_failover", "synchronous_mode",
}  # fmt: skip
_MAX_ROUNDS = 8  # each round drops at least one refused key; a document has few of them


@dataclass(frozen=True, slots=True)
class Result:
    """The node config (as YAML-ready data), the notes, and what pgwarden's loader said of it."""

    config: dict[str, Any]
    notes: tuple[Note, ...]
    issues: tuple[ConfigIssue, ...] = field(default_factory=tuple)

    @property
    def valid(self) -> bool:
        return not self.issues and not any(n.severity is Severity.ERROR for n in self.notes)

    def yaml(self, origin: str) -> str:
        header = (
            f"# pgwarden node config, converted from {origin} by `pgwarden migrate from-patroni`.\n"
            "# What did not map, and why, was reported when it was written (--format json keeps it).\n"
        )
        return header + yaml.safe_dump(self.config, sort_keys=False, default_flow_style=False, width=100)


def convert(
    patroni: Mapping[str, Any],
    lines: Mapping[Loc, int] | None = None,
    env: Mapping[str, str] | None = None,
    workdir: str | None = None,
    dcs: Mapping[str, Any] | None = None,
) -> Result:
    """Convert one node's Patroni config; ``dcs`` (a running cluster's dynamic config) replaces
    ``bootstrap.dcs`` when given, since a live cluster's config is whatever was last edited."""
    tree, reads, ignored = apply_patroni_env(patroni, env or {})
    conv = Conversion(lines=lines or {})
    map_top(conv, tree)
    map_restapi(conv, tree.get("restapi"))
    map_store(conv, tree)
    map_postgresql(conv, tree.get("postgresql"), workdir)
    _cluster_name(conv, tree)
    map_tags(conv, tree.get("tags"))
    _bootstrap(conv, tree.get("bootstrap"), dcs)
    for key in tree:
        if key not in _HANDLED:
            conv.dropped((str(key),), "not a Patroni setting pgwarden knows")
    _env_notes(conv, reads, ignored)
    issues = _validate(conv)
    return Result(conv.out, tuple(conv.notes), tuple(issues))


def _cluster_name(conv: Conversion, tree: Mapping[str, Any]) -> None:
    """Patroni runs PostgreSQL with cluster_name = scope; pgwarden's default is the member name.
    Keeping Patroni's spares the adopted servers a restart (cluster_name is read only at start)."""
    params = conv.get(("postgresql", "parameters")) or {}
    if "scope" in tree and "cluster_name" not in params:
        conv.put(("postgresql", "parameters"), {**params, "cluster_name": tree["scope"]}, ("scope",))
        conv.note(
            "scope",
            Severity.INFO,
            "Patroni runs PostgreSQL with cluster_name set to it; kept, so the "
            "running server needs no restart",
            ("postgresql", "parameters", "cluster_name"),
            fix="remove it to name the processes after the member (takes a restart)",
        )


def _bootstrap(conv: Conversion, bootstrap: object, dcs: Mapping[str, Any] | None) -> None:
    section: Mapping[str, Any] = bootstrap if isinstance(bootstrap, Mapping) else {}
    if dcs is not None:
        map_dcs(conv, ("dcs",), dcs)
        if "dcs" in section:
            conv.dropped(
                ("bootstrap", "dcs"),
                "the running cluster's config (--dcs) is used instead",
                severity=Severity.INFO,
            )
    elif isinstance(section.get("dcs"), Mapping):
        map_dcs(conv, DCS, section["dcs"])
    why = {
        "initdb": "pgwarden runs initdb with checksums, UTF8 and SCRAM; an existing cluster keeps its own",
        "users": "create such roles with SQL",
        "post_bootstrap": "run it by hand once pgwarden created a new cluster",
        "post_init": "run it by hand once pgwarden created a new cluster",
        "method": "pgwarden creates a new cluster with initdb only",
        "pg_hba": "pg_hba goes into each node's postgresql.pg_hba",
    }
    for key in section:
        if key != "dcs":
            path: Path = ("bootstrap", str(key))
            known = why.get(str(key), "no pgwarden equivalent")
            conv.dropped(path, known, severity=Severity.INFO if key == "initdb" else Severity.WARNING)


def _env_notes(conv: Conversion, reads: list[EnvRead], ignored: list[str]) -> None:
    by_path = {path: name for name, path in ENV_VARIABLES.items()}
    for read in reads:
        if read.variable == CONFIGURATION:
            conv.note(
                CONFIGURATION,
                Severity.WARNING,
                "read instead of the file, as Patroni does; pgwarden reads only a file",
                fix="pass the output with -c",
            )
            continue
        target = conv.targets.get(read.path)
        ours = by_path.get(target) if target else None
        where = f"read as {dotted(read.path)}"
        if ours:
            message, fix = f"{where}; pgwarden reads {ours} instead", f"rename the variable to {ours}"
        elif target:
            message, fix = f"{where}; written into the output, pgwarden has no variable for it", ""
        else:
            message, fix = f"{where}, which does not map (see its own line)", ""
        conv.note(read.variable, Severity.WARNING, message, target, fix)
    for variable in ignored:
        conv.note(variable, Severity.INFO, "not a Patroni setting the converter knows; ignored")


def _validate(conv: Conversion) -> list[ConfigIssue]:
    """pgwarden's loader on the result. A key it does not know yet (one of the optional keys, or a
    dynamic-config key) is left out with a note, and the rest checked again."""
    for _ in range(_MAX_ROUNDS):
        try:
            parse_node_config(conv.out, "the converted config", env={})
        except ConfigError as exc:
            refused = [i for i in exc.issues if _droppable(conv, i)]
            if not refused:
                return list(exc.issues)
            for issue in refused:
                _drop(conv, tuple(issue.path.split(".")))
            continue
        return []
    return []


def _droppable(conv: Conversion, issue: ConfigIssue) -> bool:
    if not issue.problem.startswith("unknown key"):
        return False
    path = tuple(issue.path.split("."))
    return path in conv.optional or path[: len(DCS)] == DCS


def _drop(conv: Conversion, target: Path) -> None:
    source = conv.optional.get(target) or next((s for s, t in conv.targets.items() if t == target), target)
    conv.remove(target)
    known = explanation(source) if target[: len(DCS)] == DCS else None
    if target == ("etcd", "protocol"):
        # Talking plain HTTP to an etcd that serves TLS reaches nothing: the result cannot work.
        known = (Severity.ERROR, "etcd over TLS is not supported by this version of pgwarden")
    severity, why = known or (
        Severity.WARNING,
        f"{dotted(target)} is not supported by this version of pgwarden",
    )
    conv.dropped(source, why, severity=severity)
