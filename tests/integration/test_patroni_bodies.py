"""Patroni's operation bodies sent the way Patroni users send them (a JSON POST to a member's REST
API, as their scripts and curl do) against a real pgwarden cluster (etcd x3, three agents,
HAProxy); each checks the effect through PostgreSQL or etcd: a restart whose condition does not hold
leaves the postmaster (its PID) alone and answers Patroni's 503; one whose conditions hold restarts
it; ``/failover`` naming the leader switches over; ``/reinitialize {"force", "from_leader"}`` clones
again. The tests share the cluster and run in file order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pgwarden.local.stack import Stack
from tests.integration.test_patronictl import OPERATION, leader, patroni, sql, standbys, view
from tests.support.cluster import running_stack, wait_for

pytestmark = pytest.mark.integration
UNMET = "restart conditions are not satisfied"  # Patroni's words


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as stack:
        yield stack


def post(stack: Stack, name: str, path: str, body: dict[str, Any]) -> httpx.Response:
    i = int(name.removeprefix("node")) - 1
    return httpx.post(
        f"{stack.spec.api_url(i)}{path}",
        json=body,
        auth=(stack.spec.api_username, stack.spec.api_password or ""),
        verify=stack.api_verify(),
        timeout=OPERATION,
    )


def postmaster_pid(stack: Stack, name: str) -> int | None:
    """The first line of postmaster.pid: what changes when PostgreSQL restarts (None: not running)."""
    i = int(name.removeprefix("node")) - 1
    try:
        return int((stack.spec.data_dir(i) / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, IndexError, ValueError):
        return None


def healthy(stack: Stack) -> None:
    wait_for(lambda: stack.healthy()[0], OPERATION, "a healthy cluster")


def not_restarted(stack: Stack, name: str, body: dict[str, Any]) -> None:
    pid = postmaster_pid(stack, name)
    assert pid is not None
    got = post(stack, name, "/restart", body)
    assert (got.status_code, got.json()["error"]) == (503, UNMET), got.text
    assert postmaster_pid(stack, name) == pid


def restarted(stack: Stack, name: str, body: dict[str, Any]) -> None:
    pid = postmaster_pid(stack, name)
    got = post(stack, name, "/restart", body)
    assert got.status_code == 200, got.text
    assert postmaster_pid(stack, name) != pid
    healthy(stack)


def test_restart_pending_when_nothing_is_pending_does_not_restart(stack: Stack) -> None:
    healthy(stack)
    for name in (leader(stack), standbys(stack)[0]):
        assert patroni(stack, name).get("pending_restart") is False
        not_restarted(stack, name, {"restart_pending": True})


def test_restart_of_replicas_only_leaves_the_leader_alone(stack: Stack) -> None:
    lead = leader(stack)
    not_restarted(stack, lead, {"role": "replica"})
    assert leader(stack) == lead
    not_restarted(stack, standbys(stack)[0], {"role": "primary"})
    restarted(stack, standbys(stack)[0], {"role": "replica"})


def test_restart_below_a_postgres_version(stack: Stack) -> None:
    target = standbys(stack)[-1]
    running = sql(stack, target, "SHOW server_version_num")
    assert running.startswith("15")
    for older_or_same in ("14.9", "15.0", f"15.{int(running) % 100}"):
        not_restarted(stack, target, {"postgres_version": older_or_same})
    restarted(stack, target, {"postgres_version": "16.0", "timeout": "90s"})


def test_restart_pending_restarts_once_a_setting_waits_for_it(stack: Stack) -> None:
    lead = leader(stack)
    target = standbys(stack)[0]
    i = int(lead.removeprefix("node")) - 1
    changed = httpx.patch(
        f"{stack.spec.api_url(i)}/config",
        json={"postgresql": {"parameters": {"max_prepared_transactions": 5}}},
        auth=(stack.spec.api_username, stack.spec.api_password or ""),
        verify=stack.api_verify(),
        timeout=OPERATION,
    )
    assert changed.status_code == 200, changed.text
    wait_for(lambda: patroni(stack, target).get("pending_restart") is True, OPERATION, f"{target} pending")
    restarted(stack, target, {"restart_pending": True, "role": "replica"})
    wait_for(lambda: patroni(stack, target).get("pending_restart") is False, OPERATION, f"{target} applied")
    assert sql(stack, target, "SHOW max_prepared_transactions") == "5"


def test_failover_naming_the_leader_switches_over(stack: Stack) -> None:
    healthy(stack)
    lead, candidate = leader(stack), standbys(stack)[-1]
    wrong = post(stack, lead, "/failover", {"leader": candidate, "candidate": lead})
    assert wrong.status_code == 412 and leader(stack) == lead
    same = post(stack, lead, "/failover", {"leader": lead, "candidate": lead})
    assert same.status_code == 400 and "'leader'" in same.json()["error"]
    got = post(stack, lead, "/failover", {"leader": lead, "candidate": candidate})
    assert got.status_code == 200, got.text
    wait_for(lambda: leader(stack) == candidate, OPERATION, f"{candidate} leading")
    healthy(stack)
    assert sql(stack, candidate, "SELECT pg_is_in_recovery()") is False


def test_reinitialize_with_force_and_from_leader_clones_again(stack: Stack) -> None:
    healthy(stack)
    target = standbys(stack)[0]
    pid = postmaster_pid(stack, target)
    refused = post(stack, leader(stack), "/reinitialize", {"force": True})
    assert refused.status_code == 412  # never the leader, forced or not
    got = post(stack, target, "/reinitialize", {"force": True, "from_leader": True})
    assert got.status_code == 202, got.text
    wait_for(
        lambda: (
            postmaster_pid(stack, target) not in (pid, None)
            and patroni(stack, target).get("replication_state") == "streaming"
        ),
        OPERATION,
        f"{target} cloned again and streaming",
    )
    assert view(stack).member(target) is not None
    healthy(stack)
