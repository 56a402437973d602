"""Settings PostgreSQL refuses: its trial's messages read, and reported in etcd, /patroni, list, metrics."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from pgwarden.agent.member_record import member_record
from pgwarden.agent.snapshot import Snapshot, SnapshotHolder
from pgwarden.api.metrics import Metrics
from pgwarden.cli import views
from pgwarden.dcs.codec import decode_member, encode_member
from pgwarden.documents.render import member_document as api_member_document
from pgwarden.documents.status import status_document
from pgwarden.model import LocalState
from pgwarden.model.parameters import ParameterError
from pgwarden.postgres.parameter_check import read_refusals
from tests.support import api_fakes as fake
from tests.support.builders import member, standby_local, view

LEVELS = "debug5, debug4, debug3, debug2, debug1, info, notice, warning, error, log, fatal, panic."
# What `postgres -C` printed for a trial file, PostgreSQL 15 (log_line_prefix empty).
TRIAL_LOG = f"""\
LOG:  skipping missing configuration file "/tmp/pgwarden-x.secret.none/postgresql.auto.conf"
LOG:  invalid value for parameter "work_mem": "lots"
LOG:  -5 is outside the valid range for parameter "max_connections" (1 .. 262143)
LOG:  invalid value for parameter "TimeZone": "Mars/Olympus"
LOG:  invalid value for parameter "log_min_messages": "loud"
HINT:  Available values: {LEVELS}
LOG:  invalid value for parameter "log_destination": "foo"
DETAIL:  Unrecognized key word: "foo".
LOG:  syntax error in file "/tmp/pgwarden-x.secret" line 7, near token "'"
FATAL:  configuration file "/tmp/pgwarden-x.secret" contains errors
"""
NAMES = [
    "work_mem",
    "max_connections",
    "timezone",
    "log_min_messages",
    "log_destination",
    "jit",
    "search_path",
]


def test_each_message_is_blamed_on_its_setting_with_its_hint() -> None:
    assert read_refusals(TRIAL_LOG, NAMES) == {
        "work_mem": 'invalid value for parameter "work_mem": "lots"',
        "max_connections": '-5 is outside the valid range for parameter "max_connections" (1 .. 262143)',
        "timezone": 'invalid value for parameter "TimeZone": "Mars/Olympus"',
        "log_min_messages": (
            f'invalid value for parameter "log_min_messages": "loud" (Available values: {LEVELS})'
        ),
        "log_destination": (
            'invalid value for parameter "log_destination": "foo" (Unrecognized key word: "foo".)'
        ),
        "search_path": 'syntax error, near token "\'"',
    }


def test_unknown_names_are_blamed_without_the_scratch_file_path() -> None:
    log = (
        'LOG:  unrecognized configuration parameter "no_such" in file "/tmp/pgwarden-y.secret" line 2\n'
        'FATAL:  configuration file "/tmp/pgwarden-y.secret" contains errors\n'
    )
    assert read_refusals(log, ["work_mem", "no_such"]) == {
        "no_such": 'unrecognized configuration parameter "no_such"'
    }


@pytest.mark.parametrize("log", ["", 'FATAL:  "root" execution of the PostgreSQL server is not permitted.\n'])
def test_a_failure_naming_no_setting_blames_none(log: str) -> None:
    assert read_refusals(log, ["work_mem"]) == {}


ERRORS = (
    ParameterError(
        "work_mem", "'lots'", 'invalid value for parameter "work_mem": "lots"; left out of pgwarden.conf'
    ),
    ParameterError("pg_stat_statements.max", "lots", "setting could not be applied: the server keeps ..."),
)


def _snapshot(local: LocalState) -> Snapshot:
    snap = fake.snapshot("node2", local)
    return replace(snap, member=member_record(snap.config, local))


def test_the_member_record_carries_config_errors_through_etcd() -> None:
    record = member_record(fake.node_config("node2"), replace(standby_local(), config_errors=ERRORS))
    assert record.config_errors == ERRORS
    assert decode_member(encode_member(record)) == record
    # A record written before the field existed still reads, without errors.
    old = encode_member(replace(record, config_errors=())).replace(',"config_errors":[]', "")
    assert "config_errors" not in old
    decoded = decode_member(old)
    assert decoded is not None and decoded.config_errors == ()


def test_patroni_document_lists_config_errors_and_an_empty_list_when_none() -> None:
    doc = status_document(_snapshot(replace(standby_local(), config_errors=ERRORS)))
    assert doc["config_errors"] == [
        {"name": "work_mem", "value": "'lots'", "error": ERRORS[0].error},
        {"name": "pg_stat_statements.max", "value": "lots", "error": ERRORS[1].error},
    ]
    assert status_document(_snapshot(standby_local()))["config_errors"] == []


def test_cluster_and_list_show_which_member_refuses_what() -> None:
    refusing = replace(member("node2"), config_errors=ERRORS[:1])
    v = view(members=[member("node1"), refusing, member("node3")])
    assert api_member_document(v, refusing)["config_errors"][0]["name"] == "work_mem"
    assert "config_errors" not in api_member_document(v, member("node3"))
    assert views.member_document(v, refusing)["config_errors"][0]["error"].startswith("invalid value")
    assert views.member_document(v, member("node3"))["config_errors"] == []
    console = Console(width=250, record=True)
    console.print(views.members_table(v))
    out = console.export_text()
    assert "CONFIG ERRORS on node2 (!)" in out
    row2 = next(line for line in out.splitlines() if "127.0.0.1:5434" in line)
    assert "running !" in row2
    assert f"! node2: work_mem = 'lots': {ERRORS[0].error}" in out


def test_metrics_count_config_errors_and_name_each_setting() -> None:
    text = (
        Metrics(SnapshotHolder(_snapshot(replace(standby_local(), config_errors=ERRORS)))).render().decode()
    )
    got = {
        family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples}
        for family in text_string_to_metric_families(text)
    }
    assert got["pgwarden_config_errors"][()] == 2.0
    assert got["pgwarden_config_error"] == {
        (("parameter", "work_mem"),): 1.0,
        (("parameter", "pg_stat_statements.max"),): 1.0,
    }
    quiet = Metrics(SnapshotHolder(_snapshot(standby_local()))).render().decode()
    assert "pgwarden_config_errors 0.0" in quiet
