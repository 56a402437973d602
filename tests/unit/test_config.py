"""Node config: loading YAML files, defaults, validation messages and environment overrides."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import pytest
import yaml

from pgwarden.config import (
    ENV_VARIABLES,
    ConfigError,
    example_node_config,
    load_node_config,
    parse_node_config,
)
from pgwarden.model import Address, DynamicConfig, SyncFallback, SyncMode, Tags
from pgwarden.model.node import WatchdogSettings

MINIMAL: dict[str, Any] = {
    "cluster": "main",
    "name": "node1",
    "etcd": {"hosts": ["127.0.0.21:2379", "127.0.0.22:2379"]},
    "api": {"listen": "127.0.0.11:8008"},
    "postgresql": {
        "listen": "127.0.0.11:5432",
        "data_dir": "/var/lib/postgresql/15/main",
        "authentication": {
            "superuser": {"username": "postgres", "password": "su-secret"},
            "replication": {"username": "replicator", "password": "repl-secret"},
        },
    },
}


def minimal(**changes: Any) -> dict[str, Any]:
    """MINIMAL with dotted-path changes applied; a value of ... deletes the key."""
    data = copy.deepcopy(MINIMAL)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        section = data
        for key in parents:
            section = section.setdefault(key, {})
        if value is ...:
            del section[last]
        else:
            section[last] = value
    return data


def write(tmp_path: pathlib.Path, data: Any, name: str = "node.yml") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def error_of(data: Any, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_node_config(data, "node.yml", env=env or {})
    return caught.value


# --- what a valid file produces ----------------------------------------------------------------


def test_minimal_config_takes_defaults_from_the_model() -> None:
    cfg = parse_node_config(MINIMAL, "node.yml", env={})
    assert cfg.cluster == "main" and cfg.name == "node1" and cfg.log_level == "INFO"
    assert cfg.etcd.hosts == (Address("127.0.0.21", 2379), Address("127.0.0.22", 2379))
    assert cfg.etcd.prefix == "/pgwarden" and cfg.etcd.bind_address is None
    assert cfg.api.connect_address == cfg.api.listen == Address("127.0.0.11", 8008)
    assert cfg.api.url == "http://127.0.0.11:8008"
    assert cfg.postgresql.connect_address == Address("127.0.0.11", 5432)
    assert cfg.postgresql.bin_dir == "/usr/lib/postgresql/15/bin"
    assert cfg.postgresql.superuser.password == "su-secret"
    assert cfg.postgresql.replication.username == "replicator"
    assert cfg.postgresql.parameters == {} and cfg.postgresql.pg_hba == ()
    assert cfg.tags == Tags()
    assert cfg.bootstrap == DynamicConfig()


def test_example_config_loads_from_a_file(tmp_path: pathlib.Path) -> None:
    cfg = load_node_config(write(tmp_path, example_node_config()), env={})
    assert cfg.name == "node1"
    assert cfg.api.username == "admin"
    assert cfg.tags.custom == {"datacenter": "dc1"}
    assert cfg.postgresql.parameters == {"shared_buffers": "128MB"}
    assert cfg.bootstrap.ttl == 30
    assert cfg.bootstrap.use_pg_rewind is True
    assert cfg.bootstrap.parameters == {"max_connections": 200, "wal_level": "replica"}


def test_full_config_maps_every_section(tmp_path: pathlib.Path) -> None:
    data = minimal(
        log_level="debug",
        etcd__hosts="127.0.0.21:2379, 127.0.0.22:2379,127.0.0.23:2379",
        etcd__prefix="/clusters/",
        etcd__bind_address="127.0.0.11",
        api__listen="0.0.0.0:8008",
        api__connect_address="127.0.0.11:8008",
        api__auth={"username": "admin", "password": "pw"},
        api__tls={"certfile": "/etc/pgwarden/api.crt", "keyfile": "/etc/pgwarden/api.key"},
        postgresql__listen="[::1]:5433",
        postgresql__connect_address="127.0.0.11:5433",
        postgresql__run_as="pgwtest1",
        postgresql__socket_dir="/var/run/postgresql",
        postgresql__parameters={"shared_buffers": "128MB", "max_wal_senders": 10},
        postgresql__pg_hba=["host all all 127.0.0.0/8 scram-sha-256"],
        tags={"nofailover": True, "failover_priority": 0, "replicatefrom": "node2", "zone": 3},
        bootstrap={"dcs": {"ttl": 10, "loop_wait": 2, "synchronous_mode": "strict"}},
    )
    cfg = load_node_config(write(tmp_path, data), env={})
    assert cfg.log_level == "DEBUG"
    assert [str(a) for a in cfg.etcd.hosts] == ["127.0.0.21:2379", "127.0.0.22:2379", "127.0.0.23:2379"]
    assert cfg.etcd.prefix == "/clusters" and cfg.etcd.bind_address == "127.0.0.11"
    assert cfg.api.listen == Address("0.0.0.0", 8008)
    assert cfg.api.url == "https://127.0.0.11:8008"
    assert (cfg.api.username, cfg.api.password) == ("admin", "pw")
    assert cfg.api.keyfile == "/etc/pgwarden/api.key"
    assert cfg.postgresql.listen == Address("::1", 5433)
    assert cfg.postgresql.run_as == "pgwtest1"
    assert cfg.postgresql.parameters == {"shared_buffers": "128MB", "max_wal_senders": 10}
    assert cfg.postgresql.pg_hba == ("host all all 127.0.0.0/8 scram-sha-256",)
    assert cfg.tags == Tags(nofailover=True, failover_priority=0, replicatefrom="node2", custom={"zone": "3"})
    assert cfg.bootstrap.synchronous_mode is SyncMode.ON
    assert cfg.bootstrap.synchronous_fallback is SyncFallback.BLOCK


def test_custom_tags_are_stringified() -> None:
    cfg = parse_node_config(minimal(tags={"a": True, "b": False, "c": 1.5, "d": "x"}), "n", env={})
    assert cfg.tags.custom == {"a": "true", "b": "false", "c": "1.5", "d": "x"}


def test_parse_does_not_modify_the_callers_mapping() -> None:
    data = minimal()
    parse_node_config(data, "node.yml", env={"PGWARDEN_NAME": "node9"})
    assert data == MINIMAL


# --- validation: every kind of problem names the source, the field and the fix ------------------


@pytest.mark.parametrize(
    ("changes", "field", "hint"),
    [
        ({"clustr": "main"}, "clustr", "did you mean `cluster`?"),
        ({"postgresql__data_dri": "/x"}, "postgresql.data_dri", "did you mean `data_dir`?"),
        ({"api__auth": {"username": "a", "pasword": "b"}}, "api.auth.pasword", "`password`"),
        ({"scope": "main"}, "scope", "did you mean `cluster`?"),  # Patroni's name
        ({"bootstrap": {"dcs": {"loop_wiat": 1}}}, "bootstrap.dcs.loop_wiat", "`loop_wait`"),
        ({"etcd__zzz": 1}, "etcd.zzz", "the keys allowed here are: hosts, prefix, bind_address"),
    ],
)
def test_unknown_key_is_named_with_the_closest_known_key(
    changes: dict[str, Any], field: str, hint: str
) -> None:
    message = str(error_of(minimal(**changes)))
    assert message.startswith("node.yml: ")
    assert f"{field}: unknown key `{field.rsplit('.', 1)[-1]}`" in message
    assert hint in message


def test_unknown_keys_are_free_in_tags_and_parameters() -> None:
    data = minimal(tags={"rack": "r1"}, postgresql__parameters={"my.custom_setting": "on"})
    cfg = parse_node_config(data, "node.yml", env={})
    assert cfg.tags.custom == {"rack": "r1"}
    assert cfg.postgresql.parameters == {"my.custom_setting": "on"}


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"bootstrap": {"dcs": {"ttl": "abc"}}}, "bootstrap.dcs.ttl", ["valid number", "'abc'", "ttl: 30"]),
        ({"postgresql__listen": "127.0.0.1:abc"}, "postgresql.listen", ["port 'abc'", "host:port"]),
        ({"api__listen": "127.0.0.1:70000"}, "api.listen", ["1 to 65535", "host:port"]),
        ({"etcd__hosts": ["127.0.0.21:2379", "etcd2"]}, "etcd.hosts[1]", ["'etcd2'", "host:port"]),
        ({"etcd__hosts": []}, "etcd.hosts", ["is empty", "e.g. `hosts: ["]),
        ({"tags": {"nofailover": "yes"}}, "tags.nofailover", ["valid boolean", "true or false"]),
        ({"tags": {"failover_priority": "high"}}, "tags.failover_priority", ["valid integer"]),
        ({"tags": {"mine": [1, 2]}}, "tags.mine", ["single value"]),
        ({"api": "127.0.0.11:8008"}, "api", ["mapping", "key: value"]),
        ({"postgresql__data_dir": "data"}, "postgresql.data_dir", ["absolute path"]),
        (
            {"postgresql__parameters": {"max connections": 1}},
            "postgresql.parameters.max connections",
            ["parameter name"],
        ),
        (
            {"postgresql__parameters": {"work_mem": {"a": 1}}},
            "postgresql.parameters.work_mem",
            ["string, number or boolean"],
        ),
        ({"log_level": "LOUD"}, "log_level", ["DEBUG, INFO"]),
        ({"etcd__prefix": "pgwarden"}, "etcd.prefix", ["starting with '/'"]),
        ({"tags": {1: "x"}}, "tags[1]", ["key 1 is not text", "quote the key"]),
    ],
)
def test_wrong_type_names_field_and_fix(changes: dict[str, Any], field: str, words: list[str]) -> None:
    message = str(error_of(minimal(**changes)))
    assert f"node.yml: {field}: " in message
    assert "Fix: " in message
    for word in words:
        assert word in message


def test_secrets_are_not_echoed_in_errors() -> None:
    message = str(error_of(minimal(postgresql__authentication__superuser__password=123456)))
    assert "123456" not in message
    assert "postgresql.authentication.superuser.password" in message
    assert "quotes" in message
    message = str(error_of(minimal(api__auth={"username": "admin", "password": 654321})))
    assert "654321" not in message
    assert "api.auth.password: has an unusable value (not shown: it is secret)" in message


def test_impossible_timing_is_rejected_with_the_arithmetic() -> None:
    data = minimal(bootstrap={"dcs": {"ttl": 10, "loop_wait": 5, "retry_timeout": 3}})
    message = str(error_of(data))
    assert "node.yml: bootstrap.dcs.ttl: " in message
    assert "loop_wait + 2 * retry_timeout = 5 + 2 * 3 = 11 exceeds ttl = 10" in message
    assert "raise ttl to at least 11" in message


def test_ttl_below_etcd_minimum_lease_is_rejected() -> None:
    message = str(error_of(minimal(bootstrap={"dcs": {"ttl": 1, "loop_wait": 0.1, "retry_timeout": 0.5}})))
    assert (
        "bootstrap.dcs.ttl: 1 s is below the lowest accepted value, 2 s: etcd refuses shorter leases"
        in message
    )
    assert "set ttl within 2 s to 600 s" in message


@pytest.mark.parametrize(
    "key", ["ttl", "loop_wait", "retry_timeout", "primary_start_timeout", "member_slots_ttl"]
)
def test_times_must_be_positive(key: str) -> None:
    message = str(error_of(minimal(bootstrap={"dcs": {key: 0}})))
    assert f"bootstrap.dcs.{key}: 0 s is below the lowest accepted value" in message


def test_missing_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "nope.yml"
    with pytest.raises(ConfigError) as caught:
        load_node_config(path, env={})
    assert str(caught.value).startswith(f"{path}: file not found. Fix: check the path")


def test_unreadable_file(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, MINIMAL)

    # Tests run as root, for whom chmod 000 changes nothing; so the read itself is made to fail.
    def denied(self: pathlib.Path, *args: Any, **kwargs: Any) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(pathlib.Path, "read_text", denied)
    with pytest.raises(ConfigError) as caught:
        load_node_config(path, env={})
    assert str(caught.value).startswith(f"{path}: permission denied. Fix: make the file readable")


def test_directory_instead_of_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_node_config(tmp_path, env={})


def test_malformed_yaml_reports_the_line(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "cluster: main\nname: node1\napi:\n  listen: [127.0.0.1:8008\n  x: y: z\n")
    with pytest.raises(ConfigError) as caught:
        load_node_config(path, env={})
    message = str(caught.value)
    assert message.startswith(f"{path}:5: malformed YAML")
    assert "near line 5" in message


@pytest.mark.parametrize(("text", "what"), [("- a\n- b\n", "list"), ("just text\n", "str")])
def test_top_level_must_be_a_mapping(tmp_path: pathlib.Path, text: str, what: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_node_config(write(tmp_path, text), env={})
    assert f"the top level is a {what}, not a mapping" in str(caught.value)
    assert "Fix: write `key: value` lines" in str(caught.value)


def test_empty_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="the file is empty"):
        load_node_config(write(tmp_path, "# nothing yet\n"), env={})


def test_duplicate_keys_are_refused(tmp_path: pathlib.Path) -> None:
    text = yaml.safe_dump(MINIMAL, sort_keys=False) + "name: node2\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_node_config(path, env={})
    assert "name: key appears twice (lines 2 and" in str(caught.value)


def test_field_errors_in_files_carry_the_line_number(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, yaml.safe_dump(minimal(postgresql__listen="localhost"), sort_keys=False))
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "localhost" in text)
    with pytest.raises(ConfigError) as caught:
        load_node_config(path, env={})
    assert str(caught.value).startswith(f"{path}:{line}: postgresql.listen: ")


@pytest.mark.parametrize(
    "field",
    [
        "cluster",
        "name",
        "etcd__hosts",
        "api__listen",
        "postgresql__listen",
        "postgresql__data_dir",
        "postgresql__authentication__superuser__username",
        "postgresql__authentication__replication__username",
    ],
)
def test_missing_required_field(field: str) -> None:
    message = str(error_of(minimal(**{field: ...})))
    dotted = field.replace("__", ".")
    assert f"node.yml: {dotted}: is required but missing. Fix: add it " in message
    assert "e.g. `" in message


@pytest.mark.parametrize("field", ["cluster", "name"])
@pytest.mark.parametrize("bad", ["-node", "node 1", "node/1", "", "nöde", ".x"])
def test_names_must_be_usable_as_etcd_keys_and_slot_names(field: str, bad: str) -> None:
    message = str(error_of(minimal(**{field: bad})))
    assert f"node.yml: {field}: " in message
    assert "starting with a letter or digit" in message


@pytest.mark.parametrize("good", ["node1", "N", "0", "pg-1.dc_2"])
def test_valid_names(good: str) -> None:
    assert parse_node_config(minimal(name=good), "node.yml", env={}).name == good


@pytest.mark.parametrize("section", ["api", "postgresql"])
def test_wildcard_listen_needs_a_connect_address(section: str) -> None:
    message = str(error_of(minimal(**{f"{section}__listen": "0.0.0.0:7000"})))
    assert f"node.yml: {section}.connect_address: {section}.listen is 0.0.0.0:7000" in message
    assert f"set {section}.connect_address" in message
    message = str(error_of(minimal(**{f"{section}__connect_address": "0.0.0.0:7000"})))
    assert "wildcard address" in message


def test_api_and_postgres_cannot_share_an_address() -> None:
    message = str(error_of(minimal(api__listen="127.0.0.11:5432")))
    assert "api.listen: the REST API and PostgreSQL both listen on 127.0.0.11:5432" in message


@pytest.mark.parametrize(
    "listen",
    ["0.0.0.0:8008", "[::]:8008", "203.0.113.5:8008", "db1.example.net:8008", "[::ffff:7f00:1]:8008"],
)
def test_an_api_beyond_loopback_without_auth_is_refused_unless_allowed_explicitly(listen: str) -> None:
    data = minimal(api__listen=listen, api__connect_address="127.0.0.11:8008")
    error = error_of(data)
    assert [issue.path for issue in error.issues] == ["api.auth"]
    assert "without api.auth anyone who reaches it could switch over" in str(error)
    assert "allow_unauthenticated_writes: true" in str(error)
    allowed = parse_node_config(
        {**data, "api": {**data["api"], "allow_unauthenticated_writes": True}}, "n", env={}
    )
    assert allowed.api.open_writes and allowed.api.allow_unauthenticated_writes
    with_auth = minimal(
        api__listen=listen,
        api__connect_address="127.0.0.11:8008",
        api__auth={"username": "a", "password": "b"},
    )
    assert not parse_node_config(with_auth, "n", env={}).api.open_writes


@pytest.mark.parametrize("listen", ["127.0.0.11:8008", "127.255.0.1:8008", "[::1]:8008", "localhost:8008"])
def test_a_loopback_api_needs_no_auth(listen: str) -> None:
    cfg = parse_node_config(minimal(api__listen=listen), "node.yml", env={})
    assert cfg.api.loopback_only and not cfg.api.open_writes


def test_api_limits_have_defaults_and_bounds() -> None:
    cfg = parse_node_config(minimal(), "node.yml", env={})
    assert (cfg.api.max_connections, cfg.api.request_timeout, cfg.api.idle_timeout) == (256, 5.0, 10.0)
    tuned = minimal(api__max_connections=1000, api__request_timeout=2.5, api__idle_timeout=60)
    cfg = parse_node_config(tuned, "node.yml", env={})
    assert (cfg.api.max_connections, cfg.api.request_timeout, cfg.api.idle_timeout) == (1000, 2.5, 60)
    for key, bad in (("max_connections", 1), ("request_timeout", 0), ("idle_timeout", -1)):
        assert f"api.{key}" in str(error_of(minimal(**{f"api__{key}": bad})))


def test_all_problems_are_reported_at_once() -> None:
    data = minimal(name="-x", api__listen="nope", bootstrap={"dcs": {"ttl": "abc"}})
    error = error_of(data)
    assert [issue.path for issue in error.issues] == ["name", "api.listen", "bootstrap.dcs.ttl"]
    assert str(error).startswith("node.yml: 3 problems\n")


# --- environment overrides ---------------------------------------------------------------------


def test_env_overrides_values_before_validation() -> None:
    env = {
        "PGWARDEN_NAME": "node7",
        "PGWARDEN_CLUSTER": "other",
        "PGWARDEN_ETCD_HOSTS": "127.0.0.31:2379,127.0.0.32:2379",
        "PGWARDEN_API_LISTEN": "127.0.0.17:8008",
        "PGWARDEN_POSTGRESQL_DATA_DIR": "/srv/pg",
        "PGWARDEN_POSTGRESQL_AUTHENTICATION_SUPERUSER_PASSWORD": "env-su",
        "PGWARDEN_POSTGRESQL_AUTHENTICATION_REPLICATION_PASSWORD": "env-repl",
        "PGWARDEN_API_AUTH_USERNAME": "ops",
        "PGWARDEN_API_AUTH_PASSWORD": "env-api",
    }
    cfg = parse_node_config(MINIMAL, "node.yml", env=env)
    assert (cfg.name, cfg.cluster) == ("node7", "other")
    assert cfg.etcd.hosts == (Address("127.0.0.31", 2379), Address("127.0.0.32", 2379))
    assert cfg.api.listen == cfg.api.connect_address == Address("127.0.0.17", 8008)
    assert cfg.postgresql.data_dir == "/srv/pg"
    assert cfg.postgresql.superuser.password == "env-su"
    assert cfg.postgresql.replication.password == "env-repl"
    assert (cfg.api.username, cfg.api.password) == ("ops", "env-api")


def test_env_can_supply_required_fields_missing_from_the_file(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, minimal(name=..., postgresql__data_dir=...))
    cfg = load_node_config(path, env={"PGWARDEN_NAME": "node3", "PGWARDEN_POSTGRESQL_DATA_DIR": "/d"})
    assert (cfg.name, cfg.postgresql.data_dir) == ("node3", "/d")


def test_env_variable_names_follow_their_yaml_path() -> None:
    for variable, path in ENV_VARIABLES.items():
        assert variable == "PGWARDEN_" + "_".join(path).upper()


def test_unknown_pgwarden_variables_are_ignored() -> None:
    cfg = parse_node_config(MINIMAL, "node.yml", env={"PGWARDEN_FOO": "x", "PGWARDEN_API_LISTN": "bad"})
    assert cfg.api.listen == Address("127.0.0.11", 8008)


def test_env_errors_name_the_variable() -> None:
    message = str(error_of(MINIMAL, env={"PGWARDEN_API_LISTEN": "127.0.0.1"}))
    assert message.startswith("environment variable PGWARDEN_API_LISTEN (applied to node.yml): api.listen: ")
    assert "host:port" in message
    message = str(error_of(MINIMAL, env={"PGWARDEN_ETCD_HOSTS": "127.0.0.1:1,bad"}))
    assert "environment variable PGWARDEN_ETCD_HOSTS" in message and "etcd.hosts[1]" in message


def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGWARDEN_NAME", "from-env")
    assert parse_node_config(MINIMAL, "node.yml").name == "from-env"


# --- watchdog ----------------------------------------------------------------------------------


def test_watchdog_is_off_by_default_and_takes_patronis_spellings() -> None:
    assert parse_node_config(MINIMAL, "node.yml", env={}).watchdog == WatchdogSettings(
        "off", "/dev/watchdog", None
    ), "no safety_margin unless one is written: the default scales with ttl"
    # YAML reads a bare `off` as false; Patroni accepts auto, require, disable(d) too.
    for given, mode in ((False, "off"), ("auto", "automatic"), ("Required", "required"), ("disabled", "off")):
        assert parse_node_config(minimal(watchdog__mode=given), "node.yml", env={}).watchdog.mode == mode
    cfg = parse_node_config(
        minimal(watchdog={"mode": "automatic", "device": "/dev/watchdog1", "safety_margin": -1}),
        "node.yml",
        env={},
    )
    assert cfg.watchdog == WatchdogSettings("automatic", "/dev/watchdog1", -1.0)
    env = {"PGWARDEN_WATCHDOG_MODE": "required", "PGWARDEN_WATCHDOG_DEVICE": "/dev/watchdog0"}
    assert parse_node_config(MINIMAL, "node.yml", env=env).watchdog.mode == "required"


@pytest.mark.parametrize(
    ("watchdog", "words"),
    [
        ({"mode": "sometimes"}, "not a watchdog mode"),
        ({"mode": True}, "expected a watchdog mode"),
        ({"device": "watchdog"}, "absolute path"),
        ({"safety_margin": -2}, "safety_margin"),
        ({"interval": 3}, "interval"),
    ],
    ids=["unknown_mode", "true_is_no_mode", "relative_device", "margin_below_minus_one", "unknown_key"],
)
def test_watchdog_mistakes_are_named(watchdog: dict[str, Any], words: str) -> None:
    assert words in str(error_of(minimal(watchdog=watchdog)))


# --- strings that would break the rendered files are refused at load (issue 11, item 7) ---------


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        (
            {"postgresql__pg_hba": ["host all all 127.0.0.0/8 scram-sha-256\r"]},
            "postgresql.pg_hba[0]",
            ["carriage return", "one pg_hba.conf line"],
        ),
        (
            {"postgresql__pg_hba": ["host all all 127.0.0.0/8 trust", "host all\nall 127.0.0.1/32 md5"]},
            "postgresql.pg_hba[1]",
            ["line break"],
        ),
        ({"postgresql__pg_hba": ["host all all\x00 trust"]}, "postgresql.pg_hba[0]", ["NUL"]),
        ({"postgresql__parameters": {"work_mem": "4MB\r"}}, "postgresql.parameters.work_mem", ["one line"]),
        (
            {"postgresql__parameters": {"include_dir": "/etc/postgresql/conf.d"}},
            "postgresql.parameters.include_dir",
            ["includes another file"],
        ),
        (
            {"postgresql__parameters": {"port": 5433}},
            "postgresql.parameters.port",
            ["is set by pgwarden", "set postgresql.listen"],
        ),
        (
            {"bootstrap": {"dcs": {"parameters": {"primary_conninfo": "host=elsewhere"}}}},
            "bootstrap.dcs.parameters.primary_conninfo",
            ["is set by pgwarden"],
        ),
        ({"bootstrap": {"dcs": {"loop_wait": 1e-6}}}, "bootstrap.dcs.loop_wait", ["below the lowest"]),
    ],
)
def test_strings_that_would_break_rendered_files_are_refused_at_load(
    changes: dict[str, Any], field: str, words: list[str]
) -> None:
    message = str(error_of(minimal(**changes)))
    assert f"node.yml: {field}: " in message, message
    for word in words:
        assert word in message, message


def test_every_bound_and_owned_parameter_is_documented() -> None:
    """docs/configuration.md states each timing bound with its numbers, and every owned setting."""
    from pgwarden.config.bounds import BOUNDS
    from pgwarden.model.parameters import OWNED

    text = (pathlib.Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    rows = text.splitlines()
    for bound in BOUNDS:
        row = f"| `{bound.key}` | {bound.range_text()} | {bound.why_low} | {bound.why_high} |"
        assert row in rows, row
    for name, reason in OWNED.items():
        assert f"| `{name}` | {reason.why} | {reason.instead} |" in rows, name
