"""Rendering of pgwarden.conf and pg_hba.conf, connection strings, slot names, pg_controldata parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import replace

import pytest

from pgwarden.model.local import ControlState
from pgwarden.model.lsn import Lsn
from pgwarden.model.node import Address, Credentials, PostgresSettings
from pgwarden.model.parameters import OWNED
from pgwarden.postgres.conninfo import StandbyUpstream, make_conninfo, parse_conninfo
from pgwarden.postgres.controldata import parse_controldata
from pgwarden.postgres.roles import scram_verifier
from pgwarden.postgres.settings import (
    ManagedConf,
    parse_managed,
    quote,
    render_conf,
    render_hba,
)
from pgwarden.postgres.slots import slot_name

SETTINGS = PostgresSettings(
    listen=Address("127.0.2.11", 5432),
    connect_address=Address("127.0.2.11", 5432),
    data_dir="/srv/pg/data",
    bin_dir="/usr/lib/postgresql/15/bin",
    superuser=Credentials("postgres", "su"),
    replication=Credentials("replicator", "it's a \\secret"),
    socket_dir="/tmp/pgw/s1",
)
UPSTREAM = StandbyUpstream("node2", "127.0.2.12", 5433)


def conf_lines(text: str) -> dict[str, str]:
    """name -> rendered value of every setting line (comments skipped); duplicates fail."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, value = line.partition(" = ")
        assert name not in found, f"{name} set twice"
        found[name] = value
    return found


def unquote(value: str) -> str:
    """Undo postgresql.conf string quoting, as PostgreSQL's GUC scanner does."""
    assert value.startswith("'") and value.endswith("'")
    body, out, i = value[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\":
            out.append(body[i + 1])
            i += 2
        elif body[i] == "'":
            assert body[i + 1] == "'"
            out.append("'")
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


# ---- pgwarden.conf -------------------------------------------------------------------------


def test_primary_conf_has_replication_settings_and_no_upstream() -> None:
    lines = conf_lines(render_conf(SETTINGS, "node1", ManagedConf()))
    assert lines["listen_addresses"] == "'127.0.2.11'"
    assert lines["port"] == "5432"
    assert lines["unix_socket_directories"] == "'/tmp/pgw/s1'"
    assert lines["hba_file"] == "'/srv/pg/data/pg_hba.conf'"
    assert lines["wal_level"] == "'replica'"
    assert lines["hot_standby"] == "on"
    assert lines["max_wal_senders"] == "10"
    assert lines["max_replication_slots"] == "10"
    assert lines["recovery_target_timeline"] == "'latest'"
    assert "wal_keep_size" in lines and "max_slot_wal_keep_size" in lines
    assert lines["primary_conninfo"] == "''"
    assert lines["primary_slot_name"] == "''"
    assert lines["synchronous_standby_names"] == "''"


def test_socket_dir_defaults_to_var_run_postgresql() -> None:
    lines = conf_lines(render_conf(replace(SETTINGS, socket_dir=None), "node1", ManagedConf()))
    assert lines["unix_socket_directories"] == "'/var/run/postgresql'"


def test_standby_conf_names_upstream_slot_and_itself() -> None:
    text = render_conf(SETTINGS, "node1", ManagedConf(upstream=UPSTREAM, slot="node1"))
    lines = conf_lines(text)
    conninfo = parse_conninfo(unquote(lines["primary_conninfo"]))
    assert conninfo["host"] == "127.0.2.12"
    assert conninfo["port"] == "5433"
    assert conninfo["user"] == "replicator"
    assert conninfo["password"] == "it's a \\secret"
    assert conninfo["application_name"] == "node1"
    assert int(conninfo["connect_timeout"]) > 0
    assert lines["primary_slot_name"] == "'node1'"


def test_synchronous_standby_names_is_rendered_as_given() -> None:
    text = render_conf(SETTINGS, "node1", ManagedConf(synchronous_standby_names='ANY 1 ("node2", node3)'))
    assert unquote(conf_lines(text)["synchronous_standby_names"]) == 'ANY 1 ("node2", node3)'


def test_values_are_quoted_and_typed() -> None:
    settings = replace(
        SETTINGS,
        parameters={
            "log_line_prefix": "%m [%p] it's \\here ",
            "work_mem": "4MB",
            "max_connections": 50,
            "random_page_cost": 1.5,
            "log_connections": True,
        },
    )
    lines = conf_lines(render_conf(settings, "node1", ManagedConf()))
    assert unquote(lines["log_line_prefix"]) == "%m [%p] it's \\here "
    assert lines["work_mem"] == "'4MB'"
    assert lines["max_connections"] == "50"
    assert lines["random_page_cost"] == "1.5"
    assert lines["log_connections"] == "on"


def test_node_parameters_override_cluster_parameters_which_override_defaults() -> None:
    settings = replace(SETTINGS, parameters={"work_mem": "8MB"})
    managed = ManagedConf(cluster_parameters={"work_mem": "4MB", "max_wal_senders": 20})
    lines = conf_lines(render_conf(settings, "node1", managed))
    assert lines["work_mem"] == "'8MB'"
    assert lines["max_wal_senders"] == "20"


def test_managed_parameters_cannot_be_overridden() -> None:
    settings = replace(SETTINGS, parameters={"port": 6000, "hot_standby": False, "wal_level": "minimal"})
    managed = ManagedConf(cluster_parameters={"primary_conninfo": "host=evil", "Include": "/etc/passwd"})
    text = render_conf(settings, "node1", managed)
    lines = conf_lines(text)
    assert lines["port"] == "5432"
    assert lines["hot_standby"] == "on"
    assert lines["wal_level"] == "'replica'"
    assert lines["primary_conninfo"] == "''"
    assert "Include" not in lines and "include" not in lines
    assert "# ignored port: pgwarden manages it" in text
    assert "# ignored include: a directive that would include another file" in text


def test_every_owned_parameter_is_left_out() -> None:
    """One list: what the validator refuses as owned is exactly what the renderer never takes."""
    managed = ManagedConf(cluster_parameters={name: "x" for name in OWNED})
    text = render_conf(SETTINGS, "node1", managed)
    for name in OWNED:
        assert f"# ignored {name}: pgwarden manages it" in text
        assert conf_lines(text).get(name) != "'x'"


def test_logical_wal_level_is_allowed() -> None:
    settings = replace(SETTINGS, parameters={"wal_level": "logical"})
    assert conf_lines(render_conf(settings, "node1", ManagedConf()))["wal_level"] == "'logical'"


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ({"work_mem": "4MB\nport = 1"}, "# ignored work_mem: a value postgresql.conf cannot hold"),
        ({"bad name": 1}, "# ignored 'bad name': not a parameter name"),
        ({"x": float("nan")}, "# ignored x: a value postgresql.conf cannot hold"),
    ],
)
def test_unrenderable_parameters_are_left_out_with_a_comment(bad: dict[str, str | float], why: str) -> None:
    """Values written to etcd behind the validation's back never reach the file (nor break it)."""
    text = render_conf(SETTINGS, "node1", ManagedConf(cluster_parameters=bad))
    assert why in text
    assert set(conf_lines(text)).isdisjoint(bad)


def test_parameters_postgresql_refused_are_left_out_with_its_message() -> None:
    managed = ManagedConf(cluster_parameters={"work_mem": "lots", "max_connections": 20})
    refused = {"work_mem": 'invalid value for parameter "work_mem": "lots"'}
    text = render_conf(SETTINGS, "node1", managed, refused)
    lines = conf_lines(text)
    assert "work_mem" not in lines and lines["max_connections"] == "20"
    assert '# refused work_mem = \'lots\': invalid value for parameter "work_mem": "lots"' in text


def test_quote_doubles_quotes_and_escapes_backslashes() -> None:
    assert quote("a'b\\c") == "'a''b\\\\c'"


def test_managed_inputs_survive_a_round_trip_through_the_file() -> None:
    managed = ManagedConf(
        upstream=UPSTREAM,
        slot="node1",
        synchronous_standby_names="node2",
        cluster_parameters={"work_mem": "4MB", "max_connections": 30, "jit": False},
    )
    assert parse_managed(render_conf(SETTINGS, "node1", managed)) == managed
    assert parse_managed("garbage") == ManagedConf()
    assert parse_managed("# pgwarden-state: {not json") == ManagedConf()


def test_the_password_is_not_stored_in_the_state_line() -> None:
    text = render_conf(SETTINGS, "node1", ManagedConf(upstream=UPSTREAM))
    state_line = next(line for line in text.splitlines() if line.startswith("# pgwarden-state"))
    assert "secret" not in state_line


# ---- pg_hba.conf ---------------------------------------------------------------------------


def hba_rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_hba_allows_superuser_socket_replication_and_loopback_only() -> None:
    rows = hba_rows(render_hba(SETTINGS))
    assert rows == [
        ["local", "all", "postgres", "scram-sha-256"],
        ["host", "replication", "replicator", "127.0.0.0/8", "scram-sha-256"],
        ["host", "all", "all", "127.0.0.0/8", "scram-sha-256"],
    ]


def test_configured_hba_lines_come_before_the_catch_all() -> None:
    line = "host replication replicator 127.0.5.0/24 scram-sha-256"
    rows = hba_rows(render_hba(replace(SETTINGS, pg_hba=(line,))))
    assert rows[2] == line.split()
    assert rows[-1][:3] == ["host", "all", "all"]


def test_hba_quotes_unusual_user_names_and_keywords() -> None:
    settings = replace(SETTINGS, superuser=Credentials("all"), replication=Credentials("repl user"))
    text = render_hba(settings)
    assert 'local   all          "all"  scram-sha-256' in text
    assert '"repl user"' in text
    with pytest.raises(ValueError):
        render_hba(replace(SETTINGS, superuser=Credentials('x"y')))


# ---- connection strings, slots, roles --------------------------------------------------------


@pytest.mark.parametrize("value", ["plain", "with space", "it's", "back\\slash", "", "a=b"])
def test_conninfo_values_round_trip(value: str) -> None:
    text = make_conninfo({"host": "h", "password": value, "port": 5432, "skipped": None})
    assert parse_conninfo(text) == {"host": "h", "password": value, "port": "5432"}


def test_parse_conninfo_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_conninfo("host")
    with pytest.raises(ValueError):
        parse_conninfo("password='open")


@pytest.mark.parametrize(
    ("member", "slot"),
    [("node1", "node1"), ("Node-2.dc1", "node_2_dc1"), ("x" * 80, "x" * 63), ("é", "_")],
)
def test_slot_names(member: str, slot: str) -> None:
    assert slot_name(member) == slot


def test_scram_verifier_matches_rfc_7677_construction() -> None:
    salt = b"0123456789abcdef"
    verifier = scram_verifier("pencil", salt)
    method, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt_b64 = iterations_salt.split(":")
    stored, server = keys.split(":")
    assert method == "SCRAM-SHA-256"
    assert int(iterations) == 4096
    assert base64.b64decode(salt_b64) == salt
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert base64.b64decode(stored) == hashlib.sha256(client_key).digest()
    assert base64.b64decode(server) == hmac.new(salted, b"Server Key", hashlib.sha256).digest()


# ---- pg_controldata ------------------------------------------------------------------------

CONTROLDATA = """\
pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7712208623002292549
Database cluster state:               in archive recovery
pg_control last modified:             Wed Nov 25 20:28:18 2026
Latest checkpoint location:           0/17414F8
Latest checkpoint's REDO location:    0/17414C0
Latest checkpoint's REDO WAL file:    000000020000000000000001
Latest checkpoint's TimeLineID:       2
Latest checkpoint's PrevTimeLineID:   2
Latest checkpoint's full_page_writes: on
Latest checkpoint's NextXID:          0:724
Time of latest checkpoint:            Wed Nov 25 20:28:18 2026
Minimum recovery ending location:     0/3000060
Min recovery ending loc's timeline:   2
Backup start location:                0/0
Data page checksum version:           1
"""


def test_parse_controldata() -> None:
    data = parse_controldata(CONTROLDATA)
    assert data.system_id == "7712208623002292549"
    assert data.state is ControlState.IN_ARCHIVE_RECOVERY
    assert data.timeline == 2
    assert data.checkpoint_lsn == Lsn.parse("0/17414F8")
    assert data.min_recovery_lsn == Lsn.parse("0/3000060")


def test_parse_controldata_of_a_clean_primary() -> None:
    text = CONTROLDATA.replace("in archive recovery", "shut down").replace("0/3000060", "0/0")
    data = parse_controldata(text)
    assert data.state is ControlState.SHUT_DOWN
    assert data.min_recovery_lsn is None


def test_unknown_cluster_states_map_to_other() -> None:
    data = parse_controldata(CONTROLDATA.replace("in archive recovery", "shutting down"))
    assert data.state is ControlState.OTHER


def test_parse_controldata_names_a_missing_field() -> None:
    text = "\n".join(line for line in CONTROLDATA.splitlines() if "TimeLineID" not in line)
    with pytest.raises(ValueError, match="TimeLineID"):
        parse_controldata(text)
