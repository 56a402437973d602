"""A secured etcd on loopback: each member's certificate and TLS flags, and etcd's users and roles.

Members serve TLS on their client and peer ports and require a client certificate signed by the
stack's CA on both (``--client-cert-auth``, ``--peer-client-cert-auth``). A member's certificate
is its server certificate and its client certificate towards the other members; etcd checks
that a peer's certificate names the address the peer connects *from*, and members do not bind
their source address, so on loopback each one's certificate also names 127.0.0.1. Clients'
certificates carry no CommonName (etcd's JSON gateway refuses those, dcs/etcd_tls.py).

Authentication is etcd's own (v3 auth): ``root`` and, per cluster, a user whose role may read
and write only that cluster's keys (``<prefix>/<cluster>/``), created with etcdctl over TLS and
then ``auth enable``. `enable_auth` is idempotent: a stack started again finds them in place.
Passwords go to etcdctl through its environment and standard input, never its command line.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from pgwarden.local.pki import Issued, Pki

ETCDCTL = "/usr/bin/etcdctl"
ROOT = "root"
# What etcdctl says when a step was done before (a stack started again): not a failure.
_DONE_BEFORE = ("already exists", "already granted", "already enabled")


class EtcdSetupError(Exception):
    """etcdctl could not set up etcd's users, roles or authentication; the message says which step."""


@dataclass(frozen=True, slots=True)
class EtcdUser:
    """An etcd user whose role (``role``) may read and write the keys under ``prefix``."""

    name: str
    password: str
    role: str
    prefix: str


def member_certificate(pki: Pki, name: str, host: str) -> Issued:
    """Member ``name``'s certificate, for its client and peer ports and its calls to its peers."""
    return pki.issue_server(name, [host, "127.0.0.1"], client_auth=True)


def client_certificate(pki: Pki, name: str) -> Issued:
    """A client certificate etcd's JSON gateway accepts: signed by the CA, without a CommonName."""
    return pki.issue_client(name, common_name="")


def member_flags(pki: Pki, issued: Issued) -> list[str]:
    """etcd's command-line flags for TLS with client certificates on both ports."""
    ca, cert, key = str(pki.ca_cert), str(issued.cert), str(issued.key)
    return [
        "--cert-file", cert, "--key-file", key, "--trusted-ca-file", ca, "--client-cert-auth",
        "--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", ca,
        "--peer-client-cert-auth",
    ]  # fmt: skip


def enable_auth(
    endpoints: Sequence[str],
    pki: Pki,
    admin: Issued,
    root_password: str,
    users: Sequence[EtcdUser],
    timeout: float = 20.0,
) -> None:
    """Create ``root`` and ``users`` with their roles, then enable authentication; ``endpoints``
    are ``https://host:port`` URLs and ``admin`` the client certificate etcdctl presents."""
    env = {
        **os.environ,
        "ETCDCTL_API": "3",
        "ETCDCTL_ENDPOINTS": ",".join(endpoints),
        "ETCDCTL_CACERT": str(pki.ca_cert),
        "ETCDCTL_CERT": str(admin.cert),
        "ETCDCTL_KEY": str(admin.key),
        "ETCDCTL_DIAL_TIMEOUT": "5s",
        "ETCDCTL_COMMAND_TIMEOUT": "10s",
    }
    # Before auth is enabled nobody needs a password; after (a stack started again) root does.
    env["ETCDCTL_USER"] = f"{ROOT}:{root_password}"
    _etcdctl(env, ["user", "add", ROOT, "--interactive=false"], root_password, timeout)
    for user in users:
        _etcdctl(env, ["role", "add", user.role], None, timeout)
        grant = ["role", "grant-permission", user.role, "--prefix=true", "readwrite", user.prefix]
        _etcdctl(env, grant, None, timeout)
        _etcdctl(env, ["user", "add", user.name, "--interactive=false"], user.password, timeout)
        _etcdctl(env, ["user", "grant-role", user.name, user.role], None, timeout)
    _etcdctl(env, ["auth", "enable"], None, timeout)


def _etcdctl(env: dict[str, str], args: list[str], stdin: str | None, timeout: float) -> None:
    try:
        done = subprocess.run(
            [ETCDCTL, *args],
            input=f"{stdin}\n" if stdin is not None else "",
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EtcdSetupError(f"etcdctl {' '.join(args)}: {exc}") from None
    if done.returncode != 0 and not any(sign in done.stderr for sign in _DONE_BEFORE):
        last = done.stderr.strip().splitlines()[-1:] or ["(no message)"]
        raise EtcdSetupError(f"etcdctl {' '.join(args)} failed: {last[0]}")
