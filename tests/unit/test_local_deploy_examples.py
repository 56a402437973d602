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
    ):
        assert any(row.startswith(line) for row in unit.splitlines()), line


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
