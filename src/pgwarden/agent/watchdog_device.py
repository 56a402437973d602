"""A Linux watchdog device: open, keep alive, magic close, and its three ioctls behind one seam.

The kernel's interface (Documentation/watchdog/watchdog-api.rst): opening the device starts the
timer, any write restarts it, and writing ``V`` right before closing stops it when the driver
supports the "magic close" (``WDIOF_MAGICCLOSE``); otherwise closing leaves it running and the
machine resets when it expires. The timeout is read and, where the driver allows
(``WDIOF_SETTIMEOUT``), set with ioctls. The ioctls go through ``Ioctl``, so that tests drive a
stand-in file (a FIFO or a regular file) with a fake driver instead of a real device.
"""

from __future__ import annotations

import fcntl
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

# <linux/ioctl.h> on x86, arm and most others: dir(2 bits) size(14) type(8) nr(8).
_IOC_WRITE, _IOC_READ = 1, 2


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("W") << 8) | nr


_WATCHDOG_INFO = struct.Struct("=II32s")  # options, firmware_version, identity
_INT = struct.Struct("=i")
WDIOC_GETSUPPORT = _ioc(_IOC_READ, 0, _WATCHDOG_INFO.size)
WDIOC_SETTIMEOUT = _ioc(_IOC_READ | _IOC_WRITE, 6, _INT.size)
WDIOC_GETTIMEOUT = _ioc(_IOC_READ, 7, _INT.size)
WDIOF_SETTIMEOUT = 0x0080
WDIOF_MAGICCLOSE = 0x0100

# (fd, request, buffer): the buffer is read and written in place, as fcntl.ioctl(..., True) does.
Ioctl = Callable[[int, int, bytearray], None]


def linux_ioctl(fd: int, request: int, buffer: bytearray) -> None:
    fcntl.ioctl(fd, request, buffer, True)


@dataclass(frozen=True, slots=True)
class Support:
    """What the driver says it can do (WDIOC_GETSUPPORT)."""

    options: int
    identity: str

    @property
    def set_timeout(self) -> bool:
        return bool(self.options & WDIOF_SETTIMEOUT)

    @property
    def magic_close(self) -> bool:
        return bool(self.options & WDIOF_MAGICCLOSE)


class WatchdogDevice:
    """One open of the device; every method raises OSError when the kernel refuses."""

    def __init__(self, path: str, ioctl: Ioctl = linux_ioctl) -> None:
        self.path = path
        self._ioctl = ioctl
        self._fd: int | None = None

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def open(self) -> None:
        """Open it, which starts the timer (O_RDWR: a FIFO stand-in then needs no reader)."""
        self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)

    def keepalive(self) -> None:
        os.write(self._require(), b"1")

    def close(self, magic: bool) -> None:
        """Close; with ``magic``, write ``V`` first so that a driver that supports it stops."""
        fd = self._require()
        self._fd = None
        try:
            if magic:
                os.write(fd, b"V")
        finally:
            os.close(fd)

    def support(self) -> Support:
        buffer = bytearray(_WATCHDOG_INFO.size)
        self._ioctl(self._require(), WDIOC_GETSUPPORT, buffer)
        options, _, identity = _WATCHDOG_INFO.unpack(buffer)
        return Support(options, identity.rstrip(b"\0").decode(errors="replace") or "watchdog")

    def set_timeout(self, seconds: int) -> int:
        """Ask for ``seconds``; returns what the driver set (it may round or clamp)."""
        buffer = bytearray(_INT.pack(seconds))
        self._ioctl(self._require(), WDIOC_SETTIMEOUT, buffer)
        return int(_INT.unpack(buffer)[0])

    def get_timeout(self) -> int:
        buffer = bytearray(_INT.size)
        self._ioctl(self._require(), WDIOC_GETTIMEOUT, buffer)
        return int(_INT.unpack(buffer)[0])

    def _require(self) -> int:
        if self._fd is None:
            raise OSError(f"{self.path} is not open")
        return self._fd
