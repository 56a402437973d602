"""``pgwarden up`` and ``pgwarden down`` as a user runs them: from nothing, twice, and purged."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pgwarden.fence.files import running_fence
from pgwarden.fence.postmaster import postmaster_pid
from pgwarden.local import processes
from pgwarden.local.spec import StackSpec
from pgwarden.local.stack import Stack
from tests.support.cluster import NODE_USERS, cluster_network
from tests.support.pg import ensure_os_user, postgres_available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not postgres_available(), reason="needs root and PostgreSQL 15"),
]

ROOT = Path(__file__).resolve().parents[2]


def pgwarden(*args: str, timeout: float = 120, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgwarden", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def referencing(dir: Path) -> dict[int, str]:
    """Every process (but this one) whose arguments, working directory or environment mention
    ``dir``, with its command line: what a user would find with ps, ls -l /proc/*/cwd and grep.
    Deliberately not pgwarden's own inventory, which is what is under test."""
    text = str(dir)
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid() or not processes.alive(int(entry)):
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(f"/proc/{entry}/cwd")
            environ = Path(f"/proc/{entry}/environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in argv or cwd == text or cwd.startswith(text + "/") or text in environ:
            found[int(entry)] = argv.strip()
    return found


# How an agent's command line begins (after the interpreter): the stack's `python -m
# pgwarden.agent -c`, or `python -m pgwarden agent -c`, which hands over to the same entry.
AGENT_ARGV = (["-m", "pgwarden.agent", "-c"], ["-m", "pgwarden", "agent", "-c"])


def agents_running(dir: Path) -> set[int]:
    """Live `pgwarden agent -c <a config in dir>` processes, the path absolute or relative."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not processes.alive(int(entry)):
            continue
        argv = processes.command_line(int(entry))
        head = next((h for h in AGENT_ARGV if argv[1 : 1 + len(h)] == h and len(argv) > 1 + len(h)), None)
        if head is None:
            continue
        with contextlib.suppress(OSError):
            if (Path(os.readlink(f"/proc/{entry}/cwd")) / argv[1 + len(head)]).parent == dir:
                found.add(int(entry))
    return found


@pytest.fixture
def stack_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="pgw-", dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        yield base / "stack"
    finally:
        # Whatever the test left running (it failed before `down`), stopped by recorded PID.
        spec = StackSpec.load(base / "stack") if (base / "stack").exists() else None
        if spec is not None:
            Stack(spec).down()
        shutil.rmtree(base, ignore_errors=True)


def test_up_twice_then_down_purge_leaves_no_process_and_no_directory(stack_dir: Path) -> None:
    users = NODE_USERS[:2]
    for user in users:
        ensure_os_user(user)
    network = cluster_network()
    options = ["--dir", str(stack_dir), "--network", network, "--run-as", ",".join(users)]

    first = pgwarden("up", "--nodes", "2", *options)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "target_session_attrs=read-write" in first.stdout
    assert f"http://{network}.1:7000/" in first.stdout
    assert "primary" in first.stdout and "replica" in first.stdout

    path = stack_dir / "stack.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert list(doc) == [
        "cluster", "nodes", "etcd", "member_networks", "haproxy", "superuser", "api_auth",
        "etcd_client", "tls",
    ]  # fmt: skip
    assert [n["host"] for n in doc["nodes"]] == [f"{network}.11", f"{network}.12"]
    assert doc["haproxy"]["primary"] == f"{network}.1:5000"
    assert doc["api_auth"]["username"] == "pgwarden" and len(doc["api_auth"]["password"]) >= 12
    assert doc["superuser"]["password"] in first.stdout
    # Secure by default: etcd and the APIs over TLS, client certificates required, etcd auth on.
    assert doc["etcd"] == [f"https://{network}.{21 + i}:2379" for i in range(3)]
    assert doc["etcd_client"]["username"] == "pgwarden" and Path(doc["etcd_client"]["cacert"]).exists()
    assert all(n["api_url"].startswith("https://") for n in doc["nodes"])
    for key in (stack_dir / "tls").glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert "etcd auth" in first.stdout and "client certificates required" in first.stdout
    # The web view: its https URL, and what a browser needs, which opens it.
    web_view = f"https://{network}.11:8008/ui"
    assert web_view in first.stdout and "cli.p12" in first.stdout
    tls = stack_dir / "tls"
    browser = ssl.create_default_context(cafile=tls / "ca.crt")
    browser.load_cert_chain(tls / "cli.crt", tls / "cli.key")
    page = httpx.get(web_view, verify=browser, timeout=10)
    assert page.status_code == 200 and "/ui/app.js" in page.text
    # doctor on the secure stack: it reaches etcd (TLS, auth) and every agent (mTLS), and finds
    # the APIs protected; exit 1 at most (a fresh stack does not archive WAL: a warning).
    checked = pgwarden("doctor", "--dir", str(stack_dir), "--format", "json")
    assert checked.returncode in (0, 1), checked.stdout + checked.stderr
    findings = {f["check"]: f for f in json.loads(checked.stdout)["findings"]}
    assert findings["api_protection"]["severity"] == "ok", findings["api_protection"]
    for name in ("etcd_reachable", "agents_reachable", "leader"):
        assert findings[name]["severity"] in ("ok", "info"), findings[name]
    # Measured round trips, renewals and doctor's probes among them; a fresh stack's first reads
    # (each agent's etcd token) may warn on this loaded machine, never more.
    latency = findings["etcd_latency"]
    assert latency["severity"] != "critical", latency
    assert any("renewals" in line for line in latency["evidence"]), latency
    listed = pgwarden("members", "--dir", str(stack_dir), "--format", "json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    members = {m["name"]: m["role"] for m in json.loads(listed.stdout)["members"]}
    primary = next(name for name, role in members.items() if role == "primary")
    standby = next(name for name in members if name != primary)
    switched = pgwarden("switchover", "--candidate", standby, "--force", "--dir", str(stack_dir))
    assert switched.returncode == 0, switched.stdout + switched.stderr
    assert f"{standby} is the primary" in switched.stdout

    second = pgwarden("up", *options)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already running" in second.stderr
    assert doc["superuser"]["password"] in second.stdout  # the same stack, described again

    recorded = json.loads((stack_dir / "pids.json").read_text())
    pids = list(recorded.values())
    pids += [p for n in doc["nodes"] if (p := postmaster_pid(n["data_dir"])) is not None]
    fences = [running_fence(n["data_dir"]) for n in doc["nodes"]]
    assert None not in fences, "every agent runs its fence"
    pids += [p for p in fences if p is not None]
    assert len(pids) == 3 + 2 + 1 + 2 + 2  # etcd, agents, HAProxy, postmasters, fences
    # An agent killed before `down` leaves its fence (and PostgreSQL) for `down` to find.
    processes.signal_one(recorded["node2"], signal.SIGKILL)

    down = pgwarden("down", "--dir", str(stack_dir), "--purge", timeout=90)
    assert down.returncode == 0, down.stdout + down.stderr
    assert f"node2 fence (pid {fences[1]})" in down.stdout
    assert [p for p in pids if processes.alive(p)] == []
    assert not stack_dir.exists()

    again = pgwarden("down", "--dir", str(stack_dir))
    assert again.returncode == 0 and "nothing to stop" in again.stdout


def test_down_after_an_unplanned_drill_stops_every_agent_the_drill_restarted(stack_dir: Path) -> None:
    """The drill kills the primary's node twice and starts its agent again each time; `down
    --purge` must stop those agents too, and remove the data only once nothing runs."""
    users = NODE_USERS[:3]
    for user in users:
        ensure_os_user(user)
    network = cluster_network()
    up = pgwarden("up", "--dir", str(stack_dir), "--network", network, "--run-as", ",".join(users))
    assert up.returncode == 0, up.stdout + up.stderr
    first_agents = agents_running(stack_dir)
    assert len(first_agents) == 3

    # From the stack's parent with a relative --dir: the way that used to leave agents behind.
    drill = pgwarden(
        "drill", "--unplanned", "--rounds", "2", "--dir", stack_dir.name, "--format", "json",
        timeout=600, cwd=stack_dir.parent,
    )  # fmt: skip
    assert drill.returncode == 0, drill.stdout + drill.stderr
    report = json.loads(drill.stdout)
    assert [r["healed"] for r in report["rounds"]] == [True, True]
    agents = agents_running(stack_dir)
    assert len(agents) == 3 and len(agents - first_agents) == 2  # two killed, two started again
    recorded = json.loads((stack_dir / "pids.json").read_text())
    assert agents <= set(recorded.values()), "the drill's agents are recorded where `down` sees them"
    running_before = referencing(stack_dir)

    started = time.monotonic()
    down = pgwarden("down", "--dir", str(stack_dir), "--purge", timeout=180)
    took = time.monotonic() - started
    assert down.returncode == 0, down.stdout + down.stderr
    assert referencing(stack_dir) == {}, "processes of the stack still running after down --purge"
    assert [p for p in running_before if processes.alive(p)] == []
    assert not stack_dir.exists()
    print(f"down --purge took {took:.1f} s; {len(running_before)} processes of the stack before it")
