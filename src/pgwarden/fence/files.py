"""Where a node's fence keeps its files, how it is started, and finding the one that runs.

The files live in ``<data_dir>.fence/`` beside the data directory (as the server log does):
pg_basebackup and pg_rewind copy the data directory to other nodes and a re-clone wipes it, and
neither may carry a deadline along or lose one.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

from pgwarden.fence.proc import alive, command_line

MODULE = "pgwarden.fence"  # ``python -m pgwarden.fence``: also how a running fence is recognised
# On a fence's command line: it reads version-2 deadline records (channel.py). A fence started
# by an older agent lacks it (and an older fence would refuse it), so an agent adopting a fence
# writes version 2 only to one that carries it.
CHANNEL_FLAG = "--channel-version"
CHANNEL_VERSION = "2"


@dataclass(frozen=True, slots=True)
class FenceFiles:
    directory: Path

    @classmethod
    def beside(cls, data_dir: str) -> FenceFiles:
        path = Path(os.path.normpath(data_dir))
        return cls(path.with_name(path.name + ".fence"))

    @property
    def deadline(self) -> Path:
        """The channel: the agent's lease deadline (channel.py)."""
        return self.directory / "deadline"

    @property
    def pid(self) -> Path:
        """The running fence's PID, written by the fence itself once it holds the lock."""
        return self.directory / "pid"

    @property
    def lock(self) -> Path:
        """flock'ed by the running fence for its whole life: a second one exits at once."""
        return self.directory / "lock"


def fence_command(
    python: str, data_dir: str, name: str, config: str | None, log_format: str = "text"
) -> list[str]:
    """The fence's command line. It names the data directory and the node's config file, so
    whoever looks for a stack's processes by their arguments (``pgwarden down``) finds it too;
    its lines land in the agent's log, in the agent's ``log_format``."""
    cmd = [python, "-m", MODULE, "--data-dir", os.path.normpath(data_dir), "--name", name]
    cmd += [CHANNEL_FLAG, CHANNEL_VERSION]
    if log_format != "text":
        cmd += ["--log-format", log_format]
    return [*cmd, "--config", config] if config else cmd


def reads_checked_records(pid: int) -> bool:
    """Whether the fence ``pid`` was started saying it reads version-2 deadline records."""
    args = command_line(pid)
    return any(a == CHANNEL_FLAG and b == CHANNEL_VERSION for a, b in itertools.pairwise(args))


def running_fence(data_dir: str) -> int | None:
    """The PID of the fence guarding ``data_dir``, or None when none runs.

    The pid file alone could name a dead or reused PID, so the process must be alive (not a
    zombie) and have been started as ``python -m pgwarden.fence --data-dir <data_dir>``.
    """
    files = FenceFiles.beside(data_dir)
    try:
        pid = int(files.pid.read_text().strip())
    except (OSError, ValueError):
        return None
    if pid <= 0 or not alive(pid):
        return None
    args = command_line(pid)
    want = os.path.normpath(data_dir)
    for i, arg in enumerate(args[:-1]):
        if arg == "--data-dir" and args[i + 1] == want and MODULE in args:
            return pid
    return None
