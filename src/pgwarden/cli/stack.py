"""``pgwarden up`` and ``pgwarden down``: the local stack on loopback addresses."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pgwarden.local.spec import SPEC_FILE, STACK_FILE, SpecError, StackSpec
from pgwarden.local.state import StackState
from pgwarden.router.haproxy import RouterPorts

if TYPE_CHECKING:  # loaded by up and down only: the other commands need none of it (psycopg)
    from pgwarden.local.stack import Stack

DEFAULT_DIR = Path(".pgwarden/local")
DEFAULT_NODES = 3


def up(
    nodes: int | None = typer.Option(
        None,
        "--nodes",
        min=1,
        max=9,
        show_default=False,
        help="number of PostgreSQL nodes (default 3; an existing stack keeps its own)",
    ),
    dir: Path = typer.Option(DEFAULT_DIR, "--dir", help="where data, configs and logs go"),
    timeout: float = typer.Option(120.0, "--timeout", min=10, help="seconds to wait for a healthy cluster"),
    network: str | None = typer.Option(
        None, "--network", hidden=True, help="first three octets of the loopback addresses, e.g. 127.0.42"
    ),
    run_as: str | None = typer.Option(
        None, "--run-as", hidden=True, help="comma-separated OS user per node for PostgreSQL"
    ),
    insecure: bool = typer.Option(
        False,
        "--insecure",
        help="plain HTTP everywhere, for debugging: no TLS, no client certificates, no etcd "
        "authentication (a new stack only)",
    ),
) -> None:
    """Start etcd x3, NODES nodes and HAProxy on loopback; wait until healthy.

    Secure by default: etcd serves TLS with client certificates on its client and peer ports
    and etcd authentication is on (the agents' user may use only this cluster's keys); the
    agents' REST APIs serve TLS and require client certificates (mTLS), HAProxy checks them over
    TLS. Certificates, from a CA of the stack's own, are in DIR/tls; stack.json says where.

    On a directory whose stack is already running it prints that stack's connection strings and
    members, and exits 0 when it is healthy, 1 when it is not (it first waits up to --timeout for
    a member that is settling, e.g. an old primary rejoining after a switchover). A stack stopped
    with `down` (without --purge) starts again with its data and passwords.
    """
    from pgwarden.local.stack import Stack, StackError

    dir = dir.resolve()
    progress_console = Console(stderr=True)
    spec = _spec_for_up(dir, nodes, network, run_as, insecure)
    stack = Stack(spec)
    if stack.running():
        progress_console.print(f"a stack is already running from {_shown(dir)}; leaving it as it is")
        state = stack.observe()
        if not state.routed:
            # A member may be settling (an old primary rejoining after a switchover, a standby
            # catching up): wait for it as a first `up` does, up to --timeout, before judging.
            with contextlib.suppress(StackError):
                stack.wait_healthy(timeout, progress=_progress_line(progress_console), routed=True)
            state = stack.observe()
        _print_summary(stack, state)
        if not state.routed:
            progress_console.print(
                f"[yellow]it is not healthy:[/yellow] {escape(state.summary)}; logs in {stack.logs_dir}\n"
                f"restart it with: pgwarden down{_dir_flag(dir)} && pgwarden up{_dir_flag(dir)}"
            )
            raise typer.Exit(1)
        return
    final: list[StackState] = []
    try:
        _run_up(stack, timeout, final, progress_console)
    except StackError as exc:
        progress_console.print(f"[red]pgwarden up failed:[/red] {escape(str(exc))}", soft_wrap=True)
        if stack.logs_dir.exists():
            progress_console.print(f"stopped what it had started; logs in {stack.logs_dir}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        progress_console.print(f"interrupted: stopped what it had started; logs in {stack.logs_dir}")
        raise typer.Exit(130) from None
    _print_summary(stack, final[-1] if final else stack.observe())


def down(
    dir: Path = typer.Option(DEFAULT_DIR, "--dir", help="the directory given to pgwarden up"),
    purge: bool = typer.Option(False, "--purge", help="also remove data, configs and logs"),
) -> None:
    """Stop every process of a local stack, whoever started it (found by the stack's directory,
    never by name); --purge then removes the directory, once nothing of the stack runs."""
    dir = dir.resolve()
    progress_console = Console(stderr=True)
    if not dir.exists():
        typer.echo(f"nothing to stop: no stack in {_shown(dir)}")
        return
    try:
        spec = StackSpec.load(dir) or StackSpec(dir=dir)
    except SpecError as exc:
        progress_console.print(f"[yellow]{escape(str(exc))}[/yellow]; stopping what runs from the directory")
        spec = StackSpec(dir=dir)
    from pgwarden.local.stack import Stack, StackError

    try:
        stopped = Stack(spec).down(purge=purge)
    except StackError as exc:
        progress_console.print(f"[red]pgwarden down:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    if stopped:
        typer.echo(f"stopped {len(stopped)} processes: " + ", ".join(stopped))
    else:
        typer.echo(f"nothing was running from {_shown(dir)}")
    if purge:
        if dir.parent.name == ".pgwarden":  # the default layout: leave no empty .pgwarden behind
            with contextlib.suppress(OSError):
                dir.parent.rmdir()
        typer.echo(f"removed {_shown(dir)}")


# --- up, step by step ---------------------------------------------------------------------------
def _spec_for_up(
    dir: Path, nodes: int | None, network: str | None, run_as: str | None, insecure: bool = False
) -> StackSpec:
    """The saved spec of ``dir`` when it has one (same passwords and users as its data), else a
    new one; explicit options that contradict a saved spec are refused rather than ignored."""
    users = tuple(u.strip() or None for u in run_as.split(",")) if run_as else ()
    try:
        saved = StackSpec.load(dir) if (dir / SPEC_FILE).exists() else None
    except SpecError as exc:
        _fail(f"{exc}; pgwarden down{_dir_flag(dir)} --purge starts afresh")
    if saved is None:
        if (dir / STACK_FILE).exists():
            _fail(
                f"{_shown(dir)} holds a stack without {SPEC_FILE} (made by an older pgwarden); "
                f"pgwarden down{_dir_flag(dir)} --purge, then up again"
            )
        base = network or "127.0.0"
        return StackSpec(
            dir=dir,
            nodes=nodes or DEFAULT_NODES,
            network=base,
            router=RouterPorts(bind_host=f"{base}.1"),
            run_as=users,
            api_tls=not insecure,
            etcd_tls=not insecure,
        )
    conflicts = [
        f"{what} {given} (it has {had})"
        for what, given, had in (
            ("--nodes", nodes, saved.nodes),
            ("--network", network, saved.network),
            ("--run-as", ",".join(u or "" for u in users) or None, ",".join(u or "" for u in saved.run_as)),
            ("--insecure", "(plain HTTP)" if insecure else None, "TLS" if saved.etcd_tls else "(plain HTTP)"),
        )
        if given is not None and given != had
    ]
    if conflicts:
        _fail(
            f"{_shown(dir)} already holds a stack; it cannot take {'; '.join(conflicts)}. Start it as it "
            f"is, or remove it first: pgwarden down{_dir_flag(dir)} --purge"
        )
    return saved


def _run_up(stack: Stack, timeout: float, final: list[StackState], out: Console) -> None:
    """``stack.up`` with a live view on a terminal, one line per change otherwise; ``final``
    receives the last state seen."""
    if not out.is_terminal:

        def keep(seen: StackState) -> None:
            final[:] = [seen]

        stack.up(progress=_progress_line(out), timeout=timeout, watch=keep)
        return
    message = ["preparing"]
    with Live(console=out, refresh_per_second=4, transient=True) as live:

        def show() -> None:
            live.update(_progress_view(stack, message[0], final[-1] if final else None))

        def note(text: str) -> None:
            message[0] = text
            show()

        def watch(seen: StackState) -> None:
            final[:] = [seen]
            show()

        stack.up(progress=note, timeout=timeout, watch=watch)


def _progress_line(out: Console) -> Callable[[str], None]:
    """Progress as one plain line per change (logs, pipes, the already-running path)."""

    def print_line(text: str) -> None:
        out.print(f"… {text}", highlight=False, markup=False)

    return print_line


def _progress_view(stack: Stack, message: str, state: StackState | None) -> RenderableType:
    lines: list[RenderableType] = [Text.assemble(("… ", "bold"), message)]
    if state is not None:
        lines.append(Text(_parts_line(stack, state)))
        lines.append(member_table(stack.spec, state.members, with_reason=True))
    return Group(*lines)


def _parts_line(stack: Stack, state: StackState) -> str:
    agents = [p for p in state.parts if p.name.startswith("node")]
    haproxy = next((p for p in state.parts if p.name == "haproxy"), None)
    routed = ", ".join(state.routes_writes_to or ()) or "nobody yet"
    return (
        f"etcd {state.etcd_healthy}/3 healthy · agents {sum(p.running for p in agents)}/{len(agents)}"
        f" running · HAProxy {'running' if haproxy and haproxy.running else 'not running'}"
        f" (writes go to {routed})"
    )


def member_table(
    spec: StackSpec, members: Mapping[str, Mapping[str, Any] | None], with_reason: bool = False
) -> Table:
    """One row per node: name, host, role, state, timeline (and the last decision's reason)."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("member", "host", "role", "state", "timeline", *(["reason"] if with_reason else [])):
        table.add_column(column, no_wrap=column != "reason")
    for i in range(spec.nodes):
        name = spec.node_name(i)
        status = members.get(name)
        host = f"{spec.node_host(i)}:{spec.pg_port}"
        if status is None:
            table.add_row(name, host, "-", Text("no answer", "dim"), "-", *([""] if with_reason else []))
            continue
        role = str(status.get("role", "?"))
        timeline = status.get("timeline")
        row: list[RenderableType] = [name, host, Text(role, "green" if role == "primary" else "")]
        row += [Text(str(status.get("state", "?"))), "-" if timeline is None else str(timeline)]
        if with_reason:
            row.append(Text(str(status.get("reason", "")), "dim"))
        table.add_row(*row)
    return table


def _print_summary(stack: Stack, state: StackState) -> None:
    spec, doc = stack.spec, stack.describe()
    urls = spec.connection_strings()
    typer.echo(f"cluster {spec.cluster}: {spec.nodes} nodes, etcd x3, HAProxy ({_shown(stack.stack_path)})")
    lines = [
        ("writes (HAProxy)", urls["writes"]),
        ("reads (HAProxy)", urls["reads"]),
        ("libpq multi-host", urls["multi-host"]),
        ("HAProxy stats", doc["haproxy"]["stats"]),
        # Every agent serves it; the first node's is as good as any (read-only, like /cluster).
        ("web view", web_view_url(spec)),
    ]
    lines.append(("etcd", ", ".join(doc["etcd"])))
    if spec.etcd_tls:
        lines.append(("etcd auth", f"user {spec.etcd_username}, client certificates required"))
    if "api_auth" in doc:
        auth = doc["api_auth"]
        lines.append(("REST API auth", f"{auth['username']}:{auth['password']} (for write operations)"))
    if spec.api_tls:
        lines.append(("REST API TLS", f"https, verify_client: {spec.api_verify_client}"))
        lines.append(("web view access", web_view_access(spec)))
    if spec.api_tls or spec.etcd_tls:
        lines.append(("certificates", f"{spec.tls_dir} (CA: ca.crt; the CLI's: cli.*, etcd-cli.*)"))
    else:
        lines.append(("security", "none: started with --insecure (plain HTTP, no etcd authentication)"))
    for label, value in lines:  # plain lines: never wrapped, so they can be copied whole
        typer.echo(f"  {label:<18}{value}")
    # A console per call binds to the current stdout; wide enough never to fold a member row.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print()
    console.print(member_table(spec, state.members))
    console.print()
    typer.echo(f"stop with: pgwarden down{_dir_flag(spec.dir)} (add --purge to remove the data)")


def web_view_url(spec: StackSpec) -> str:
    """The live web view (GET /ui) on the first node's REST API."""
    return f"{spec.api_url(0)}/ui"


def web_view_access(spec: StackSpec) -> str:
    """What a browser needs to open the web view of a stack whose API serves HTTPS."""
    tls = _shown(spec.tls_dir)
    trust = f"trust {tls}/ca.crt"
    if spec.api_verify_client != "required":
        return f"a browser must {trust}"
    return (
        f"a browser must {trust} and present a client certificate: openssl pkcs12 -export "
        f"-in {tls}/cli.crt -inkey {tls}/cli.key -out cli.p12, then import cli.p12"
    )


def _fail(message: str) -> NoReturn:
    Console(stderr=True).print(f"[red]pgwarden up:[/red] {escape(message)}")
    raise typer.Exit(1)


def _dir_flag(dir: Path) -> str:
    return "" if dir == DEFAULT_DIR.resolve() else f" --dir {_shown(dir)}"


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when it lies below it (shorter to read)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
