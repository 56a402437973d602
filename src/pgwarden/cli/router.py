"""``pgwarden haproxy-config``: an HAProxy configuration routing to this cluster's members."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import typer

from pgwarden.cli.connect import ConfigOption, DirOption, cluster_client, fail, warn
from pgwarden.client import ClusterTarget, EtcdUnreachable, KnownNode
from pgwarden.model.cluster import Member
from pgwarden.router.haproxy import Backend, CheckTls, RouterPorts, render


def backends(members: Iterable[Member], nodes: Iterable[KnownNode]) -> list[Backend]:
    """One backend per member in etcd, plus stack nodes etcd does not list now (a stopped node
    still belongs in the router config), sorted by name; ValueError for a member's bad api_url."""
    by_name: dict[str, Backend] = {}
    for node in nodes:
        by_name[node.name] = Backend.from_member(node.name, node.host, node.port, node.api_url)
    for member in members:
        by_name[member.name] = Backend.from_member(member.name, member.host, member.port, member.api_url)
    return [by_name[name] for name in sorted(by_name)]


def haproxy_config(
    ctx: typer.Context,
    bind: Annotated[
        str | None, typer.Option("--bind", help="address HAProxy listens on (default: 127.0.0.1)")
    ] = None,
    primary_port: Annotated[
        int | None,
        typer.Option("--primary-port", help="port for writes (default: 5000)"),
    ] = None,
    replicas_port: Annotated[
        int | None, typer.Option("--replicas-port", help="port for reads (default: 5001)")
    ] = None,
    stats_port: Annotated[
        int | None, typer.Option("--stats-port", help="stats page port (default: 7000)")
    ] = None,
    check_interval: Annotated[
        int, typer.Option("--check-interval", min=50, help="milliseconds between health checks")
    ] = 500,
    ca_file: Annotated[
        str | None,
        typer.Option(
            "--ca-file",
            help="CA certificate verifying the agents' HTTPS, as a path on the HAProxy host "
            "(default: the node config's api.tls.cafile, or the stack's CA)",
            show_default=False,
        ),
    ] = None,
    crt: Annotated[
        str | None,
        typer.Option(
            "--crt",
            help="certificate + key (one PEM file) HAProxy presents to the agents, as a path on the "
            "HAProxy host; needed when they require client certificates",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Print an HAProxy config: writes to the member whose /primary answers 200, reads over /replica.

    Defaults for a local stack are its own HAProxy's address and ports.
    """
    with cluster_client(ctx, config, dir) as client:
        target = client.target
        try:
            members = client.view().members
        except EtcdUnreachable as exc:
            if not target.nodes:
                raise
            warn(f"{exc}; using the nodes listed in {target.source}")
            members = ()
    try:
        found = backends(members, target.nodes)
    except ValueError as exc:
        fail(str(exc))
    if not found:
        fail(f"cluster {target.cluster!r} has no members in etcd: nothing to route to")
    tls = check_tls(target, ca_file, crt) if any(b.api_tls for b in found) else None
    base = target.router or RouterPorts()  # a local stack's own ports, else HAProxy's usual ones
    ports = RouterPorts(
        bind_host=bind or base.bind_host,
        primary=primary_port or base.primary,
        replicas=replicas_port or base.replicas,
        stats=stats_port or base.stats,
    )
    typer.echo(render(found, ports, check_interval, tls=tls), nl=False)


def check_tls(target: ClusterTarget, ca_file: str | None, crt: str | None) -> CheckTls:
    """How HAProxy checks agents that serve TLS; fails (exit 1) when it could only check them
    unverified, or without the certificate they require, unless --insecure says so."""
    ca = ca_file or (None if target.tls_insecure else target.tls_ca)
    crt = crt or target.router_crt
    if ca is None and not target.tls_insecure:
        fail(
            "the agents serve HTTPS and no CA is known to verify them with: pass --ca-file PATH "
            "(the CA that signed their certificates, where HAProxy's host has it), or --insecure "
            "(before the command) for checks that verify nothing"
        )
    if crt is None and target.client_cert_required:
        fail(
            "the agents require a client certificate (api.tls.verify_client: required), even for "
            "health checks: pass --crt PATH (HAProxy's certificate and key in one PEM file)"
        )
    return CheckTls(ca, crt)
