"""Callbacks: which events a cycle's actions cause (a table), how commands run, how the config reads them."""

from __future__ import annotations

import json
import logging
import os
import pwd
import re
import stat
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from pgwarden.agent.callbacks import (
    CallbackEvent,
    CallbackRunner,
    callback_environment,
    callback_events,
    missing_commands,
    role_seen,
)
from pgwarden.config.errors import ConfigError
from pgwarden.config.node import parse_node_config
from pgwarden.ha import actions as a
from pgwarden.model import Role
from tests.support.builders import primary_local, standby_local, stopped_local

P, R = Role.PRIMARY, Role.REPLICA
FAST = a.StopMode.FAST


def ev(event: str, role: Role) -> CallbackEvent:
    return CallbackEvent(event, role)


UP, DOWN = True, False
# The whole environment of a callback: TZ and LC_ALL are passed on only when the agent has them.
DOCUMENTED = (
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "HOME",
    "USER",
    "LOGNAME",
    "PGWARDEN_EVENT",
    "PGWARDEN_ROLE",
    "PGWARDEN_CLUSTER",
    "PGWARDEN_MEMBER",
    "PGWARDEN_API_URL",
)  # whether the postmaster was alive when the cycle began


@pytest.mark.parametrize(
    ("executed", "before", "running", "events", "after"),
    [
        pytest.param((), R, UP, [], R, id="nothing_done_nothing_fired"),
        pytest.param(
            (a.AcquireLeader(), a.Promote(), a.AppendHistory("x")),
            R,
            UP,
            [ev("on_role_change", P)],
            P,
            id="promotion_is_a_role_change_to_primary",
        ),
        pytest.param(
            (a.Demote(a.StopMode.IMMEDIATE),),
            P,
            UP,
            [ev("on_role_change", R)],
            R,
            id="demotion_is_a_role_change",
        ),
        pytest.param(
            (a.Checkpoint(), a.StopPostgres(FAST)),
            P,
            UP,
            [ev("on_stop", P)],
            P,
            id="switchover_leader_stopping_fires_on_stop_as_primary",
        ),
        pytest.param(
            (a.StartStandby("node2"),),
            P,
            DOWN,
            [ev("on_role_change", R)],
            R,
            id="former_primary_starting_as_standby_is_a_role_change",
        ),
        pytest.param(
            (a.StopPostgres(FAST), a.StartStandby("node1")),
            R,
            UP,
            [ev("on_restart", R)],
            R,
            id="stop_and_start_in_one_decision_is_a_restart",
        ),
        pytest.param(
            (a.ClearScheduledRestart(1.0), a.RenewLeader(), a.StopPostgres(FAST), a.StartPrimary()),
            P,
            UP,
            [ev("on_restart", P)],
            P,
            id="leader_restart_is_a_restart_as_primary",
        ),
        pytest.param(
            (a.StopPostgres(FAST),),
            R,
            UP,
            [ev("on_stop", R)],
            R,
            id="a_restart_cut_short_after_the_stop_fires_on_stop",
        ),
        pytest.param(
            (a.RenewLeader(), a.StartPrimary()), P, DOWN, [ev("on_start", P)], P, id="crashed_primary_start"
        ),
        pytest.param(
            (a.RenewLeader(), a.StartPrimary()),
            P,
            UP,
            [],
            P,
            id="a_start_of_a_server_still_starting_is_no_start",
        ),
        pytest.param((a.StopPostgres(FAST),), R, DOWN, [], R, id="a_stop_of_a_stopped_server_is_no_stop"),
        pytest.param(
            (a.StartStandby("node1"),), None, DOWN, [ev("on_start", R)], R, id="first_start_as_standby"
        ),
        pytest.param(
            (a.StopPostgres(a.StopMode.IMMEDIATE), a.WipeDataDir(), a.Clone("node1")),
            R,
            UP,
            [ev("on_stop", R)],
            R,
            id="reinitialize_fires_on_stop",
        ),
        pytest.param(
            (a.RenewLeader(), a.PublishStatus(), a.EnsureSlots(frozenset()), a.ApplyParameters()),
            P,
            UP,
            [ev("on_reload", P)],
            P,
            id="applied_parameters_fire_on_reload",
        ),
        pytest.param(
            (a.ReloadPostgres(), a.ApplyParameters()),
            R,
            UP,
            [ev("on_reload", R)],
            R,
            id="one_reload_per_cycle",
        ),
        pytest.param(
            (a.Follow("node3"),), R, UP, [], R, id="a_standby_following_another_upstream_fires_nothing"
        ),
    ],
)
def test_events_of_a_cycle(
    executed: Sequence[a.Action],
    before: Role | None,
    running: bool,
    events: list[CallbackEvent],
    after: Role | None,
) -> None:
    assert callback_events(executed, before, running) == (events, after)


def test_the_role_seen_is_that_of_a_serving_postgres() -> None:
    assert role_seen(primary_local()) is P
    assert role_seen(standby_local()) is R
    assert role_seen(stopped_local()) is None


# --- running commands --------------------------------------------------------------------------


def script(tmp_path: Path, body: str, name: str = "callback.sh") -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_command_gets_event_role_and_cluster_and_its_output_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "events"
    cmd = script(tmp_path, 'f=$1; shift; echo "$*" >> "$f"; echo "said $1"')
    runner = CallbackRunner({"on_role_change": f"{cmd} {out}"}, "main", timeout=10)
    with caplog.at_level(logging.INFO, logger="pgwarden.agent.callbacks"):
        runner.fire([ev("on_role_change", P), ev("on_start", P)])  # no on_start command: nothing
        assert runner.wait(10)
    assert out.read_text() == "on_role_change primary main\n"
    assert "exited with 0" in caplog.text and "said on_role_change" in caplog.text


# What an agent's environment may hold: its own passwords, libpq's, the API's, a cloud key.
SECRETS = {
    "PGWARDEN_POSTGRESQL_AUTHENTICATION_SUPERUSER_PASSWORD": "su-secret-1",
    "PGWARDEN_POSTGRESQL_AUTHENTICATION_REPLICATION_PASSWORD": "repl-secret-2",
    "PGWARDEN_API_AUTH_PASSWORD": "api-secret-3",
    "PGPASSWORD": "libpq-secret-4",
    "AWS_SECRET_ACCESS_KEY": "cloud-secret-5",
}
DUMP_ENVIRONMENT = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"


def test_a_callback_gets_the_documented_environment_and_none_of_the_agents_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    monkeypatch.setenv("TZ", "Europe/Paris")
    monkeypatch.setenv("LC_ALL", "en_US.UTF-8")
    dumped = tmp_path / "environment.json"
    # A real program as the callback, exactly as the agent runs it: from the agent's environment.
    dump = script(tmp_path, f'exec {sys.executable} -c "{DUMP_ENVIRONMENT}" {dumped}')
    runner = CallbackRunner(
        {"on_role_change": str(dump)}, "main", 10, member="node2", api_url="http://127.0.0.12:8008"
    )
    runner.fire([ev("on_role_change", P)])
    assert runner.wait(10)
    env = json.loads(dumped.read_text())
    env.pop("PWD", None)  # the shell running the script adds its working directory
    assert sorted(env) == sorted(DOCUMENTED)
    assert env["PGWARDEN_EVENT"] == "on_role_change" and env["PGWARDEN_ROLE"] == "primary"
    assert env["PGWARDEN_CLUSTER"] == "main" and env["PGWARDEN_MEMBER"] == "node2"
    assert env["PGWARDEN_API_URL"] == "http://127.0.0.12:8008"
    assert env["PATH"] == os.environ["PATH"] and env["LANG"] == "en_US.UTF-8" and env["TZ"] == "Europe/Paris"
    assert env["HOME"] == pwd.getpwuid(os.geteuid()).pw_dir
    leaked = [name for name, value in env.items() if any(s in value for s in SECRETS.values())]
    assert leaked == []


def test_a_callback_environment_has_a_path_and_a_language_even_when_the_agent_has_none() -> None:
    env = callback_environment(ev("on_start", R), "main", "node1", "http://127.0.0.11:8008", {})
    assert env["PATH"].split(":")[-1] == "/bin" and env["LANG"] == "C.UTF-8"
    assert "LC_ALL" not in env and "TZ" not in env


def test_the_callback_environment_is_the_one_docs_configuration_md_lists() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    section = text.split("### The environment of a callback", 1)[1].split("\n#", 1)[0]
    assert sorted(re.findall(r"^\| `([A-Z_]+)` \|", section, re.MULTILINE)) == sorted(DOCUMENTED)


def test_fire_returns_at_once_and_a_command_past_its_timeout_is_killed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "child-survived"
    # The grandchild proves the whole process group is killed, not only the shell.
    cmd = script(tmp_path, f"(sleep 3; touch {marker}) & sleep 30")
    runner = CallbackRunner({"on_stop": str(cmd)}, "main", timeout=0.5)
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="pgwarden.agent.callbacks"):
        runner.fire([ev("on_stop", R)])
        assert time.monotonic() - started < 0.3
        assert runner.wait(10)
    assert "killed after its timeout of 0.5s" in caplog.text
    time.sleep(3.5)
    assert not marker.exists()


def test_a_newer_event_of_the_same_kind_replaces_a_running_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "events"
    cmd = script(tmp_path, f'if [ "$2" = primary ]; then sleep 30; fi; echo "$1 $2" >> {out}')
    runner = CallbackRunner({"on_role_change": str(cmd)}, "main", timeout=60)
    with caplog.at_level(logging.INFO, logger="pgwarden.agent.callbacks"):
        runner.fire([ev("on_role_change", P)])
        time.sleep(0.3)
        runner.fire([ev("on_role_change", R)])
        assert runner.wait(10)
    assert out.read_text() == "on_role_change replica\n"  # the stale "primary" never finished
    assert "replaced it" in caplog.text


def test_a_missing_program_fails_with_a_log_line_not_an_exception(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner = CallbackRunner({"on_start": str(tmp_path / "nowhere.sh")}, "main", timeout=5)
    with caplog.at_level(logging.INFO, logger="pgwarden.agent.callbacks"):
        runner.fire([ev("on_start", R)])
        assert runner.wait(5)
    assert "cannot run" in caplog.text and "nowhere.sh" in caplog.text


def test_missing_programs_are_reported_at_start(tmp_path: Path) -> None:
    present = script(tmp_path, "true")
    problems = missing_commands(
        {"on_start": f"{present} --flag", "on_stop": "/nowhere/stop", "on_reload": "true"}
    )
    assert problems == [
        "callback on_stop: /nowhere/stop is not an executable file; it will fail when it runs"
    ]


# --- the node config -------------------------------------------------------------------------


def node_document(**extra: object) -> dict[str, object]:
    return {
        "cluster": "main",
        "name": "node1",
        "etcd": {"hosts": ["127.0.0.1:2379"]},
        "api": {"listen": "127.0.0.1:8008"},
        "postgresql": {
            "listen": "127.0.0.1:5432",
            "data_dir": "/var/lib/postgresql/15/main",
            "authentication": {"superuser": {"username": "postgres"}, "replication": {"username": "r"}},
        },
        **extra,
    }


def test_callbacks_and_their_timeout_come_from_the_node_config() -> None:
    cfg = parse_node_config(
        node_document(callbacks={"on_role_change": "/usr/local/bin/follow --quiet"}, callback_timeout=5),
        "node.yml",
        env={},
    )
    assert cfg.callbacks == {"on_role_change": "/usr/local/bin/follow --quiet"}
    assert cfg.callback_timeout == 5
    assert parse_node_config(node_document(), "node.yml", env={}).callback_timeout == 30


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        pytest.param({"callbacks": {"on_start": ""}}, "callbacks.on_start: expected a command", id="empty"),
        pytest.param({"callbacks": {"on_stop": "'unclosed"}}, "callbacks.on_stop", id="bad_quoting"),
        pytest.param(
            {"callbacks": {"on_promote": "x"}}, "callbacks.on_promote: unknown key", id="unknown_event"
        ),
        pytest.param({"callback_timeout": 0}, "callback_timeout", id="zero_timeout"),
    ],
)
def test_a_faulty_callback_setting_is_named(extra: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_node_config(node_document(**extra), "node.yml", env={})
    assert words in str(info.value)


def test_the_pgbouncer_example_in_the_docs_is_a_valid_shell_script(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "production.md").read_text()
    body = text.split("```sh\n#!/bin/sh\n# pgbouncer-follow", 1)[1].split("```", 1)[0]
    path = tmp_path / "pgbouncer-follow"
    path.write_text("#!/bin/sh\n# pgbouncer-follow" + body)
    assert os.system(f"sh -n {path}") == 0
