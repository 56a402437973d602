"""The HAProxy configuration: health-check paths, timing, TLS checks, and that HAProxy accepts it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pgwarden.router.haproxy import Backend, RouterPorts, render

BACKENDS = [
    Backend("node1", "127.0.10.11", 5432, "127.0.10.11", 8008),
    Backend("node2", "127.0.10.12", 5432, "127.0.10.12", 8008, api_tls=True),
]


def listen_section(cfg: str, name: str) -> str:
    return cfg.split(f"listen {name}\n", 1)[1].split("\n\n", 1)[0]


def test_writes_check_primary_and_reads_check_replica_on_every_server() -> None:
    cfg = render(BACKENDS, RouterPorts(bind_host="*"))
    primary, replicas = listen_section(cfg, "primary"), listen_section(cfg, "replicas")
    assert "bind *:5000" in primary and "option httpchk OPTIONS /primary" in primary
    assert "bind *:5001" in replicas and "option httpchk OPTIONS /replica" in replicas
    assert "balance roundrobin" in replicas
    for section in (primary, replicas):
        assert "http-check expect status 200" in section
        line = "server node1 127.0.10.11:5432 maxconn 100 check addr 127.0.10.11 port 8008\n"
        assert line in section + "\n"
        assert "check addr 127.0.10.12 port 8008 check-ssl verify none" in section
    assert "bind *:7000" in listen_section(cfg, "stats")


def test_checks_run_every_interval_and_five_times_faster_while_a_server_changes_state() -> None:
    cfg = render(BACKENDS, RouterPorts(), check_interval_ms=500)
    assert "default-server inter 500ms fastinter 100ms downinter 100ms fall 2 rise 1" in cfg
    assert "on-marked-down shutdown-sessions" in cfg


def test_global_maxconn_covers_every_server_on_both_ports() -> None:
    many = [Backend(f"n{i}", "127.0.10.1", 5432 + i, "127.0.10.1", 8008 + i) for i in range(8)]
    assert "    maxconn 1600\n" in render(many, RouterPorts(), maxconn=100)
    assert "    maxconn 1000\n" in render(BACKENDS, RouterPorts())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.10.11:8008", ("127.0.10.11", 8008, False)),
        ("https://db1.example.net:8443", ("db1.example.net", 8443, True)),
        ("https://127.0.10.11", ("127.0.10.11", 443, True)),
    ],
)
def test_backend_from_a_member_reads_its_api_url(url: str, expected: tuple[str, int, bool]) -> None:
    b = Backend.from_member("node1", "127.0.10.11", 5432, url)
    assert (b.api_host, b.api_port, b.api_tls) == expected
    assert (b.name, b.host, b.port) == ("node1", "127.0.10.11", 5432)


def test_backend_from_a_member_refuses_what_is_not_an_http_url() -> None:
    with pytest.raises(ValueError, match="not an http"):
        Backend.from_member("node1", "127.0.10.11", 5432, "127.0.10.11:8008")


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render(BACKENDS, RouterPorts(bind_host="*")))
    result = subprocess.run(
        [shutil.which("haproxy") or "haproxy", "-c", "-f", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
