"""A stand-in for a Linux watchdog driver behind the agent's ioctl seam (agent/watchdog_device.py)."""

from __future__ import annotations

import errno
import struct

from pgwarden.agent.watchdog_device import (
    WDIOC_GETSUPPORT,
    WDIOC_GETTIMEOUT,
    WDIOC_SETTIMEOUT,
    WDIOF_MAGICCLOSE,
    WDIOF_SETTIMEOUT,
)

SOFTDOG = WDIOF_SETTIMEOUT | WDIOF_MAGICCLOSE


class FakeDriver:
    """Answers the three ioctls the agent uses; records the timeouts asked for."""

    def __init__(
        self, options: int = SOFTDOG, timeout: int = 60, identity: str = "Software Watchdog"
    ) -> None:
        self.options, self.timeout, self.identity = options, timeout, identity
        self.asked: list[int] = []

    def __call__(self, fd: int, request: int, buffer: bytearray) -> None:
        if request == WDIOC_GETSUPPORT:
            struct.pack_into("=II32s", buffer, 0, self.options, 0, self.identity.encode())
        elif request == WDIOC_SETTIMEOUT:
            if not self.options & WDIOF_SETTIMEOUT:
                raise OSError(errno.EOPNOTSUPP, "not supported")
            (wanted,) = struct.unpack("=i", buffer)
            self.asked.append(wanted)
            self.timeout = wanted
            struct.pack_into("=i", buffer, 0, self.timeout)
        elif request == WDIOC_GETTIMEOUT:
            struct.pack_into("=i", buffer, 0, self.timeout)
        else:
            raise OSError(errno.ENOTTY, "unknown ioctl")
