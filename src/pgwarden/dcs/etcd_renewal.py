"""The leader lease's renewal, hedged: the preferred etcd member first, then every member at once.

Renewing the leader lease is the one request `EtcdStore` may send to several members at once.
During an etcd leader election a member may hang (it still forwards to the dead leader) or answer
"no leader" while another is about to serve; asking them one by one would spend the lease (safety
rule 1). So a renewal goes to the preferred member; when that has not answered after
`hedge_after` the time left (ha/lease_timing.py: a tenth, between 0.1 and 1 s), or has failed, it
goes to every member at once, and again every RENEW_RETRY to those whose request ended without an
answer, until one answers or the caller's deadline passes. A keepalive is idempotent, so copies
do no harm; writes are never hedged (a transaction sent twice could answer "compare failed" to
its own first copy).

The requests run on a small pool of the store's threads: two renewals may overlap (the loop's and
the keeper's), each with one request per member, and a renewal that returned leaves its slower
requests running out their timeouts.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from pgwarden.dcs.etcd_wire import Json, _Reply
from pgwarden.dcs.store import StoreError
from pgwarden.ha.lease_timing import hedge_after

# While no member has renewed the lease, the request is sent again this often to every member
# whose earlier request ended without an answer: a later send, a later deadline.
RENEW_RETRY = 0.25

PostOnce = Callable[[int, str, Json, float], _Reply]  # (member index, path, body, budget) -> reply


class NoMemberAnswered(Exception):
    """No member answered before the deadline; ``failures`` says why, by member index."""

    def __init__(self, failures: dict[int, str]) -> None:
        super().__init__(failures)
        self.failures = failures


class HedgedRenewals:
    """Sends an idempotent request to ``members`` etcd members through ``post_once`` (which never
    raises), each request bounded by ``timeout``; see the module docstring."""

    def __init__(self, members: int, timeout: float, post_once: PostOnce) -> None:
        self._members = members
        self._timeout = timeout
        self._post_once = post_once
        self._pool = ThreadPoolExecutor(4 * members, thread_name_prefix="etcd-renew")

    def first_answer(self, preferred: int, path: str, body: Json, until: float) -> _Reply:
        """The first usable reply to ``body`` (an answer, or an error every member would give
        alike) from ``preferred``, then from every member; NoMemberAnswered once the monotonic
        time ``until`` passes without one, StoreError when the pool is closed."""
        replies: queue.SimpleQueue[_Reply] = queue.SimpleQueue()
        pending: set[int] = set()
        failures: dict[int, str] = {}
        targets = [preferred]
        while (left := until - time.monotonic()) > 0.01:
            hedging = len(targets) == 1
            for index in targets:
                pending.add(index)
                budget = min(self._timeout, left)
                try:
                    self._pool.submit(self._post_into, replies, index, path, body, budget)
                except RuntimeError as exc:  # the pool is shut down: the store was closed
                    raise StoreError(f"etcd client closed: {exc}") from exc
            round_end = min(until, time.monotonic() + (hedge_after(left) if hedging else RENEW_RETRY))
            while (wait := round_end - time.monotonic()) > 0:
                try:
                    reply = replies.get(timeout=wait)
                except queue.Empty:
                    break
                pending.discard(reply.index)
                if reply.failure is None:
                    return reply
                failures[reply.index] = reply.failure
                if hedging:
                    break  # the preferred member failed: ask everyone now, not after the hedge
            targets = [i for i in range(self._members) if i not in pending]
        raise NoMemberAnswered(failures)

    def _post_into(
        self, replies: queue.SimpleQueue[_Reply], index: int, path: str, body: Json, budget: float
    ) -> None:
        replies.put(self._post_once(index, path, body, budget))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
