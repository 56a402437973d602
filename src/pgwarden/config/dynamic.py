"""Validates the cluster-wide dynamic config (etcd, PATCH /config, bootstrap.dcs) into DynamicConfig."""

from __future__ import annotations

import copy
import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pgwarden.config.bounds import BOUNDS, bound_findings
from pgwarden.config.explain import Finding, Loc, Origin, findings_from_validation, unknown_key
from pgwarden.config.fields import ByteSize, PgSize
from pgwarden.config.parameters import Parameters
from pgwarden.model.cluster import DynamicConfig, SyncFallback, SyncMode

_D = DynamicConfig()  # the defaults live in the dataclass; the schema reads them from here
# Patroni nests these under `postgresql:`; we accept that shape and flatten it. GET /config shows
# them nested (documents/render.py config_document).
NESTED_KEYS = ("use_pg_rewind", "parameters", "remove_data_directory_on_diverged_timelines")
_NESTED = NESTED_KEYS
# Patroni's postgresql.use_slots: pgwarden always keeps a slot per member, so only true is accepted.
_USE_SLOTS = "use_slots"
_STRICT = "synchronous_mode_strict"  # Patroni's separate flag, folded into synchronous_fallback
_STORED = "the config key in etcd"
# Every agent writes the whole config (every field below) to etcd, so a stored value without one
# of them was not written by an agent: junk such as {"name": ...} would otherwise read as a valid
# config of all defaults, and silently switch synchronous mode and pause off. Fields added in later
# versions must NOT be listed here: configs written by older agents lack them and stay readable.
_STORED_REQUIRED = (
    "ttl", "loop_wait", "retry_timeout", "maximum_lag_on_failover", "primary_start_timeout",
    "member_slots_ttl", "max_slot_wal_keep_size", "synchronous_mode", "synchronous_node_count",
    "synchronous_fallback", "synchronous_fallback_after", "use_pg_rewind",
    "remove_data_directory_on_diverged_timelines", "parameters", "pause",
)  # fmt: skip


def _bounded(key: str, example: object) -> Any:
    """A field whose range config/bounds.py checks (with its reasons); the schema shows the range."""
    bound = next(b for b in BOUNDS if b.key == key)
    extra: dict[str, Any] = {"minimum": bound.low, "maximum": bound.high}
    return Field(getattr(_D, key), examples=[example], json_schema_extra=extra)


class DynamicModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    # Timing and size bounds are checked after the types, with their reasons: config/bounds.py.
    ttl: float = _bounded("ttl", 30)
    loop_wait: float = _bounded("loop_wait", 10)
    retry_timeout: float = _bounded("retry_timeout", 10)
    maximum_lag_on_failover: ByteSize = _bounded("maximum_lag_on_failover", "16MB")
    primary_start_timeout: float = _bounded("primary_start_timeout", 300)
    member_slots_ttl: float = _bounded("member_slots_ttl", 1800)
    max_slot_wal_keep_size: PgSize = Field(_D.max_slot_wal_keep_size, examples=["4GB"])
    synchronous_mode: SyncMode = Field(_D.synchronous_mode, strict=False, examples=["on"])
    synchronous_node_count: int = Field(_D.synchronous_node_count, ge=1, examples=[1])
    synchronous_fallback: SyncFallback = Field(_D.synchronous_fallback, strict=False, examples=["block"])
    synchronous_fallback_after: float = _bounded("synchronous_fallback_after", 5)
    cold_start_timeout: float = _bounded("cold_start_timeout", 60)
    use_pg_rewind: bool = Field(_D.use_pg_rewind, examples=["true"])
    remove_data_directory_on_diverged_timelines: bool = Field(
        _D.remove_data_directory_on_diverged_timelines, examples=["false"]
    )
    parameters: Parameters = Field(default_factory=dict, examples=["{max_connections: 200}"])
    pause: bool = Field(_D.pause, examples=["false"])
    failsafe_mode: bool = Field(_D.failsafe_mode, examples=["true"])


def parse_dynamic_config(data: Mapping[str, Any], source: str) -> DynamicConfig:
    """Validate a dynamic config document; ``source`` names it in errors (e.g. ``PATCH /config``)."""
    config, findings = validate_dynamic(data, ())
    if config is None:
        raise Origin(source).error(findings)
    return config


def parse_stored_dynamic_config(data: object) -> tuple[DynamicConfig, tuple[str, ...]]:
    """The config kept in etcd, read leniently: keys this version does not know are left out and
    returned (a newer agent may have written them, and they must not void the whole config);
    anything else wrong raises ConfigError exactly as `parse_dynamic_config`, and so does a value
    missing a field every agent writes (see _STORED_REQUIRED). The node YAML and API or CLI writes
    stay strict: there an unknown key is a typo to report, not to skip."""
    if not isinstance(data, Mapping):
        findings = validate_dynamic(data, ())[1]
        raise Origin(_STORED).error(findings)
    known = set(DynamicModel.model_fields) | {"postgresql", _STRICT, _USE_SLOTS}
    kept = {k: v for k, v in data.items() if k in known}
    ignored = [str(k) for k in data if k not in known]
    nested = kept.get("postgresql")
    if isinstance(nested, Mapping):
        kept["postgresql"] = {k: v for k, v in nested.items() if k in (*_NESTED, _USE_SLOTS)}
        ignored += [f"postgresql.{k}" for k in nested if k not in (*_NESTED, _USE_SLOTS)]
    present = set(kept) | (set(nested) if isinstance(nested, Mapping) else set())
    missing = [name for name in _STORED_REQUIRED if name not in present]
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        problem = f"{shown} missing: every agent writes the whole config, so no agent wrote this one"
        fix = "write the whole config with `pgwarden edit-config` or PUT /config"
        raise Origin(_STORED).error([Finding((), problem, fix)])
    return parse_dynamic_config(kept, _STORED), tuple(sorted(ignored))


def dynamic_config_to_dict(cfg: DynamicConfig) -> dict[str, Any]:
    """The JSON-ready form of ``cfg``, with every field; parse_dynamic_config reads it back equal."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, Mapping):
            value = dict(value)
        out[f.name] = value
    return out


def merge_patch(current: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch: null removes a key, mappings merge, anything else replaces.

    The result shares nothing with the arguments, so callers may modify it freely.
    """
    merged = copy.deepcopy(dict(current))
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping):
            base = merged.get(key)
            merged[key] = merge_patch(base if isinstance(base, Mapping) else {}, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def validate_dynamic(data: object, prefix: Loc) -> tuple[DynamicConfig | None, list[Finding]]:
    """The DynamicConfig in ``data`` (a document located at ``prefix``), or the findings against it."""
    if not isinstance(data, Mapping):
        fix = "write it as key: value settings, e.g. {ttl: 30, loop_wait: 10}"
        return None, [Finding(prefix, f"should be a mapping of settings, got {type(data).__name__}", fix)]
    flat, findings = _flatten_patroni_shape(data, prefix)
    try:
        model = DynamicModel.model_validate(flat)
    except ValidationError as exc:
        return None, findings + findings_from_validation(exc, DynamicModel, prefix)
    findings += _timing_findings(model, prefix)
    if findings:
        return None, findings
    return DynamicConfig(**{f.name: getattr(model, f.name) for f in dataclasses.fields(DynamicConfig)}), []


def _flatten_patroni_shape(data: Mapping[Any, Any], prefix: Loc) -> tuple[dict[Any, Any], list[Finding]]:
    """Accept Patroni's spellings: nested ``postgresql:``, boolean or "strict" synchronous_mode."""
    flat = dict(data)
    findings: list[Finding] = []
    nested = flat.pop("postgresql", None)
    findings += _use_slots(flat.pop(_USE_SLOTS, True), (*prefix, _USE_SLOTS))
    if isinstance(nested, Mapping):
        for key, value in nested.items():
            loc = (*prefix, "postgresql", str(key))
            if key == _USE_SLOTS:
                findings += _use_slots(value, loc)
            elif key not in _NESTED:
                findings.append(unknown_key(loc, list(_NESTED)))
            elif key in flat:
                findings.append(
                    Finding(loc, f"`{key}` is also set at the top level", "keep only one of them")
                )
            else:
                flat[key] = value
    elif nested is not None:
        findings.append(
            Finding((*prefix, "postgresql"), "should be a mapping", "write e.g. {use_pg_rewind: true}")
        )
    strict = flat.pop(_STRICT, False)
    mode = flat.get("synchronous_mode")
    if isinstance(mode, bool):
        flat["synchronous_mode"] = SyncMode.ON if mode else SyncMode.OFF
    elif isinstance(mode, str) and mode.lower() in ("strict", *SyncMode):
        strict = strict or mode.lower() == "strict"
        flat["synchronous_mode"] = SyncMode.ON if mode.lower() == "strict" else SyncMode(mode.lower())
    if not isinstance(strict, bool):
        loc = (*prefix, "synchronous_mode_strict")
        findings.append(Finding(loc, f"should be true or false, got {strict!r}", "write true or false"))
    elif strict:
        fallback = flat.setdefault("synchronous_fallback", SyncFallback.BLOCK)
        if str(fallback).lower() != SyncFallback.BLOCK:
            findings.append(
                Finding(
                    (*prefix, "synchronous_fallback"),
                    f"strict synchronous mode means block, but synchronous_fallback is {fallback!r}",
                    "drop synchronous_fallback, or use synchronous_mode: on with the fallback you want",
                )
            )
    return flat, findings


def _use_slots(value: object, loc: Loc) -> list[Finding]:
    if value is True:
        return []
    return [
        Finding(
            loc,
            f"pgwarden always keeps a replication slot per member; use_slots {value!r} is not supported",
            "drop the key or write true (member_slots_ttl and max_slot_wal_keep_size bound the slots)",
        )
    ]


def normalize_patch(patch: Mapping[str, Any]) -> dict[str, Any]:
    """A PATCH body in the shape GET /config shows (Patroni's nested ``postgresql:``): the flat
    pgwarden spellings of the nested keys move under it, so either spelling merges into the same
    place. A key given both ways keeps both, and validation names it."""
    out = dict(patch)
    moved = {key: out.pop(key) for key in NESTED_KEYS if key in out and key not in _nested_of(patch)}
    if moved:
        nested = out.get("postgresql")
        out["postgresql"] = {**(nested if isinstance(nested, Mapping) else {}), **moved}
    return out


def _nested_of(patch: Mapping[str, Any]) -> Mapping[str, Any]:
    nested = patch.get("postgresql")
    return nested if isinstance(nested, Mapping) else {}


def _timing_findings(model: DynamicModel, prefix: Loc) -> list[Finding]:
    # Patroni silently rewrites impossible timings; we refuse them so what runs is what was written.
    bounded = bound_findings(model.model_dump(), prefix)
    if bounded:
        return bounded
    ttl, loop_wait, retry = model.ttl, model.loop_wait, model.retry_timeout
    needed = loop_wait + 2 * retry
    if needed > ttl:
        return [
            Finding(
                (*prefix, "ttl"),
                f"loop_wait + 2 * retry_timeout = {loop_wait:g} + 2 * {retry:g} = {needed:g} exceeds "
                f"ttl = {ttl:g}: the leader key could expire before the leader has retried etcd",
                f"raise ttl to at least {needed:g}, or lower loop_wait or retry_timeout",
            )
        ]
    return []
