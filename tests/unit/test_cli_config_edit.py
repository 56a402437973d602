"""edit-config's pure parts: --set parsing, applying, validation messages and the diff."""

from __future__ import annotations

import pytest

from pgwarden.client import (
    Assignment,
    apply_assignments,
    config_diff,
    config_document,
    config_yaml,
    parse_assignment,
    parse_value,
    plan_edit,
    plan_replacement,
)
from pgwarden.config.errors import ConfigError
from pgwarden.model.cluster import DynamicConfig, SyncMode


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("ttl=30", ("ttl",), 30),
        ("loop_wait=1.5", ("loop_wait",), 1.5),
        ("use_pg_rewind=false", ("use_pg_rewind",), False),
        ("parameters.work_mem=8MB", ("parameters", "work_mem"), "8MB"),
        ("postgresql.parameters.work_mem=8MB", ("parameters", "work_mem"), "8MB"),
        ("postgresql.use_pg_rewind=true", ("use_pg_rewind",), True),
        ("parameters.pg_stat_statements.max=1000", ("parameters", "pg_stat_statements.max"), 1000),
        ("parameters.work_mem=null", ("parameters", "work_mem"), None),
        (" synchronous_mode = quorum", ("synchronous_mode",), "quorum"),
        ('parameters.search_path="$user", public', ("parameters", "search_path"), '"$user", public'),
        ("parameters.application_name=", ("parameters", "application_name"), ""),
    ],
)
def test_set_assignments_parse_dotted_keys_and_yaml_scalars(
    text: str, path: tuple[str, ...], value: object
) -> None:
    assert parse_assignment(text) == Assignment(path, value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["ttl", "=30", "parameters..work_mem=1", "a.=1"])
def test_malformed_assignments_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. ttl=30"):
        parse_assignment(text)


def test_values_that_are_not_scalars_stay_the_text_typed() -> None:
    assert parse_value("[a, b]") == "[a, b]"
    assert parse_value("{a: 1}") == "{a: 1}"
    assert parse_value("2024-01-01") == "2024-01-01"
    assert parse_value("~") is None


def test_assignments_merge_and_null_removes_a_key() -> None:
    doc = {"ttl": 4, "parameters": {"work_mem": "4MB", "max_connections": 100}}
    result = apply_assignments(
        doc,
        [parse_assignment("parameters.work_mem=null"), parse_assignment("parameters.shared_buffers=1GB")],
    )
    assert result == {"ttl": 4, "parameters": {"max_connections": 100, "shared_buffers": "1GB"}}
    assert doc["parameters"] == {"work_mem": "4MB", "max_connections": 100}  # not modified


def test_plan_edit_validates_and_keeps_the_revision_read() -> None:
    edit = plan_edit(
        DynamicConfig(), 42, [parse_assignment("ttl=30"), parse_assignment("synchronous_mode=on")]
    )
    assert edit.revision == 42
    assert edit.after.ttl == 30
    assert edit.after.synchronous_mode == SyncMode.ON
    assert edit.changed


def test_removing_a_top_level_key_restores_its_default() -> None:
    current = DynamicConfig(ttl=30)
    assert plan_edit(current, 1, [parse_assignment("ttl=null")]).after.ttl == DynamicConfig().ttl


def test_a_bad_value_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError) as caught:
        plan_edit(DynamicConfig(), 1, [parse_assignment("maximum_lag_on_failover=lots")])
    assert caught.value.path == "maximum_lag_on_failover"
    assert str(caught.value).startswith("edit-config: maximum_lag_on_failover:")


def test_an_unknown_key_is_refused_with_a_guess() -> None:
    with pytest.raises(ConfigError, match="did you mean `ttl`"):
        plan_edit(DynamicConfig(), 1, [parse_assignment("tll=30")])


def test_impossible_timings_are_refused() -> None:
    with pytest.raises(ConfigError, match="ttl"):
        plan_edit(DynamicConfig(), 1, [parse_assignment("loop_wait=10")])


def test_setting_the_current_value_is_no_change() -> None:
    edit = plan_edit(DynamicConfig(ttl=30), 1, [parse_assignment("ttl=30.0")])
    assert not edit.changed
    assert edit.diff() == ""


def test_the_diff_is_a_unified_diff_of_the_yaml() -> None:
    before = DynamicConfig(parameters={"work_mem": "4MB"})
    after = DynamicConfig(parameters={"work_mem": "8MB"})
    diff = config_diff(before, after)
    assert diff.startswith("--- etcd\n+++ edited\n")
    assert "-  work_mem: 4MB\n" in diff
    assert "+  work_mem: 8MB\n" in diff


def test_the_yaml_lists_every_field_with_parameters_sorted() -> None:
    cfg = DynamicConfig(parameters={"b": 1, "a": 2})
    text = config_yaml(cfg)
    assert text.index("ttl:") < text.index("pause:")
    assert text.index("  a: 2") < text.index("  b: 1")
    assert set(config_document(cfg)) == set(DynamicConfig.__dataclass_fields__)


def test_an_edited_yaml_document_replaces_the_config() -> None:
    text = config_yaml(DynamicConfig()).replace("ttl: 4.0", "ttl: 20")
    assert plan_replacement(DynamicConfig(), 3, text).after.ttl == 20


def test_an_edited_text_that_is_not_yaml_is_refused() -> None:
    with pytest.raises(ConfigError, match="not YAML"):
        plan_replacement(DynamicConfig(), 3, "ttl: [1")
