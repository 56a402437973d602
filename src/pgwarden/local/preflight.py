"""Checks made before a local stack starts anything: the programs exist and every port is free."""

from __future__ import annotations

import errno
import os
import pwd
import socket
from collections.abc import Iterable
from pathlib import Path

from pgwarden.local.spec import StackSpec

ETCD = "/usr/bin/etcd"
HAPROXY = "/usr/sbin/haproxy"


def problems(spec: StackSpec) -> list[str]:
    """Every reason the stack cannot start, as sentences with their fix; empty when it can."""
    found = missing_programs([ETCD, HAPROXY, f"{spec.bin_dir}/initdb", f"{spec.bin_dir}/postgres"])
    found += missing_users(spec)
    for host, port, why in unusable(spec.listen_addresses()):
        if why == "in use":
            found.append(
                f"{host}:{port} is already in use (another stack, or a {_service(port, spec)} service); "
                "stop it, or give this stack other addresses"
            )
        else:
            found.append(f"cannot listen on {host}:{port}: {why}")
    return found


def missing_programs(paths: Iterable[str]) -> list[str]:
    return [
        f"{path} is missing or not executable: run `make deps` (scripts/install-deps.sh installs it)"
        for path in paths
        if not os.access(Path(path), os.X_OK)
    ]


def missing_users(spec: StackSpec) -> list[str]:
    """PostgreSQL refuses to run as root: as root, each node needs an OS user to run as."""
    users = {spec.user_for(i) or ("postgres" if os.geteuid() == 0 else None) for i in range(spec.nodes)}
    named = sorted(u for u in users if u is not None)
    if named and os.geteuid() != 0 and spec.run_as:
        return [f"running PostgreSQL as {', '.join(named)} needs root (this is uid {os.geteuid()})"]
    found = []
    for user in named:
        try:
            pwd.getpwnam(user)
        except KeyError:
            found.append(f"OS user {user!r} does not exist: create it (useradd --system {user})")
    return found


def unusable(addresses: Iterable[tuple[str, int]]) -> list[tuple[str, int, str]]:
    """The addresses a server could not listen on, with why ("in use" when something listens).

    SO_REUSEADDR, as the servers themselves set it, so that sockets of a stack stopped a moment
    ago, lingering in TIME_WAIT, do not count as busy.
    """
    found = []
    for host, port in addresses:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError as exc:
                found.append(
                    (host, port, "in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc))
                )
    return found


def _service(port: int, spec: StackSpec) -> str:
    if port in (spec.etcd_port, spec.etcd_peer_port):
        return "etcd"
    if port == spec.pg_port:
        return "PostgreSQL"
    if port == spec.api_port:
        return "Patroni"
    return "HAProxy"
