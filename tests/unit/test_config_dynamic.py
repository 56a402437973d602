"""Dynamic config: parsing, Patroni's spellings, the dict round trip and JSON merge patch."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgwarden.config import (
    ConfigError,
    dynamic_config_to_dict,
    merge_patch,
    parse_byte_size,
    parse_dynamic_config,
)
from pgwarden.config.bounds import BOUNDS
from pgwarden.model import DynamicConfig, SyncFallback, SyncMode
from pgwarden.model.parameters import INCLUDE_DIRECTIVES, OWNED

SOURCE = "PATCH /config"


def parse(data: dict[str, Any]) -> DynamicConfig:
    return parse_dynamic_config(data, SOURCE)


def error_of(data: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_dynamic_config(data, SOURCE)
    return str(caught.value)


def test_empty_document_gives_the_dataclass_defaults() -> None:
    assert parse({}) == DynamicConfig()


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (1048576, 1048576), ("16MB", 16 * 1024**2), ("1GB", 1024**3), ("1 kb", 1024), ("512", 512)],
)
def test_maximum_lag_accepts_bytes_or_size_strings(value: object, expected: int) -> None:
    assert parse({"maximum_lag_on_failover": value}).maximum_lag_on_failover == expected
    assert parse_byte_size(value) == expected


@pytest.mark.parametrize("value", ["16 parsecs", -1, True, 1.5, "MB"])
def test_maximum_lag_rejects_non_sizes(value: object) -> None:
    message = error_of({"maximum_lag_on_failover": value})
    assert message.startswith("PATCH /config: maximum_lag_on_failover: ")
    assert "16MB" in message


@pytest.mark.parametrize(
    ("value", "expected"), [("4GB", "4GB"), ("-1", "-1"), (1024, "1024"), ("512 MB", "512 MB")]
)
def test_max_slot_wal_keep_size_is_a_postgresql_size(value: object, expected: str) -> None:
    assert parse({"max_slot_wal_keep_size": value}).max_slot_wal_keep_size == expected


def test_max_slot_wal_keep_size_units_are_case_sensitive_like_postgresql() -> None:
    assert "case-sensitive" in error_of({"max_slot_wal_keep_size": "4gb"})


@pytest.mark.parametrize(
    ("value", "mode", "fallback"),
    [
        (False, SyncMode.OFF, SyncFallback.DEGRADE),
        (True, SyncMode.ON, SyncFallback.DEGRADE),
        ("on", SyncMode.ON, SyncFallback.DEGRADE),
        ("QUORUM", SyncMode.QUORUM, SyncFallback.DEGRADE),
        ("strict", SyncMode.ON, SyncFallback.BLOCK),
    ],
)
def test_synchronous_mode_spellings(value: object, mode: SyncMode, fallback: SyncFallback) -> None:
    cfg = parse({"synchronous_mode": value})
    assert (cfg.synchronous_mode, cfg.synchronous_fallback) == (mode, fallback)


def test_patroni_synchronous_mode_strict_flag_means_block() -> None:
    cfg = parse({"synchronous_mode": True, "synchronous_mode_strict": True})
    assert (cfg.synchronous_mode, cfg.synchronous_fallback) == (SyncMode.ON, SyncFallback.BLOCK)


def test_strict_mode_conflicts_with_degrade_fallback() -> None:
    message = error_of({"synchronous_mode": "strict", "synchronous_fallback": "degrade"})
    assert "synchronous_fallback: strict synchronous mode means block" in message


def test_unknown_synchronous_mode_lists_the_choices() -> None:
    message = error_of({"synchronous_mode": "sometimes"})
    assert "synchronous_mode: should be 'off', 'on' or 'quorum'" in message


def test_patroni_nested_postgresql_section_is_flattened() -> None:
    cfg = parse({"postgresql": {"use_pg_rewind": False, "parameters": {"max_connections": 200}}})
    assert cfg.use_pg_rewind is False
    assert cfg.parameters == {"max_connections": 200}


def test_nested_and_flat_spelling_of_the_same_key_conflict() -> None:
    message = error_of({"use_pg_rewind": True, "postgresql": {"use_pg_rewind": False}})
    assert "postgresql.use_pg_rewind: `use_pg_rewind` is also set at the top level" in message


def test_unknown_nested_postgresql_key_gets_a_suggestion() -> None:
    message = error_of({"postgresql": {"use_pg_rewnd": True}})
    assert (
        "postgresql.use_pg_rewnd: unknown key `use_pg_rewnd`. Fix: did you mean `use_pg_rewind`?" in message
    )


def test_unknown_key_gets_a_suggestion() -> None:
    message = error_of({"synchronous_node_cont": 2})
    assert message == (
        "PATCH /config: synchronous_node_cont: unknown key `synchronous_node_cont`. "
        "Fix: did you mean `synchronous_node_count`? Otherwise remove it"
    )


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"synchronous_node_count": 0}, "synchronous_node_count", "greater than or equal to 1"),
        ({"synchronous_fallback_after": -1}, "synchronous_fallback_after", "below the lowest accepted value"),
        ({"ttl": float("inf")}, "ttl", "finite number"),
        ({"pause": "yes"}, "pause", "true or false"),
        ({"parameters": {"work_mem": "1\nfsync = off"}}, "parameters.work_mem", "one line"),
        ({"parameters": {"x y": 1}}, "parameters.x y", "parameter name"),
        ({"parameters": ["a"]}, "parameters", "should be a mapping"),
    ],
)
def test_invalid_values_are_refused(data: dict[str, Any], field: str, words: str) -> None:
    message = error_of(data)
    assert message.startswith(f"{SOURCE}: {field}: ")
    assert words in message


def test_zero_fallback_delay_is_allowed() -> None:
    assert parse({"synchronous_fallback_after": 0}).synchronous_fallback_after == 0


def test_timing_is_checked() -> None:
    message = error_of({"ttl": 4, "loop_wait": 2, "retry_timeout": 1.5})
    assert "ttl: loop_wait + 2 * retry_timeout = 2 + 2 * 1.5 = 5 exceeds ttl = 4" in message


def test_document_must_be_a_mapping() -> None:
    assert error_of(["ttl", 30]).startswith(f"{SOURCE}: should be a mapping of settings, got list")


def test_to_dict_is_json_ready_and_complete() -> None:
    out = dynamic_config_to_dict(DynamicConfig(synchronous_mode=SyncMode.QUORUM, parameters={"a": 1}))
    assert set(out) == {f.name for f in dataclasses.fields(DynamicConfig)}
    assert out["synchronous_mode"] == "quorum"
    assert json.loads(json.dumps(out)) == out


def _seconds(key: str) -> st.SearchStrategy[float]:
    bound = next(b for b in BOUNDS if b.key == key)
    return st.floats(min_value=bound.low, max_value=bound.high, allow_nan=False, allow_infinity=False)


_param_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(blacklist_characters="\n\r\0", blacklist_categories=("Cs",))),
)
_param_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}(\.[a-z_][a-z0-9_]{0,10})?", fullmatch=True).filter(
    lambda name: name.lower() not in {*OWNED, *INCLUDE_DIRECTIVES, "wal_level"}
)


@st.composite
def dynamic_configs(draw: st.DrawFn) -> DynamicConfig:
    loop_wait = draw(st.floats(min_value=0.1, max_value=100))
    retry = draw(st.floats(min_value=0.5, max_value=100))
    ttl = draw(st.floats(min_value=max(2.0, loop_wait + 2 * retry), max_value=600))
    return DynamicConfig(
        ttl=ttl,
        loop_wait=loop_wait,
        retry_timeout=retry,
        maximum_lag_on_failover=draw(st.integers(min_value=0, max_value=1024**4)),
        primary_start_timeout=draw(_seconds("primary_start_timeout")),
        member_slots_ttl=draw(_seconds("member_slots_ttl")),
        max_slot_wal_keep_size=draw(st.sampled_from(["-1", "4GB", "512MB", "100", "1 TB"])),
        synchronous_mode=draw(st.sampled_from(SyncMode)),
        synchronous_node_count=draw(st.integers(min_value=1, max_value=10)),
        synchronous_fallback=draw(st.sampled_from(SyncFallback)),
        synchronous_fallback_after=draw(_seconds("synchronous_fallback_after")),
        use_pg_rewind=draw(st.booleans()),
        remove_data_directory_on_diverged_timelines=draw(st.booleans()),
        parameters=draw(
            st.dictionaries(_param_names, _param_values, max_size=5).filter(
                lambda params: len({name.lower() for name in params}) == len(params)
            )
        ),
        pause=draw(st.booleans()),
    )


@given(dynamic_configs())
def test_round_trip_through_dict_and_json(cfg: DynamicConfig) -> None:
    assert parse(dynamic_config_to_dict(cfg)) == cfg
    assert parse(json.loads(json.dumps(dynamic_config_to_dict(cfg)))) == cfg


# --- JSON merge patch (RFC 7386) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [  # the RFC's appendix A cases whose patch is an object
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({"a": "foo"}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_follows_rfc_7386(
    target: dict[str, Any], patch: dict[str, Any], result: dict[str, Any]
) -> None:
    assert merge_patch(target, patch) == result


def test_merge_patch_leaves_its_inputs_alone() -> None:
    current = {"parameters": {"work_mem": "4MB", "max_connections": 100}, "ttl": 30}
    patch = {"parameters": {"work_mem": None, "shared_buffers": "1GB"}, "ttl": None}
    merged = merge_patch(current, patch)
    assert merged == {"parameters": {"max_connections": 100, "shared_buffers": "1GB"}}
    assert current == {"parameters": {"work_mem": "4MB", "max_connections": 100}, "ttl": 30}
    assert patch == {"parameters": {"work_mem": None, "shared_buffers": "1GB"}, "ttl": None}


def test_patched_config_is_validated_again() -> None:
    current = dynamic_config_to_dict(DynamicConfig())
    cfg = parse(merge_patch(current, {"ttl": None, "loop_wait": 0.5, "pause": True}))
    assert (cfg.ttl, cfg.loop_wait, cfg.pause) == (DynamicConfig().ttl, 0.5, True)
    with pytest.raises(ConfigError, match="exceeds ttl"):
        parse(merge_patch(current, {"loop_wait": 3}))
