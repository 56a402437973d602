"""The live web view in a real headless browser (Debian's chromium) against a real cluster.

The page served by one agent loads, shows the three members, and follows a switchover and a node
loss without a reload: each change shows on the page within 2 s of the serving agent's
``/cluster`` showing it (a thread polls ``/cluster`` while the test polls the page's DOM). It
also fits a phone's screen. Screenshots (desktop after each step, and a phone's) are written to
``reports/web-view/`` (PGWARDEN_REPORTS_DIR moves it) for a person to look at.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from pgwarden.local.stack import Stack
from tests.support.api import call
from tests.support.browser import REPORTS, headless_chromium
from tests.support.cluster import primary_name, running_stack, wait_for

pytestmark = pytest.mark.integration

WITHIN_S = 2.0  # the bound: the page shows what /cluster shows within this
SHOTS = REPORTS / "web-view"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as s:
        yield s


def _index(name: str) -> int:
    return int(name.removeprefix("node")) - 1


class ClusterPoll:
    """Polls an agent's GET /cluster every 50 ms; ``first(condition)`` is when it first held."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ClusterPoll:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        deadline = time.monotonic() + 300  # bounded whatever the test does
        with httpx.Client(timeout=1) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    self.seen.append((time.monotonic(), client.get(f"{self.url}/cluster").json()))
                self._stop.wait(0.05)

    def first(self, condition: Callable[[dict[str, Any]], bool], since: float) -> float | None:
        """When ``condition`` first held at or after ``since`` (monotonic)."""
        return next((t for t, doc in list(self.seen) if t >= since and condition(doc)), None)


def page_state(driver: Any) -> dict[str, Any]:
    """What the page shows: the leader it names and each member card's role and state (a member
    it showed before and etcd no longer lists keeps a card, role "gone")."""
    script = """
      const cards = [...document.querySelectorAll('article.member')];
      return {leader: document.body.dataset.leader || null,
              members: cards.map(c => ({name: c.dataset.member, role: c.dataset.role,
                                        state: c.dataset.state})),
              fresh: document.getElementById('freshness').className};
    """
    return dict(driver.execute_script(script))


def page_first(driver: Any, condition: Callable[[dict[str, Any]], bool], timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition(page_state(driver)):
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"the page never showed it within {timeout:.0f}s; it shows {page_state(driver)}")


def page_firsts(
    driver: Any, conditions: dict[str, Callable[[dict[str, Any]], bool]], timeout: float
) -> dict[str, float]:
    """When each condition first held on the page, watched together: a change that shows while
    the test waits for another one is timed when it showed, not when the test got to it."""
    deadline = time.monotonic() + timeout
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        page = page_state(driver)
        now = time.monotonic()
        for what, condition in conditions.items():
            if what not in seen and condition(page):
                seen[what] = now
        if len(seen) == len(conditions):
            return seen
        time.sleep(0.05)
    missing = sorted(set(conditions) - set(seen))
    raise AssertionError(f"the page never showed {missing} in {timeout:.0f}s; it shows {page_state(driver)}")


def requests_made(driver: Any) -> str:
    """The page's last requests (path, start and duration in ms): why it was late, when it was."""
    entries = driver.execute_script(
        "return performance.getEntriesByType('resource').slice(-40)"
        ".map(e => [e.name.split('/').slice(3).join('/'), Math.round(e.startTime), Math.round(e.duration)])"
    )
    return "; ".join(f"{path} at {start} ms took {took} ms" for path, start, took in entries)


def within(driver: Any, shown: float, listed: float, what: str) -> None:
    late = shown - listed
    print(f"web view: {what} on the page {late:+.2f}s after /cluster")  # the figures of docs/benchmarks.md
    assert late <= WITHIN_S, f"the page showed {what} {late:.2f}s after /cluster; {requests_made(driver)}"


def shot(driver: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def test_the_page_follows_a_switchover_and_a_node_loss_within_two_seconds_of_cluster(stack: Stack) -> None:
    wait_for(lambda: stack.healthy()[0], 90, "a healthy cluster")
    old = primary_name(stack)
    assert old is not None
    others = [stack.spec.node_name(i) for i in range(3) if stack.spec.node_name(i) != old]
    served_by, candidate = others  # the page's agent survives everything below
    url = stack.spec.api_url(_index(served_by))
    with headless_chromium() as driver, ClusterPoll(url) as cluster:
        driver.get(f"{url}/ui")  # type: ignore[attr-defined]
        page_first(
            driver, lambda p: len(p["members"]) == 3 and p["leader"] == old and "live" in p["fresh"], 30
        )
        assert {m["name"] for m in page_state(driver)["members"]} == {"node1", "node2", "node3"}
        shot(driver, "1-three-members")

        # A switchover to the candidate.
        began = time.monotonic()
        answer = call(stack, old, "POST", "/switchover", body={"leader": old, "candidate": candidate})
        assert answer.status_code == 200, answer.text

        def led_by_candidate(doc: dict[str, Any]) -> bool:
            return doc.get("leader") == candidate and any(
                m["name"] == candidate and m["role"] == "leader" for m in doc["members"]
            )

        shown = page_first(driver, led_by_candidate, 60)
        listed = wait_for(lambda: cluster.first(led_by_candidate, began), 10, "/cluster polled")
        within(driver, shown, listed, "the switchover")
        shot(driver, "2-after-switchover")

        # The new primary's node is lost: everything of it killed at once.
        began = time.monotonic()
        stack.kill_node(_index(candidate))

        def led_by_another(doc: dict[str, Any]) -> bool:
            return doc.get("leader") not in (None, candidate) and any(
                m["name"] == doc.get("leader") and m["role"] == "leader" for m in doc["members"]
            )

        def lost_member_gone(doc: dict[str, Any]) -> bool:
            return candidate not in {m["name"] for m in doc["members"]}

        def shown_gone(page: dict[str, Any]) -> bool:
            return {"name": candidate, "role": "gone", "state": "gone"} in page["members"]

        # Both at once: the lost member's record expires before the leader key (its lease was
        # renewed once a cycle, the leader's every 0.25 s), so it may show first.
        shown = page_firsts(driver, {"failover": led_by_another, "gone": shown_gone}, 90)
        listed = wait_for(lambda: cluster.first(led_by_another, began), 10, "/cluster polled")
        within(driver, shown["failover"], listed, "the failover")
        listed = wait_for(lambda: cluster.first(lost_member_gone, began), 10, "/cluster polled")
        within(driver, shown["gone"], listed, f"{candidate} gone")
        time.sleep(4.5)  # the decisions panel refreshes every 4 s: let it show the failover
        shot(driver, "3-after-node-loss")
        decisions = driver.execute_script("return document.getElementById('events').innerText")  # type: ignore[attr-defined]
        assert "NO_LEADER_I_AM_HEALTHIEST" in decisions or "SWITCHOVER_TAKING_OVER" in decisions, decisions


def test_it_fits_a_phone(stack: Stack) -> None:
    wait_for(lambda: primary_name(stack) is not None, 90, "a primary")
    with headless_chromium(width=390, height=844) as driver:
        driver.get(f"{stack.spec.api_url(0)}/ui")  # type: ignore[attr-defined]
        page_first(driver, lambda p: len(p["members"]) >= 2 and p["leader"] is not None, 30)
        wide = driver.execute_script("return document.documentElement.scrollWidth")  # type: ignore[attr-defined]
        view = driver.execute_script("return window.innerWidth")  # type: ignore[attr-defined]
        shot(driver, "phone")
    assert wide <= view, f"the page is {wide}px wide on a {view}px phone screen: it scrolls sideways"
