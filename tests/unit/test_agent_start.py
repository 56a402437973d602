"""The agent's entry points: each starts the same agent, and none carries the command line's imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Modules of the command line (and its libraries) that the agent never runs, and those it loads at
# the first request that needs them (GET /metrics, GET /openapi.json).
CLI_ONLY = ("typer", "pgwarden.cli.main", "pgwarden.drill", "pgwarden.client", "pgwarden.local.stack")
# The CLI's HTTP client and what it brings (its own command line among them): the agent talks to
# etcd and its peers over http.client (pgwarden/outbound_http.py), 8 MB less (docs/benchmarks.md).
CLI_HTTP = ("httpx", "httpcore", "anyio", "h11", "rich", "click", "pygments", "certifi")
ON_REQUEST = ("prometheus_client", "pgwarden.api.metrics", "pgwarden.api.openapi")


def _python(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_agent_loads_none_of_the_command_lines_modules() -> None:
    # Everything the running agent imports: its entry, the config loader and the loop itself.
    code = (
        "import json, sys\n"
        "import pgwarden.daemon.start, pgwarden.config.node, pgwarden.local.siblings\n"
        "import pgwarden.postgres.permissions, pgwarden.daemon.agent\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    result = _python("-c", code)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert "pgwarden.agent.loop" in loaded
    found = [
        m for m in loaded if any(m == n or m.startswith(n + ".") for n in CLI_ONLY + CLI_HTTP + ON_REQUEST)
    ]
    assert found == []


@pytest.mark.parametrize(
    "command",
    [("-m", "pgwarden", "agent"), ("-m", "pgwarden.agent"), ("-c", "from pgwarden.cli import main; main()")],
    ids=["pgwarden-agent-subcommand", "python-m-pgwarden.agent", "console-script-dispatch"],
)
def test_every_entry_refuses_a_missing_config_with_the_reason_and_exit_code_2(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    missing = tmp_path / "node.yml"
    # `python -c` has no argv of its own: the dispatcher reads sys.argv[1:] as the command does.
    extra = ("agent",) if command[0] == "-c" else ()
    result = _python(*command, *extra, "-c", str(missing))
    assert result.returncode == 2
    assert f"{missing}: file not found" in result.stderr


def test_the_console_script_without_agent_is_the_typer_app() -> None:
    code = "import sys; sys.argv = ['pgwarden', 'version']; from pgwarden.cli import main; main()"
    result = _python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pgwarden ")


def test_the_agent_entry_asks_for_its_config() -> None:
    result = _python("-m", "pgwarden.agent")
    assert result.returncode == 2
    assert "-c/--config" in result.stderr


PSYCOPG_IMPL = (
    "import os, sys\n"
    "from pgwarden.daemon.start import prefer_system_libpq\n"
    "prefer_system_libpq()\n"
    "import psycopg\n"
    "print(psycopg.pq.__impl__, os.environ.get('PSYCOPG_IMPL', '-'))"
)


def test_the_agent_uses_the_systems_libpq_and_leaves_its_environment_as_it_was() -> None:
    # This machine has Debian's libpq5 (PostgreSQL's own client library) installed.
    result = _python("-c", PSYCOPG_IMPL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["python", "-"]


def test_a_psycopg_implementation_the_user_chose_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PSYCOPG_IMPL", "binary")
    result = _python("-c", PSYCOPG_IMPL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["binary", "binary"]


def test_without_a_usable_system_libpq_psycopg_binary_serves() -> None:
    unusable = "import ctypes.util\nctypes.util.find_library = lambda name: '/nonexistent/libpq.so.5'\n"
    result = _python("-c", unusable + PSYCOPG_IMPL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["binary", "-"]
