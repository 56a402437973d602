"""``pgwarden remove CLUSTER``: wipe the cluster's keys from etcd, after patronictl's typed confirmations.

For a cluster being retired or rebuilt, with its agents stopped: running agents write their member
keys again on their next loop, and a leader its leader key (and would bootstrap nothing: the data
directories stay). Like patronictl, it asks for the cluster's name, then ``Yes I am aware``, then
(while a leader holds the key) the leader's name; there is no --force.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pgwarden.cli import views
from pgwarden.cli.connect import ConfigOption, DirOption, cluster_client, fail, show

AWARE = "Yes I am aware"


def remove(
    ctx: typer.Context,
    cluster: Annotated[str, typer.Argument(metavar="CLUSTER", help="the cluster whose keys are removed")],
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Remove the cluster's keys from etcd (leader, members, config, history, ...) after confirmations."""
    with cluster_client(ctx, config, dir, cluster) as client:
        view = client.view()
        show(views.members_table(view))
        if typer.prompt("Please confirm the cluster name to remove") != cluster:
            fail("the cluster names do not match; nothing removed")
        typed = typer.prompt(
            f'You are about to remove all information in etcd for {cluster}, please type: "{AWARE}"'
        )
        if typed != AWARE:
            fail(f'you did not type exactly "{AWARE}"; nothing removed')
        if view.leader is not None:
            named = typer.prompt(
                f"This cluster has a leader ({len(view.members)} member keys). "
                "Please specify the leader name to continue"
            )
            if named != view.leader.name:
                fail("that is not the cluster's leader; nothing removed")
        removed = client.remove_cluster()
    typer.echo(f"removed {removed} keys of cluster {cluster!r} from etcd")
