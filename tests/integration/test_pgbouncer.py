"""PgBouncer routing for real: Debian's PgBouncer in front of a 3-node cluster, repointed by the
shipped callback (deploy/pgbouncer/pgbouncer-follow) across a switchover and a node loss, with a
writer through PgBouncer beside one through HAProxy (`make bench`'s pgbouncer phase has the figures).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from pgwarden.local.stack import Stack
from tests.support.cluster import primary_name, running_stack
from tests.support.pgbouncer import Comparison, Pooler, compare

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Stack, Pooler]]:
    with running_stack() as stack, Pooler(stack) as pooler:
        yield stack, pooler


def _index(name: str) -> int:
    return int(name.removeprefix("node")) - 1


def _checked(stack: Stack, pooler: Pooler, outcome: Comparison) -> None:
    print(outcome.line())
    new = _index(outcome.primary_after)
    assert pooler.routed_host() == stack.spec.node_host(new)
    # PgBouncer's writer is back within the time HAProxy's needed, give or take the callback.
    assert outcome.pgbouncer.gap_s < outcome.haproxy.gap_s + 10, outcome.line()
    # The callback's log line: which node pointed PgBouncer where.
    log = (stack.logs_dir / f"{outcome.primary_after}.log").read_text()
    assert f"PgBouncer now sends postgres=postgres to {stack.spec.node_host(new)}" in log


def test_a_switchover_repoints_pgbouncer_without_losing_a_write(cluster: tuple[Stack, Pooler]) -> None:
    stack, pooler = cluster
    leader = primary_name(stack)
    assert leader is not None
    auth = tuple(stack.describe()["api_auth"].values())

    def switchover() -> None:
        url = f"{stack.spec.api_url(_index(leader))}/switchover"
        answer = httpx.post(url, json={"leader": leader}, auth=auth, timeout=90)  # type: ignore[arg-type]
        assert answer.status_code == 200, answer.text

    outcome = compare(stack, pooler, "switchover", switchover)
    _checked(stack, pooler, outcome)
    assert outcome.pgbouncer.lost == 0 and outcome.haproxy.lost == 0, outcome.line()


def test_a_node_loss_repoints_pgbouncer(cluster: tuple[Stack, Pooler]) -> None:
    stack, pooler = cluster
    leader = primary_name(stack)
    assert leader is not None
    outcome = compare(stack, pooler, "node loss", lambda: stack.kill_node(_index(leader)))
    _checked(stack, pooler, outcome)
    # Asynchronous replication may lose what the dead primary acknowledged last (HAProxy's
    # writer alike); PgBouncer must not add to it: no write acknowledged by a node that had
    # lost the lead. A handful at most, from the last moments before the kill.
    assert outcome.pgbouncer.lost <= 5 and outcome.haproxy.lost <= 5, outcome.line()
