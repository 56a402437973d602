"""Ops basics without a cluster: JSON log lines, the node-config reload plan, sd_notify datagrams,
shell completion scripts that complete (the real cluster tests: tests/integration/test_ops.py)."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pgwarden import logs
from pgwarden.agent.node_reload import LIVE, NodeConfigReload, plan
from pgwarden.agent.notify import ServiceNotifier
from pgwarden.config import ConfigError, load_node_config, parse_node_config
from pgwarden.model import Tags
from tests.unit.test_config import MINIMAL, error_of, minimal

VENV_BIN = Path(sys.executable).parent


# --- logs -----------------------------------------------------------------------------------
@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger restored afterwards (``logs.apply`` configures it, as the agent does)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_parse_and_carry_member_cluster_and_extras(root_logger: logging.Logger) -> None:
    out = io.StringIO()
    logs.apply("INFO", "json", "main", "node2", out)
    log = logging.getLogger("pgwarden.agent.loop")
    log.info("no leader; I am the healthiest of %d candidates", 2, extra={"reason_code": "NO_LEADER"})
    log.debug("not shown at INFO")
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        log.exception("callback output:\nline 1\nline 2")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines  # one line per record, even for multi-line messages and tracebacks
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "no leader; I am the healthiest of 2 candidates"
    assert first["reason_code"] == "NO_LEADER"
    assert (first["member"], first["cluster"], first["level"]) == ("node2", "main", "INFO")
    assert first["logger"] == "pgwarden.agent.loop" and first["time"].endswith("+00:00")
    assert second["level"] == "ERROR" and "RuntimeError: boom" in second["exception"]
    assert "reason_code" not in second


def test_apply_again_changes_level_and_format_on_the_same_handler(root_logger: logging.Logger) -> None:
    out = io.StringIO()
    handler = logs.apply("INFO", "text", "main", "node1", out)
    logging.getLogger("x").debug("hidden")
    logging.getLogger("x").info("plain")
    assert logs.apply("DEBUG", "json", "main", "node1") is handler
    logging.getLogger("x").debug("now shown")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert " node1 INFO x: plain" in lines[0]
    assert json.loads(lines[1])["message"] == "now shown"
    assert sum(h.get_name() == "pgwarden" for h in root_logger.handlers) == 1


def test_log_format_is_read_checked_and_overridable() -> None:
    assert parse_node_config(MINIMAL, "node.yml").log_format == "text"
    assert parse_node_config(minimal(log_format="JSON"), "node.yml").log_format == "json"
    env = {"PGWARDEN_LOG_FORMAT": "json"}
    assert parse_node_config(MINIMAL, "node.yml", env=env).log_format == "json"
    message = str(error_of(minimal(log_format="xml")))
    assert "log_format" in message and "text, json" in message


# --- node config reload ---------------------------------------------------------------------------
def _node(**changes: object):  # type: ignore[no-untyped-def]
    return parse_node_config(minimal(**changes), "node.yml")


def test_reload_plan_applies_live_settings_and_names_the_rest() -> None:
    current = _node()
    loaded = _node(
        log_level="DEBUG",
        tags__nofailover=True,
        tags__rack="b2",
        callbacks__on_role_change="/usr/local/bin/follow",
        api__listen="127.0.0.11:8009",
        postgresql__authentication__superuser__password="another-secret",
        bootstrap__dcs__ttl=20,
    )
    got = plan(current, loaded)
    assert got.live == ("log_level", "tags", "callbacks")
    assert got.restart == (
        "api.listen",
        "api.connect_address",
        "postgresql.authentication.superuser.password",
        "bootstrap.dcs.ttl",
    )
    assert got.config.log_level == "DEBUG"
    assert got.config.tags == Tags(nofailover=True, custom={"rack": "b2"})
    assert got.config.callbacks == {"on_role_change": "/usr/local/bin/follow"}
    # What needs a restart keeps its value in force: the agent runs one coherent config.
    assert got.config.api == current.api and got.config.postgresql == current.postgresql
    assert got.config.bootstrap == current.bootstrap
    summary = got.summary()
    assert "changed live: log_level, tags, callbacks" in summary
    assert "needing an agent restart: api.listen" in summary and "edit-config" in summary
    assert "another-secret" not in summary and "su-secret" not in summary


def test_reload_plan_of_an_unchanged_file_changes_nothing() -> None:
    got = plan(_node(), _node())
    assert (got.live, got.restart) == ((), ())
    assert got.summary() == "node config reloaded: nothing changed"


def test_every_node_config_field_is_live_or_needs_a_restart() -> None:
    from pgwarden.model import NodeConfig

    names = {f.name for f in dataclasses.fields(NodeConfig)}
    assert set(LIVE) <= names  # a renamed field must not silently stop being live


def test_a_bad_file_is_refused_and_the_config_in_force_stays(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "node.yml"
    path.write_text(yaml.safe_dump(minimal(log_level="DEBUG")))
    woken: list[bool] = []
    reload = NodeConfigReload(lambda: load_node_config(path), lambda: woken.append(True))
    current = _node()
    assert reload.take(current) is None  # nothing asked
    reload.request()
    assert woken == [True]
    got = reload.take(current)
    assert got is not None and got.config.log_level == "DEBUG"
    assert reload.take(current) is None  # one request, one reload

    path.write_text(yaml.safe_dump(minimal(log_level="LOUD")))
    reload.request()
    with caplog.at_level(logging.ERROR):
        assert reload.take(current) is None
    assert "not reloaded; the config in force stays" in caplog.text
    assert "log_level" in caplog.text and "LOUD" in caplog.text
    with pytest.raises(ConfigError):
        load_node_config(path)


# --- sd_notify --------------------------------------------------------------------------------
@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(2)
    yield sock
    sock.close()


def test_notifier_reads_and_removes_its_environment(notify_socket: socket.socket) -> None:
    address = notify_socket.getsockname()
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid()), "X": "1"}
    notifier = ServiceNotifier.from_environment(env)
    assert env == {"X": "1"}  # PostgreSQL and the fence must not inherit them
    assert notifier.enabled and notifier.watchdog_seconds == 4.0
    other = ServiceNotifier.from_environment(
        {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1", "WATCHDOG_PID": "1"}
    )
    assert other.watchdog_seconds is None  # the watchdog is another process's
    assert not ServiceNotifier.from_environment({}).enabled


def test_ready_once_then_status_changes_and_watchdog(notify_socket: socket.socket) -> None:
    notifier = ServiceNotifier(notify_socket.getsockname(), watchdog_seconds=3600)
    notifier.cycle_done("no leader; acquiring")
    first = notify_socket.recv(4096).decode().split("\n")
    assert first == ["READY=1", "STATUS=no leader; acquiring", "WATCHDOG=1"]
    notifier.cycle_done("no leader; acquiring")  # nothing new, and the next ping is not due
    notifier.cycle_done("I hold the leader key\nsecond line")
    assert notify_socket.recv(4096).decode() == "STATUS=I hold the leader key second line"
    notifier.stopping()
    assert notify_socket.recv(4096).decode() == "STOPPING=1"


def test_abstract_socket_and_a_missing_socket(caplog: pytest.LogCaptureFixture) -> None:
    name = f"pgwarden-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert ServiceNotifier("@" + name).send("READY=1")
        assert sock.recv(100) == b"READY=1"
    gone = ServiceNotifier("/nonexistent/notify")
    with caplog.at_level(logging.WARNING):
        assert not gone.send("READY=1")
        assert not gone.send("READY=1")
    assert caplog.text.count("cannot notify systemd") == 1  # logged once, never raised


# --- shell completion ---------------------------------------------------------------------------
def _pgwarden(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "pgwarden"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_bash_completion_completes_commands_and_options() -> None:
    script = _pgwarden("completion", "bash")
    assert script.returncode == 0, script.stderr
    complete = f"""
set -e
PATH={VENV_BIN}:$PATH
source /dev/stdin <<'EOF'
{script.stdout}
EOF
COMP_WORDS=(pgwarden sw); COMP_CWORD=1; _pgwarden_completion pgwarden; echo "${{COMPREPLY[@]}}"
COMP_WORDS=(pgwarden switchover --can); COMP_CWORD=2; _pgwarden_completion pgwarden; echo "${{COMPREPLY[@]}}"
COMP_WORDS=(pgwarden completion ''); COMP_CWORD=2; _pgwarden_completion pgwarden; echo "${{COMPREPLY[@]}}"
"""
    done = subprocess.run(["bash", "-c", complete], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    commands, options, shells = done.stdout.splitlines()
    assert commands.split() == ["switchover"]
    assert options.split() == ["--candidate", "--cancel"]
    assert shells.split() == ["bash", "zsh", "fish"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_and_answers(shell: str) -> None:
    script = _pgwarden("completion", shell)
    assert script.returncode == 0, script.stderr
    assert "_PGWARDEN_COMPLETE=complete_" + shell in script.stdout
    if shutil.which(shell):
        checked = subprocess.run([shell, "-n"], input=script.stdout, text=True, timeout=30, check=False)
        assert checked.returncode == 0
    # What the script asks pgwarden, answered as the shell would read it.
    env = {"_PGWARDEN_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": "pgwarden hist"}
    if shell == "fish":
        env["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    answer = _pgwarden(env=env)
    assert "history" in answer.stdout and "switchover" not in answer.stdout


def test_unknown_shell_is_refused() -> None:
    refused = _pgwarden("completion", "tcsh")
    assert refused.returncode == 2 and "tcsh" in refused.stderr
