"""Wakes the loop the moment the local postmaster dies, so a crashed primary is restarted at once."""

from __future__ import annotations

import threading

from pgwarden.fence.postmaster import postmaster_pid

# A tenth of a second costs one stat of /proc per check and bounds the crash detection delay.
CHECK_INTERVAL = 0.1


class PostmasterWatch:
    def __init__(self, data_dir: str, wake: threading.Event) -> None:
        self._data_dir = data_dir
        self._wake = wake
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="postmaster-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        seen: int | None = None
        while not self._stop.wait(CHECK_INTERVAL):
            pid = postmaster_pid(self._data_dir)
            if seen is not None and pid != seen:
                self._wake.set()
            seen = pid
