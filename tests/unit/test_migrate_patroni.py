"""`pgwarden migrate from-patroni` on the Patroni configs of tests/fixtures/patroni: what maps, what
is reported, and that the result loads with pgwarden's own loader (or is refused with the fix)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from pgwarden.cli.main import app
from pgwarden.config import parse_node_config
from pgwarden.config.document import parse_yaml
from pgwarden.migrate.convert import Result, convert
from pgwarden.migrate.notes import Severity

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "patroni"
ENVIRONMENT = {
    "PATRONI_SCOPE": "demo",
    "PATRONI_NAME": "node2",
    "PATRONI_RESTAPI_LISTEN": "127.0.0.12:8008",
    "PATRONI_RESTAPI_USERNAME": "admin",
    "PATRONI_RESTAPI_PASSWORD": "api-pw",
    "PATRONI_ETCD3_HOSTS": "'127.0.0.21:2379','127.0.0.22:2379'",
    "PATRONI_POSTGRESQL_LISTEN": "127.0.0.12:5432",
    "PATRONI_POSTGRESQL_DATA_DIR": "/var/lib/postgresql/15/main",
    "PATRONI_SUPERUSER_USERNAME": "postgres",
    "PATRONI_SUPERUSER_PASSWORD": "su-pw",
    "PATRONI_REPLICATION_USERNAME": "replicator",
    "PATRONI_REPLICATION_PASSWORD": "re-pw",
    "PATRONI_REWIND_USERNAME": "rewinder",
    "PATRONI_admin_PASSWORD": "bootstrap-user",
}


def _convert(name: str, env: dict[str, str] | None = None, **kwargs: Any) -> Result:
    path = FIXTURES / name
    tree, lines = parse_yaml(path.read_text(), str(path))
    return convert(tree, lines, env or {}, **kwargs)


def _note(result: Result, source: str) -> Any:
    found = [n for n in result.notes if n.source == source]
    assert found, f"no note about {source}: {[n.source for n in result.notes]}"
    return found[0]


def test_documentation_example_converts_and_loads() -> None:
    result = _convert("postgres0.yml", workdir="/var/lib/patroni")
    assert result.valid, result.issues
    node = parse_node_config(result.config, "converted", env={})
    assert (node.cluster, node.name) == ("batman", "postgresql0")
    assert [str(h) for h in node.etcd.hosts] == ["127.0.0.1:2379"]
    assert node.etcd.prefix == "/pgwarden"  # never Patroni's /service: both run side by side
    assert node.postgresql.data_dir == "/var/lib/patroni/data/postgresql0"
    # unix_socket_directories '..' is relative to the data directory, as PostgreSQL reads it
    assert node.postgresql.socket_dir == "/var/lib/patroni/data"
    assert node.postgresql.pg_hba == (
        "host replication replicator 127.0.0.1/32 md5",
        "host all all 0.0.0.0/0 md5",
    )
    assert node.postgresql.parameters["cluster_name"] == "batman"
    assert node.bootstrap.use_pg_rewind is True
    assert node.postgresql.superuser.password == "zalando"
    rewind = _note(result, "postgresql.authentication.rewind")
    assert "superuser" in rewind.message and rewind.line == 40
    assert _note(result, "postgresql.pgpass").severity is Severity.WARNING


def test_relative_data_dir_without_workdir_is_an_error_with_the_fix() -> None:
    result = _convert("postgres0.yml")
    assert not result.valid
    note = _note(result, "postgresql.data_dir")
    assert note.severity is Severity.ERROR and "--workdir" in note.fix


def test_production_settings_map_or_are_reported_line_by_line() -> None:
    result = _convert("production-tls.yml")
    config = result.config
    assert config["api"]["tls"]["certfile"] == "/etc/patroni/tls/api.crt"
    assert config["api"]["auth"] == {"username": "patroni", "password": "api-secret"}
    assert config["log_level"] == "WARNING"
    assert config["postgresql"]["socket_dir"] == "/var/run/postgresql"
    assert config["postgresql"]["listen"] == "127.0.0.11:5432"
    assert config["callbacks"] == {
        "on_role_change": "/usr/local/bin/vip-follow",
        "on_start": "/usr/local/bin/notify",
    }
    assert config["tags"]["datacenter"] == "east"
    dcs = config["bootstrap"]["dcs"]
    assert dcs["primary_start_timeout"] == 300
    assert dcs["parameters"]["wal_level"] == "replica"
    assert dcs["parameters"]["wal_keep_size"] == "128MB"
    assert "hot_standby" not in dcs["parameters"] and "port" not in config["postgresql"]["parameters"]
    for source in (
        "bootstrap.dcs.slots",
        "postgresql.create_replica_methods",
        "postgresql.listen",
    ):
        assert _note(result, source).severity is Severity.WARNING
    assert dcs["failsafe_mode"] is True
    assert config["watchdog"] == {"mode": "automatic", "device": "/dev/watchdog", "safety_margin": 5}
    # Every note about the file names its line; the whole report is in file order by line.
    assert all(n.line for n in result.notes if not n.source.startswith("PATRONI_"))


@pytest.mark.parametrize(
    ("patroni_key", "target", "value"),
    [
        ("restapi.cafile", ("api", "tls", "cafile"), "/etc/patroni/tls/ca.crt"),
        ("restapi.verify_client", ("api", "tls", "verify_client"), "optional"),
        ("restapi.allowlist", ("api", "allowlist"), ["127.0.0.0/24"]),
        ("etcd3.protocol", ("etcd", "protocol"), "https"),
        ("etcd3.cacert", ("etcd", "cacert"), "/etc/patroni/tls/ca.crt"),
        ("etcd3.cert", ("etcd", "cert"), "/etc/patroni/tls/etcd-client.crt"),
        ("etcd3.key", ("etcd", "key"), "/etc/patroni/tls/etcd-client.key"),
        ("etcd3.username", ("etcd", "username"), "patroni"),
        ("etcd3.password", ("etcd", "password"), "etcd-secret"),
    ],
)
def test_tls_and_auth_keys_map_to_their_pgwarden_names(
    patroni_key: str, target: tuple[str, ...], value: object
) -> None:
    result = _convert("production-tls.yml")
    section: Any = result.config
    for key in target:
        section = section.get(key) if isinstance(section, dict) else None
    assert section == value, patroni_key
    assert not any(n.source == patroni_key for n in result.notes), "carried over without a note"


def test_etcd_over_tls_with_etcd_auth_converts_into_a_node_that_loads() -> None:
    result = _convert("production-tls.yml")
    assert result.valid, result.issues
    etcd = parse_node_config(result.config, "converted", env={}).etcd
    assert (etcd.protocol, etcd.cert, etcd.username) == (
        "https",
        "/etc/patroni/tls/etcd-client.crt",
        "patroni",
    )


def test_environment_variables_are_read_with_the_pgwarden_name() -> None:
    result = _convert("environment.yml", env=ENVIRONMENT)
    assert result.valid, result.issues
    node = parse_node_config(result.config, "converted", env={})
    assert (node.cluster, node.name) == ("demo", "node2")
    assert node.api.username == "admin" and node.postgresql.superuser.password == "su-pw"
    assert [str(h) for h in node.etcd.hosts] == ["127.0.0.21:2379", "127.0.0.22:2379"]
    password = _note(result, "PATRONI_SUPERUSER_PASSWORD")
    assert password.severity is Severity.WARNING
    assert "PGWARDEN_POSTGRESQL_AUTHENTICATION_SUPERUSER_PASSWORD" in password.message
    assert "PGWARDEN_NAME" in _note(result, "PATRONI_NAME").message
    assert "does not map" in _note(result, "PATRONI_REWIND_USERNAME").message
    assert _note(result, "PATRONI_admin_PASSWORD").severity is Severity.INFO


def test_open_api_is_refused_with_the_fix() -> None:
    result = _convert("open-api.yml")
    assert not result.valid
    issue = next(i for i in result.issues if i.path == "api.auth")
    assert "api.auth" in issue.fix


def test_live_dynamic_config_replaces_bootstrap_and_pause_is_not_carried() -> None:
    live = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "pause": True,
            "postgresql": {"parameters": {"work_mem": "8MB"}, "use_slots": True}}  # fmt: skip
    result = _convert("postgres0.yml", workdir="/srv", dcs=live)
    dcs = result.config["bootstrap"]["dcs"]
    assert dcs == {"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "parameters": {"work_mem": "8MB"}}
    assert _note(result, "dcs.pause").severity is Severity.INFO
    assert _note(result, "bootstrap.dcs").severity is Severity.INFO


def test_cli_writes_0600_reports_on_stderr_and_json(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "node.yml"
    source = str(FIXTURES / "postgres0.yml")
    args = ["migrate", "from-patroni", source, "-o", str(out), "--workdir", "/var/lib/patroni"]
    done = runner.invoke(app, args, env={})
    assert done.exit_code == 0, done.output
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    loaded = yaml.safe_load(out.read_text())
    parse_node_config(loaded, str(out), env={})
    again = runner.invoke(app, args, env={})
    assert again.exit_code == 2 and "--force" in again.output
    as_json = runner.invoke(app, [*args, "--force", "--format", "json"], env={})
    report = json.loads(as_json.stdout)
    assert report["valid"] is True
    lines = [n["line"] for n in report["notes"] if n["line"] is not None]
    assert lines == sorted(lines)
    refused = runner.invoke(app, ["migrate", "from-patroni", str(FIXTURES / "open-api.yml")], env={})
    assert refused.exit_code == 1 and "api.auth" in refused.output


def test_the_bench_patroni_config_converts_and_loads(tmp_path: Path) -> None:
    """The config bench/patroni_cluster.py runs Patroni with (the one the migration test moves)."""
    from bench.cluster import Node
    from bench.patroni_cluster import FASTEST, PatroniCluster
    from pgwarden.model.node import Address

    cluster = PatroniCluster(dict(FASTEST), "Patroni")
    cluster.nodes = [Node("node1", "127.0.0.11", 5432, 8008, tmp_path / "node1" / "data")]
    cluster._etcd = type("Etcd", (), {"endpoints": [Address("127.0.0.21", 2379)]})()  # type: ignore[assignment]
    result = convert(cluster.node_config(0), {}, {})
    assert result.valid, (result.issues, [n.render("bench") for n in result.notes])
    node = parse_node_config(result.config, "converted", env={})
    assert node.api.username == "bench" and node.postgresql.socket_dir == str(tmp_path / "node1" / "run")
    assert node.bootstrap.parameters == {"shared_buffers": "32MB", "max_connections": 50}
    assert node.bootstrap.ttl == FASTEST["ttl"]


def test_cli_refuses_a_patroni_config_or_dcs_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    runner = CliRunner()
    listed = tmp_path / "list.yml"
    listed.write_text("- ttl: 30\n")
    broken = tmp_path / "broken.yml"
    broken.write_text("ttl: [30\n")
    source = str(FIXTURES / "postgres0.yml")
    cases = {
        (str(listed),): f"{listed}: not a Patroni config",
        (str(broken),): str(broken),
        (source, "--dcs", str(listed)): f"{listed}: the dynamic config is not a mapping",
        (source, "--dcs", str(broken)): str(broken),
    }
    for args, said in cases.items():
        done = runner.invoke(app, ["migrate", "from-patroni", *args, "-o", str(tmp_path / "out.yml")], env={})
        assert done.exit_code == 2 and said in done.output, (args, done.output)
