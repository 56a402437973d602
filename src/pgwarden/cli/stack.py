"""``pgwarden up`` and ``pgwarden down``: the local stack on loopback addresses."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from pgwarden.local.spec import StackSpec
from pgwarden.local.stack import Stack, StackError

DEFAULT_DIR = Path(".pgwarden/local")
console = Console(stderr=True)


def up(
    nodes: int = typer.Option(3, "--nodes", min=1, max=9, help="number of PostgreSQL nodes"),
    dir: Path = typer.Option(DEFAULT_DIR, "--dir", help="where data, configs and logs go"),
) -> None:
    """Start etcd x3, NODES nodes and HAProxy on loopback; wait until healthy."""
    stack = Stack(StackSpec(dir=dir.resolve(), nodes=nodes))
    if stack.running():
        console.print(f"a stack is already running from {dir} (pgwarden down --dir {dir} stops it)")
        raise typer.Exit(1)
    try:
        doc = stack.up(progress=lambda text: console.print(f"[dim]…[/dim] {text}"))
    except StackError as exc:
        console.print(f"[red]pgwarden up failed:[/red] {exc}")
        raise typer.Exit(1) from None
    hosts = ",".join(f"{n['host']}:{n['port']}" for n in doc["nodes"])
    password = doc["superuser"]["password"]
    primary = doc["haproxy"]["primary"].split(":")
    replicas = doc["haproxy"]["replicas"].split(":")
    typer.echo(f"cluster {doc['cluster']} is up ({dir / 'stack.json'})")
    typer.echo(f"  writes (HAProxy): postgresql://postgres:{password}@{primary[0]}:{primary[1]}/postgres")
    typer.echo(f"  reads  (HAProxy): postgresql://postgres:{password}@{replicas[0]}:{replicas[1]}/postgres")
    typer.echo(
        f"  libpq multi-host: postgresql://postgres:{password}@{hosts}/postgres?target_session_attrs=read-write"
    )
    typer.echo(f"  HAProxy stats:    {doc['haproxy']['stats']}")


def down(
    dir: Path = typer.Option(DEFAULT_DIR, "--dir", help="the directory given to pgwarden up"),
    purge: bool = typer.Option(False, "--purge", help="also remove data, configs and logs"),
) -> None:
    """Stop everything a local stack started (by PID); --purge removes its directory too."""
    spec_dir = dir.resolve()
    nodes = sum(1 for _ in spec_dir.glob("node*.yml")) or 3
    Stack(StackSpec(dir=spec_dir, nodes=nodes)).down(purge=purge)
    typer.echo(f"stack in {dir} stopped" + (" and removed" if purge else ""))
