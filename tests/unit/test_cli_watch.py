"""``list --watch``: its reason column with clone/rewind progress, and ``--watch`` with or without SECONDS."""

from __future__ import annotations

from dataclasses import replace

from rich.console import Console

from pgwarden.cli.status import optional_watch_value
from pgwarden.cli.views import cluster_document, members_table
from pgwarden.model import PgState
from tests.support import builders as b


def rendered(view: object, **options: bool) -> str:
    console = Console(width=250, record=True)
    console.print(members_table(view, **options))  # type: ignore[arg-type]
    return console.export_text()


def test_the_watch_table_shows_each_members_reason_and_a_clones_progress() -> None:
    cloning = replace(
        b.member("node3", state=PgState.CREATING_REPLICA, lsn=None),
        reason="clone in progress (9200/22950 kB (40%), 0/1 tablespace)",
        reason_code="JOB_IN_PROGRESS",
        progress="9200/22950 kB (40%), 0/1 tablespace",
    )
    leader = replace(b.primary_member("node1"), reason="I am the leader with the lock; primary healthy")
    view = b.view(members=(leader, b.member("node2"), cloning))
    text = rendered(view, with_reason=True)
    assert "creating replica 40%" in text
    assert "clone in progress (9200/22950 kB (40%)" in text
    assert "I am the leader with the lock" in text
    assert "Reason" not in rendered(view)  # plain list keeps its columns
    doc = cluster_document(view)
    assert doc["members"][2]["progress"] == "9200/22950 kB (40%), 0/1 tablespace"
    assert doc["members"][0]["reason"] == "I am the leader with the lock; primary healthy"


def test_watch_alone_means_every_two_seconds() -> None:
    assert optional_watch_value(["list", "--watch"]) == ["list", "--watch", "2"]
    assert optional_watch_value(["list", "--watch", "--count", "1"]) == [
        "list",
        "--watch",
        "2",
        "--count",
        "1",
    ]
    assert optional_watch_value(["list", "-w", "0.5"]) == ["list", "-w", "0.5"]
    assert optional_watch_value(["list", "--dir", "x"]) == ["list", "--dir", "x"]
    assert optional_watch_value(["history", "--watch"]) == ["history", "--watch"]
