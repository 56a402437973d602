"""The fault suite: partitions, freezes and kills on a real cluster, each with the outcome a user relies on.

Every test runs the invariant checker (tests/support/invariants.py): a writer through HAProxy,
a watcher of every node, and at the end the verdict: healed, no two writers, no acknowledged
write lost (or, where asynchronous replication allows a loss, only writes acknowledged just before
the old primary stopped). One asynchronous cluster serves the module; each test starts from a
healthy, routed cluster (a cluster that cannot heal is replaced) and leaves it healed. The
synchronous-mode tests start a cluster of their own. Figures: docs/faults.md.

Two agent bugs the suite found (LEASE_OVERRUN, STALE_PRIMARY; fixed by the lease guard and by
health verdicts that check the lease deadline) have their own tests; the other tests that could
meet them by chance fail with the bug's description. A third (C: an etcd leader election slower
than the lease margin under load stopped the primary, which restarted in place) is fixed by the
lease keeper; its test kills the etcd leader 20 times in a row.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from pgwarden.fence.channel import boot_id, read_deadline
from pgwarden.fence.files import FenceFiles, running_fence
from pgwarden.fence.postmaster import postmaster_pid
from pgwarden.local import processes
from pgwarden.local.stack import Stack
from tests.support.cluster import claim_without, conninfo, primary_name, running_stack, sync_claim, wait_for
from tests.support.faults import (
    Freeze,
    NetworkCut,
    etcd,
    etcd_healthy,
    etcd_leader,
    etcd_members_down,
    next_publish,
    node,
    nodes,
)
from tests.support.invariants import Invariants, Report, routed_primary

pytestmark = [pytest.mark.integration, pytest.mark.faults]

TTL = 4.0  # docs/timing.md: the defaults the local stack runs with
SYNC_CUT_S = 10.0  # how long the synchronous-mode tests cut the primary from its standbys
SYNC_FALLBACK_AFTER = 3.0  # synchronous_fallback_after of the degrade test


class SharedCluster:
    """One cluster for the module, replaced when a test left it unable to heal."""

    def __init__(self) -> None:
        self._context: Any = None
        self.stack: Stack | None = None

    def healthy(self) -> Stack:
        if self.stack is not None:
            try:
                routed_primary(self.stack, 90)
                return self.stack
            except AssertionError:
                self.close()
        self._context = running_stack()
        self.stack = self._context.__enter__()
        return self.stack

    def close(self) -> None:
        if self._context is not None:
            context, self._context, self.stack = self._context, None, None
            context.__exit__(None, None, None)


@pytest.fixture(scope="module")
def shared() -> Iterator[SharedCluster]:
    cluster = SharedCluster()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def stack(shared: SharedCluster, request: pytest.FixtureRequest) -> Iterator[Stack]:
    failed_before = request.session.testsfailed
    s = shared.healthy()
    offsets = {p.name: p.stat().st_size for p in (s.spec.dir / "logs").glob("node*.log")}
    yield s
    if request.session.testsfailed > failed_before:
        for name, offset in sorted(offsets.items()):
            lines = (s.spec.dir / "logs" / name).read_text(errors="replace")[offset:].splitlines()
            print(f"----- {name} during the test (last 40 of {len(lines)} lines)")
            print("\n".join(lines[-40:]))


# --- small readers ---------------------------------------------------------------------------


def _i(name: str) -> int:
    return int(name.removeprefix("node")) - 1


def _status(stack: Stack, name: str) -> dict[str, Any]:
    return stack.statuses()[name] or {}


def _others(stack: Stack, name: str) -> list[str]:
    return [stack.spec.node_name(i) for i in range(stack.spec.nodes) if stack.spec.node_name(i) != name]


def _postmaster(stack: Stack, name: str) -> int | None:
    return postmaster_pid(str(stack.spec.data_dir(_i(name))))


def _log_offset(stack: Stack, name: str) -> int:
    return (stack.spec.dir / "logs" / f"{name}.log").stat().st_size


def _log_since(stack: Stack, name: str, offset: int) -> str:
    return (stack.spec.dir / "logs" / f"{name}.log").read_text(errors="replace")[offset:]


def _members_seen_by(stack: Stack, name: str) -> set[str]:
    try:
        doc = httpx.get(f"{stack.spec.api_url(_i(name))}/cluster", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return set()
    return {m["name"] for m in doc.get("members", [])}


def _received(stack: Stack, name: str) -> int:
    return int((_status(stack, name).get("xlog") or {}).get("received_location") or 0)


def _new_primary(stack: Stack, old: str) -> str | None:
    p = primary_name(stack)
    return p if p is not None and p != old else None


def _assert_safe_handover(check: Invariants, old: str, new: str, since: float) -> float:
    """The old primary stopped taking writes before the new one started; returns how long after
    ``since`` it stopped."""
    stopped = check.watch.last_writable(old)
    started = check.watch.first_writable_after(new, since)
    assert stopped is not None and started is not None, (stopped, started)
    assert stopped <= started, (
        f"{old} accepted writes until {stopped - since:.2f}s, {new} from {started - since:.2f}s"
    )
    return stopped - since


# --- synchronous mode ------------------------------------------------------------------------


def _synchronous_stack(fallback: str) -> contextlib.AbstractContextManager[Stack]:
    """A cluster of its own with synchronous_mode on (the module's shared one is asynchronous)."""
    degrade = {"synchronous_fallback_after": SYNC_FALLBACK_AFTER} if fallback == "degrade" else {}
    return running_stack(synchronous=fallback, dcs=degrade)


def _first_ack_after(check: Invariants, since: float) -> float:
    return next((t for t in list(check.writer.report.ack_times) if t >= since), time.monotonic())


class DirectInsert:
    """One INSERT, bounded by the client: acknowledged only when it returned before the client gave
    up and without PostgreSQL's warning that a cancelled synchronous wait committed locally (that
    commit is on the server alone: the client was never told it is safe)."""

    def __init__(
        self, info: str, table: str, value: int, conn: psycopg.Connection[Any] | None = None
    ) -> None:
        self.info, self.table, self.value = info, table, value
        self._conn = conn
        self._notices: list[str] = []
        self._returned = threading.Event()
        self._gave_up = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: str | None = None
        self.outcome = "pending"  # then acknowledged, waited (cancelled by us) or failed

    def send(self) -> DirectInsert:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            if self._conn is None:
                self._conn = psycopg.connect(self.info, autocommit=True)
            self._conn.add_notice_handler(lambda d: self._notices.append(d.message_primary or ""))
            self._conn.execute(f"INSERT INTO {self.table} (id) VALUES (%s)", (self.value,))
            if not self._gave_up:
                self._returned.set()
        except psycopg.Error as exc:
            self.error = str(exc)

    def acknowledged_within(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the answer; then cancel, as an impatient client would."""
        self._thread.join(seconds)
        if self._thread.is_alive():
            self._gave_up = True
            if self._conn is not None:
                with contextlib.suppress(psycopg.Error):
                    self._conn.cancel_safe(timeout=2)
            self._thread.join(10)
        if self._conn is not None:
            self._conn.close()
        acknowledged = self._returned.is_set() and not any(
            "synchronous replication" in n for n in self._notices
        )
        self.outcome = "acknowledged" if acknowledged else "waited" if self._gave_up else "failed"
        return acknowledged


def _router_insert(stack: Stack, check: Invariants, value: int) -> DirectInsert:
    """An INSERT through HAProxy's write port into the writer's table (negative ids are ours)."""
    return DirectInsert(check.router_conninfo, check.writer.table, value).send()


# --- partitions ------------------------------------------------------------------------------


def test_standby_cut_from_etcd_keeps_streaming_and_rejoins_the_view(stack: Stack) -> None:
    with Invariants(stack, "standby cut from etcd") as check:
        primary = check.primary_before
        assert primary is not None
        standby = _others(stack, primary)[0]
        postmaster = _postmaster(stack, primary)
        with NetworkCut().drop(node(stack, _i(standby)), etcd(stack)):
            wait_for(
                lambda: _status(stack, standby).get("reason_code") == "STORE_UNREACHABLE",
                20,
                f"{standby} noticing etcd is gone",
            )
            wait_for(lambda: standby not in _members_seen_by(stack, primary), 30, "its member key expiring")
            before = _received(stack, standby)
            assert check.writer.wait_for_acks(50, 20)
            wait_for(lambda: _received(stack, standby) > before, 10, f"{standby} still receiving WAL")
            assert _status(stack, standby).get("replication_state") == "streaming"
            assert primary_name(stack) == primary
        wait_for(lambda: standby in _members_seen_by(stack, primary), 30, f"{standby} back in the view")
        report = check.finish()
    report.publish()
    report.assert_invariants()
    assert report.primary_after == primary
    assert _postmaster(stack, primary) == postmaster, "the primary's PostgreSQL was restarted"


def test_primary_cut_from_the_standbys_but_not_etcd_keeps_its_role(stack: Stack) -> None:
    with Invariants(stack, "primary cut from the standbys (not etcd)") as check:
        primary = check.primary_before
        assert primary is not None
        standbys = _others(stack, primary)
        postmaster = _postmaster(stack, primary)
        timeline = _status(stack, primary)["timeline"]
        with NetworkCut().drop(node(stack, _i(primary)), nodes(stack, [_i(s) for s in standbys])):
            cut_at = time.monotonic()
            time.sleep(2 * TTL + 2)  # past any lease that could have run out
            assert primary_name(stack) == primary
            assert _status(stack, primary).get("reason_code") == "LEADER_HEALTHY"
            for s in standbys:
                assert _status(stack, s).get("role") == "replica", f"{s} changed role"
            during = check.acked_since(cut_at)
            assert during > 50, f"only {during} writes acknowledged while the standbys were cut off"
            check.notes["acknowledged_during_cut"] = during
        report = check.finish()
    report.publish()
    report.assert_invariants()
    assert report.primary_after == primary
    assert _postmaster(stack, primary) == postmaster
    assert _status(stack, primary)["timeline"] == timeline


@pytest.mark.parametrize("fallback", ["block", "degrade"])
def test_primary_cut_from_the_standbys_in_synchronous_mode(fallback: str) -> None:
    """With synchronous_mode on, the primary cut from its standbys (API and replication, not from
    etcd) for ~10 s: no failover in either case; ``block`` keeps writes waiting for the cut's whole
    length and completes them once it heals, ``degrade`` resumes them after
    synchronous_fallback_after (published as an empty claim) and claims a standby again after the
    cut; no acknowledged write lost."""
    fault = f"primary cut from the standbys, synchronous {fallback}"
    with _synchronous_stack(fallback) as stack, Invariants(stack, fault) as check:
        primary = check.primary_before
        assert primary is not None
        standbys = _others(stack, primary)
        postmaster = _postmaster(stack, primary)
        timeline = _status(stack, primary)["timeline"]
        claimed = sync_claim(stack)
        with NetworkCut().drop(node(stack, _i(primary)), nodes(stack, [_i(s) for s in standbys])):
            cut_at = time.monotonic()
            if fallback == "block":
                _writes_wait_for_the_whole_cut(stack, check, cut_at, claimed)
            else:
                _writes_resume_degraded(stack, check, primary, cut_at)
            time.sleep(max(0.0, cut_at + SYNC_CUT_S - time.monotonic()))
            assert primary_name(stack) == primary, "failover while the primary kept etcd"
            for s in standbys:
                assert _status(stack, s).get("role") == "replica", f"{s} changed role"
        healed_at = time.monotonic()
        check.notes["cut_s"] = round(healed_at - cut_at, 1)
        assert check.writer.wait_for_acks(20, 60), "no write acknowledged after the cut healed"
        check.notes["writes_after_heal_s"] = round(_first_ack_after(check, healed_at) - healed_at, 2)
        if fallback == "degrade":
            wait_for(lambda: claim_without(stack, primary), 60, "a synchronous standby claimed again")
            check.notes["synchronous_again_after_heal_s"] = round(time.monotonic() - healed_at, 1)
        report = check.finish()
        # Still inside the cluster's block: these ask the running cluster.
        report.publish()
        report.assert_invariants()
        assert report.primary_after == primary
        assert _postmaster(stack, primary) == postmaster, "the primary's PostgreSQL was restarted"
        assert _status(stack, primary)["timeline"] == timeline


def _writes_wait_for_the_whole_cut(
    stack: Stack, check: Invariants, cut_at: float, claimed: list[str]
) -> None:
    """``block``: a bounded client-side wait fails early in the cut and again past any fallback
    timer; the writer through HAProxy gets nothing acknowledged until the cut heals."""
    time.sleep(1.0)
    assert not _router_insert(stack, check, -1).acknowledged_within(2.0), "a write completed in the cut"
    time.sleep(max(0.0, cut_at + SYNC_CUT_S - 3.0 - time.monotonic()))
    assert not _router_insert(stack, check, -2).acknowledged_within(2.0), "a write completed in the cut"
    # A commit whose standby feedback was already on its way may land in the cut's first instant.
    during = check.acked_since(cut_at + 0.5)
    check.notes["acknowledged_during_cut"] = during
    assert during == 0, f"{during} writes acknowledged with no synchronous standby reachable"
    assert sync_claim(stack) == claimed, "the claim changed although block never falls back"


def _writes_resume_degraded(stack: Stack, check: Invariants, primary: str, cut_at: float) -> None:
    """``degrade``: writes resume once synchronous_fallback_after has passed, with no claim."""
    wait_for(lambda: check.acked_since(cut_at + 0.5) > 0, 2 * SYNC_CUT_S, "writes resuming (degraded)")
    resumed_after = _first_ack_after(check, cut_at + 0.5) - cut_at
    check.notes["writes_resumed_in_cut_after_s"] = round(resumed_after, 2)
    assert resumed_after >= SYNC_FALLBACK_AFTER - 0.2, f"degraded {resumed_after:.2f}s into the cut"
    assert _router_insert(stack, check, -1).acknowledged_within(2.0), "a write waited although degraded"
    assert sync_claim(stack) == [], "writes resumed but etcd still claims a synchronous standby"
    claim = _status(stack, primary).get("synchronous") or {}
    assert claim.get("degraded_since"), claim


def _failover_by_partition(stack: Stack, cut: NetworkCut, old: str, check: Invariants) -> tuple[str, float]:
    """Apply ``cut`` until a new primary takes writes; returns it and when the old one stopped."""
    with cut:
        cut_at = time.monotonic()
        new = wait_for(lambda: _new_primary(stack, old), 60, "a new primary")
        wait_for(lambda: not check.watch.writable_at(old, time.monotonic()), 30, f"{old} stopping writes")
        stopped = check.watch.last_writable(old)
        if stopped is not None and stopped - cut_at >= TTL:
            pytest.fail(f"{LEASE_OVERRUN} (here: {old} took writes {stopped - cut_at:.2f}s into the cut)")
        demoted_after = _assert_safe_handover(check, old, new, cut_at)
        check.notes["old_primary_stopped_writes_after_s"] = round(demoted_after, 2)
        wait_for(lambda: check.acked_since(cut_at) > 0, 30, "writes through HAProxy to the new primary")
        check.notes["cut_until_writes_s"] = round(_first_ack_gap_end(check, cut_at) - cut_at, 2)
    return new, cut_at + demoted_after


def test_primary_cut_from_etcd_demotes_and_a_standby_takes_over(stack: Stack) -> None:
    with Invariants(stack, "primary cut from etcd") as check:
        old = check.primary_before
        assert old is not None
        cut = NetworkCut().drop(node(stack, _i(old)), etcd(stack))
        new, stopped_at = _failover_by_partition(stack, cut, old, check)
        report = check.finish()
    report.publish()
    report.assert_invariants(lost_allowed=True)
    assert report.primary_after == new
    # Asynchronous replication: only writes acknowledged in the old primary's last second may
    # be missing (the standbys kept streaming from it until it stopped).
    assert report.lost_outside(stopped_at - 1.0, stopped_at + 0.5) == []


def test_asymmetric_partition_etcd_to_primary_dropped(stack: Stack) -> None:
    """The primary's requests reach etcd but no answer comes back: it can no longer know its lease
    is renewed, so it demotes, and the lease runs out in etcd once renewals stop arriving."""
    with Invariants(stack, "asymmetric: etcd -> primary dropped") as check:
        old = check.primary_before
        assert old is not None
        cut = NetworkCut().drop(etcd(stack), node(stack, _i(old)), both_ways=False)
        new, stopped_at = _failover_by_partition(stack, cut, old, check)
        report = check.finish()
    report.publish()
    report.assert_invariants(lost_allowed=True)
    assert report.primary_after == new
    assert report.lost_outside(stopped_at - 1.0, stopped_at + 0.5) == []


LEASE_OVERRUN = (
    "agent bug, safety rule 1: a primary cut from etcd just after renewing its lease keeps taking "
    "writes ~4.6 s, past etcd's expiry of that lease (4 s): a standby promotes meanwhile, two nodes "
    "accept writes for up to ~0.5 s and writes acknowledged by the old primary are lost. After a "
    "successful RenewLeader, Cycle._publish (agent/loop.py) calls _keep_member_lease (obs.store_ok is "
    "still True) which blocks 3 x retry_timeout/2 = ~2.3 s on the cut etcd (StoreError only logged at "
    "debug), then the next cycle's read blocks another ~2.3 s before decide() sees the deadline; no etcd "
    "call in the loop is bounded by the time left on the lease. Seen in the flapping test: node2 cut at "
    "02:15:54.131, silent until '02:15:58,665 WARNING cannot read the cluster from etcd ... timed out "
    "after 0.8s; ... 0.8s; ... 0.7s' / '02:15:58,683 etcd unreachable and my lease ran out; demoting'; "
    "node3 '02:15:58,346 acquired the leader key'; node2 took writes until 58.723, node3 from 58.443; "
    "15 acknowledged writes lost. Phase-aligned cuts hit it about 2 times in 5."
)
LEASE_ATTEMPTS = 10  # each lands at a slightly different moment of the agent's cycle


def _cut_right_after_renewal(stack: Stack) -> tuple[str, float, Report]:
    """Cut the primary from etcd about when its next cycle has just renewed the lease; returns
    the primary, how long after the cut it still took writes, and the checker's report."""
    with Invariants(stack, "cut right after a lease renewal") as check:
        old = check.primary_before
        assert old is not None
        cut = NetworkCut().drop(node(stack, _i(old)), etcd(stack))
        try:
            cut_at = cut.apply_at(next_publish(stack, old) + 0.975)
            wait_for(lambda: not check.watch.writable_at(old, time.monotonic()), 3 * TTL, f"{old} demoting")
            stopped = (check.watch.last_writable(old) or cut_at) - cut_at
            if stopped >= TTL:  # the damage: let the standby take over, then count it
                wait_for(lambda: _new_primary(stack, old), 30, "a new primary")
        finally:
            cut.remove()
        return old, stopped, check.finish()


def test_a_primary_cut_from_etcd_right_after_renewing_stops_writes_within_ttl(stack: Stack) -> None:
    """Safety rule 1 at the worst moment: the cut lands just after the primary renewed its lease
    (one loop_wait after it last rewrote its member key, less the cycle's own ~25 ms). Its writes
    must stop before etcd can expire that lease, ttl after the renewal at the latest."""
    stopped_after: list[str] = []
    for attempt in range(1, LEASE_ATTEMPTS + 1):
        started = time.monotonic()
        old, stopped, report = _cut_right_after_renewal(stack)
        stopped_after.append(f"{stopped:.2f}s (attempt took {time.monotonic() - started:.0f}s)")
        assert stopped < TTL, (
            f"{old} took writes {stopped:.2f}s after the cut (attempt {attempt}): {len(report.lost)} "
            f"acknowledged writes lost, split-brain {report.split_brain_ms:.0f} ms; {stopped_after}"
        )
        routed_primary(stack, 90)
    print(f"writes stopped after the cut: {stopped_after}")


STALE_PRIMARY = (
    "agent bug: GET /primary answers from the loop's last snapshot without looking at the lease "
    "deadline, so a primary whose lease ran out still answers 200 ('role: primary, state: running, "
    "LEADER_HEALTHY') until its loop publishes a new snapshot. Cut from etcd, that is ~2.5 s after its "
    "PostgreSQL stopped: Cycle._publish (agent/loop.py) sets the snapshot only after publish_member() "
    "tried every etcd endpoint (3 x retry_timeout/2 = ~2.3 s of timeouts), and HAProxy keeps the node UP "
    "beside the new primary, sending clients to a stopped server. Log of the cut primary: '13,052 "
    "WARNING cannot read the cluster from etcd: ... 127.0.192.21:2379 timed out after 0.8s; ...22 ... "
    "0.8s; ...23 ... 0.7s' / '13,074 INFO etcd unreachable and my lease ran out; demoting to stop "
    "writes'; probes: PostgreSQL read-only from 3.11 s into the cut, /primary 503 only from 5.56 s; "
    "HAProxy had both servers UP from 4.48 s for ~1 s. After a freeze (SIGSTOP past ttl) the resumed "
    "node answers 200 from its pre-freeze snapshot too, and HAProxy marks it UP within ~0.1 s."
)


def test_a_demoted_primary_stops_answering_primary_at_once(stack: Stack) -> None:
    """Once the agent stopped its PostgreSQL, GET /primary must answer 503 (within HAProxy's check
    granularity), or HAProxy routes clients to a stopped server beside the new primary."""
    old = routed_primary(stack, 60)
    i = _i(old)
    api = f"{stack.spec.api_url(i)}/primary"
    direct = conninfo(stack, stack.spec.node_host(i), stack.spec.pg_port, 1)
    samples: list[tuple[float, bool, bool]] = []  # (when, /primary said 200, PostgreSQL took writes)
    with NetworkCut().drop(node(stack, i), etcd(stack)):
        cut_at = time.monotonic()
        while time.monotonic() - cut_at < 2 * TTL + 2:
            try:
                says_primary = httpx.get(api, timeout=1).status_code == 200
            except httpx.HTTPError:
                says_primary = False
            samples.append((time.monotonic() - cut_at, says_primary, _takes_writes(direct)))
            time.sleep(0.05)
    routed_primary(stack, 120)
    stale = [at for at, says_primary, writable in samples if says_primary and not writable]
    assert not stale or max(stale) - min(stale) < 0.5, (
        f"/primary answered 200 while PostgreSQL took no writes from {min(stale):.2f}s to {max(stale):.2f}s"
    )


def _takes_writes(info: str) -> bool:
    try:
        with psycopg.connect(info, autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        return row is not None and row[0] is False
    except psycopg.Error:
        return False


# --- etcd ------------------------------------------------------------------------------------


def _etcd_leader(stack: Stack) -> int:
    found: list[int] = []

    def leader_known() -> bool:
        i = etcd_leader(stack)
        if i is not None:
            found.append(i)
        return i is not None

    wait_for(leader_known, 20, "an etcd leader")
    return found[-1]


ETCD_LEADER_KILLS = 20
KILL_HOLD_S = TTL  # each killed member stays down past any deadline the election could cost
ELECTIONS_BOUND_S = 420.0  # the 20 kills, each waiting for etcd to be whole again first
# The longest etcd election the defaults ride out with certainty (docs/timing.md: 3 s of lease
# after a renewal at most 0.25 s old, minus a round trip, is ~2.7 s); measured from the kill to
# the first survivor reporting a leader, which overstates it by the polling.
ELECTION_TOLERATED_S = 2.5


def _kill_the_etcd_leader(stack: Stack) -> float:
    """SIGKILL the etcd leader, keep it down for KILL_HOLD_S, start it again; returns how long
    the survivors took to elect a new leader."""
    leader = _etcd_leader(stack)
    survivors = [i for i in range(3) if i != leader]
    with etcd_members_down(stack, [leader]):
        killed_at = time.monotonic()
        wait_for(lambda: etcd_leader(stack) in survivors, 15, "a new etcd leader", interval=0.02)
        elected = time.monotonic() - killed_at
        time.sleep(max(0.0, killed_at + KILL_HOLD_S - time.monotonic()))
    return elected


def test_etcd_leader_killed_twenty_times_in_a_row_no_stop_no_failover(stack: Stack) -> None:
    """One etcd follower killed and brought back, then the etcd leader killed 20 times in a row
    under the writer: etcd keeps its quorum throughout; each election ends before the lease
    deadline, since the lease keeper renews every 0.25 s and retries every member at once
    (docs/timing.md). Nobody else ever promotes, nothing is lost, and the primary never stops
    for an election of up to 2.5 s. (Before the keeper, about 2 runs in 5 stopped it.) A machine
    loaded many times over its cores can stretch an election past 3 s, longer than any ttl-4
    lease allows: such a stop is reported, and counts as a failure only if the election was
    within the tolerated length."""
    with Invariants(stack, "etcd leader killed 20 times") as check:
        primary = check.primary_before
        assert primary is not None
        postmaster = _postmaster(stack, primary)
        offset = _log_offset(stack, primary)
        leader = _etcd_leader(stack)
        follower = next(i for i in range(3) if i != leader)
        with etcd_members_down(stack, [follower]):
            time.sleep(TTL)
            assert primary_name(stack) == primary
        started = time.monotonic()
        elections: list[float] = []
        stops: list[str] = []
        for kill in range(ETCD_LEADER_KILLS):
            bound = ELECTIONS_BOUND_S
            assert time.monotonic() - started < bound, f"only {kill} kills in {bound:.0f}s"
            elections.append(_kill_the_etcd_leader(stack))
            now = _postmaster(stack, primary)
            if now != postmaster:
                stops.append(f"kill {kill + 1}: election {elections[-1]:.2f}s")
                assert elections[-1] > ELECTION_TOLERATED_S, (
                    f"kill {kill + 1}: {primary}'s PostgreSQL stopped although the election took "
                    f"{elections[-1]:.2f}s\n" + _lease_lines(_log_since(stack, primary, offset))
                )
                postmaster = wait_for(lambda: _postmaster(stack, primary), 30, f"{primary} restarted")
            assert primary_name(stack) in (primary, None), f"kill {kill + 1}: {primary_name(stack)} promoted"
        assert check.acked_since(started) > 50 * ETCD_LEADER_KILLS
        check.notes["etcd_elections_s"] = f"{min(elections):.2f}-{max(elections):.2f}"
        check.notes["elections_over_2.5s"] = sum(e > ELECTION_TOLERATED_S for e in elections)
        check.notes["primary_stops"] = "; ".join(stops) or 0
        report = check.finish()
    report.publish()
    report.assert_invariants()
    assert report.primary_after == primary, "failover while etcd kept its quorum"


def _lease_lines(log: str) -> str:
    return "\n".join(line for line in log.splitlines() if "lease" in line or "demot" in line)


def test_etcd_quorum_lost_nobody_promotes_and_the_primary_demotes(stack: Stack) -> None:
    """Two of three etcd members gone: nobody can hold a lease, so nobody may promote, and the
    primary stops writes once its lease runs out (STORE_UNREACHABLE_DEMOTING, safety rule 1)."""
    with Invariants(stack, "etcd quorum lost") as check:
        old = check.primary_before
        assert old is not None
        offset = _log_offset(stack, old)
        leader = _etcd_leader(stack)
        follower = next(i for i in range(3) if i != leader)
        with etcd_members_down(stack, [follower, leader]):
            lost_at = time.monotonic()
            wait_for(lambda: etcd_healthy(stack) == 0, 10, "etcd without quorum")
            wait_for(
                lambda: not check.watch.writable_between(old, time.monotonic(), time.monotonic()),
                20,
                f"{old} stopping writes",
            )
            demoted_after = (check.watch.last_writable(old) or lost_at) - lost_at
            time.sleep(TTL)  # the outage lasts on: still nobody may promote
            outage_end = time.monotonic()
            writers = [
                n
                for n in check.watch.changes
                if check.watch.writable_between(n, lost_at + demoted_after + 0.2, outage_end)
            ]
            assert writers == [], f"{writers} accepted writes while etcd had no quorum"
            assert all(_status(stack, n).get("role") != "primary" for n in _others(stack, old))
        check.notes["old_primary_stopped_writes_after_s"] = round(demoted_after, 2)
        report = check.finish()
    report.publish()
    report.assert_invariants(lost_allowed=True)
    assert demoted_after < 2 * TTL
    log = _log_since(stack, old, offset)
    # The lease guard or the fence at the deadline, or the loop (STORE_UNREACHABLE_DEMOTING, or
    # LEADER_LEASE_EXPIRED_DEMOTING if a read got through first), whichever comes first.
    demoted = (
        "lease deadline passed without a renewal",
        "stopped immediately (SIGQUIT)",
        "etcd unreachable and my lease ran out",
        "lease ran out before",
    )
    assert any(words in log for words in demoted), log
    stopped_at = lost_at + demoted_after
    assert report.lost_outside(stopped_at - 1.0, stopped_at + 0.5) == []


# --- processes -------------------------------------------------------------------------------


def _insert_on(conn: psycopg.Connection[Any], table: str, value: int, results: list[bool]) -> None:
    """One INSERT on a connection straight to a node (not through HAProxy); records if it committed."""
    try:
        conn.execute(f"INSERT INTO {table} (id) VALUES (%s)", (value,))
        results.append(True)
    except psycopg.Error:
        results.append(False)


def test_frozen_primary_is_replaced_and_demoted_as_soon_as_it_resumes(stack: Stack) -> None:
    """SIGSTOP of the primary's whole node (agent, fence, PostgreSQL) for longer than ttl: a standby
    takes over.

    When the node resumes (the fence last), every write the old primary acknowledges after its
    lease deadline comes within 50 ms of the thaw: the fence's sleep ends at once (its wake-up time
    passed), it finds the deadline gone and stops PostgreSQL. No client of HAProxy is acknowledged
    by the old primary after it resumes (HAProxy marked it down while it was frozen). A client
    connected directly with a transaction in flight can be (asynchronous replication; see the
    synchronous variant)."""
    with Invariants(stack, "primary frozen (SIGSTOP) past ttl", direct_writers=True) as check:
        old = check.primary_before
        assert old is not None
        table = check.writer.table
        # A direct client whose INSERT reaches the old primary while it is frozen: it commits
        # only if the old primary still takes writes once resumed.
        pending: list[bool] = []
        info = conninfo(stack, stack.spec.node_host(_i(old)), stack.spec.pg_port, 2)
        direct = psycopg.connect(info, autocommit=True)
        offset = _log_offset(stack, old)
        try:
            with Freeze(stack, _i(old)) as freeze:
                frozen_at = time.monotonic()
                deadline = _fence_deadline(stack, old)
                in_flight = threading.Thread(
                    target=_insert_on, args=(direct, table, -1, pending), daemon=True
                )
                in_flight.start()
                new = wait_for(
                    lambda: _new_primary(stack, old), 60, "a new primary while the old one is frozen"
                )
                assert check.writer.wait_for_acks(20, 30), "no writes through HAProxy to the new primary"
                time.sleep(1.0)
            resumed_at = freeze.thaw_started_at or time.monotonic()
            in_flight.join(30)
        finally:
            direct.close()
        wait_for(
            lambda: (
                check.watch.last_writable(old) is not None
                and check.watch.last_writable(old) < time.monotonic() - 0.5
            ),
            20,
            f"{old} demoted",
        )
        window = max(0.0, (check.watch.last_writable(old) or resumed_at) - resumed_at)
        after_resume = [t for t in check.writer.report.ack_times if t >= resumed_at]
        report = check.finish()
    assert check.direct is not None
    late_direct = check.direct.acknowledged_between(old, deadline, time.monotonic())
    stopped_by = _stopped_by(_log_since(stack, old, offset))
    check.notes.update(
        freeze_until_new_primary_s=round(_first_ack_gap_end(check, frozen_at) - frozen_at, 2),
        old_primary_writable_after_resume_ms=round(window * 1000),
        in_flight_direct_insert_committed=bool(pending and pending[0]),
        direct_acks_after_deadline=len(late_direct),
        last_direct_ack_after_thaw_ms=round((max(late_direct) - resumed_at) * 1000) if late_direct else None,
        stopped_by=stopped_by,
    )
    report.publish()
    after_ms = [round((t - resumed_at) * 1000) for t in late_direct]
    assert all(ms <= 50 for ms in after_ms), (
        f"{old} acknowledged direct writes {after_ms} ms after the thaw, past its lease deadline "
        f"(stopped by the {stopped_by})"
    )
    # The only instants of two writers are right after the resume, before the agent demoted.
    assert all(resumed_at - 0.1 <= at <= resumed_at + window + 0.1 for at, _ in report.overlaps), (
        report.overlaps
    )
    assert window < TTL, f"{old} still accepted writes {window:.1f}s after resuming"
    late = [i for i, at in report.lost.items() if at >= resumed_at]
    if report.routed_to_writers or late:
        # After the resume the API answers /primary from its pre-freeze snapshot until the loop
        # has demoted PostgreSQL, so HAProxy may mark the old primary up while it still takes writes.
        pytest.fail(
            f"{STALE_PRIMARY} (here after a freeze: HAProxy up on two writable servers at "
            f"{len(report.routed_to_writers)} checks; writes acknowledged after the resume and lost: {late})"
        )
    report.assert_invariants(lost_allowed=True, split_brain_allowed=True)
    assert report.primary_after == new
    assert report.lost_outside(frozen_at - 1.0, frozen_at + 0.1) == []
    assert after_resume, "no write acknowledged after the resume"


def _stopped_by(log: str) -> str:
    """Which of the two enforcers of the lease deadline stopped PostgreSQL, from the node's log."""
    if "stopped immediately (SIGQUIT)" in log:
        return "fence"
    if "lease deadline passed without a renewal" in log:
        return "agent's lease guard"
    return "agent's loop"


def _first_ack_gap_end(check: Invariants, since: float) -> float:
    """When writes resumed after the longest gap that began after ``since``."""
    best = (0.0, since)
    for a, b in itertools.pairwise(list(check.writer.report.ack_times)):
        if b >= since and b - a > best[0]:
            best = (b - a, b)
    return best[1]


def test_frozen_primary_acknowledges_no_write_after_resuming_in_synchronous_mode() -> None:
    """As the frozen-primary test, with synchronous_mode on (block): only the claimed standby
    takes over; once resumed, the old primary acknowledges nothing (its standbys follow the new
    primary, and its lease guard stops it): not the direct client's INSERT sent while it was
    frozen, not direct INSERTs sent after the resume, not the writer's; nothing is lost."""
    fault = "primary frozen (SIGSTOP) past ttl, synchronous on"
    with _synchronous_stack("block") as stack, Invariants(stack, fault, direct_writers=True) as check:
        old = check.primary_before
        assert old is not None
        claimed = sync_claim(stack)
        table = check.writer.table
        direct = conninfo(stack, stack.spec.node_host(_i(old)), stack.spec.pg_port, 2)
        # Connected before the freeze, so its INSERT waits in the frozen server's socket.
        in_flight = DirectInsert(direct, table, -1, psycopg.connect(direct, autocommit=True))
        offset = _log_offset(stack, old)
        with Freeze(stack, _i(old)) as freeze:
            frozen_at = time.monotonic()
            deadline = _fence_deadline(stack, old)
            in_flight.send()
            new = wait_for(lambda: _new_primary(stack, old), 60, "a new primary while the old one is frozen")
            assert new in claimed, f"{new} promoted outside the claimed set {claimed} (rule 4)"
            assert check.writer.wait_for_acks(20, 60), "no writes through HAProxy to the new primary"
            time.sleep(1.0)
        resumed_at = freeze.thaw_started_at or time.monotonic()
        after = [DirectInsert(direct, table, -2).send()]
        for k, delay in enumerate((0.1, 0.3, 0.6, 1.0)):
            time.sleep(max(0.0, resumed_at + delay - time.monotonic()))
            after.append(DirectInsert(direct, table, -3 - k).send())
        acknowledged_direct = [p.value for p in after if p.acknowledged_within(2.0)]
        in_flight_acknowledged = in_flight.acknowledged_within(max(2.0, resumed_at + 5 - time.monotonic()))
        wait_for(
            lambda: (
                check.watch.last_writable(old) is not None
                and check.watch.last_writable(old) < time.monotonic() - 0.5
            ),
            20,
            f"{old} demoted",
        )
        window = max(0.0, (check.watch.last_writable(old) or resumed_at) - resumed_at)
        after_resume = [t for t in check.writer.report.ack_times if t >= resumed_at]
        report = check.finish()
        # The writer's ids are never retried, so one the old primary acknowledged after the resume
        # exists on its forked timeline alone: rewound away, it is missing from the final primary.
        from_old = [i for i, at in report.lost.items() if at >= resumed_at]
        check.notes.update(
            freeze_until_new_primary_s=round(_first_ack_gap_end(check, frozen_at) - frozen_at, 2),
            old_primary_writable_after_resume_ms=round(window * 1000),
            acknowledged_by_old_primary_after_resume=len(from_old) + len(acknowledged_direct),
            in_flight_direct_insert=in_flight.outcome,
            direct_inserts_after_resume=", ".join(p.outcome for p in after),
        )
        assert check.direct is not None
        late = check.direct.acknowledged_between(old, deadline, time.monotonic())
        stopped_by = _stopped_by(_log_since(stack, old, offset))
        check.notes.update(direct_acks_after_deadline=len(late), stopped_by=stopped_by)
        report.publish()
        assert late == [], f"{old} acknowledged direct writes after its lease deadline: {late}"
        assert not in_flight_acknowledged, f"{old} acknowledged the INSERT sent while it was frozen"
        assert acknowledged_direct == [], (
            f"{old} acknowledged direct INSERTs {acknowledged_direct} after resuming"
        )
        assert from_old == [], f"writes acknowledged after the resume and lost: {from_old}"
        assert all(resumed_at - 0.1 <= at <= resumed_at + window + 0.1 for at, _ in report.overlaps), (
            report.overlaps
        )
        assert window < TTL, f"{old} still accepted writes {window:.1f}s after resuming"
        report.assert_invariants(split_brain_allowed=True)
        assert report.primary_after == new
        assert after_resume, "no write acknowledged after the resume"


def _gone_at(pid: int, timeout: float, what: str) -> float:
    """When ``pid`` exited (looked at every 5 ms), so that a fence's timing is measured closely."""
    deadline = time.monotonic() + timeout
    while processes.alive(pid):
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.005)
    return time.monotonic()


def _fence_deadline(stack: Stack, name: str) -> float:
    """The lease deadline the fence of ``name`` holds (what its agent last wrote)."""
    files = FenceFiles.beside(str(stack.spec.data_dir(_i(name))))
    record = read_deadline(files.deadline, boot_id(), time.monotonic())
    assert record is not None and record.deadline is not None, f"{name}'s fence holds no deadline"
    return record.deadline


def _one_writer_at_a_time(check: Invariants, old: str, since: float) -> dict[str, float]:
    """The old primary's last directly acknowledged write came before any other node's first one
    after ``since`` (direct writers every 50 ms, HAProxy or not); returns both, relative to it."""
    direct = check.direct
    assert direct is not None
    last_old = direct.last_ack(old)
    others = [t for n in direct.acks if n != old and (t := direct.first_ack(n, since)) is not None]
    assert last_old is not None and others, (last_old, others)
    first_other = min(others)
    assert last_old < first_other, (
        f"{old} acknowledged a direct write {last_old - since:.3f}s after the fault, another node "
        f"its first at {first_other - since:.3f}s"
    )
    return {
        "old_primary_last_direct_ack_s": round(last_old - since, 3),
        "first_direct_ack_elsewhere_s": round(first_other - since, 3),
    }


def test_agent_killed_on_the_primary_and_not_restarted_is_fenced(stack: Stack) -> None:
    """SIGKILL of the primary's agent alone, left dead for ttl + 20 s. Its fence (a process of its
    own, which outlives the agent) stops the old PostgreSQL at the lease deadline, before etcd can
    hand the key away: the old node stops acknowledging direct writes before any other node
    acknowledges one, a standby takes over and writes resume through HAProxy; PostgreSQL stays
    stopped while the agent is away; the agent, back, adopts its fence and rejoins as a standby."""
    with Invariants(stack, "agent killed on the primary, not restarted", direct_writers=True) as check:
        old = check.primary_before
        assert old is not None
        i = _i(old)
        data_dir = str(stack.spec.data_dir(i))
        postmaster, fence = _postmaster(stack, old), running_fence(data_dir)
        assert postmaster is not None and fence is not None
        offset = _log_offset(stack, old)
        killed_at = time.monotonic()
        stack.kill_agent(i)
        fenced_at = _gone_at(postmaster, 2 * TTL, f"{old}'s fence stopping its PostgreSQL")
        new = wait_for(lambda: _new_primary(stack, old), 60, "a new primary")
        assert check.writer.wait_for_acks(20, 30), "no writes through HAProxy to the new primary"
        time.sleep(max(0.0, killed_at + TTL + 20 - time.monotonic()))
        assert _postmaster(stack, old) is None, f"{old}'s PostgreSQL runs again with no agent"
        assert running_fence(data_dir) == fence
        stack.start_agent(i)
        wait_for(lambda: _status(stack, old).get("role") == "replica", 90, f"{old} back as a standby")
        report = check.finish()
    check.notes.update(
        agent_death_to_fence_s=round(fenced_at - killed_at, 3),
        kill_until_writes_s=round(_first_ack_gap_end(check, killed_at) - killed_at, 2),
        **_one_writer_at_a_time(check, old, killed_at),
    )
    report.publish()
    assert fenced_at - killed_at < TTL, f"fenced {fenced_at - killed_at:.2f}s after the kill, ttl {TTL}"
    report.assert_invariants(lost_allowed=True)  # one writer at a time: no split brain at all
    assert report.primary_after == new
    # Asynchronous replication: only writes acknowledged just before the fence may be missing.
    assert report.lost_outside(fenced_at - 1.0, fenced_at + 0.1) == []
    log = _log_since(stack, old, offset)
    assert "stopped immediately (SIGQUIT)" in log and f"adopted the running fence (pid {fence})" in log


def test_agent_frozen_alone_past_ttl_is_fenced(stack: Stack) -> None:
    """SIGSTOP of the primary's agent alone, PostgreSQL and the fence running on (an agent stuck,
    swapped out, or stopped by hand): the fence stops PostgreSQL at the lease deadline and a
    standby takes over, one writer at a time; resumed, the agent rejoins as a standby."""
    with Invariants(stack, "agent frozen alone (SIGSTOP) past ttl", direct_writers=True) as check:
        old = check.primary_before
        assert old is not None
        agent, postmaster = stack.pids[old], _postmaster(stack, old)
        assert postmaster is not None
        frozen_at = time.monotonic()
        processes.signal_one(agent, signal.SIGSTOP)
        try:
            fenced_at = _gone_at(postmaster, 2 * TTL, f"{old}'s fence stopping its PostgreSQL")
            new = wait_for(lambda: _new_primary(stack, old), 60, "a new primary")
            assert check.writer.wait_for_acks(20, 30), "no writes through HAProxy to the new primary"
        finally:
            processes.signal_one(agent, signal.SIGCONT)
        wait_for(lambda: _status(stack, old).get("role") == "replica", 90, f"{old} back as a standby")
        report = check.finish()
    check.notes.update(
        freeze_to_fence_s=round(fenced_at - frozen_at, 3), **_one_writer_at_a_time(check, old, frozen_at)
    )
    report.publish()
    assert fenced_at - frozen_at < TTL
    report.assert_invariants(lost_allowed=True)
    assert report.primary_after == new
    assert report.lost_outside(fenced_at - 1.0, fenced_at + 0.1) == []


# --- repetition ------------------------------------------------------------------------------


def test_flapping_network_between_the_primary_and_etcd(stack: Stack) -> None:
    """Whoever is primary is cut from etcd and restored, again and again, for ~40 s."""
    pattern = [(2.0, 3.0), (4.5, 3.0), (3.0, 2.0), (5.0, 4.0), (1.5, 2.0), (4.5, 3.0)]  # (cut, restored)
    with Invariants(stack, "flapping primary <-> etcd, ~40 s") as check:
        cuts = 0
        started = time.monotonic()
        for cut_s, restored_s in pattern:
            target = primary_name(stack)
            if target is None or time.monotonic() - started > 40:
                time.sleep(restored_s)
                continue
            with NetworkCut().drop(node(stack, _i(target)), etcd(stack)):
                cuts += 1
                time.sleep(cut_s)
            time.sleep(restored_s)
        check.notes["cuts"] = cuts
        report = check.finish()
    report.publish()
    assert cuts >= 3
    assert report.healed, report.heal_summary
    try:
        report.assert_invariants(lost_allowed=True)
    except AssertionError as exc:
        # A cut landing just after a lease renewal (a few % of random cuts): see the test above.
        pytest.fail(f"{LEASE_OVERRUN}\n(here: {exc})")


def test_several_failovers_in_a_row_with_the_writer_running(stack: Stack) -> None:
    """Five node kills in a row (fewer than the issue's ten, to keep the suite within its budget):
    each time a new primary, the old one back as a standby, one writer at a time throughout."""
    rounds = 5
    primaries = []
    kills: list[float] = []
    with Invariants(stack, f"{rounds} failovers in a row (kill -9)", heal_timeout=120) as check:
        for _ in range(rounds):
            old = routed_primary(stack, 90)
            primaries.append(old)
            kills.append(time.monotonic())
            stack.kill_node(_i(old))
            wait_for(lambda old=old: _new_primary(stack, old), 60, "a new primary")
            assert check.writer.wait_for_acks(10, 30)
            stack.start_agent(_i(old))
        check.notes["primaries"] = "->".join(primaries)
        report = check.finish()
    report.publish()
    report.assert_invariants(lost_allowed=True)
    assert len(set(primaries)) > 1
    # Only writes acknowledged in the last second before a kill may be lost (asynchronous).
    stray = [i for i, at in report.lost.items() if not any(k - 1.0 <= at <= k + 0.1 for k in kills)]
    assert stray == [], f"lost writes acknowledged away from any kill: {stray}"
