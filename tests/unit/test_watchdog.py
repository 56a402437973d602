"""The watchdog against a stand-in device: a real file (or FIFO) for open/write/close, and a fake
driver behind the ioctl seam (support flags, timeouts), as a Linux driver such as softdog answers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgwarden.agent.lease import LeaderLease
from pgwarden.agent.watchdog import RESERVE, Watchdog, WatchdogError
from pgwarden.agent.watchdog_device import WDIOF_MAGICCLOSE, WDIOF_SETTIMEOUT, WatchdogDevice
from pgwarden.model.node import WatchdogSettings
from tests.support.watchdog import FakeDriver


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def watchdog(
    tmp_path: Path,
    mode: str = "automatic",
    safety_margin: float | None = 2.0,
    driver: FakeDriver | None = None,
) -> tuple[Watchdog, LeaderLease, Path, FakeDriver, Clock]:
    path = tmp_path / "watchdog"
    path.touch()
    driver = driver or FakeDriver()
    lease, clock = LeaderLease(), Clock()
    settings = WatchdogSettings(mode, str(path), safety_margin)
    return Watchdog(settings, lease, WatchdogDevice(str(path), driver), clock), lease, path, driver, clock


def test_off_never_touches_the_device(tmp_path: Path) -> None:
    dog, _lease, path, driver, _ = watchdog(tmp_path, mode="off")
    dog.keep(10.0, 1.0)
    assert not dog.armed and path.read_bytes() == b"" and driver.asked == []
    assert dog.ready(10.0, 1.0)


def test_armed_at_ttl_minus_safety_margin_kept_alive_and_disarmed_by_magic_close(
    tmp_path: Path,
) -> None:
    dog, lease, path, driver, clock = watchdog(tmp_path)
    lease.renewed(7, sent_at=100.0, ttl=10.0)
    dog.keep(10.0, 1.0)
    assert dog.armed and driver.asked == [8] and dog.timeout == 8
    clock.now = 101.0
    lease.renewed(7, sent_at=101.0, ttl=10.0)
    dog.keep(10.0, 1.0)
    assert path.read_bytes() == b"11"
    dog.disarm()
    assert not dog.armed and path.read_bytes() == b"11V"


def test_the_deadline_comes_before_the_device_fires(tmp_path: Path) -> None:
    dog, lease, _, _, clock = watchdog(tmp_path, safety_margin=5.0)  # ttl 10: a 5 s timeout
    fed: list[float | None] = []
    lease.listeners.append(lambda: fed.append(lease.deadline()))
    lease.renewed(7, sent_at=100.0, ttl=10.0)
    clock.now = 100.01  # the keepalive follows the renewal's answer
    dog.keep(10.0, 1.0)
    fires_at = clock.now + 5
    assert lease.deadline() == pytest.approx(fires_at - RESERVE)
    assert fed[-1] == lease.deadline(), "the fence is fed the capped deadline"
    dog.disarm()
    assert lease.deadline() == 109.0 and fed[-1] == 109.0


def test_minus_one_is_half_the_ttl(tmp_path: Path) -> None:
    dog, _, _, driver, _ = watchdog(tmp_path, safety_margin=-1)
    dog.keep(10.0, 1.0)
    assert driver.asked == [5]


def test_required_refuses_when_the_device_cannot_be_opened(tmp_path: Path) -> None:
    dog, _, path, _, _ = watchdog(tmp_path, mode="required")
    path.unlink()
    assert not dog.ready(10.0, 1.0)
    with pytest.raises(WatchdogError, match="cannot open"):
        dog.keep(10.0, 1.0)
    assert not dog.armed


def test_automatic_arms_at_the_default_ttl_with_the_default_margin(tmp_path: Path) -> None:
    dog, lease, _path, driver, clock = watchdog(tmp_path, mode="automatic", safety_margin=None)
    lease.renewed(7, sent_at=100.0, ttl=4.0)
    clock.now = 100.01
    dog.keep(4.0, 1.0)  # the defaults: ttl 4, loop_wait 1; the margin scales with ttl: 1 s
    assert dog.armed and driver.asked == [3] and dog.timeout == 3
    assert lease.deadline() == pytest.approx(100.01 + 3 - RESERVE), "capped before the device fires"


def test_required_refuses_a_timeout_that_leaves_no_room_for_the_loop(tmp_path: Path) -> None:
    dog, _, path, driver, _clock = watchdog(tmp_path, mode="required", safety_margin=5.0)
    with pytest.raises(WatchdogError, match=r"raise ttl, or lower watchdog\.safety_margin"):
        dog.keep(4.0, 1.0)  # ttl 4 - a configured 5 leaves nothing
    assert not dog.ready(4.0, 1.0), "not racing while the same timings would fail again"
    assert dog.ready(10.0, 1.0), "another ttl may work: the device is there"
    assert path.read_bytes() == b"" and driver.asked == []


def test_automatic_leads_without_a_watchdog_it_cannot_use(tmp_path: Path) -> None:
    dog, lease, _path, _, _ = watchdog(tmp_path, mode="automatic", safety_margin=5.0)
    lease.renewed(7, sent_at=100.0, ttl=4.0)
    dog.keep(4.0, 1.0)
    dog.keep(4.0, 1.0)
    assert not dog.armed and lease.watchdog_limit is None and lease.deadline() == 103.0
    assert dog.ready(4.0, 1.0)


def test_a_driver_that_cannot_set_a_short_enough_timeout_is_not_used(tmp_path: Path) -> None:
    fixed = FakeDriver(options=WDIOF_MAGICCLOSE, timeout=60)  # a fixed 60 s: etcd moves on in 10
    dog, _, path, _, _ = watchdog(tmp_path, mode="required", driver=fixed)
    with pytest.raises(WatchdogError, match="keeps a 60 s timeout"):
        dog.keep(10.0, 1.0)
    assert not dog.armed and path.read_bytes() == b"V", "opened, then stopped again"


def test_a_driver_without_magic_close_keeps_running_after_the_close(tmp_path: Path) -> None:
    dog, _, path, _, _ = watchdog(tmp_path, driver=FakeDriver(options=WDIOF_SETTIMEOUT))
    dog.keep(10.0, 1.0)
    dog.disarm()
    assert path.read_bytes() == b"1", "no V: it would not stop anyway; the log says the machine resets"


def test_a_fifo_stands_in_for_the_device(tmp_path: Path) -> None:
    path = tmp_path / "watchdog.fifo"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        lease = LeaderLease()
        dog = Watchdog(
            WatchdogSettings("required", str(path), 2.0), lease, WatchdogDevice(str(path), FakeDriver())
        )
        dog.keep(10.0, 1.0)
        dog.keep(10.0, 1.0)
        dog.disarm()
        assert os.read(reader, 16) == b"11V"
    finally:
        os.close(reader)


def test_ioctl_numbers_are_the_kernels() -> None:
    # <linux/watchdog.h> as compiled for x86-64 and arm64.
    from pgwarden.agent.watchdog_device import WDIOC_GETSUPPORT, WDIOC_GETTIMEOUT, WDIOC_SETTIMEOUT

    assert (WDIOC_GETSUPPORT, WDIOC_SETTIMEOUT, WDIOC_GETTIMEOUT) == (0x80285700, 0xC0045706, 0x80045707)
