"""The local stack's etcd: each member's command line (plain or TLS), its health, its certificates
and users (local/etcd_security.py says how etcd is secured)."""

from __future__ import annotations

import contextlib
import ssl

import httpx

from pgwarden.local import etcd_security, preflight
from pgwarden.local.pki import Pki
from pgwarden.local.spec import StackSpec

MEMBERS = 3


def command(spec: StackSpec, i: int, pki: Pki) -> list[str]:
    """Member ``i``'s command line (``etcd{i+1}``), with TLS and client certificates on both of
    its ports under etcd_tls."""
    host = spec.etcd_host(i)
    scheme = spec.etcd_scheme
    peers = ",".join(
        f"etcd{j + 1}={scheme}://{spec.etcd_host(j)}:{spec.etcd_peer_port}" for j in range(MEMBERS)
    )
    cmd = [
        preflight.ETCD,
        "--name", f"etcd{i + 1}",
        "--data-dir", str(spec.dir / "etcd" / f"etcd{i + 1}"),
        "--listen-client-urls", f"{scheme}://{host}:{spec.etcd_port}",
        "--advertise-client-urls", f"{scheme}://{host}:{spec.etcd_port}",
        "--listen-peer-urls", f"{scheme}://{host}:{spec.etcd_peer_port}",
        "--initial-advertise-peer-urls", f"{scheme}://{host}:{spec.etcd_peer_port}",
        "--initial-cluster", peers,
        "--initial-cluster-token", f"pgwarden-{spec.cluster}",
        "--initial-cluster-state", "new",
        "--heartbeat-interval", "100",
        "--election-timeout", "1000",
    ]  # fmt: skip
    if spec.etcd_tls:
        cmd += etcd_security.member_flags(pki, pki.paths(f"etcd{i + 1}"))
        if spec.etcd_auth_token_ttl is not None:
            cmd += ["--auth-token-ttl", str(spec.etcd_auth_token_ttl)]
    return cmd


def issue_certificates(spec: StackSpec, pki: Pki) -> None:
    """Each member's certificate, and an etcd client certificate (``etcd-NAME``) for each agent,
    the CLI and etcdctl (``etcd-root``)."""
    for i in range(MEMBERS):
        etcd_security.member_certificate(pki, f"etcd{i + 1}", spec.etcd_host(i))
    for name in [*(spec.node_name(i) for i in range(spec.nodes)), "cli", "root"]:
        etcd_security.client_certificate(pki, f"etcd-{name}")


def enable_auth(spec: StackSpec, pki: Pki) -> None:
    """root, and the cluster's user with a role on the cluster's keys only; then ``auth enable``."""
    name = spec.etcd_username
    user = etcd_security.EtcdUser(name, spec.etcd_password, role=name, prefix=spec.etcd_prefix)
    admin = pki.paths("etcd-root")
    etcd_security.enable_auth(spec.etcd_urls(), pki, admin, spec.etcd_root_password, [user])


def healthy(spec: StackSpec, verify: ssl.SSLContext | bool) -> int:
    """How many members answer etcd's ``/health`` as healthy."""
    count = 0
    for url in spec.etcd_urls():
        with contextlib.suppress(httpx.HTTPError, ValueError, AttributeError):
            answer = httpx.get(f"{url}/health", timeout=1, verify=verify, trust_env=False)
            count += answer.json().get("health") == "true"
    return count
