"""The production examples in deploy/ load and check, and docs/production.md shows them as they are."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pgwarden.config import load_node_config
from pgwarden.router.haproxy import Backend, RouterPorts, render

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def test_the_example_node_config_loads_without_environment_overrides() -> None:
    node = load_node_config(DEPLOY / "node.yml", env={})
    assert (node.cluster, node.name) == ("main", "db1")
    assert node.api.username and node.api.password
    # The example's production address, read from the file (never contacted by any test).
    written = yaml.safe_load((DEPLOY / "node.yml").read_text())["api"]["connect_address"]
    assert str(node.api.connect_address) == written
    b = node.bootstrap
    assert b.loop_wait + 2 * b.retry_timeout <= b.ttl


def test_production_guide_shows_the_example_node_config_verbatim() -> None:
    guide = (ROOT / "docs" / "production.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", guide, flags=re.DOTALL)
    assert (DEPLOY / "node.yml").read_text() in blocks, (
        "docs/production.md's node.yml block differs from deploy/node.yml: copy the file into the guide"
    )


def test_the_systemd_unit_runs_the_agent_as_postgres_and_lets_it_stop_postgresql() -> None:
    unit = (DEPLOY / "pgwarden.service").read_text()
    for line in (
        "User=postgres",
        "KillMode=process",
        "After=network-online.target",
        "Restart=on-failure",
        "TimeoutStopSec=",
        "LimitNOFILE=",
        "ExecStart=/opt/pgwarden/bin/pgwarden-agent -c /etc/pgwarden/node.yml",
        "Type=notify",  # the agent sends READY=1 after its first cycle (agent/notify.py)
        "NotifyAccess=main",
        "ExecReload=/bin/kill -HUP $MAINPID",  # SIGHUP reloads node.yml (agent/node_reload.py)
    ):
        assert any(row.startswith(line) for row in unit.splitlines()), line


def test_pgbouncer_follow_acts_only_for_a_primary(tmp_path: Path) -> None:
    """The callback's syntax, its example settings, and what it does without a cluster: a replica
    event or a stop changes nothing, a missing argument is refused (the real routing test:
    tests/integration/test_pgbouncer.py)."""
    script = DEPLOY / "pgbouncer" / "pgbouncer-follow"
    settings = DEPLOY / "pgbouncer" / "pgbouncer-follow.conf"
    assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0
    sourced = subprocess.run(
        ["sh", "-c", f'set -eu; . "{settings}"; echo "$DATABASES_FILE $PRIMARY_PORT"'],
        capture_output=True,
        text=True,
        check=False,
    )
    assert sourced.stdout.split() == ["/etc/pgbouncer/pgwarden-databases.ini", "5432"]
    local = tmp_path / "follow.conf"
    local.write_text(settings.read_text().replace("/etc/pgbouncer", str(tmp_path)))
    env = {"PATH": "/usr/bin:/bin", "PGWARDEN_API_URL": "http://127.0.0.1:9"}
    for event, role in (("on_role_change", "replica"), ("on_stop", "primary"), ("on_reload", "primary")):
        done = subprocess.run(
            [str(script), str(local), event, role, "main"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), (event, role, done)
    assert list(tmp_path.iterdir()) == [local]  # no [databases] file written
    usage = subprocess.run([str(script), str(local)], capture_output=True, text=True, check=False)
    assert usage.returncode == 2 and "usage" in usage.stderr


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_global_file_with_a_generated_cluster_file(tmp_path: Path) -> None:
    shutil.copy(DEPLOY / "haproxy-global.cfg", tmp_path / "00-global.cfg")
    backends = [
        Backend.from_member(f"db{i}", f"127.0.10.1{i}", 5432, f"http://127.0.10.1{i}:8008") for i in (1, 2, 3)
    ]
    (tmp_path / "10-cluster.cfg").write_text(render(backends, RouterPorts(bind_host="*")))
    result = subprocess.run(
        [shutil.which("haproxy") or "haproxy", "-c", "-f", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
