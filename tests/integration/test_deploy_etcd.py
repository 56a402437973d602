"""The production guide's etcd set-up, run for real: three etcd members started from
deploy/etcd.env alone (its addresses moved to a loopback network of the test's, its certificate
paths to a CA of the test's), then the guide's own ``etcdctl`` user and role commands
(docs/production.md, "etcd TLS and authentication", step 4, read from the guide), then
deploy/node.yml's ``etcd`` section as an agent reads it.

What a user would check: etcd serves only TLS with client certificates, its metrics listener
answers Prometheus over plain HTTP, each check line of the guide answers as its comment says,
and the node config's client reaches its cluster's keys and is refused anything else, in words.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from pgwarden.config import load_node_config
from pgwarden.dcs.etcd import EtcdStore
from pgwarden.dcs.store import StoreError
from pgwarden.local.pki import Pki
from tests.support.cluster import cluster_network
from tests.support.etcd import ETCD, _die_with_parent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = ROOT / "deploy" / "etcd.env"
NODE_FILE = ROOT / "deploy" / "node.yml"
GUIDE = ROOT / "docs" / "production.md"


def _example_hosts() -> tuple[str, ...]:
    """The example etcd members' addresses, as deploy/etcd.env's ETCD_INITIAL_CLUSTER names them:
    the test replaces each with a loopback address of its own (nothing dials the examples)."""
    line = next(x for x in ENV_FILE.read_text().splitlines() if x.startswith("ETCD_INITIAL_CLUSTER="))
    return tuple(re.findall(r"=https://([^:,]+):2380", line))


EXAMPLE_HOSTS = _example_hosts()
PASSWORDS = {"root": "root-secret", "pgwarden-main": "change-me-etcd"}  # the latter: node.yml's


@dataclass(frozen=True)
class Deployed:
    hosts: tuple[str, ...]
    pki: Pki
    dir: Path

    def admin_env(self) -> dict[str, str]:
        admin = self.pki.paths("admin")
        return {
            **os.environ,
            "ETCDCTL_API": "3",
            "ETCDCTL_ENDPOINTS": ",".join(f"https://{h}:2379" for h in self.hosts),
            "ETCDCTL_CACERT": str(self.pki.ca_cert),
            "ETCDCTL_CERT": str(admin.cert),
            "ETCDCTL_KEY": str(admin.key),
            "ETCDCTL_DIAL_TIMEOUT": "5s",
            "ETCDCTL_COMMAND_TIMEOUT": "15s",
        }


def member_env(i: int, hosts: tuple[str, ...], pki: Pki, data: Path) -> dict[str, str]:
    """deploy/etcd.env for member ``i``, as Debian's unit would give it to etcd, moved here."""
    member = pki.paths(f"etcd{i + 1}")
    files = {
        "/etc/etcd/tls/member.crt": str(member.cert),
        "/etc/etcd/tls/member.key": str(member.key),
        "/etc/etcd/tls/ca.crt": str(pki.ca_cert),
    }
    env: dict[str, str] = {}
    for line in ENV_FILE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, value = line.partition("=")
        # Each member's loopback URL would be the same 127.0.0.1:2379 on one machine: left out.
        value = ",".join(u for u in value.split(",") if "127.0.0.1" not in u)
        for example, host in zip(EXAMPLE_HOSTS, hosts, strict=True):
            value = value.replace(example, host)
        env[name] = files.get(value, value)
    assert env.pop("ETCD_NAME") == "etcd1"
    env["ETCD_NAME"] = f"etcd{i + 1}"
    if i > 0:  # the file is member 1's: its own URLs name its address, the others' theirs
        for name in ("ETCD_LISTEN_CLIENT_URLS", "ETCD_ADVERTISE_CLIENT_URLS", "ETCD_LISTEN_PEER_URLS",
                     "ETCD_INITIAL_ADVERTISE_PEER_URLS", "ETCD_LISTEN_METRICS_URLS"):  # fmt: skip
            env[name] = env[name].replace(hosts[0], hosts[i])
    env["ETCD_DATA_DIR"] = str(data / f"etcd{i + 1}")
    return env


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    base = tmp_path_factory.mktemp("deploy-etcd")
    network = cluster_network()
    hosts = tuple(f"{network}.{21 + i}" for i in range(3))
    pki = Pki(base / "tls")
    for i, host in enumerate(hosts):
        pki.issue_server(f"etcd{i + 1}", [host, "127.0.0.1"], client_auth=True)
    for name in ("db1", "admin"):
        pki.issue_client(name, common_name="")  # step 3: no CommonName
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(3):
            with open(base / f"etcd{i + 1}.log", "ab") as log:
                procs.append(
                    subprocess.Popen(
                        [ETCD],  # no flags: everything from the example file
                        env={"PATH": os.environ.get("PATH", "/usr/bin"), **member_env(i, hosts, pki, base)},
                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                        preexec_fn=_die_with_parent,
                    )
                )  # fmt: skip
        deployed = Deployed(hosts, pki, base)
        _wait_healthy(deployed, 30)
        yield deployed
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            proc.wait(10)


def _wait_healthy(d: Deployed, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(
            ["etcdctl", "endpoint", "health"], env=d.admin_env(), capture_output=True, text=True, timeout=30
        )
        if done.returncode == 0:
            return
        time.sleep(0.5)
    logs = "\n".join((d.dir / f"etcd{i + 1}.log").read_text()[-1500:] for i in range(3))
    raise AssertionError(f"etcd from deploy/etcd.env not healthy in {timeout:.0f} s:\n{logs}")


def guide_commands() -> list[tuple[list[str], str]]:
    """Step 4's etcdctl lines from the guide: (arguments, the comment after them)."""
    section = GUIDE.read_text().split("## etcd TLS and authentication", 1)[1]
    block = section.split("4. **Users and roles**", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    found = []
    for line in block.splitlines():
        command, _, comment = line.strip().partition("#")
        if command.startswith("etcdctl "):
            found.append((shlex.split(command)[1:], comment.strip()))
    return found


def test_the_example_etcd_serves_tls_with_client_certificates_only(deployed: Deployed) -> None:
    host = deployed.hosts[0]
    with pytest.raises(httpx.HTTPError):  # TLS, but no client certificate: no connection
        httpx.get(
            f"https://{host}:2379/health",
            verify=ssl.create_default_context(cafile=str(deployed.pki.ca_cert)),
            timeout=3,
            trust_env=False,
        )
    with pytest.raises(httpx.HTTPError):  # no plain HTTP on the client port
        httpx.get(f"http://{host}:2379/v3/kv/range", timeout=3, trust_env=False).raise_for_status()
    metrics = httpx.get(f"http://{host}:2381/metrics", timeout=3, trust_env=False)
    assert metrics.status_code == 200 and "etcd_server_has_leader" in metrics.text


@dataclass(frozen=True)
class Ran:
    args: list[str]
    comment: str
    returncode: int
    stderr: str


@pytest.fixture(scope="module")
def guide_steps(deployed: Deployed) -> list[Ran]:
    """Step 4 run as the guide writes it (passwords on stdin and in --user, the test having no
    terminal to type them in; root's once authentication is on, as the guide says)."""
    ran = []
    enabled = False
    for args, comment in guide_commands():
        stdin = ""
        if args[:2] == ["user", "add"]:
            args = [*args, "--interactive=false"]
            stdin = PASSWORDS[args[2]] + "\n"
        if "--user" in args:
            i = args.index("--user") + 1
            args[i] = f"{args[i]}:{PASSWORDS[args[i]]}"
        elif enabled:
            args = ["--user", f"root:{PASSWORDS['root']}", *args]
        done = subprocess.run(
            ["etcdctl", *args], input=stdin, env=deployed.admin_env(), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        ran.append(Ran(args, comment, done.returncode, done.stderr))
        enabled = enabled or args[-2:] == ["auth", "enable"]
    return ran


def test_the_guides_etcdctl_steps_work_and_each_check_answers_as_its_comment_says(
    guide_steps: list[Ran],
) -> None:
    assert [r.args[:2] for r in guide_steps][:2] == [["user", "add"], ["role", "add"]], guide_steps
    assert any(r.args[-2:] == ["auth", "enable"] for r in guide_steps), "step 4 enables no auth"
    checks = 0
    for r in guide_steps:
        expected = re.search(r"Error: (.*)", r.comment)
        if expected:
            checks += 1
            assert r.returncode != 0 and expected.group(1) in r.stderr, (r.args, r.stderr)
        else:
            assert r.returncode == 0, (r.args, r.stderr)
    assert checks >= 2, "the guide shows no refused check"


def test_the_example_node_configs_etcd_client_reaches_its_keys_and_nothing_else(
    deployed: Deployed, guide_steps: list[Ran], tmp_path: Path
) -> None:
    assert all(r.returncode == 0 for r in guide_steps if "Error:" not in r.comment), guide_steps
    db1 = deployed.pki.paths("db1")
    text = NODE_FILE.read_text()
    for example, host in zip(EXAMPLE_HOSTS, deployed.hosts, strict=True):
        text = text.replace(f"https://{example}:2379", f"https://{host}:2379")
    text = text.replace("/etc/pgwarden/tls/etcd-ca.crt", str(deployed.pki.ca_cert))
    text = text.replace("/etc/pgwarden/tls/etcd-client.crt", str(db1.cert))
    text = text.replace("/etc/pgwarden/tls/etcd-client.key", str(db1.key))
    path = tmp_path / "node.yml"
    path.write_text(text)
    node = load_node_config(path, env={})
    with EtcdStore.connect(node.etcd, 2.0) as store:
        store.put("/pgwarden/main/probe", "ok")
        assert [kv.value for kv in store.get_prefix("/pgwarden/main/").items] == ["ok"]
        with pytest.raises(StoreError, match=r"permission denied.*docs/production\.md"):
            store.get_prefix("/pgwarden/other/")
