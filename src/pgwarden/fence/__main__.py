"""``python -m pgwarden.fence --data-dir DIR --name NODE [--config FILE]``: run a node's fence.

The agent starts it in a session of its own (so it outlives the agent) and a restarted agent
adopts it; it runs until SIGTERM or SIGINT, or until its directory is removed. Only one fence
guards a data directory: a second one finds the lock taken and exits at once.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import sys
import time
from types import FrameType

from pgwarden.fence.channel import boot_id
from pgwarden.fence.files import CHANNEL_FLAG, CHANNEL_VERSION, FenceFiles
from pgwarden.fence.watch import POLL, Fence
from pgwarden.logs import apply as apply_logging

log = logging.getLogger("pgwarden.fence")


class _Stop:
    requested = False

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received signal %d: the fence exits", signum)
        self.requested = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgwarden.fence", description=__doc__)
    parser.add_argument("--data-dir", required=True, help="the data directory this fence guards")
    parser.add_argument("--name", required=True, help="the node's name, for the log")
    parser.add_argument("--config", help="the node's config file (only so that tools find the fence)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text", help="as the agent's")
    parser.add_argument(
        CHANNEL_FLAG,
        choices=("1", CHANNEL_VERSION),
        default="1",
        help="the newest deadline record the agent may write (this fence reads every version)",
    )
    args = parser.parse_args(argv)
    apply_logging(logging.INFO, args.log_format, None, args.name, sys.stderr)
    files = FenceFiles.beside(args.data_dir)
    files.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = os.open(files.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("another fence already guards %s: exiting", args.data_dir)
        return 0
    _write_pid(files)
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    fence = Fence(args.data_dir, boot_id())
    fence.refresh()
    log.info("fence of %s started (pid %d); %s", args.data_dir, os.getpid(), fence.describe())
    while not stop.requested:
        try:
            wake = fence.turn()
        except Exception as exc:  # nothing may end the fence but a request: report, look again
            log.exception("fence turn failed: %s", exc)
            wake = time.monotonic() + POLL
        if not files.directory.is_dir():
            log.info("%s was removed: exiting", files.directory)
            break
        time.sleep(max(0.0, wake - time.monotonic()))
    _remove_pid(files)
    return 0


def _write_pid(files: FenceFiles) -> None:
    tmp = files.pid.with_name(f".pid.{os.getpid()}.tmp")
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, files.pid)


def _remove_pid(files: FenceFiles) -> None:
    try:
        if files.pid.read_text().strip() == str(os.getpid()):
            files.pid.unlink()
    except OSError:
        pass  # the directory went away with it


if __name__ == "__main__":
    sys.exit(main())
