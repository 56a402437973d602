"""The watchdog: armed while this node leads, kept alive with each renewal, disarmed once it stops writing.

Patroni's semantics (its ``watchdog`` section): ``off``; ``automatic`` uses the device when it can
and leads without it otherwise; ``required`` never leads without it (decide's ``watchdog_ready``).
The agent opens the device when it becomes leader (the key acquired, or adopted by a restarted
agent), sets its timeout to ttl - safety_margin (ttl // 2 with -1; unset, a margin that scales with
ttl: ha/watchdog_timing.py) where the driver allows, keeps
it alive after every successful renewal, and closes it with the magic ``V`` once PostgreSQL takes
no more writes (a demotion, a release, the lease guard's stop, a clean shutdown) and while the
cluster is paused. An agent that is dead or frozen keeps it alive no more: the machine resets
when the timeout expires, whatever else is stuck.

So that the agent and the fence act first, the lease deadline they enforce is capped at the last
keepalive + the device's timeout - RESERVE (LeaderLease.watchdog_limit): the machine resets only
when neither could stop PostgreSQL in time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable

from pgwarden.agent.lease import LeaderLease, monotonic
from pgwarden.agent.watchdog_device import Support, WatchdogDevice
from pgwarden.ha.watchdog_timing import safety_margin, watchdog_timeout
from pgwarden.model.node import WatchdogSettings

log = logging.getLogger(__name__)

# Between the deadline the agent and the fence enforce and the device firing: an immediate stop
# of PostgreSQL (15-130 ms measured) and the magic close, with room to spare.
RESERVE = 0.5
# A failed attempt is not repeated for this long (or until ttl or loop_wait change): the log says
# it once, and a required watchdog keeps this node from leading meanwhile.
RETRY_AFTER = 60.0


class WatchdogError(Exception):
    """The watchdog is required but cannot be used; the message says why and what to change."""


class Watchdog:
    def __init__(
        self,
        settings: WatchdogSettings,
        lease: LeaderLease,
        device: WatchdogDevice | None = None,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        self.settings = settings
        self._lease = lease
        self._device = device or WatchdogDevice(settings.device)
        self._clock = clock
        self._lock = threading.Lock()
        self._support = Support(0, "watchdog")
        self.timeout: int | None = None  # the device's timeout while armed
        self.problem: str | None = None  # why the last attempt failed
        self._failed: tuple[float, float, float] | None = None  # (when, ttl, loop_wait)

    @property
    def armed(self) -> bool:
        return self._device.is_open

    def ready(self, ttl: float, loop_wait: float) -> bool:
        """May this node lead? Always, unless the mode is required and the device cannot be used:
        a recent failure for these timings, or (Patroni's check) no device we may write to."""
        if self.settings.mode != "required" or self.armed:
            return True
        if self._recently_failed(ttl, loop_wait):
            return False
        return os.access(self.settings.device, os.W_OK)

    def wanted_timeout(self, ttl: float) -> int:
        return watchdog_timeout(ttl, self.settings.safety_margin)

    def keep(self, ttl: float, loop_wait: float) -> None:
        """After a successful renewal: arm the device if needed, then keep it alive.

        Raises WatchdogError when the mode is required and the device cannot be used; in
        automatic mode the problem is logged and this node leads without a watchdog.
        """
        if self.settings.mode == "off":
            return
        with self._lock:
            if not self.armed:
                if self._recently_failed(ttl, loop_wait):
                    if self.settings.mode == "required":  # logged when it failed; no more lines
                        raise WatchdogError(f"the watchdog is required but cannot be used: {self.problem}")
                    return
                self._arm(ttl, loop_wait)
                if not self.armed:
                    return
            try:
                self._device.keepalive()
            except OSError as exc:
                self._fail(f"a keepalive of {self.settings.device} failed: {exc}", ttl, loop_wait)
                return
            assert self.timeout is not None
            self._lease.watchdog_limit = self._clock() + self.timeout - RESERVE
        self._lease.changed()  # the deadline may have moved: the fence must hold it

    def disarm(self) -> None:
        """PostgreSQL takes no more writes (or the cluster is paused): stop the device."""
        with self._lock:
            if not self.armed:
                return
            magic = self._support.magic_close
            if not magic:
                log.warning(
                    "the watchdog %s cannot be stopped (no magic close): this machine resets in %s s",
                    self.settings.device,
                    self.timeout,
                )
            try:
                self._device.close(magic)
            except OSError as exc:
                log.error("closing the watchdog %s failed: %s", self.settings.device, exc)
            self.timeout = None
            self._lease.watchdog_limit = None
            if magic:
                log.info("watchdog %s disarmed", self.settings.device)
        self._lease.changed()

    def _margin(self, ttl: float) -> str:
        """The margin in force, for the log: the configured one, or the default for this ttl."""
        margin = safety_margin(ttl, self.settings.safety_margin)
        return f"{margin:g}" if self.settings.safety_margin is not None else f"{margin:g}, the default for it"

    def _arm(self, ttl: float, loop_wait: float) -> None:
        wanted = self.wanted_timeout(ttl)
        if wanted - RESERVE <= loop_wait:
            self._fail(
                f"a {wanted} s watchdog timeout (ttl {ttl:g} - safety_margin {self._margin(ttl)})"
                f" leaves no room for loop_wait {loop_wait:g} s between two keepalives: raise ttl, or "
                "lower watchdog.safety_margin (or leave it unset: it scales with ttl)",
                ttl,
                loop_wait,
            )
            return
        try:
            self._device.open()
        except OSError as exc:
            self._fail(f"cannot open {self.settings.device}: {exc.strerror or exc}", ttl, loop_wait)
            return
        try:
            self._support = self._device.support()
        except OSError:
            self._support = Support(0, "watchdog")  # a driver that says nothing: assume nothing
        try:
            actual = self._device.set_timeout(wanted) if self._support.set_timeout else None
            actual = self._device.get_timeout() if actual is None else actual
        except OSError as exc:
            self._fail(f"cannot set or read the timeout of {self.settings.device}: {exc}", ttl, loop_wait)
            return
        if actual > wanted:
            late = "it would not reset this machine before etcd could hand the key away"
            self._fail(f"the driver keeps a {actual} s timeout, not {wanted} s: {late}", ttl, loop_wait)
            return
        if actual - RESERVE <= loop_wait:
            short = f"the driver's {actual} s timeout is too short for loop_wait {loop_wait:g} s"
            self._fail(short, ttl, loop_wait)
            return
        self.timeout = actual
        self.problem, self._failed = None, None
        log.info(
            "watchdog %s (%s) armed: it resets this machine %d s after the last keepalive%s",
            self.settings.device,
            self._support.identity,
            actual,
            "" if self._support.magic_close else "; it cannot be stopped again (no magic close)",
        )

    def _fail(self, problem: str, ttl: float, loop_wait: float) -> None:
        if self.armed:
            with contextlib.suppress(OSError):  # closing a device that already failed
                self._device.close(magic=True)
        self.timeout = None
        self._lease.watchdog_limit = None
        self.problem, self._failed = problem, (self._clock(), ttl, loop_wait)
        self._refuse(problem)

    def _refuse(self, problem: str) -> None:
        if self.settings.mode == "required":
            log.error("the watchdog is required but cannot be used: %s; not leading", problem)
            raise WatchdogError(f"the watchdog is required but cannot be used: {problem}")
        log.warning("leading without a watchdog: %s", problem)

    def _recently_failed(self, ttl: float, loop_wait: float) -> bool:
        if self._failed is None:
            return False
        at, failed_ttl, failed_loop_wait = self._failed
        return (failed_ttl, failed_loop_wait) == (ttl, loop_wait) and self._clock() - at < RETRY_AFTER
