"""Tells systemd how the agent is doing (``sd_notify``): READY once the first cycle ran, the last
decision as STATUS, WATCHDOG pings when the unit asks for them, RELOADING and STOPPING.

The protocol is a datagram of ``KEY=value`` lines sent to the unix socket named by
``$NOTIFY_SOCKET`` (``@`` for the abstract namespace), a few lines of standard library, not a
dependency. Without ``$NOTIFY_SOCKET`` (not under systemd, or ``Type=simple``) every call does
nothing. A failed send is logged once and never raised: systemd's opinion of the agent must
never stop it from running PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import MutableMapping

log = logging.getLogger(__name__)

_STATUS_LIMIT = 400  # characters of a decision sentence shown by `systemctl status`


class ServiceNotifier:
    def __init__(self, address: str | None, watchdog_seconds: float | None = None) -> None:
        self._address = address
        self.watchdog_seconds = watchdog_seconds
        self._ready = False
        self._status = ""
        self._last_ping = 0.0
        self._failed = False

    @classmethod
    def from_environment(cls, env: MutableMapping[str, str] | None = None) -> ServiceNotifier:
        """Read and remove ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` (as
        sd_notify's ``unset_environment`` does): PostgreSQL and the fence, started by the agent,
        must not talk to systemd in the agent's name (Debian builds PostgreSQL with systemd
        support, and a postmaster that found ``$NOTIFY_SOCKET`` would send its own READY)."""
        env = os.environ if env is None else env
        address = env.pop("NOTIFY_SOCKET", None) or None
        usec = env.pop("WATCHDOG_USEC", None)
        pid = env.pop("WATCHDOG_PID", None)
        watchdog = None
        if usec and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            watchdog = int(usec) / 1_000_000
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def cycle_done(self, status: str) -> None:
        """After every cycle: READY the first time, STATUS when the decision changed, and a
        WATCHDOG ping at most every half watchdog period (systemd restarts an agent whose loop
        stopped cycling for a whole period)."""
        if not self.enabled:
            return
        fields: list[str] = []
        if not self._ready:
            fields.append("READY=1")
            self._ready = True
        if status != self._status:
            fields.append(f"STATUS={_one_line(status)}")
            self._status = status
        now = time.monotonic()
        if self.watchdog_seconds is not None and now - self._last_ping >= self.watchdog_seconds / 2:
            fields.append("WATCHDOG=1")
            self._last_ping = now
        if fields:
            self.send(*fields)

    def reloading(self) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def reloaded(self) -> None:
        self.send("READY=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def send(self, *fields: str) -> bool:
        """One datagram of ``fields``; False (logged once) when it could not be sent."""
        if self._address is None:
            return False
        address = "\0" + self._address[1:] if self._address.startswith("@") else self._address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(fields).encode(), address)
        except OSError as exc:
            if not self._failed:
                log.warning("cannot notify systemd at %s: %s", self._address, exc)
                self._failed = True
            return False
        self._failed = False
        return True


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _STATUS_LIMIT else line[: _STATUS_LIMIT - 1] + "…"
